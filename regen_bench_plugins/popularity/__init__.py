"""Popularity baseline: every item scored by its training-set purchase count.

Only the hook lives here: the model module (and torch) is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy


@hookimpl
def register_models(register: Register) -> None:
    register(
        "popularity",
        lazy("regen_bench_plugins.popularity.model:Popularity"),
        tasks=("sequential", "critique"),
        summary="most bought items in the training split (non-personalised baseline)",
    )
