"""Trained ranking models kept between runs (``regen-bench run --fit-cache DIR``).

A narrating task ranks exactly as its ranking twin (``narrative`` as ``sequential``,
``conversational`` as ``critique``, :func:`~regen_bench.runner.config.ranking_twin`), so a
model that writes no text of its own is trained on the same inputs in both, once per narrative
type. Trained once and kept here, the five narrative types of a grid (and a ``--limit`` check)
reuse one fit: FLARE's 23-minute training on ``mini`` runs once instead of six times. A model
that writes text (LUMEN) trains on one narrative type's references, so its key names that
type: nothing is shared between cells, but a run killed after training (a LUMEN cell of the
``mini`` grid trains for about half an hour, then ranks and writes for over an hour) starts
again from the kept fit.

An entry is a folder ``DIR/<model>-<key>/``: the model's own checkpoint (``model/``, written by
its ``save(path)`` and read by its ``load(path)``, safetensors and JSON; no pickle is read) and
``fit.json``: the settings the key hashes, the fit log, the fit's own time, and the state of the
global random generators (Python's, numpy's, torch's) right after training, restored on reuse.
The key names everything a fit depends on: the harness and plugin versions, the model and its
options, the dataset's fingerprint, what the task shows (history alone, or with critiques), a
digest of the training sequences and validation examples as the model receives them (reference
narratives excluded: a model that writes no text never reads them; one that does is keyed by
the narrative type, whose references the dataset's fingerprint fixes), the seed and torch's
thread count. So a run that reuses a fit writes the same samples, narratives and metrics as one that
trains anew (``tests/test_fit_cache.py`` compares them byte for byte); ``leaderboard verify``
always trains anew, in a scratch folder.

Only models with ``save``/``load`` are kept (the torch recommenders, LUMEN); the others train
in seconds. A model whose scoring reads the training users themselves (LUMEN's prompts show
their ratings and reviews) gets them after a load through its ``use_users(train)``, as
``fit`` would have. An unreadable or foreign entry is trained anew and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import regen_bench
from regen_bench.data.dataset import UserSequence
from regen_bench.fileio import atomic_write
from regen_bench.model import Model
from regen_bench.tasks import TaskData
from regen_bench.threads import torch_threads

#: Bumped whenever what an entry holds (or how the key is made) changes.
FORMAT = 1
FIT_FILE = "fit.json"
MODEL_DIR = "model"


@dataclass(frozen=True)
class FitRecord:
    """What ``fit.json`` holds besides the key's fields."""

    fit_log: dict[str, Any]
    fit_s: float
    trained: str  # ISO time of the training


def keeps_checkpoints(model: Model) -> bool:
    """Whether ``model`` can be kept: it has the checkpoint methods ``save`` and ``load``."""
    return callable(getattr(model, "save", None)) and callable(getattr(model, "load", None))


def give_users(model: Model, train: Sequence[UserSequence]) -> None:
    """Hand a model restored from an entry the training users that ``fit`` would have given
    it, where it reads them while scoring (it has ``use_users``)."""
    use = getattr(model, "use_users", None)
    if callable(use):
        use(train)


def _data_digest(data: TaskData) -> str:
    """sha256 of the training sequences and validation examples as a model receives them.

    Critiques enter only where the task shows them; the reference narratives never do.
    """
    digest = hashlib.sha256()
    show = data.task.uses_critique

    def put(*parts: object) -> None:
        digest.update(json.dumps(parts, separators=(",", ":")).encode())

    for user in data.train:
        put(
            "train",
            user.user_id,
            [int(i) for i in user.items],
            list(user.critiques) if show else None,
        )
    for ex in data.valid:
        history = [int(i) for i in ex.history]
        put("valid", ex.user_id, history, list(ex.history_critiques), ex.target, ex.critique)
    return digest.hexdigest()


def key_fields(
    *,
    model: str,
    plugin: str,
    plugin_version: str,
    options: dict[str, object],
    fingerprint: str,
    data: TaskData,
    seed: int,
    narrative: str | None = None,
) -> dict[str, Any]:
    """Everything a fit depends on (what the key hashes, and what an entry records);
    ``narrative``: the references a model that writes text trained on (None for the others,
    whose keys then stay as they were)."""
    fields = {
        "format": FORMAT,
        "harness": regen_bench.__version__,
        "model": model,
        "plugin": plugin,
        "plugin_version": plugin_version,
        "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
        "dataset": fingerprint,
        "inputs": "history+critiques" if data.task.uses_critique else "history",
        "data": _data_digest(data),
        "seed": seed,
        "threads": torch_threads(),
    }
    if narrative is not None:
        fields["narrative"] = narrative
    return fields


def entry_path(folder: str | os.PathLike[str], fields: dict[str, Any]) -> Path:
    """``FOLDER/<model>-<first 16 hex digits of the key>``."""
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return Path(folder) / f"{fields['model']}-{key[:16]}"


# -- the global generators, as JSON --------------------------------------------------------------


def _rng_states() -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": [version, list(mt), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    try:
        import torch
    except ImportError:  # pragma: no cover - the models kept here are torch models
        return states
    states["torch"] = bytes(torch.get_rng_state().tolist()).hex()
    return states


def _restore(states: dict[str, Any]) -> None:
    version, mt, gauss = states["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "torch" in states:
        import torch

        torch.set_rng_state(torch.tensor(list(bytes.fromhex(states["torch"])), dtype=torch.uint8))


# -- entries --------------------------------------------------------------------------------------


def load(
    path: Path, fields: dict[str, Any], model: Model, log: Callable[[str], None]
) -> FitRecord | None:
    """Load the entry at ``path`` into ``model`` (freshly built with the same settings) and
    restore the generators; None (``model`` untouched or to be retrained) when there is no
    usable entry."""
    if not path.exists():
        return None
    try:
        stored = json.loads((path / FIT_FILE).read_text())
        if stored["fields"] != fields:
            raise ValueError("made with other settings")
        model.load(path / MODEL_DIR)  # type: ignore[attr-defined]
        record = FitRecord(stored["fit_log"], float(stored["fit_s"]), str(stored["trained"]))
        _restore(stored["rng"])
    except Exception as exc:  # an unreadable or foreign entry is retrained, never trusted
        log(f"fit cache: {path} cannot be used ({type(exc).__name__}: {exc}); training anew")
        return None
    return record


def store(
    path: Path,
    fields: dict[str, Any],
    model: Model,
    fit_log: dict[str, Any],
    fit_s: float,
    log: Callable[[str], None],
) -> None:
    """Keep a fit at ``path``, all or nothing (written beside it, then renamed into place); one
    that cannot be written is not kept, and the run goes on."""
    record = {
        "fields": fields,
        "fit_log": fit_log,
        "fit_s": fit_s,
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rng": _rng_states(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save(tmp / MODEL_DIR)  # type: ignore[attr-defined]
        atomic_write(tmp / FIT_FILE, [json.dumps(record, indent=1, default=str).encode()])
        if path.exists():  # a stale entry (it failed to load) or another run's equal one
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk must not cost the run the model it just trained
        log(f"fit cache: cannot keep {path} ({exc}); the run goes on")
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"fit cache: kept {path}")


__all__ = [
    "FIT_FILE",
    "FORMAT",
    "MODEL_DIR",
    "FitRecord",
    "entry_path",
    "keeps_checkpoints",
    "key_fields",
    "load",
    "store",
]
