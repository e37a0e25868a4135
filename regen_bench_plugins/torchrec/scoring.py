"""Batched scoring and validation NDCG shared by the first-party torch recommenders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from regen_bench import Example
from regen_bench.metrics import metrics_from_counts, rank_counts

if TYPE_CHECKING:
    import torch
    from threadpoolctl import ThreadpoolController


#: Catalogs from this size are scored through numpy's BLAS. Below it the speed is moot, and
#: torch's BLAS (MKL) rounds differently on catalogs of up to 11 items (measured), so small
#: catalogs keep the torch expression.
MIN_BLAS_ITEMS = 256


@cache
def _blas_controller() -> ThreadpoolController | None:
    """numpy's BLAS, found once (threadpoolctl inspects the loaded libraries on each call);
    None without threadpoolctl, whose absence sends scoring through torch."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def item_scores(
    states: torch.Tensor,
    items: torch.Tensor,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``states @ items.T`` (then ``* scale + bias``): every catalog item's score, (B, n_items).

    Scoring on the CPU without gradients runs the product through numpy's BLAS (OpenBLAS) into
    a fresh array, with as many BLAS threads as torch has: at Clothing's catalog (256 x 64 times
    64 x 376,847) torch's CPU matmul took ~2.0 ms per user and this ~0.55 (measured side by side
    by ``benchmarks/model_scoring.py``). Both sum each dot product in the same order for the
    hidden sizes of the shipped models, so the scores are bit-identical to the torch
    expression (checked by the tests); the scale and bias are the same float32 operations done
    in place. Training, other devices and dtypes, and catalogs under ``MIN_BLAS_ITEMS`` take the
    torch expression.
    """
    import torch

    blas = _blas_controller()
    fast = (
        items.shape[0] >= MIN_BLAS_ITEMS
        and states.device.type == "cpu"
        and items.device.type == "cpu"
        and states.dtype == items.dtype == torch.float32
        and not (torch.is_grad_enabled() and (states.requires_grad or items.requires_grad))
        and (bias is None or (bias.device.type == "cpu" and bias.dtype == torch.float32))
    )
    if blas is None or not fast:
        out = states @ items.T
        if scale is not None:
            out = out * scale
        return out if bias is None else out + bias
    s = states.detach().numpy()
    # items.T of a row-major table is column-major: BLAS reads it transposed, no copy.
    it = items.detach().numpy().T
    result = np.empty(s.shape[:-1] + it.shape[1:], dtype=np.float32)
    with blas.limit(limits=torch.get_num_threads(), user_api="blas"):
        np.matmul(s, it, out=result)
    if scale is not None:
        result *= np.float32(scale)
    if bias is not None:
        result += bias.detach().numpy()
    return torch.from_numpy(result)


def batched_scores(
    score_batch: Callable[[Sequence[Example]], Any],
    examples: Sequence[Example],
    n_items: int,
    batch_size: int,
) -> np.ndarray:
    """(len(examples), n_items) float32 scores, ``batch_size`` examples per call of
    ``score_batch`` (which returns a torch tensor of that batch's scores)."""
    if len(examples) <= batch_size:
        # One call (the runner's batches): its array as it is, sparing a copy of the scores.
        return np.asarray(score_batch(examples).float().cpu().numpy())
    out = np.empty((len(examples), n_items), dtype=np.float32)
    for lo in range(0, len(examples), batch_size):
        batch = examples[lo : lo + batch_size]
        out[lo : lo + len(batch)] = score_batch(batch).float().cpu().numpy()
    return out


def batched_valid_ndcg(
    score_batch: Callable[[Sequence[Example]], Any],
    examples: Sequence[Example],
    batch_size: int,
) -> float:
    """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties), batch by batch."""
    total = 0.0
    for lo in range(0, len(examples), batch_size):
        batch = examples[lo : lo + batch_size]
        greater, ties = rank_counts(
            score_batch(batch), np.array([ex.target for ex in batch], dtype=np.int64)
        )
        total += float(metrics_from_counts(greater, ties, "pessimistic")["ndcg@10"].sum())
    return total / len(examples)
