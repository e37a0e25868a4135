"""Fine-tuning a narrator: the training pairs, the trainer's input and the run that writes it.

REGEN narratives are per user and describe the user's *last* purchase, which is also the test
target of the leave-one-out split. A narrator fine-tuned on a user's narrative has therefore seen
that user's test reference. To keep text metrics honest, users are split by a salted hash of
their id into three buckets that do not depend on the data, the order of users or the machine:

- ``heldout``: never used for fine-tuning; the only users whose narratives are scored when a
  conversational run uses a fine-tuned narrator;
- ``valid``: validation loss, early stopping;
- ``train``: the training pairs.

A pair is (the narrator's prompt for the user's last purchase, the reference narrative): exactly
the prompt :func:`regen_bench.narrator.build_prompt` writes at inference with
``condition=target`` on the narrating task the narrator is for (``task``): with the critiques
on ``conversational``, without any on ``narrative``, as the run's narrator shows them. The
training itself (torch, transformers, Accelerate) lives in a ``narrator_trainer`` plugin;
this module prepares its input and checks its output. The partition rule and the manifest of a
fine-tuned folder live in :mod:`regen_bench.finetune_manifest` (a run reads them without this
module) and are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from regen_bench.data.dataset import Dataset
from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.finetune_manifest import (
    BUCKETS,
    DEFAULT_SALT,
    DEFAULT_TASK,
    LOG_FILE,
    MANIFEST_FILE,
    PARTITION_METHOD,
    CurvePoint,
    FinetuneManifest,
    PartitionInfo,
    PromptInfo,
    UserPartition,
    finetuned_narrator,
    manifest_sha256,
    narrating_tasks,
    read_manifest,
)
from regen_bench.narrator import PROMPT_VERSION, SYSTEM_PROMPT, NarratorConfig, build_prompt
from regen_bench.plugins import get_plugin_manager
from regen_bench.resolve import resolve_dataset
from regen_bench.tasks import MIN_INTERACTIONS, TASKS
from regen_bench.threads import set_torch_threads

DEFAULT_BASE_MODEL = "smollm2"
DEFAULT_TRAINER = "hf"
MixedPrecision: TypeAlias = Literal["auto", "no", "bf16", "fp16"]


@dataclass(frozen=True)
class Pair:
    """One training example: a user's prompt (without the system turn) and its narrative."""

    user_id: str
    prompt: str
    target: str


