"""Item-based k-nearest-neighbours (cosine over training purchases) as a regen-bench plugin.

Only the hook lives here (and the option schema, which imports nothing heavy): the model module
is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.itemknn.options import ItemKNNOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "itemknn",
        lazy("regen_bench_plugins.itemknn.model:ItemKNN"),
        tasks=("sequential", "critique"),
        summary="item-based kNN: cosine over training purchases, recent history; ignores critiques",
        options=ItemKNNOptions,
    )
