"""Torch's CPU thread count (set it for a run, read it for the result's environment) and the
CPU cores a process may use."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads for this process (no-op without torch).

    On a shared or oversubscribed machine torch's default (one thread per core) can spin-wait
    and run many times slower than one thread; results do not depend on the thread count.
    """
    if threads < 1:
        raise ValueError("--threads must be at least 1")
    try:
        import torch  # optional: the core runs without it
    except ImportError:
        return
    torch.set_num_threads(threads)


def torch_threads() -> int | None:
    """Torch's current intra-op thread count; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


__all__ = ["set_torch_threads", "torch_threads", "usable_cpus"]
