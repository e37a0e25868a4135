"""Hook specifications of regen-bench (pluggy project name ``regen_bench``).

Every hook receives a ``register`` callback (:class:`Register`). Registration is lazy: a
plugin registers a *factory* (a callable that imports heavy libraries only when it is called),
never an instance. :func:`regen_bench.lazy` builds such a factory from a ``"module:Name"``
string, which keeps the plugin's hook module free of heavy imports:

    from regen_bench import Register, hookimpl, lazy

    @hookimpl
    def register_models(register: Register) -> None:
        register(
            "my-model",
            lazy("my_package.model:MyModel"),  # imported on first use, not at plugin load
            tasks=("sequential", "critique"),
            summary="my sequential recommender",
        )

Hooks are called through pluggy, so ``@hookimpl(specname="register_models")`` on a function of
another name, ``tryfirst``/``trylast`` and plugin names behave as pluggy documents them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from regen_bench.options import ModelOptions

PROJECT = "regen_bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback every hook receives: ``register(name, factory, *, summary="", ...)``.

    The metadata is explicit and checked when the plugin loads; the harness reads it from the
    registry, never from the factory object, so a factory may be any callable (e.g.
    :func:`regen_bench.lazy`). For every kind: ``summary``, one line for ``regen-bench
    plugins``. For models only: ``tasks``, the task names the model supports (``sequential``,
    ``critique``, ``conversational``); ``generates_text``, True when the model writes the
    conversational narrative itself (otherwise the harness's narrator does); ``options``, the
    model's option schema (a :class:`regen_bench.ModelOptions` subclass) or None. Any other
    keyword, or a model-only keyword for another kind, is an error naming the plugin.
    """

    def __call__(
        self,
        name: str,
        factory: Callable[..., object],
        *,
        summary: str = "",
        tasks: Sequence[str] = (),
        generates_text: bool = False,
        options: type[ModelOptions] | None = None,
    ) -> None: ...


@hookspec
def register_models(register: Register) -> None:
    """Register models: ``register(name, factory, tasks=(...), summary="", generates_text=False,
    options=None)``.

    ``factory(catalog: Catalog, *, seed: int = 0, **options) -> Model``: the runner passes the
    dataset's catalog, the run's seed and the ``--set`` options; an unknown option must raise
    ``TypeError`` or ``ValueError`` (``Model.__init__`` does).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: ``register(name, factory, summary="")``.

    ``factory(data_dir: str | None = None) -> str | os.PathLike[str]``: the path of a
    REGEN-format file (``data_dir`` is ``--data-dir``, where downloaded releases live).
    """


@hookspec
def register_llm_backends(register: Register) -> None:
    """Register LLM backends: ``register(name, factory, summary="")``.

    ``factory(**options) -> regen_bench.llm.Backend``: the options arrive as keyword
    arguments, checked against the factory's signature before the call (see
    docs/llm-backends.md, "Writing a backend").
    """


@hookspec
def register_raters(register: Register) -> None:
    """Register auto-raters: ``register(name, factory, summary="")``.

    ``factory(**options) -> regen_bench.rating.Rater``: options as for LLM backends (see
    docs/rating.md, "Writing a rater plugin").
    """


@hookspec
def register_embedders(register: Register) -> None:
    """Register sentence embedders: ``register(name, factory, summary="")``.

    ``factory(**options) -> regen_bench.embedding.Embedder``; ``progress: bool`` is passed only
    to factories that accept it (see docs/metrics.md).
    """


@hookspec
def register_narrator_trainers(register: Register) -> None:
    """Register narrator trainers: ``register(name, factory, summary="")``.

    ``factory(spec: FinetuneSpec, *, log: Callable[[str], None], progress: bool) -> dict``
    fine-tunes a causal LM on a :class:`regen_bench.finetune.FinetuneSpec`, writes
    ``spec.out_dir`` and returns the manifest it wrote (see docs/models.md, "Fine-tuning the
    narrator").
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
