"""A fine-tuned narrator folder as a run sees it: the user partition and the manifest.

A narrator fine-tuned on a user's narrative has seen that user's test reference, so users are
split by a salted hash of their id (:class:`UserPartition`) and only ``heldout`` users are
scored. The folder's ``narrator-finetune.json`` (:class:`FinetuneManifest`) records the rule,
the prompt settings and the task whose prompts it learnt (with or without critiques);
:func:`finetuned_narrator` adopts them for a narrating run and :func:`check_narrator_task`
refuses a run whose task shows the narrator other prompts. Writing such a folder is
:mod:`regen_bench.finetune`'s job.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from regen_bench.fileio import field_error, read_json
from regen_bench.narrator import PROMPT_VERSION, NarratorConfig
from regen_bench.tasks import TASKS

MANIFEST_FILE = "narrator-finetune.json"
#: The training log of a fine-tuned folder (one JSON line per evaluation).
LOG_FILE = "finetune-log.jsonl"
#: Files of a fine-tuned folder that say how it was made (dates, timings), not what it is:
#: left out of its weights digest, so the same weights trained again pin the same.
NOT_WEIGHTS = (MANIFEST_FILE, LOG_FILE)
#: Where a recorded command names the fine-tuned folder (``--out`` of the fine-tuning, the
#: ``narrator.model`` of the runs it narrates): the folder is wherever the command is run.
NARRATOR_PLACEHOLDER = "NARRATOR"
MANIFEST_KIND: Literal["regen-bench narrator fine-tune"] = "regen-bench narrator fine-tune"
BUCKETS: tuple[str, ...] = ("train", "valid", "heldout")
DEFAULT_SALT = "regen-narrator-v1"
#: The task whose prompts a narrator learns unless told (and of manifests that name none: they
#: were all fine-tuned on its prompts, critiques included).
DEFAULT_TASK = "conversational"
PARTITION_METHOD = "sha256(salt + '\\0' + user_id), first 8 bytes / 2**64"


@dataclass(frozen=True)
class UserPartition:
    """Deterministic user buckets: hash u in [0, 1): u < heldout -> heldout, then valid, train.

    The buckets do not depend on the data, the order of users or the machine.
    """

    salt: str = DEFAULT_SALT
    heldout_fraction: float = 0.5
    valid_fraction: float = 0.05

    def __post_init__(self) -> None:
        for name in ("heldout_fraction", "valid_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be in (0, 1), got {value}")
        if self.heldout_fraction + self.valid_fraction >= 1:
            raise ValueError(
                "heldout-fraction + valid-fraction must be below 1 (nothing left to train on), "
                f"got {self.heldout_fraction} + {self.valid_fraction}"
            )

    def position(self, user_id: str) -> float:
        """The user's hash position in [0, 1)."""
        digest = hashlib.sha256(f"{self.salt}\0{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def bucket(self, user_id: str) -> str:
        """``heldout``, ``valid`` or ``train``."""
        u = self.position(user_id)
        if u < self.heldout_fraction:
            return "heldout"
        return "valid" if u < self.heldout_fraction + self.valid_fraction else "train"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class PartitionInfo(_Strict):
    method: str
    salt: str
    heldout_fraction: float = Field(gt=0, lt=1)
    valid_fraction: float = Field(gt=0, lt=1)
    #: Users of the dataset per bucket (those with enough purchases and a reference).
    users: dict[str, int]
    #: Users whose pairs were actually used (``--limit-users`` / ``--limit-valid`` cap them).
    used: dict[str, int]

    def rule(self) -> UserPartition:
        return UserPartition(self.salt, self.heldout_fraction, self.valid_fraction)


class PromptInfo(_Strict):
    version: int
    system: str
    max_history: int = Field(ge=1)
    max_field_chars: int = Field(ge=1)
    condition: Literal["target"] = "target"
    chat_template: bool


class CurvePoint(_Strict):
    step: int = Field(ge=0)
    epoch: float = Field(ge=0)
    train_loss: float | None
    valid_loss: float
    elapsed_s: float = Field(ge=0)


class FinetuneManifest(_Strict):
    """``narrator-finetune.json``: how a fine-tuned narrator folder was made."""

    schema_version: Literal[1] = 1
    kind: Literal["regen-bench narrator fine-tune"] = MANIFEST_KIND
    created: str
    trainer: str
    base_model: str
    base_source: str
    narrative_type: str
    #: The narrating task whose prompts the pairs were (its critiques shown or not).
    task: str = DEFAULT_TASK
    dataset: dict[str, Any]
    partition: PartitionInfo
    prompt: PromptInfo
    hyperparameters: dict[str, Any]
    seed: int
    versions: dict[str, str | None]
    environment: dict[str, Any]
    pairs: dict[str, int]
    curve: list[CurvePoint]
    best_step: int = Field(ge=0)
    best_valid_loss: float
    stopped: str
    train_s: float = Field(ge=0)
    #: The ``narrator finetune`` command that made the folder, every setting spelt out and
    #: ``--out`` left as :data:`NARRATOR_PLACEHOLDER` (older folders have none).
    command: list[str] | None = None

    @field_validator("task")
    @classmethod
    def _narrating_task(cls, value: str) -> str:
        if value not in narrating_tasks():
            raise ValueError(f"must be a narrating task ({', '.join(narrating_tasks())})")
        return value

    @property
    def critiques(self) -> bool:
        """Whether the training prompts showed critiques (those of :attr:`task` do)."""
        return TASKS[self.task].uses_critique


def narrating_tasks() -> list[str]:
    """The tasks that write a narrative, in registry order: those a narrator can learn."""
    return [name for name, task in TASKS.items() if task.generates]


def read_manifest(folder: str | os.PathLike[str]) -> FinetuneManifest | None:
    """The manifest of a fine-tuned narrator folder; None if ``folder`` has none.

    A manifest that exists but is invalid raises ValueError naming the file and field.
    """
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return FinetuneManifest.model_validate(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"{path}: {field_error(exc)}") from None


def manifest_sha256(folder: str | os.PathLike[str]) -> str:
    return hashlib.sha256((Path(folder) / MANIFEST_FILE).read_bytes()).hexdigest()


def _folder_manifest(cfg: NarratorConfig) -> tuple[str, FinetuneManifest] | None:
    """The narrator's ``model`` and its manifest, when it is a fine-tuned folder."""
    model = cfg.backend_options.get("model")
    if not isinstance(model, str) or not Path(model).expanduser().is_dir():
        return None
    manifest = read_manifest(Path(model).expanduser())
    return None if manifest is None else (model, manifest)


def _shows(critiques: bool) -> str:
    return "with critiques" if critiques else "without critiques"


def check_narrator_task(cfg: NarratorConfig, task: str) -> None:
    """A fine-tuned narrator (``cfg``'s ``model`` folder) learnt prompts of ``task``'s kind.

    The narrator's prompt shows critiques exactly when the run's task does
    (:func:`regen_bench.narrator.build_prompt`), so a narrator fine-tuned on the prompts of a
    task that differs there would be asked something it never saw, and one trained with
    critiques would carry them into a task that has none. ValueError in one line otherwise.
    """
    found = _folder_manifest(cfg)
    if found is None:
        return
    model, manifest = found
    wanted = TASKS[task].uses_critique
    if manifest.critiques != wanted:
        raise ValueError(
            f"fine-tuned narrator {model} learnt prompts {_shows(manifest.critiques)} "
            f"(--task {manifest.task}), this run's task '{task}' prompts {_shows(wanted)}: "
            f"fine-tune it with --task {task}"
        )


def finetuned_narrator(
    cfg: NarratorConfig, explicit: dict[str, Any], narrative_type: str
) -> tuple[NarratorConfig, FinetuneManifest | None]:
    """When the narrator's ``model`` is a fine-tuned folder: its manifest and matching prompt.

    The prompt settings the narrator was trained with are adopted unless given explicitly
    (``explicit``: the ``narrator.*`` options of the run); a different value, another narrative
    type or prompt version is an error (the narrator would be asked something it never saw).
    Whether its task matches the run's is :func:`check_narrator_task`'s (the run's preflight).
    """
    found = _folder_manifest(cfg)
    if found is None:
        return cfg, None
    model, manifest = found
    where = f"fine-tuned narrator {model}"
    if manifest.narrative_type != narrative_type:
        raise ValueError(
            f"{where} was trained for '{manifest.narrative_type}' narratives, this run asks "
            f"for '{narrative_type}'"
        )
    if manifest.prompt.version != PROMPT_VERSION:
        raise ValueError(
            f"{where} was trained on prompt v{manifest.prompt.version}, the narrator writes "
            f"v{PROMPT_VERSION}: fine-tune it again"
        )
    updates: dict[str, int] = {}
    for key in ("max_history", "max_field_chars"):
        trained = getattr(manifest.prompt, key)
        if key in explicit and explicit[key] != trained:
            raise ValueError(
                f"narrator.{key}={explicit[key]} differs from the prompt {where} was trained "
                f"with ({key}={trained}); leave it unset"
            )
        updates[key] = trained
    return replace(cfg, **updates), manifest  # type: ignore[arg-type]


__all__ = [
    "BUCKETS",
    "DEFAULT_SALT",
    "DEFAULT_TASK",
    "MANIFEST_FILE",
    "PARTITION_METHOD",
    "CurvePoint",
    "FinetuneManifest",
    "PartitionInfo",
    "PromptInfo",
    "UserPartition",
    "check_narrator_task",
    "finetuned_narrator",
    "manifest_sha256",
    "narrating_tasks",
    "read_manifest",
]
