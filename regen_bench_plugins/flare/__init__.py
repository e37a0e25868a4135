"""FLARE: item IDs and item text fused by a Perceiver resampler, reading critiques.

Only the hook lives here (and the option schema, which imports no torch): the model module
(and torch) is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.flare.options import FLAREOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "flare",
        lazy("regen_bench_plugins.flare.model:FLARE"),
        tasks=("sequential", "critique"),
        summary="FLARE: ID + frozen text encoder fused by a Perceiver resampler; reads critiques",
        options=FLAREOptions,
    )
