"""Evaluation metrics. Ranking metrics use full-catalog ranking: ``ranks`` counts the items
above each target, ``scoring`` does so for embeddings chunk by chunk, ``ranking`` turns the
counts into Recall@K, NDCG@K and MRR under a tie policy."""

from regen_bench.metrics.ranking import (
    DEFAULT_TIE_POLICY,
    METRIC_NAMES,
    NDCG_KS,
    RECALL_KS,
    TIE_POLICIES,
    RankingAccumulator,
    mean_metrics,
    metrics_from_counts,
)
from regen_bench.metrics.ranks import rank_counts
from regen_bench.metrics.scoring import score_and_count

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
