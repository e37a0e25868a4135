"""Full-ranking metrics: Recall@K, NDCG@K and MRR over the whole catalog.

With one held-out item per example the target's rank is the number of items scoring above it,
so counting beats sorting: one pass over each score row, no sampled negatives. Ties between the
target and other items are resolved by a stated policy (part of the result signature):

- ``pessimistic`` (default): the target is placed after every item it ties with.
- ``optimistic``: the target is placed before every item it ties with.
- ``expected``: the exact expectation of each metric under a uniformly random order of the tied
  items, i.e. the target's position is uniform over ``greater .. greater + ties``.

Pessimistic is the default because it cannot reward a model for emitting constant scores.

The counts come from :mod:`regen_bench.metrics.ranks` (score rows) or
:mod:`regen_bench.metrics.scoring` (embeddings, scored chunk by chunk); this module turns them
into metric values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

# rank_counts and score_and_count lived here before the split; their import path stays.
from regen_bench.metrics.ranks import ExcludeArg, rank_counts
from regen_bench.metrics.ranks import NaNScoresError as NaNScoresError
from regen_bench.metrics.scoring import score_and_count as score_and_count

if TYPE_CHECKING:
    import torch

TIE_POLICIES: tuple[str, ...] = ("pessimistic", "optimistic", "expected")
DEFAULT_TIE_POLICY = "pessimistic"
RECALL_KS: tuple[int, ...] = (1, 5, 10)
NDCG_KS: tuple[int, ...] = (5, 10)
METRIC_NAMES: tuple[str, ...] = (
    *(f"recall@{k}" for k in RECALL_KS),
    *(f"ndcg@{k}" for k in NDCG_KS),
    "mrr",
)


def _check_policy(policy: str) -> None:
    if policy not in TIE_POLICIES:
        raise ValueError(f"unknown tie policy {policy!r}; expected one of {TIE_POLICIES}")


# Harmonic numbers: exact table below this, asymptotic expansion above it (error < 1e-17).
_H_TABLE_SIZE = 64
_H_TABLE = np.array([math.fsum(1.0 / j for j in range(1, k + 1)) for k in range(_H_TABLE_SIZE + 1)])


def _harmonic_tail(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H(b) - H(a) for a, b >= _H_TABLE_SIZE via the digamma asymptotic series.

    Each term is written as a difference that does not cancel, so the result keeps full relative
    precision even when b - a is tiny compared with a.
    """
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    d = b - a
    ab = a * b
    a2, b2 = a * a, b * b
    out = np.log1p(d / a)
    out -= d / (2.0 * ab)
    out += d * (a + b) / (12.0 * a2 * b2)
    out -= d * (a + b) * (a2 + b2) / (120.0 * a2 * a2 * b2 * b2)
    # b^6 - a^6 = (b^3 - a^3)(b^3 + a^3) and b^3 - a^3 = d (a^2 + ab + b^2).
    a3, b3 = a2 * a, b2 * b
    out += d * (a2 + ab + b2) * (a3 + b3) / (252.0 * a3 * a3 * b3 * b3)
    return out


