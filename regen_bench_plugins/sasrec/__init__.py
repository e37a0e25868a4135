"""SASRec (2018) as a regen-bench model plugin.

Only the hook lives here (and the option schema, which imports no torch): the model module
(and torch) is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.sasrec.options import SASRecOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "sasrec",
        lazy("regen_bench_plugins.sasrec.model:SASRec"),
        tasks=("sequential", "critique"),
        summary="SASRec self-attentive sequential recommender (2018); ignores critiques",
        options=SASRecOptions,
    )
