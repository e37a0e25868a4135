"""SASRec (2018) as a regen-bench model plugin.

Only the hook lives here: the model (and torch) is imported when the factory is called.
"""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, Register, hookimpl


def _factory(catalog: Catalog, **config: Any) -> Model:
    from regen_bench_plugins.sasrec.model import SASRec

    return SASRec(catalog, **config)


@hookimpl
def register_models(register: Register) -> None:
    register(
        "sasrec",
        _factory,
        tasks=("sequential", "critique"),
        summary="SASRec self-attentive sequential recommender (2018); ignores critiques",
    )
