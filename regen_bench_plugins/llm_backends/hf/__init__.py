"""``hf`` LLM backend: a local transformers causal LM, batched, greedy by default.

``model`` is a hub id (on a machine that can download), a local checkpoint folder, a ``.gguf``
file, or an offline alias (``smollm2``, ``gemma3-270m``; see
:mod:`regen_bench_plugins.llm_backends.local_models`). Prompts go through the tokenizer's chat
template when it has one. Batches are left-padded so every row continues from its last real
token; greedy answers do not depend on the batch they were in. Sampled requests
(``temperature > 0``) run one at a time under their own seed so they are reproducible too.
``timeout_s`` is not applied: a local generation is bounded by ``max_tokens`` instead.

Requests with a ``json_schema`` are decoded under the schema with ``lm-format-enforcer`` (in the
``local-llm`` extra): at every step only the tokens that keep the answer a valid prefix of a JSON
value following the schema may be chosen, so even a 135M model answers parseable JSON. Without
the library the schema is only described in the prompt (one warning says so).

Small models loop and copy their prompt's few-shot examples; ``repetition_penalty``,
``no_repeat_ngram_size`` (both on the answer only) and ``no_copy_ngram_size`` (prompt runs) are
the counter-measures, applied in the same logits processor as the schema masks. All are off by
default, which keeps earlier answers and cache keys.

Modules: :mod:`.backend` (options, loading, batching, generation) and :mod:`.constrained`
(the schema masks and repetition controls). Importing this package imports neither torch nor
transformers; the backend does when it is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl
from regen_bench_plugins.llm_backends.hf.backend import HFBackend, render_prompt


@hookimpl
def register_llm_backends(register: Register) -> None:
    """``hf``: the class itself, so the client checks ``--set`` options against its signature."""
    register(
        "hf",
        HFBackend,
        summary="local transformers causal LM (hub id, folder, .gguf, or smollm2 / gemma3-270m)",
    )


__all__ = ["HFBackend", "register_llm_backends", "render_prompt"]
