"""Options of ``markov`` (where the default comes from: docs/models.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from regen_bench.options import LogUniform, ModelOptions, SearchSpace


class MarkovOptions(ModelOptions):
    """How much the popularity back-off weighs against the observed transitions."""

    smoothing: float = Field(
        default=1.0,
        gt=0,
        description="pseudo-count of the popularity prior: P(j | i) = (transitions(i, j) + "
        "smoothing * popularity(j)) / (transitions from i + smoothing)",
    )

    #: What ``regen-bench tune`` searches (scored on validation NDCG@10 after one fit).
    SEARCH_SPACE: ClassVar[SearchSpace] = {"smoothing": LogUniform(0.01, 100.0)}
