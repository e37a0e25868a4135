"""LUMEN: one LLM with an item vocabulary that recommends and writes the narrative.

Only the hook lives here: the model module (and torch) is imported when a model is built; the
option schema (no torch) is registered as metadata.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.lumen.options import LumenOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "lumen",
        lazy("regen_bench_plugins.lumen.model:Lumen"),
        tasks=("sequential", "critique", "narrative", "conversational"),
        summary="LUMEN: one LLM with an item vocabulary; recommends and writes the narrative",
        generates_text=True,
        options=LumenOptions,
    )
