"""LUMEN: one LLM with an item vocabulary that recommends and writes the narrative.

Only the hook lives here: the model (and torch) is imported when the factory is called.
"""

from __future__ import annotations

from typing import Any

from regen_bench import Catalog, Model, Register, hookimpl


def _factory(catalog: Catalog, **config: Any) -> Model:
    from regen_bench_plugins.lumen.model import Lumen

    return Lumen(catalog, **config)


@hookimpl
def register_models(register: Register) -> None:
    register(
        "lumen",
        _factory,
        tasks=("sequential", "critique", "conversational"),
        summary="LUMEN: one LLM with an item vocabulary; recommends and writes the narrative",
        generates_text=True,
    )
