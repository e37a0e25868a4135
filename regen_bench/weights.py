"""Pinning model weights: which exact files a run loaded, recorded in its result and signature.

A name like ``sentence-transformers/all-MiniLM-L6-v2`` does not say which weights were used:
the hub repository moves on, and a local folder can be retrained in place. :func:`pin` turns
every model reference a run loads into a string that does:

- a **hub id** becomes ``<id>@<commit sha>``, resolved by ``huggingface_hub`` from the local
  cache first (the revision ``from_pretrained`` loads; works with ``HF_HUB_OFFLINE=1``), and from
  the hub only when the cache does not have it and the machine is online;
- a **local folder or file** (a packaged model, a fine-tuned checkpoint) becomes
  ``<name>@sha256:<digest>``, a digest of its files' contents (names and bytes), so the same
  weights give the same pin on any machine and retrained weights a new one. Digests are cached
  per file by (path, size, mtime), so large checkpoints are hashed once.

``regen-bench leaderboard verify`` refuses to compare two runs whose pins differ.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path

HUB_ENV_CACHE = "HF_HUB_CACHE"


class WeightsError(ValueError):
    """A model reference cannot be pinned (not on disk, not in the hub cache, offline)."""


def _digest_cache_path() -> Path:
    base = os.environ.get("REGEN_BENCH_CACHE_DIR") or Path.home() / ".cache" / "regen-bench"
    return Path(base) / "weights-digests.json"


def _file_sha256(path: Path, cache: dict[str, str]) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if key not in cache:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        cache[key] = h.hexdigest()
    return cache[key]


def _current(key: str) -> bool:
    """Whether a digest-cache key (``path:size:mtime_ns``) still describes its file."""
    path, _, stamp = key.rpartition(":")
    path, _, size = path.rpartition(":")
    try:
        st = os.stat(path)
    except OSError:
        return False
    return f"{st.st_size}:{st.st_mtime_ns}" == f"{size}:{stamp}"


def content_digest(path: str | os.PathLike[str], *, ignore: Collection[str] = ()) -> str:
    """sha256 over a file's bytes, or over a folder's (relative name, file sha256) pairs.

    ``ignore``: relative names (``a/b.json``) of files in the folder that are not weights
    (a provenance note that records how long a conversion took differs on every machine).
    """
    root = Path(path)
    cache_file = _digest_cache_path()
    try:
        cache: dict[str, str] = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    before = len(cache)
    if root.is_file():
        digest = _file_sha256(root, cache)
    else:
        h = hashlib.sha256()
        # Hidden files (editor and lock files, .cache/ of hub downloads) are not weights.
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and p.relative_to(root).as_posix() not in ignore
        )
        for f in files:
            h.update(f"{f.relative_to(root).as_posix()}\0{_file_sha256(f, cache)}\n".encode())
        digest = h.hexdigest()
    if len(cache) != before:
        # Entries of files since removed or rewritten would only grow the file.
        cache = {k: v for k, v in cache.items() if _current(k)}
        try:  # a cache that cannot be written only costs time on the next run
            from regen_bench.fileio import atomic_write

            atomic_write(cache_file, [json.dumps(cache, sort_keys=True).encode()])
        except OSError:
            pass
    return digest


def hub_commit(repo_id: str) -> str:
    """The commit sha ``from_pretrained(repo_id)`` loads: from the cache, else from the hub."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = os.environ.get(HUB_ENV_CACHE) or None
    try:
        folder = snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)
        return Path(str(folder)).name
    except LocalEntryNotFoundError:
        pass
    except ValueError as exc:  # an id huggingface_hub rejects outright
        raise WeightsError(f"'{repo_id}': not a local path or a hub id ({exc})") from None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise WeightsError(
            f"'{repo_id}' is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
        )
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo_id).sha
    # Any failure of this one lookup means the commit cannot be resolved: besides its own
    # errors, the hub client raises those of whichever HTTP library it ships with (httpx,
    # httpx2, ...: without network a ConnectError that is no OSError).
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"'{repo_id}': cannot resolve its hub commit ({first})") from None
    if not sha:
        raise WeightsError(f"'{repo_id}': the hub gave no commit sha")
    return sha


def pin(
    ref: str, path: str | os.PathLike[str] | None = None, *, ignore: Collection[str] = ()
) -> str:
    """``ref@<commit sha>`` for a hub id, ``ref@sha256:<digest>`` for local weights.

    ``path`` is where ``ref`` was resolved to on disk (an offline alias's converted folder, a
    packaged model); without it, ``ref`` itself is tried as a path, then as a hub id. A
    ``ref`` that is a path is recorded by its last part only.
    ``ignore``: files of a local folder left out of its digest (see :func:`content_digest`).
    """
    named = Path(ref).expanduser()
    local = Path(path) if path is not None else named
    if local.exists():
        # A path names weights by its last part: where they sit differs between machines.
        label = named.name if named.exists() else ref
        return f"{label}@sha256:{content_digest(local, ignore=ignore)}"
    return f"{ref}@{hub_commit(ref)}"


def short(pins: Mapping[str, str]) -> str:
    """The weights part of a signature: ``role=ref@first 12 hex digits`` per role."""
    parts = []
    for role in sorted(pins):
        ref, _, rev = pins[role].rpartition("@")
        rev = rev.removeprefix("sha256:")
        parts.append(f"{role}={ref}@{rev[:12]}")
    return ",".join(parts)


__all__ = ["WeightsError", "content_digest", "hub_commit", "pin", "short"]
