"""Item-based k-nearest-neighbours (Sarwar et al., WWW 2001) over purchase co-occurrence.

Two items are similar when the same users bought both (cosine of their user vectors). A user's
score for an item is the similarity-weighted sum over their recent purchases, newer purchases
weighing more (``decay`` per step back); only each item's ``neighbours`` most similar items
count. Deterministic: no randomness at all, so ``seed`` is recorded but unused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence


class ItemKNN(Model):
    """Cosine item-item similarity, top-``neighbours`` per item, recency-weighted history."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int = 0,
        neighbours: int = 50,
        decay: float = 0.7,
        history: int = 5,
        **config: Any,
    ):
        super().__init__(catalog, seed=seed, **config)  # rejects unknown options
        if int(neighbours) < 1 or not 0 < float(decay) <= 1 or int(history) < 1:
            raise ValueError("example-itemknn: neighbours >= 1, 0 < decay <= 1 and history >= 1")
        self.neighbours, self.decay, self.history = int(neighbours), float(decay), int(history)
        self.sim = np.zeros((len(catalog), len(catalog)), dtype=np.float32)
        self.popularity = np.zeros(len(catalog), dtype=np.float32)

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        n = len(self.catalog)
        users = np.zeros((len(train), n), dtype=np.float32)
        for row, user in enumerate(train):
            users[row, user.items] = 1.0
        co = users.T @ users
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        sim = co / np.maximum(np.outer(norms, norms), 1e-12)
        np.fill_diagonal(sim, 0.0)
        if self.neighbours < n:
            # Keep each row's top neighbours; stable sort so equal similarities break by index.
            order = np.argsort(-sim, axis=1, kind="stable")[:, self.neighbours :]
            np.put_along_axis(sim, order, 0.0, axis=1)
        self.sim = sim.astype(np.float32)
        # A tiny popularity prior breaks ties for users whose items have no neighbours.
        self.popularity = (users.sum(0) / max(users.sum(), 1.0)).astype(np.float32) * 1e-3
        return {"users": len(train), "nonzero_similarities": int((self.sim > 0).sum())}

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        scores = np.tile(self.popularity, (len(examples), 1))
        for row, ex in enumerate(examples):
            recent = ex.history[-self.history :][::-1]  # newest first
            weights = self.decay ** np.arange(len(recent), dtype=np.float32)
            scores[row] += weights @ self.sim[recent]
        return scores

    def config(self) -> dict[str, Any]:
        return {"neighbours": self.neighbours, "decay": self.decay, "history": self.history}
