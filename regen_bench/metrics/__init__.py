"""Evaluation metrics. Ranking metrics use full-catalog ranking (see ``ranking``)."""

from regen_bench.metrics.ranking import (
    DEFAULT_TIE_POLICY,
    METRIC_NAMES,
    NDCG_KS,
    RECALL_KS,
    TIE_POLICIES,
    RankingAccumulator,
    mean_metrics,
    metrics_from_counts,
    rank_counts,
    score_and_count,
)

__all__ = [
    "DEFAULT_TIE_POLICY",
    "METRIC_NAMES",
    "NDCG_KS",
    "RECALL_KS",
    "TIE_POLICIES",
    "RankingAccumulator",
    "mean_metrics",
    "metrics_from_counts",
    "rank_counts",
    "score_and_count",
]
