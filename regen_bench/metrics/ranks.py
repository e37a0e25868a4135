"""Rank counts of held-out targets in score rows: how many items score above each target
and how many tie with it, with the input checks, exclusions and NaN detection.

The counts are all the ranking metrics need (:mod:`regen_bench.metrics.ranking` turns them into
Recall@K, NDCG@K and MRR under a tie policy); counting is exact and far cheaper than sorting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from regen_bench.metrics.counting import count_rows

if TYPE_CHECKING:
    import torch

# Rows converted at a time when rank_counts must copy (torch input, float16, strided arrays).
_CONVERT_ELEMENTS = 1 << 22

ExcludeArg = Sequence[Any] | None


class NaNScoresError(ValueError):
    """A score row contains NaN; ``row`` is its index in the call's input."""

    def __init__(self, row: int) -> None:
        super().__init__(f"scores of row {row} contain NaN")
        self.row = row


def _to_numpy_scores(scores: Any) -> np.ndarray:
    """A 2-D real numpy view/copy of ``scores`` (numpy array or torch tensor)."""
    if hasattr(scores, "detach") and hasattr(scores, "cpu"):
        t = scores.detach().cpu()
        # numpy has no bfloat16; float32 holds every float16/bfloat16 value exactly.
        if t.dtype.is_floating_point and t.element_size() < 4:
            t = t.float()
        arr = t.numpy()
    else:
        arr = np.asarray(scores)
    if arr.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_examples, n_items), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"scores must be real numbers, got dtype {arr.dtype}")
    return arr


def to_targets(targets: Any, n: int, n_items: int) -> np.ndarray:
    if hasattr(targets, "detach"):
        targets = targets.detach().cpu().numpy()
    t = np.asarray(targets)
    if t.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {t.shape}")
    if t.size and not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"targets must be integer item indices, got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    if t.size and (t.min() < 0 or t.max() >= n_items):
        bad = int(np.flatnonzero((t < 0) | (t >= n_items))[0])
        raise ValueError(f"target {int(t[bad])} of row {bad} is outside [0, {n_items})")
    return t


def count_block(
    block: np.ndarray,
    tvals: np.ndarray,
    greater: np.ndarray,
    ties: np.ndarray,
    row0: int,
    check_nan: bool,
) -> None:
    """Fill ``greater``/``ties`` for each row of ``block`` against its target score ``tvals``.

    The counts come from :func:`regen_bench.metrics.counting.count_rows`; the ``<`` count is
    only needed to see NaNs away from the target (NaN compares false to everything).
    """
    gt, eq, lt = count_rows(block, tvals, with_lesser=check_nan)
    # eq counts the target itself unless the target score is NaN.
    bad = eq == 0
    if lt is not None:
        bad |= gt + eq + lt != block.shape[1]
    if bad.any():
        raise NaNScoresError(row0 + int(np.flatnonzero(bad)[0]))
    greater[:] = gt
    ties[:] = eq - 1


def _excluded_counts(
    scores_row: np.ndarray,
    target: int,
    tval: Any,
    excluded: Any,
    row: int,
    n_items: int,
) -> tuple[int, int]:
    """(greater, ties) contributed by the excluded items of one row, to be subtracted."""
    if excluded is None:
        return 0, 0
    idx = np.unique(np.asarray(excluded, dtype=np.int64).reshape(-1))
    if idx.size == 0:
        return 0, 0
    if idx[0] < 0 or idx[-1] >= n_items:
        raise ValueError(f"exclude of row {row} has an item index outside [0, {n_items})")
    if np.any(idx == target):
        raise ValueError(f"exclude of row {row} contains its target item {target}")
    vals = scores_row[idx]
    return int(np.count_nonzero(vals > tval)), int(np.count_nonzero(vals == tval))


def subtract_excluded(
    block: np.ndarray,
    tvals: np.ndarray,
    targets: np.ndarray,
    exclude: Sequence[Any],
    greater: np.ndarray,
    ties: np.ndarray,
    row0: int,
) -> None:
    """Remove the excluded items of rows ``row0 ..`` of ``block`` from their counts, in place.

    ``targets``, ``exclude``, ``greater`` and ``ties`` are indexed by absolute row.
    """
    n_items = block.shape[1]
    for i in range(block.shape[0]):
        r = row0 + i
        dg, dt = _excluded_counts(block[i], int(targets[r]), tvals[i], exclude[r], r, n_items)
        greater[r] -= dg
        ties[r] -= dt


def check_exclude(exclude: ExcludeArg, n: int) -> None:
    if exclude is not None and len(exclude) != n:
        raise ValueError(f"exclude must have one entry per row ({n}), got {len(exclude)}")


def rank_counts(
    scores: np.ndarray | torch.Tensor,
    targets: Any,
    exclude: ExcludeArg = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(greater, ties) per row, int64: items scoring strictly above the target, and OTHER items
    scoring exactly equal to it.

    ``scores``: (n, n_items) real array or tensor; ``targets``: (n,) item indices. ``exclude``:
    optional sequence of n index arrays (or None) removed from that row's ranking, e.g. history
    items when a protocol excludes them; it must not contain the row's target. A NaN anywhere in
    a row (excluded items included) raises ValueError naming the first such row.
    """
    arr = _to_numpy_scores(scores)
    n, n_items = arr.shape
    tgt = to_targets(targets, n, n_items)
    check_exclude(exclude, n)
    greater = np.empty(n, dtype=np.int64)
    ties = np.empty(n, dtype=np.int64)
    check_nan = np.issubdtype(arr.dtype, np.floating)
    # Comparisons are fastest on contiguous float32/float64/int rows; anything else is converted
    # a few rows at a time so memory stays bounded.
    native = arr.flags.c_contiguous and arr.dtype.itemsize >= 4
    step = n if native else max(1, _CONVERT_ELEMENTS // max(1, n_items))
    for s in range(0, n, step):
        block = arr[s : s + step]
        if not native:
            block = np.ascontiguousarray(block, dtype=np.result_type(block.dtype, np.float32))
        rows = np.arange(block.shape[0])
        tvals = block[rows, tgt[s : s + step]]
        count_block(block, tvals, greater[s : s + step], ties[s : s + step], s, check_nan)
        if exclude is not None:
            subtract_excluded(block, tvals, tgt, exclude, greater, ties, s)
    return greater, ties
