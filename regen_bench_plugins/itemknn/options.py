"""Options of ``itemknn`` (where each default comes from: docs/models.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from regen_bench.options import Choice, IntRange, ModelOptions, SearchSpace, Uniform


class ItemKNNOptions(ModelOptions):
    """Neighbourhood size and how the history is read."""

    neighbours: int = Field(
        default=100, ge=1, description="most similar items kept per item (the k of k-NN)"
    )
    history: int = Field(default=10, ge=1, description="newest purchases of the history read")
    decay: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="weight of a purchase t steps back is decay**t (1.0: plain sum)",
    )
    shrink: float = Field(
        default=10.0,
        ge=0,
        description="similarity shrinkage: co-buyers / (sqrt(buyers_i * buyers_j) + shrink)",
    )

    #: What ``regen-bench tune`` searches (scored on validation NDCG@10 after one fit).
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "neighbours": Choice(20, 50, 100, 200, 500),
        "history": IntRange(1, 50),
        "decay": Uniform(0.1, 1.0),
        "shrink": Choice(0.0, 1.0, 3.0, 10.0, 30.0, 100.0),
    }
