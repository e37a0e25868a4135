"""Checkpoint folders of the torch recommenders: ``model.safetensors`` + ``config.json``.

Weights are read with safetensors only (never pickle). ``config.json`` names the model, its
seed and config, and the catalog it was trained on (:func:`catalog_fingerprint`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regen_bench import Catalog
from regen_bench.fileio import atomic_write

if TYPE_CHECKING:
    import torch

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
#: Fields every ``config.json`` must have.
REQUIRED = ("model", "config", "catalog_sha256")


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 of the catalog's item ids in index order (a checkpoint fits one catalog only)."""
    import hashlib

    return hashlib.sha256("\n".join(it.asin for it in catalog).encode()).hexdigest()


def write_checkpoint(
    folder: str | os.PathLike[str],
    state: Mapping[str, torch.Tensor],
    meta: Mapping[str, object],
    model: str,
) -> Path:
    """Write ``state`` (safetensors) and ``meta`` (``config.json``) into ``folder``, atomically."""
    from safetensors.torch import save

    out = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(out / WEIGHTS_FILE, [save(tensors, metadata={"model": model})])
    atomic_write(out / CONFIG_FILE, [json.dumps(meta, indent=2).encode()])
    return out


def read_checkpoint_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder, with a one-line error when unusable."""
    file = Path(folder) / CONFIG_FILE
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise ValueError(f"{file}: no such checkpoint config") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file}: not a JSON object")
    for key in REQUIRED:
        if key not in meta:
            raise ValueError(f"{file}: missing field '{key}'")
    return meta


def read_weights(folder: str | os.PathLike[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` on ``device``; ValueError when unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(folder) / WEIGHTS_FILE
    try:
        return load_file(str(weights), device=str(device))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ValueError(f"{weights}: cannot read weights ({exc})") from None
