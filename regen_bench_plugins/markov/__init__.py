"""First-order Markov chain over purchases, with a popularity back-off, as a regen-bench plugin.

Only the hook lives here (and the option schema, which imports nothing heavy): the model module
is imported when a model is built.
"""

from __future__ import annotations

from regen_bench import Register, hookimpl, lazy
from regen_bench_plugins.markov.options import MarkovOptions


@hookimpl
def register_models(register: Register) -> None:
    register(
        "markov",
        lazy("regen_bench_plugins.markov.model:Markov"),
        tasks=("sequential", "critique"),
        summary="first-order last-item transitions, popularity back-off; ignores critiques",
        options=MarkovOptions,
    )
