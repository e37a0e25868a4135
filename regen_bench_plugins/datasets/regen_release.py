"""``office`` and ``clothing``: the REGEN release files from Kaggle, found in a data directory.

The files are not shipped (clothing is about 4 GB) and cannot be downloaded by the harness
(Kaggle needs an account). A dataset factory resolves the data directory, in this order:

1. ``--data-dir`` (passed to the factory as ``data_dir``),
2. the environment variable ``REGEN_BENCH_DATA``,
3. ``$XDG_CACHE_HOME/regen-bench/data``, by default ``~/.cache/regen-bench/data``,

and returns ``<data dir>/REGEN/<name>.jsonl`` (or ``.jsonl.gz``; a data directory that is the
``REGEN`` folder itself works too). A missing file raises :class:`ReleaseFileNotFoundError`,
whose one-line message says where to put which file and how to get it.

The release's "no critique" sentinel is read through the default critique placeholders; if
loading warns that another string is on most pairs, declare it in
``<data dir>/REGEN/<name>.jsonl.options.json`` (docs/data-format.md, "Critique placeholders").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from regen_bench import Register, hookimpl

ENV_DATA_DIR = "REGEN_BENCH_DATA"
KAGGLE_DATASET = "googleai/regen-reviews-enhanced-with-generative-narratives"
#: Folder of the release inside the data directory (as the Kaggle archive unpacks).
RELEASE_FOLDER = "REGEN"
SUFFIXES = (".jsonl", ".jsonl.gz")

RELEASES: dict[str, str] = {
    "office": "REGEN release, Amazon Office Products (~89k users, ~28k items; Kaggle)",
    "clothing": "REGEN release, Amazon Clothing Shoes & Jewelry (~1.17M users; Kaggle, ~4 GB)",
}


class ReleaseFileNotFoundError(FileNotFoundError):
    """A REGEN release file is not in the data directory; the message says how to get it."""

    def __init__(self, message: str):
        # One argument only, so str(exc) is exactly the message (the CLI prints it as one line).
        super().__init__(message)


def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/regen-bench/data``, or ``~/.cache/regen-bench/data`` without it."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache) if cache else Path.home() / ".cache"
    return base / "regen-bench" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The data directory and where it came from (``--data-dir``, the env var or default)."""
    if data_dir is not None and str(data_dir).strip():
        return Path(data_dir).expanduser(), "--data-dir"
    env = os.environ.get(ENV_DATA_DIR, "").strip()
    if env:
        return Path(env).expanduser(), f"${ENV_DATA_DIR}"
    return default_data_dir(), "the default"


def release_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the release file ``name`` (``office`` or ``clothing``) in the data directory."""
    root, origin = resolve_data_dir(data_dir)
    candidates = [
        folder / f"{name}{suffix}"
        for folder in (root / RELEASE_FOLDER, root)
        for suffix in SUFFIXES
    ]
    for path in candidates:
        if path.is_file():
            return path
    expected = root / RELEASE_FOLDER / f"{name}.jsonl"
    raise ReleaseFileNotFoundError(
        f"dataset '{name}' needs the REGEN release file {expected} (or {expected}.gz), "
        f"not found in the data directory {root} (from {origin}; choose another with "
        f"--data-dir or ${ENV_DATA_DIR}). Get it from the Kaggle dataset {KAGGLE_DATASET}: "
        f"`kaggle datasets download -d {KAGGLE_DATASET} -p {root} --unzip` (or download the "
        f"zip from https://www.kaggle.com/datasets/{KAGGLE_DATASET} and unzip it into {root}) "
        f"so that {expected} exists."
    )


def _factory(name: str) -> Callable[..., Path]:
    def factory(data_dir: str | None = None) -> Path:
        return release_path(name, data_dir)

    factory.__doc__ = f"Path of the REGEN release file ``{name}.jsonl`` in the data directory."
    return factory


@hookimpl
def register_datasets(register: Register) -> None:
    for name, summary in RELEASES.items():
        register(name, _factory(name), summary=summary)
