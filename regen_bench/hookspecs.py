"""Hook specifications of regen-bench (pluggy project name ``regen_bench``).

Every hook receives a ``register`` callback. Registration is lazy: a plugin registers a
*factory* (a callable that imports heavy libraries only when it is called), never an instance.

    from regen_bench import hookimpl

    @hookimpl
    def register_models(register):
        def factory(catalog, **config):
            from my_package.model import MyModel  # heavy imports happen here
            return MyModel(catalog, **config)
        register("my-model", factory, tasks=("sequential", "critique"),
                 summary="my sequential recommender")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT = "regen_bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback every hook receives: ``register(name, factory, **meta)``.

    ``meta`` is the entry's explicit metadata (``summary`` for every kind; ``tasks`` and
    ``generates_text`` for models). The harness reads metadata from here, never from the
    factory object, so a factory may be any callable, e.g. a function that imports lazily.
    """

    def __call__(self, name: str, factory: Callable[..., Any], /, **meta: Any) -> None: ...


@hookspec
def register_models(register: Register) -> None:
    """Register models: ``register(name, factory, tasks=(...), summary="")``.

    ``factory(catalog, seed=..., **config)`` returns a :class:`regen_bench.Model`; ``tasks``
    names the tasks it supports (``sequential``, ``critique``, ``conversational``).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: ``register(name, factory, summary="")``.

    ``factory(data_dir=None)`` returns the path of a REGEN-format file.
    """


@hookspec
def register_llm_backends(register: Register) -> None:
    """Register LLM backends: ``register(name, factory, summary="")``."""


@hookspec
def register_raters(register: Register) -> None:
    """Register auto-raters: ``register(name, factory, summary="")``.

    ``factory(**options)`` returns a :class:`regen_bench.rating.Rater` (docs/rating.md).
    """


@hookspec
def register_embedders(register: Register) -> None:
    """Register sentence embedders: ``register(name, factory, summary="")``."""


@hookspec
def register_narrator_trainers(register: Register) -> None:
    """Register narrator trainers: ``register(name, factory, summary="")``.

    ``factory(spec, *, log, progress)`` fine-tunes a causal LM on a
    :class:`regen_bench.finetune.FinetuneSpec`, writes ``spec.out_dir`` and returns the manifest
    it wrote (a dict; see docs/models.md, "Fine-tuning the narrator").
    """


#: Registry kind -> hook name, in listing order.
KINDS: dict[str, str] = {
    "model": "register_models",
    "dataset": "register_datasets",
    "llm_backend": "register_llm_backends",
    "rater": "register_raters",
    "embedder": "register_embedders",
    "narrator_trainer": "register_narrator_trainers",
}

__all__ = ["KINDS", "PROJECT", "Register", "hookimpl", "hookspec"]