@dataclass
class Hyperparameters:
    """Training settings (recorded in the manifest). Steps are optimizer steps."""

    epochs: int = 3
    max_steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 4
    grad_accum: int = 1
    eval_every: int = 50
    eval_batch_size: int = 4
    patience: int = 3
    max_length: int = 512
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    #: auto: bf16 on a GPU that supports it, else full precision (CPU: always "no").
    mixed_precision: MixedPrecision = "auto"
    cpu: bool = False

    def check(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "eval_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("--max-steps must be at least 1")
        if self.patience < 0 or self.warmup_steps < 0:
            raise ValueError("--patience and --warmup-steps must be >= 0")
        if self.max_length < 8:
            raise ValueError("--max-length must be at least 8 tokens")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")


@dataclass
class FinetuneSpec:
    """What a ``narrator_trainer`` plugin receives.

    The trainer writes ``out_dir`` (checkpoint with ``save_pretrained``, tokenizer,
    :data:`LOG_FILE`, :data:`MANIFEST_FILE` = ``manifest`` + its own fields) so that it appears
    complete or not at all, and returns the manifest it wrote.
    """

    base_model: str
    out_dir: Path
    narrative_type: str
    system: str
    train: list[Pair]
    valid: list[Pair]
    hyper: Hyperparameters
    seed: int
    manifest: dict[str, Any] = field(default_factory=dict)


def is_main_process() -> bool:
    """False in the non-zero ranks of ``accelerate launch``/``torchrun`` (they stay quiet)."""
    return os.environ.get("RANK", "0") == "0"


# -- building the training data -----------------------------------------------------------------


def build_pairs(
    ds: Dataset,
    narrative_type: str,
    partition: UserPartition,
    prompt_config: NarratorConfig,
    *,
    task: str = DEFAULT_TASK,
    limit_train: int | None = None,
    limit_valid: int | None = None,
) -> tuple[list[Pair], list[Pair], dict[str, int]]:
    """Training and validation pairs (file order), and the user count of every bucket.

    Users qualify as test users do: at least :data:`MIN_INTERACTIONS` purchases and a non-empty
    reference narrative of ``narrative_type``. The prompts are those a run of ``task`` sends
    the narrator: critiques shown exactly when the task reveals them (the leading critique is
    the example's, None on a task without critiques, as :func:`regen_bench.tasks.build_task`
    makes it). ``limit_*`` keep the first N of a bucket; the users left out are not used, but
    stay outside ``heldout`` (the rule never changes).
    """
    critiques = _task_critiques(task)
    buckets: dict[str, list[Pair]] = {b: [] for b in BUCKETS if b != "heldout"}
    counts = dict.fromkeys(BUCKETS, 0)
    for user in ds.users:
        reference = user.narratives.as_dict().get(narrative_type)
        if len(user) < MIN_INTERACTIONS or not reference or not reference.strip():
            continue
        bucket = partition.bucket(user.user_id)
        counts[bucket] += 1
        if bucket == "heldout":
            continue
        n = len(user) - 1
        prompt = build_prompt(
            ds.catalog,
            user,
            n,
            int(user.items[n]),
            user.critiques[n] if critiques else None,
            narrative_type,
            prompt_config,
            show_critiques=critiques,
        )
        buckets[bucket].append(Pair(user.user_id, prompt, reference.strip()))
    train = buckets["train"][:limit_train]
    valid = buckets["valid"][:limit_valid]
    if not train or not valid:
        raise ValueError(
            f"dataset '{ds.name}' leaves no users to fine-tune on for '{narrative_type}' "
            f"(users per bucket with a reference: {counts}); add data or change "
            "--heldout-fraction/--valid-fraction"
        )
    return train, valid, counts


def _task_critiques(task: str) -> bool:
    """Whether ``task``'s narrator prompts show critiques; ValueError unless it narrates."""
    if task not in narrating_tasks():
        raise ValueError(
            f"--task must be a task that writes narratives ({', '.join(narrating_tasks())}), "
            f"got '{task}'"
        )
    return TASKS[task].uses_critique


def _check_out_dir(out: Path) -> None:
    """Fail before any training if ``out`` cannot be written or holds something."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output folder {out} exists and is not empty; choose another --out")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write the output folder {out}: {parent} is not writable")


def finetune(
    dataset: str,
    narrative_type: str,
    out: str | os.PathLike[str],
    *,
    task: str = DEFAULT_TASK,
    base_model: str = DEFAULT_BASE_MODEL,
    trainer: str = DEFAULT_TRAINER,
    partition: UserPartition | None = None,
    hyper: Hyperparameters | None = None,
    seed: int = 0,
    max_history: int = NarratorConfig.max_history,
    max_field_chars: int = NarratorConfig.max_field_chars,
    limit_users: int | None = None,
    limit_valid: int | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    command: Sequence[str] | None = None,
) -> FinetuneManifest:
    """Fine-tune ``base_model`` as the narrator of ``narrative_type`` on ``task``'s prompts
    and write folder ``out``. ``command``: the command line that reproduces it (recorded)."""
    if not is_main_process():
        progress, log = False, lambda _m: None
    if narrative_type not in NARRATIVE_TYPES:
        raise ValueError(
            f"unknown narrative type '{narrative_type}' (one of {', '.join(NARRATIVE_TYPES)})"
        )
    _task_critiques(task)
    for name, value in (("--limit-users", limit_users), ("--limit-valid", limit_valid)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1")
    hyper = hyper or Hyperparameters()
    hyper.check()
    partition = partition or UserPartition()
    prompt_config = NarratorConfig.from_options(
        {"max_history": max_history, "max_field_chars": max_field_chars}
    )
    plugins = get_plugin_manager()
    entry = plugins.get("narrator_trainer", trainer)
    out_dir = Path(out).expanduser()
    _check_out_dir(out_dir)
    if threads is not None:
        set_torch_threads(threads)
    ds = resolve_dataset(dataset, data_dir, plugins)
    train, valid, counts = build_pairs(
        ds,
        narrative_type,
        partition,
        prompt_config,
        task=task,
        limit_train=limit_users,
        limit_valid=limit_valid,
    )
    log(
        f"dataset {ds.name}: users with a '{narrative_type}' reference per bucket {counts}; "
        f"fine-tuning on {len(train)} train / {len(valid)} valid users, '{task}' prompts "
        f"({'with' if TASKS[task].uses_critique else 'without'} critiques)"
    )
    spec = FinetuneSpec(
        base_model=base_model,
        out_dir=out_dir,
        narrative_type=narrative_type,
        system=SYSTEM_PROMPT,
        train=train,
        valid=valid,
        hyper=hyper,
        seed=seed,
        manifest={
            "trainer": trainer,
            "base_model": base_model,
            "narrative_type": narrative_type,
            "task": task,
            "dataset": {"name": ds.name, "fingerprint": ds.fingerprint, "users": len(ds.users)},
            "partition": {
                "method": PARTITION_METHOD,
                "salt": partition.salt,
                "heldout_fraction": partition.heldout_fraction,
                "valid_fraction": partition.valid_fraction,
                "users": counts,
                "used": {"train": len(train), "valid": len(valid)},
            },
            "prompt": {
                "version": PROMPT_VERSION,
                "system": SYSTEM_PROMPT,
                "max_history": prompt_config.max_history,
                "max_field_chars": prompt_config.max_field_chars,
                "condition": "target",
            },
            "seed": seed,
            "command": list(command) if command is not None else None,
        },
    )
    raw = entry.factory(spec, log=log, progress=progress)
    return FinetuneManifest.model_validate(raw)


__all__ = [
    "BUCKETS",
    "DEFAULT_BASE_MODEL",
    "DEFAULT_SALT",
    "DEFAULT_TASK",
    "DEFAULT_TRAINER",
    "LOG_FILE",
    "MANIFEST_FILE",
    "PARTITION_METHOD",
    "CurvePoint",
    "FinetuneManifest",
    "FinetuneSpec",
    "Hyperparameters",
    "MixedPrecision",
    "Pair",
    "PartitionInfo",
    "PromptInfo",
    "UserPartition",
    "build_pairs",
    "finetune",
    "finetuned_narrator",
    "is_main_process",
    "manifest_sha256",
    "narrating_tasks",
    "read_manifest",
]
