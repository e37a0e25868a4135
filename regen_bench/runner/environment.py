"""Where a run ran: versions, platform, device and git commit (recorded, never compared)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

import regen_bench
from regen_bench.model import Model
from regen_bench.results import Environment
from regen_bench.threads import torch_threads


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The harness checkout's commit, when it runs from a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(regen_bench.__file__).parent,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(model: Model) -> Environment:
    """Python, library versions, platform, the model's device and torch's thread count."""
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        numpy=np.__version__,
        torch=_version("torch"),
        transformers=_version("transformers"),
        device=str(model.config().get("device", "cpu")),
        threads=torch_threads(),
    )


__all__ = ["environment", "git_commit"]
