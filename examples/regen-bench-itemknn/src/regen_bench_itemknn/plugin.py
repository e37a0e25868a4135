"""Registration only: the model module is imported when the model is built, not before."""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, hookimpl


@hookimpl
def register_models(register: Any) -> None:
    def factory(catalog: Catalog, **config: Any) -> Model:
        from regen_bench_itemknn.model import ItemKNN

        return ItemKNN(catalog, **config)

    register(
        "example-itemknn",
        factory,
        tasks=("sequential", "critique"),
        summary="item-kNN over purchase co-occurrence (example plugin)",
    )
