"""What a run is: :class:`RunConfig` (every setting that can change a number) and its checks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.embedding import DEFAULT_EMBEDDER
from regen_bench.metrics.ranking import DEFAULT_TIE_POLICY, TIE_POLICIES
from regen_bench.metrics.text import DEFAULT_BERTSCORE_MODEL
from regen_bench.plugins import PluginManager, UnknownNameError
from regen_bench.resolve import DEFAULT_DATASET
from regen_bench.results import Tuning
from regen_bench.runner.defaults import (
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_OUTPUT,
    DEFAULT_SEED,
    NARRATOR_PREFIX,
)
from regen_bench.tasks import TASKS


class RunError(ValueError):
    """A run cannot start (bad names, unsupported task...); the message says why."""


@dataclass(frozen=True)
class RunConfig:
    """One run: ``model`` on ``task`` of ``dataset``, with every setting that shapes its result.

    ``options`` are the ``--set`` options: ``narrator.*`` keys configure the narrator of a
    task that writes narratives, the others go to the model's factory. ``limit`` keeps the
    first N test users (recorded in the protocol and the signature); ``threads`` sets torch's
    CPU threads. ``fit_cache`` is a folder where a model with checkpoints reuses (or keeps)
    its trained state (:mod:`~regen_bench.runner.fit_cache`); it changes no number.
    ``tuning`` is set when ``options`` came from ``regen-bench tune`` (recorded in the result;
    the dataset must be the one the search ran on).
    """

    model: str
    task: str
    dataset: str = DEFAULT_DATASET
    narrative: str | None = None
    output: str | os.PathLike[str] = DEFAULT_OUTPUT
    seed: int = DEFAULT_SEED
    options: Mapping[str, object] = field(default_factory=dict)
    data_dir: str | None = None
    eval_batch_size: int = DEFAULT_EVAL_BATCH_SIZE
    tie_policy: str = DEFAULT_TIE_POLICY
    exclude_history: bool = False
    limit: int | None = None
    embedder: str | None = DEFAULT_EMBEDDER
    bertscore_model: str | None = DEFAULT_BERTSCORE_MODEL
    threads: int | None = None
    tuning: Tuning | None = None
    fit_cache: str | os.PathLike[str] | None = None

    def model_options(self) -> dict[str, object]:
        """The options for the model's factory (all but ``narrator.*``)."""
        return {k: v for k, v in self.options.items() if not k.startswith(NARRATOR_PREFIX)}

    def narrator_options(self) -> dict[str, object]:
        """The ``narrator.*`` options, prefix removed."""
        return {
            k.removeprefix(NARRATOR_PREFIX): v
            for k, v in self.options.items()
            if k.startswith(NARRATOR_PREFIX)
        }

    def output_paths(self, dataset_name: str) -> tuple[Path, Path]:
        """The result file and the per-sample file: ``OUTPUT/<dataset>/<task>/<stem>``."""
        out_dir = Path(self.output) / dataset_name / self.task
        stem = self.model + (f"__{self.narrative}" if self.narrative else "")
        return out_dir / f"{stem}.json", out_dir / f"{stem}.samples.jsonl"


def supports(meta: Mapping[str, Any], task: str) -> bool:
    """Whether a model registered with ``meta`` can run ``task``.

    A task that writes a narrative is open to joint models that declare it and, through the
    narrator, to every model that declares its ranking twin (:func:`ranking_twin`: it ranks
    exactly as there): ``conversational`` to the models of ``critique``, ``narrative`` to
    those of ``sequential``.
    """
    tasks = tuple(meta.get("tasks", ()))
    if task in tasks:
        return True
    twin = ranking_twin(task)
    return twin is not None and twin in tasks


def ranking_twin(task: str) -> str | None:
    """The task that ranks exactly as the narrating ``task`` does (same inputs, no narrative):
    the first registered task that writes none and shows the critique exactly when ``task``
    does; None for a task that writes no narrative (or an unknown one)."""
    own = TASKS.get(task)
    if own is None or not own.generates:
        return None
    return next(
        (
            t.name
            for t in TASKS.values()
            if not t.generates and t.uses_critique == own.uses_critique
        ),
        None,
    )


def check_names(model: str, task: str, plugins: PluginManager) -> None:
    """Fail fast (before loading data) on an unknown model/task or an unsupported pair."""
    if task not in TASKS:
        raise UnknownNameError("task", task, list(TASKS))
    entry = plugins.get("model", model)
    if not supports(entry.meta, task):
        supported = tuple(entry.meta.get("tasks", ()))
        raise RunError(
            f"model '{model}' does not support task '{task}' "
            f"(it supports: {', '.join(supported) or 'none'}); models for '{task}': "
            + ", ".join(
                n for n in plugins.names("model") if supports(plugins.get("model", n).meta, task)
            )
        )


def check_config(config: RunConfig, plugins: PluginManager) -> None:
    """Every check that needs no data: names, protocol values, the narrative type."""
    check_names(config.model, config.task, plugins)
    if config.tie_policy not in TIE_POLICIES:
        raise UnknownNameError("tie policy", config.tie_policy, list(TIE_POLICIES))
    if config.eval_batch_size < 1:
        raise RunError("eval batch size must be at least 1")
    if config.limit is not None and config.limit < 1:
        raise RunError("--limit must be at least 1")
    if config.threads is not None and config.threads < 1:
        raise RunError("--threads must be at least 1")
    if TASKS[config.task].generates and config.narrative not in NARRATIVE_TYPES:
        raise RunError(
            f"task '{config.task}' needs a narrative type, one of {', '.join(NARRATIVE_TYPES)} "
            "(--narrative TYPE)"
        )


__all__ = [
    "DEFAULT_EVAL_BATCH_SIZE",
    "DEFAULT_OUTPUT",
    "NARRATOR_PREFIX",
    "RunConfig",
    "RunError",
    "check_config",
    "check_names",
    "ranking_twin",
    "supports",
]
