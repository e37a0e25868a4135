"""The defaults ``regen-bench run --help`` shows, importable without numpy or pydantic.

``--help`` must be fast, and the modules that own some of these values (tasks, metrics,
embedding, resolve) import numpy. A run's own defaults are defined here (``RunConfig`` takes
them from this module); the others are copies of their owners' values, which
``tests/test_help_speed.py`` checks, so a change there fails a test until it is made here.
"""

from __future__ import annotations

DEFAULT_OUTPUT = "results"
DEFAULT_EVAL_BATCH_SIZE = 256
DEFAULT_SEED = 0
#: ``--set`` keys with this prefix configure the narrator of a narrating task.
NARRATOR_PREFIX = "narrator."

# Copies (owner in the comment).
DEFAULT_DATASET = "mini"  # regen_bench.resolve.DEFAULT_DATASET
DEFAULT_EMBEDDER = "minilm"  # regen_bench.embedding.DEFAULT_EMBEDDER
DEFAULT_TIE_POLICY = "pessimistic"  # regen_bench.metrics.ranking.DEFAULT_TIE_POLICY
TIE_POLICIES: tuple[str, ...] = ("pessimistic", "optimistic", "expected")  # ...ranking
DEFAULT_BERTSCORE_MODEL = "all-MiniLM-L6-v2"  # regen_bench.metrics.text
#: Task name -> description, in order (regen_bench.tasks.TASKS).
TASK_DESCRIPTIONS: dict[str, str] = {
    "sequential": "history -> next item",
    "critique": "history + the critique leading to the target -> next item",
    "narrative": "history -> next item and a narrative of a given type (no critique)",
    "conversational": "history + critique -> next item and a narrative of a given type",
}

__all__ = [
    "DEFAULT_BERTSCORE_MODEL",
    "DEFAULT_DATASET",
    "DEFAULT_EMBEDDER",
    "DEFAULT_EVAL_BATCH_SIZE",
    "DEFAULT_OUTPUT",
    "DEFAULT_SEED",
    "DEFAULT_TIE_POLICY",
    "NARRATOR_PREFIX",
    "TASK_DESCRIPTIONS",
    "TIE_POLICIES",
]
