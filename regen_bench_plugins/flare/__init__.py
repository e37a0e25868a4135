"""FLARE: item IDs and item text fused by a Perceiver resampler, reading critiques.

Only the hook lives here: the model (and torch) is imported when the factory is called.
"""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, Register, hookimpl


def _factory(catalog: Catalog, **config: Any) -> Model:
    from regen_bench_plugins.flare.model import FLARE

    return FLARE(catalog, **config)


@hookimpl
def register_models(register: Register) -> None:
    register(
        "flare",
        _factory,
        tasks=("sequential", "critique"),
        summary="FLARE: ID + frozen text encoder fused by a Perceiver resampler; reads critiques",
    )
