"""Batched scoring and validation NDCG shared by the first-party torch recommenders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from regen_bench import Example
from regen_bench.metrics import metrics_from_counts, rank_counts


def batched_scores(
    score_batch: Callable[[Sequence[Example]], Any],
    examples: Sequence[Example],
    n_items: int,
    batch_size: int,
) -> np.ndarray:
    """(len(examples), n_items) float32 scores, ``batch_size`` examples per call of
    ``score_batch`` (which returns a torch tensor of that batch's scores)."""
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
