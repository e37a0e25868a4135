"""Row counting kernels of the full-ranking metrics: per row, how many scores are above, equal
to and (optionally) below the row's target score.

Two implementations give identical integers:

- a compiled single pass (numba, the ``fast`` extra): each row is read once and all counts are
  accumulated together, without the GIL, so the ranking workers count while others multiply;
- numpy (always available): one vectorised comparison + ``count_nonzero`` per count.

Hand-written loops because no library fuses "count >, == and <" into one pass: numpy needs a
temporary boolean array and a separate pass per comparison, which at Office scale (89k x 28k
scores) made counting ~0.8x the matmul time; the fused pass is about half of that.
``REGEN_BENCH_NO_NUMBA=1`` forces the numpy path (used by tests to compare both).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import numpy as np

Counts = tuple[np.ndarray, np.ndarray, np.ndarray | None]
_forced_numpy = False


def _numpy_counts(block: np.ndarray, tvals: np.ndarray, with_lesser: bool) -> Counts:
    m = block.shape[0]
    greater = np.empty(m, dtype=np.int64)
    equal = np.empty(m, dtype=np.int64)
    lesser = np.empty(m, dtype=np.int64) if with_lesser else None
    cnz = np.count_nonzero
    # Per-row 1-D comparisons measured faster than 2-D numpy reductions (~1.5x) and torch's CPU
    # comparison kernels (~10x).
    for i in range(m):
        row = block[i]
        t = tvals[i]
        gt = cnz(row > t)
        greater[i] = gt
        equal[i] = cnz(row >= t) - gt
        if lesser is not None:
            lesser[i] = cnz(row < t)
    return greater, equal, lesser


@cache
def _numba_kernels() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """The compiled kernels, or None when numba is missing or disabled."""
    if os.environ.get("REGEN_BENCH_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        import numba
    except ImportError:
        return None

    # Two kernels rather than one with a flag: counting "<" as well costs ~40% more per pass
    # (measured 0.44 s vs 0.64 s at Office scale) and is only needed when NaNs are possible.
    # int32 accumulators let LLVM vectorise the comparisons 16 lanes wide (int64 halves that);
    # a row longer than 2**31 items is sent to numpy by count_rows. cache=True keeps the
    # compiled code across processes (numba falls back to a user cache dir when the package
    # folder is read-only).
    @numba.njit(nogil=True, cache=True)
    def two_counts(block: Any, tvals: Any, greater: Any, equal: Any) -> None:  # pragma: no cover
        m, n = block.shape
        for i in range(m):
            t = tvals[i]
            gt = np.int32(0)
            eq = np.int32(0)
            for j in range(n):
                x = block[i, j]
                gt += np.int32(x > t)
                eq += np.int32(x == t)
            greater[i] = gt
            equal[i] = eq

    @numba.njit(nogil=True, cache=True)
    def three_counts(
        block: Any, tvals: Any, greater: Any, equal: Any, lesser: Any
    ) -> None:  # pragma: no cover
        m, n = block.shape
        for i in range(m):
            t = tvals[i]
            gt = np.int32(0)
            eq = np.int32(0)
            lt = np.int32(0)
            for j in range(n):
                x = block[i, j]
                gt += np.int32(x > t)
                eq += np.int32(x == t)
                lt += np.int32(x < t)
            greater[i] = gt
            equal[i] = eq
            lesser[i] = lt

    return two_counts, three_counts


def compiled_available() -> bool:
    """Whether the compiled kernel is in use (numba installed and not disabled)."""
    return not _forced_numpy and _numba_kernels() is not None


@contextmanager
def numpy_counting() -> Iterator[None]:
    """Count with numpy inside the block (for comparisons in tests and benchmarks)."""
    global _forced_numpy
    saved, _forced_numpy = _forced_numpy, True
    try:
        yield
    finally:
        _forced_numpy = saved


def count_rows(block: np.ndarray, tvals: np.ndarray, with_lesser: bool) -> Counts:
    """(greater, equal, lesser) per row of the 2-D ``block`` against ``tvals`` (one per row).

    ``equal`` includes the target itself; ``lesser`` is only computed when ``with_lesser``
    (it reveals NaNs: a NaN compares false to everything, so the three counts fall short of the
    row length). Integers are exact and identical across implementations.
    """
    kernels = None if _forced_numpy else _numba_kernels()
    if (
        kernels is None
        or block.dtype.kind != "f"
        or not block.flags.c_contiguous
        or block.shape[1] >= 2**31
    ):
        return _numpy_counts(block, tvals, with_lesser)
    m = block.shape[0]
    tv = np.ascontiguousarray(tvals, dtype=block.dtype)
    greater = np.empty(m, dtype=np.int64)
    equal = np.empty(m, dtype=np.int64)
    if not with_lesser:
        kernels[0](block, tv, greater, equal)
        return greater, equal, None
    lesser = np.empty(m, dtype=np.int64)
    kernels[1](block, tv, greater, equal, lesser)
    return greater, equal, lesser
