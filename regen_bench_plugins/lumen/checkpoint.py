"""LUMEN checkpoint folders: ``backbone/`` (``save_pretrained`` of the backbone and its
tokenizer), ``items.safetensors`` (item table and head) and ``lumen.json`` (options, catalog
fingerprint, training log). No pickle is ever loaded."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regen_bench import Catalog
from regen_bench_plugins.torchrec.checkpoint import catalog_fingerprint

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from regen_bench_plugins.lumen.net import LumenNet

FORMAT_VERSION = 1
META_FILE = "lumen.json"
ITEMS_FILE = "items.safetensors"
BACKBONE_DIR = "backbone"
#: Generic marker naming the model plugin of a checkpoint folder (read by ``regen-bench trace``).
MODEL_MARKER = "regen-bench-model.json"


def read_meta(path: Path, catalog: Catalog) -> dict[str, Any]:
    """``lumen.json`` of the folder ``path``, checked against ``catalog``."""
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: not a lumen checkpoint (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{meta_path}: line {exc.lineno}: not valid JSON") from None
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{meta_path}: field 'format' must be {FORMAT_VERSION}")
    if meta.get("catalog_sha256") != catalog_fingerprint(catalog):
        raise ValueError(
            f"{meta_path}: field 'catalog_sha256': the checkpoint was trained on another "
            f"catalog ({meta.get('catalog_items')} items) than this dataset's "
            f"({len(catalog)} items)"
        )
    return dict(meta)


def load_item_tables(net: LumenNet, path: Path) -> None:
    """Load the item table and head of the folder ``path`` into ``net`` (the backbone is loaded
    from ``path/backbone`` with ``from_pretrained``)."""
    from safetensors.torch import load_file

    state = load_file(str(path / ITEMS_FILE))
    got = net.load_state_dict(state, strict=False)
    bad = [k for k in got.missing_keys if not k.startswith("backbone.")]
    if bad or got.unexpected_keys:
        raise ValueError(
            f"{path / ITEMS_FILE}: tensors do not match the model "
            f"(missing {bad}, unexpected {got.unexpected_keys})"
        )


def write_checkpoint(
    path: str | os.PathLike[str],
    net: LumenNet,
    tokenizer: PreTrainedTokenizerBase,
    *,
    options: dict[str, object],
    max_new_tokens: int,
    catalog: Catalog,
    seed: int,
    fit_log: dict[str, Any],
) -> Path:
    """Write a checkpoint folder atomically (complete or not at all); ``options`` are the
    saved (non-runtime) options."""
    from safetensors.torch import save_file

    out = Path(path)
    if out.exists() and not (out / META_FILE).is_file():
        raise FileExistsError(f"{out}: exists and is not a lumen checkpoint; not replacing")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        net.backbone.save_pretrained(tmp / BACKBONE_DIR)
        tokenizer.save_pretrained(tmp / BACKBONE_DIR)
        items = {
            k: v.detach().cpu().contiguous()
            for k, v in net.state_dict().items()
            if not k.startswith("backbone.")
        }
        save_file(items, str(tmp / ITEMS_FILE))
        meta = {
            "format": FORMAT_VERSION,
            "model": "lumen",
            "options": options,
            "max_new_tokens": max_new_tokens,
            "catalog_items": len(catalog),
            "catalog_sha256": catalog_fingerprint(catalog),
            "seed": seed,
            "fit_log": fit_log,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / MODEL_MARKER).write_text(json.dumps({"model": "lumen"}) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700 folders
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
