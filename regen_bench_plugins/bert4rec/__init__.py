"""BERT4Rec (2019) as a regen-bench model plugin.

Only the hook lives here (and the option schema, which imports no torch): the model module
(and torch) is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.bert4rec.options import BERT4RecOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "bert4rec",
        lazy("regen_bench_plugins.bert4rec.model:BERT4Rec"),
        tasks=("sequential", "critique"),
        summary="BERT4Rec bidirectional masked-item recommender (2019); ignores critiques",
        options=BERT4RecOptions,
    )
