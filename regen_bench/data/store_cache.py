"""The on-disk cache of a dataset file's columns (:mod:`regen_bench.data.store`).

Cache layout and trust rules (see ``docs/data-format.md``):

- the cache of ``DIR/NAME`` lives in ``DIR/NAME.regen-cache/``, or under
  ``$REGEN_BENCH_CACHE_DIR`` (else ``~/.cache/regen-bench/``) when DIR is not writable;
- inside it, one folder per content fingerprint (sha256 of the decompressed file), with
  ``-p<digest>`` appended when the critique placeholders are not the default list (the
  critiques are stored with the placeholders already dropped) and ``-lenient`` when bad lines
  were skipped; a load with another placeholder list builds its own folder;
- ``meta.json`` records the source's (path, size, mtime_ns). When they match, the recorded
  fingerprint is trusted without re-hashing (re-hashing 4 GB takes about a minute). When they
  differ, the file is hashed again: same content reuses the cache, new content rebuilds it;
- a cache is built in a temporary folder and renamed into place, so it is whole or absent;
  one that fails any check (version, files, array lengths) is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from regen_bench.data.placeholders import DEFAULT_CRITIQUE_PLACEHOLDERS, placeholder_key
from regen_bench.data.regen import ReadReport, iter_records, open_text
from regen_bench.data.schema import UserRecord
from regen_bench.data.store import (
    STORE_VERSION,
    Store,
    StoreError,
    build_store,
    open_store,
    report_to_json,
)

CACHE_ENV = "REGEN_BENCH_CACHE_DIR"
CACHE_SUFFIX = ".regen-cache"


def cache_root(source: str | os.PathLike[str]) -> Path:
    """Where the cache of ``source`` lives (see the module docstring)."""
    src = Path(source).resolve()
    tag = hashlib.sha256(str(src).encode()).hexdigest()[:16]
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / f"{src.name}-{tag}"
    sibling = src.parent / f"{src.name}{CACHE_SUFFIX}"
    if sibling.is_dir() and os.access(sibling, os.W_OK):
        return sibling
    if os.access(src.parent, os.W_OK):
        return sibling
    return Path.home() / ".cache" / "regen-bench" / f"{src.name}-{tag}"


def _source_stat(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The dataset fingerprint: sha256 of the decompressed content."""
    digest = hashlib.sha256()
    with open_text(path) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
    os.replace(tmp, folder / "meta.json")


def _candidates(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _usable(folder: Path, lenient: bool) -> bool:
    # A lenient request may use a strict cache (no bad line was there to skip); a strict
    # request must not use a cache that skipped lines.
    return lenient or not folder.name.endswith("-lenient")


def _same_placeholders(store: Store, key: str) -> bool:
    """The cache dropped the critique placeholders this load asks for."""
    return placeholder_key(store.report.critique_placeholders) == key


def load_file_store(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    cache: bool = True,
    progress: bool = False,
    critique_placeholders: Sequence[str] = DEFAULT_CRITIQUE_PLACEHOLDERS,
) -> Store:
    """The columns of a REGEN-format file: from its cache when valid, else built (and cached).

    ``critique_placeholders`` is the whole list of critique strings read as "no critique"
    (:func:`regen_bench.data.placeholders.effective_placeholders`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file '{path}' does not exist")
    placeholders = tuple(critique_placeholders)
    if not cache:
        report = ReadReport()
        store = build_store(_records(path, report, skip_bad_lines, progress, placeholders))
        store.report = report
        return store
    root = cache_root(path)
    stat = _source_stat(path)
    key = placeholder_key(placeholders)
    existing = [p for p in _candidates(root) if _usable(p, skip_bad_lines)]
    for folder in existing:
        try:
            store = open_store(folder)
        except StoreError:
            continue
        if store.meta.get("source") == stat and _same_placeholders(store, key):
            return store
    if existing:
        # The file was touched, moved or replaced: re-hash (cheaper than a rebuild) and reuse
        # a cache of the same content.
        fingerprint = file_sha256(path)
        for folder in existing:
            if folder.name.split("-")[0] != fingerprint:
                continue
            try:
                store = open_store(folder)
            except StoreError:
                continue
            if not _same_placeholders(store, key):
                continue
            store.meta["source"] = stat
            _write_meta(folder, store.meta)
            return store
    return _build_cached(path, root, stat, skip_bad_lines, progress, placeholders)


def _records(
    path: Path,
    report: ReadReport,
    skip_bad_lines: bool,
    progress: bool,
    placeholders: Sequence[str],
) -> Iterable[UserRecord]:
    # Only pass skip_bad_lines when asked, so strict reads work with any reader version.
    records = (
        iter_records(path, report, skip_bad_lines=True, critique_placeholders=placeholders)
        if skip_bad_lines
        else iter_records(path, report, critique_placeholders=placeholders)
    )
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, unit="user", desc=f"indexing {path.name}")
    return records


def _build_cached(
    path: Path,
    root: Path,
    stat: dict[str, Any],
    skip_bad_lines: bool,
    progress: bool,
    placeholders: Sequence[str],
) -> Store:
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    except OSError:
        # Nowhere to write a cache (read-only home too): load without one.
        return load_file_store(
            path,
            skip_bad_lines=skip_bad_lines,
            cache=False,
            progress=progress,
            critique_placeholders=placeholders,
        )
    try:
        report = ReadReport()
        build_store(_records(path, report, skip_bad_lines, progress, placeholders), tmp)
        meta = {
            "version": STORE_VERSION,
            "source": stat,
            "skip_bad_lines": skip_bad_lines,
            "users": int(np.load(tmp / "user_offsets.npy", mmap_mode="r").shape[0] - 1),
            "report": report_to_json(report),
        }
        _write_meta(tmp, meta)
        key = placeholder_key(placeholders)
        final = root / (
            report.sha256 + (f"-p{key}" if key else "") + ("-lenient" if skip_bad_lines else "")
        )
        if final.exists():
            shutil.rmtree(final)  # a stale or corrupt cache of the same content
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for other in _candidates(root):
        if other != final and other.name.endswith("-lenient") == skip_bad_lines:
            # Caches of older content, or read with another placeholder list.
            shutil.rmtree(other, ignore_errors=True)
    return open_store(final)
