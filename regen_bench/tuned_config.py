"""The tuned-config file that `regen-bench tune` writes and `regen-bench run --config` reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regen_bench.fileio import field_error, read_json
from regen_bench.results import Tuning

#: What a tuned-config file says it is.
KIND: Literal["regen-bench tuned config"] = "regen-bench tuned config"


class TuneError(ValueError):
    """A search cannot start or finish (untunable model, bad file...); the message says why."""


class TrialRecord(BaseModel):
    """One finished or failed trial of the search, as the tuned-config file lists it."""

    model_config = ConfigDict(extra="forbid")

    number: int
    state: str
    value: float | None = None
    params: dict[str, Any]
    epochs: int | None = None


class TunedConfig(BaseModel):
    """The file ``regen-bench tune`` writes and ``regen-bench run --config`` reads."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: Literal["regen-bench tuned config"] = KIND
    model: str
    task: str
    #: The ``--dataset`` argument of the search (its fingerprint is in ``tuning``).
    dataset: str
    #: Every model option of the best trial (searched and fixed), for ``run --config``.
    options: dict[str, Any]
    tuning: Tuning
    trials: list[TrialRecord] = Field(default_factory=list)


def load_tuned_config(path: str | os.PathLike[str]) -> TunedConfig:
    """Read and validate a tuned-config file; TuneError naming the file and the field."""
    path = Path(path)
    raw = read_json(path, TuneError)
    try:
        return TunedConfig.model_validate(raw)
    except ValidationError as exc:
        what = "not a tuned config from `regen-bench tune`"
        raise TuneError(f"{path}: {what}: {field_error(exc)}") from None


def apply_tuned_config(
    tuned: TunedConfig, model: str, task: str, options: Mapping[str, object]
) -> tuple[dict[str, object], Tuning]:
    """The run options (``options``, e.g. ``--set``, override the tuned ones) and the tuning
    block to record; TuneError when the file was tuned for another model or task."""
    if tuned.model != model:
        raise TuneError(f"the config was tuned for model '{tuned.model}', not '{model}'")
    from regen_bench.runner.config import ranking_twin

    # A narrating task ranks exactly as its twin does (conversational as critique, narrative as
    # sequential): a config tuned on the twin runs on it.
    if tuned.task != task and tuned.task != ranking_twin(task):
        raise TuneError(f"the config was tuned on task '{tuned.task}', not '{task}'")
    overridden = sorted(k for k in options if k in tuned.options and options[k] != tuned.options[k])
    return {**tuned.options, **options}, tuned.tuning.model_copy(update={"overridden": overridden})


__all__ = [
    "KIND",
    "TrialRecord",
    "TuneError",
    "TunedConfig",
    "apply_tuned_config",
    "load_tuned_config",
]
