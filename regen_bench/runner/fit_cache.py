"""Trained ranking models kept between runs (``regen-bench run --fit-cache DIR``).

A narrating task ranks exactly as its ranking twin (``narrative`` as ``sequential``,
``conversational`` as ``critique``, :func:`~regen_bench.runner.config.ranking_twin`), so a
model that writes no text of its own is trained on the same inputs in both, once per narrative
type. Trained once and stored here, the five narrative types of a grid (and a ``--limit`` check)
reuse one fit: FLARE's 23-minute training on ``mini`` runs once instead of six times.

An entry is found only by a key that names everything a fit depends on: the harness and plugin
versions, the model and its options, the dataset's fingerprint, what the task shows (history
alone, or with critiques), a digest of the training sequences and validation examples as the
model receives them (reference narratives excluded: a model that writes no text never reads
them), the seed and torch's thread count. Besides the model, an entry keeps the fit log, the
fit's own time, and the state of the global random generators (Python's, numpy's, torch's)
right after training, restored on reuse, so a run that reuses a fit writes the same samples,
narratives and metrics as one that trains anew; ``submit --verify`` always trains anew (it runs
into a scratch folder), and the test suite compares the two byte for byte.

Entries are Python pickles: load only a folder you (or your grid) wrote. A model that cannot be
pickled is trained and not stored (the run says so); an unreadable entry is trained anew and
replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import regen_bench
from regen_bench.fileio import atomic_write
from regen_bench.model import Model
from regen_bench.tasks import TaskData
from regen_bench.threads import torch_threads

#: Bumped whenever what an entry holds (or how the key is made) changes.
FORMAT = 1


@dataclass(frozen=True)
class FitEntry:
    """A stored fit: the trained model, its log, what training took and when it ran."""

    model: Model
    fit_log: dict[str, Any]
    fit_s: float
    trained: str  # ISO time of the training
    path: Path


def _data_digest(data: TaskData) -> str:
    """sha256 of the training sequences and validation examples as a model receives them.

    Critiques enter only where the task shows them; the reference narratives never do.
    """
    digest = hashlib.sha256()
    show = data.task.uses_critique

    def put(*parts: object) -> None:
        digest.update(json.dumps(parts, separators=(",", ":")).encode())

    for user in data.train:
        crit = list(user.critiques) if show else None
        put("train", user.user_id, [int(i) for i in user.items], crit)
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
) -> dict[str, Any]:
    """Everything a fit depends on (what the key hashes, and what an entry records)."""
    return {
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


def entry_path(folder: str | os.PathLike[str], fields: dict[str, Any]) -> Path:
    """``FOLDER/<model>-<first 16 hex digits of the key>.pkl``."""
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    return Path(folder) / f"{fields['model']}-{key[:16]}.pkl"


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency of the trainers
        return states
    states["torch"] = torch.get_rng_state()
    return states


def _restore(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "torch" in states:
        import torch

        torch.set_rng_state(states["torch"])


def load(path: Path, fields: dict[str, Any], log: Callable[[str], None]) -> FitEntry | None:
    """The entry at ``path`` made with exactly ``fields`` (its generators restored), else None."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            stored = pickle.load(fh)
        if stored["fields"] != fields:
            raise ValueError("made with other settings")
    except Exception as exc:  # an unreadable or foreign entry is retrained, never trusted
        log(f"fit cache: {path} cannot be used ({type(exc).__name__}: {exc}); training anew")
        return None
    _restore(stored["rng"])
    return FitEntry(stored["model"], stored["fit_log"], stored["fit_s"], stored["trained"], path)


def store(
    path: Path,
    fields: dict[str, Any],
    model: Model,
    fit_log: dict[str, Any],
    fit_s: float,
    log: Callable[[str], None],
) -> None:
    """Keep a fit at ``path`` (all or nothing); a model that cannot be pickled is not kept."""
    record = {
        "fields": fields,
        "rng": _rng_states(),
        "model": model,
        "fit_log": fit_log,
        "fit_s": fit_s,
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    started = time.perf_counter()
    try:
        blob = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # a lambda, a lock, an open file inside a plugin's model
        log(f"fit cache: model '{fields['model']}' cannot be stored ({exc}); not kept")
        return
    atomic_write(path, _chunks(blob))
    took = time.perf_counter() - started
    log(f"fit cache: kept {path} ({len(blob) / 2**20:.1f} MB, {took:.1f}s)")


def _chunks(blob: bytes, size: int = 1 << 24) -> Iterable[bytes]:
    view = memoryview(blob)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


__all__ = ["FORMAT", "FitEntry", "entry_path", "key_fields", "load", "store"]
