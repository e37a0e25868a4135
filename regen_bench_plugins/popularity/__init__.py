"""Popularity baseline: every item scored by its training-set purchase count.

Only the hook lives here: the model (and torch) is imported when the factory is called.
"""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, Register, hookimpl


def _factory(catalog: Catalog, **config: Any) -> Model:
    from regen_bench_plugins.popularity.model import Popularity

    return Popularity(catalog, **config)


@hookimpl
def register_models(register: Register) -> None:
    register(
        "popularity",
        _factory,
        tasks=("sequential", "critique"),
        summary="most bought items in the training split (non-personalised baseline)",
    )
