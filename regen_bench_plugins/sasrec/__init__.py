"""SASRec (2018) as a regen-bench model plugin.

Only the hook lives here: the model module (and torch) is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy


@hookimpl
def register_models(register: Register) -> None:
    register(
        "sasrec",
        lazy("regen_bench_plugins.sasrec.model:SASRec"),
        tasks=("sequential", "critique"),
        summary="SASRec self-attentive sequential recommender (2018); ignores critiques",
    )