def harmonic_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """H(b) - H(a) = sum_{j=a+1}^{b} 1/j for integer arrays 0 <= a <= b, accurate to ~1 ulp."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    lim = _H_TABLE_SIZE
    a_lo = np.minimum(a, lim)
    b_lo = np.minimum(b, lim)
    out = _H_TABLE[b_lo] - _H_TABLE[a_lo]
    big = b > lim
    if np.any(big):
        out[big] += _harmonic_tail(np.maximum(a[big], lim), b[big])
    return out


def _dcg_prefix(k: int) -> np.ndarray:
    """D[j] = sum_{p<j} 1/log2(p+2) for j = 0..k: the summed gains of positions 0..j-1."""
    gains = 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)
    return np.concatenate(([0.0], np.cumsum(gains)))


def metrics_from_counts(
    greater: np.ndarray, ties: np.ndarray, policy: str = DEFAULT_TIE_POLICY
) -> dict[str, np.ndarray]:
    """Per-example float64 values of every metric in METRIC_NAMES plus "rank" (0-based).

    pessimistic: rank = greater + ties; optimistic: rank = greater; expected: exact mean of each
    metric over target positions greater .. greater + ties, and rank = greater + ties / 2.
    """
    _check_policy(policy)
    g = np.asarray(greater, dtype=np.int64)
    t = np.asarray(ties, dtype=np.int64)
    if g.shape != t.shape or g.ndim != 1:
        raise ValueError(f"greater and ties must be 1-D of equal shape, got {g.shape}, {t.shape}")
    if g.size and (g.min() < 0 or t.min() < 0):
        raise ValueError("greater and ties must be non-negative")
    out: dict[str, np.ndarray] = {}
    if policy != "expected":
        rank = g + t if policy == "pessimistic" else g
        rank_f = rank.astype(np.float64)
        for k in RECALL_KS:
            out[f"recall@{k}"] = (rank < k).astype(np.float64)
        for k in NDCG_KS:
            out[f"ndcg@{k}"] = np.where(rank < k, 1.0 / np.log2(np.minimum(rank_f, k) + 2.0), 0.0)
        out["mrr"] = 1.0 / (rank_f + 1.0)
        out["rank"] = rank_f
        return out
    m = t + 1  # number of equally likely positions
    m_f = m.astype(np.float64)
    for k in RECALL_KS:
        out[f"recall@{k}"] = np.clip(k - g, 0, m) / m_f
    for k in NDCG_KS:
        prefix = _dcg_prefix(k)
        hi = np.clip(g + m, 0, k)
        lo = np.clip(g, 0, k)
        out[f"ndcg@{k}"] = (prefix[hi] - prefix[lo]) / m_f
    # Mean of 1/(p+1) for p = g .. g+t is (H(g+t+1) - H(g)) / (t+1); no ties is the common case.
    mrr = 1.0 / (g.astype(np.float64) + 1.0)
    tied = t > 0
    if np.any(tied):
        mrr[tied] = harmonic_diff(g[tied], g[tied] + m[tied]) / m_f[tied]
    out["mrr"] = mrr
    out["rank"] = g.astype(np.float64) + t.astype(np.float64) / 2.0
    return out


def mean_metrics(per_example: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of the METRIC_NAMES entries of ``per_example``, as Python floats."""
    out: dict[str, float] = {}
    for name in METRIC_NAMES:
        vals = np.asarray(per_example[name], dtype=np.float64)
        if vals.size == 0:
            raise ValueError("cannot average metrics over zero examples")
        out[name] = float(vals.mean())
    return out


class RankingAccumulator:
    """Streams evaluation batches and reports means or per-example values.

    Only the integer counts are stored and metrics are computed once over the concatenation, so
    results are bit-identical whatever the batch size.
    """

    def __init__(self) -> None:
        self._greater: list[np.ndarray] = []
        self._ties: list[np.ndarray] = []

    def add(
        self,
        scores: np.ndarray | torch.Tensor,
        targets: Any,
        exclude: ExcludeArg = None,
    ) -> None:
        """Count one batch of full-catalog scores (see :func:`rank_counts`)."""
        g, t = rank_counts(scores, targets, exclude)
        self.add_counts(g, t)

    def add_counts(self, greater: np.ndarray, ties: np.ndarray) -> None:
        """Store precomputed counts, e.g. from :func:`score_and_count`."""
        g = np.asarray(greater, dtype=np.int64).reshape(-1)
        t = np.asarray(ties, dtype=np.int64).reshape(-1)
        if g.shape != t.shape:
            raise ValueError(f"greater and ties differ in length: {g.shape} vs {t.shape}")
        self._greater.append(g.copy())
        self._ties.append(t.copy())

    def __len__(self) -> int:
        return sum(len(g) for g in self._greater)

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """All (greater, ties) so far, in insertion order."""
        if not self._greater:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(self._greater), np.concatenate(self._ties)

    def per_example(self, policy: str = DEFAULT_TIE_POLICY) -> dict[str, np.ndarray]:
        """Per-example metric values and ranks, in insertion order."""
        return metrics_from_counts(*self.counts(), policy=policy)

    def result(self, policy: str = DEFAULT_TIE_POLICY) -> dict[str, float]:
        """Mean of each metric over every example added."""
        return mean_metrics(self.per_example(policy))
