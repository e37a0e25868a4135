"""BERT4Rec (2019) as a regen-bench model plugin.

Only the hook lives here: the model (and torch) is imported when the factory is called.
"""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, Register, hookimpl


def _factory(catalog: Catalog, **config: Any) -> Model:
    from regen_bench_plugins.bert4rec.model import BERT4Rec

    return BERT4Rec(catalog, **config)


@hookimpl
def register_models(register: Register) -> None:
    register(
        "bert4rec",
        _factory,
        tasks=("sequential", "critique"),
        summary="BERT4Rec bidirectional masked-item recommender (2019); ignores critiques",
    )
