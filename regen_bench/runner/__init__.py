"""run(config) -> result files: the one place that wires data, model, metrics and narrator.

A run is a :class:`RunConfig` (every setting that can change a number) and five named steps,
each in :mod:`~regen_bench.runner.steps`: :func:`prepare` (checks, data, narrator),
:func:`fit`, :func:`evaluate` (full-catalog ranking, :mod:`~regen_bench.runner.scoring`),
:func:`narrate` (conversational task, :mod:`~regen_bench.runner.narration`) and
:func:`build_result`. :func:`run` calls them in order and writes the result and per-sample files::

    from regen_bench.runner import RunConfig, run

    out = run(RunConfig("popularity", "sequential", seed=0))
    print(out.result.metrics["ndcg@10"], out.result_path)
"""

from regen_bench.resolve import DEFAULT_DATASET
from regen_bench.runner.config import (
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_OUTPUT,
    NARRATOR_PREFIX,
    RunConfig,
    RunError,
    check_config,
    check_names,
    supports,
)
from regen_bench.runner.scoring import TOP_K, score_examples
from regen_bench.runner.steps import (
    Evaluated,
    Fitted,
    Narrated,
    Prepared,
    RunOutput,
    build_model,
    build_result,
    evaluate,
    fit,
    narrate,
    prepare,
    run,
)

__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_EVAL_BATCH_SIZE",
    "DEFAULT_OUTPUT",
    "NARRATOR_PREFIX",
    "TOP_K",
    "Evaluated",
    "Fitted",
    "Narrated",
    "Prepared",
    "RunConfig",
    "RunError",
    "RunOutput",
    "build_model",
    "build_result",
    "check_config",
    "check_names",
    "evaluate",
    "fit",
    "narrate",
    "prepare",
    "run",
    "score_examples",
    "supports",
]
