"""``popularity``: scores every item by how often it was bought in the training sequences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence


class Popularity(Model):
    """Training-set purchase counts; the same ranking for every user (ties: item order)."""

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        super().__init__(catalog, seed=seed, **config)
        self.counts = np.zeros(len(catalog), dtype=np.float32)

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        counts = np.zeros(len(self.catalog), dtype=np.int64)
        for user in train:
            np.add.at(counts, user.items, 1)
        self.counts = counts.astype(np.float32)
        return {"train_interactions": int(counts.sum())}

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(examples), len(self.counts))).copy()
