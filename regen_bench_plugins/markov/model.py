"""``markov``: a first-order Markov chain over purchases with a popularity back-off.

Counts how often item j directly followed item i in the training sequences (each user's first
N-2 purchases) and scores the next item from the last item i of the history as the additively
smoothed transition probability

    P(j | i) = (transitions(i, j) + smoothing * popularity(j)) / (transitions from i + smoothing)

where ``popularity(j)`` is j's share of all training purchases. The popularity prior is the
back-off: an item never seen after i still gets ``smoothing * popularity(j)``, so it is ranked
by popularity below the items that did follow i (as long as ``smoothing * popularity(j) < 1``,
the transition counts decide first and popularity orders equal counts); a last item with no
recorded successor, or an empty history, gives the plain popularity ranking. Items with the
same count and the same popularity score exactly the same (the harness's tie policy applies).

Only the training split is read (``valid`` is ignored); critique text is ignored; there is no
randomness (``seed`` is recorded but unused). Transitions are kept as sparse (row, column,
count) arrays, so memory grows with the number of distinct transitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench_plugins.markov.options import MarkovOptions


class Markov(Model):
    """Smoothed last-item transition probabilities, popularity as the prior."""

    options: MarkovOptions

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        super().__init__(catalog, seed=seed)
        self.options = MarkovOptions.parse(config, model="markov")
        n = len(catalog)
        # Transitions in compressed-row form: the successors of item i are
        # indices[indptr[i]:indptr[i + 1]], seen counts[...] times.
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        self.indices = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.float64)
        self.out_total = np.zeros(n, dtype=np.float64)
        self.popularity = np.zeros(n, dtype=np.float64)

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        n = len(self.catalog)
        seqs = [np.asarray(u.items, dtype=np.int64) for u in train]
        empty = np.zeros(0, dtype=np.int64)
        src = np.concatenate([empty, *(s[:-1] for s in seqs)])
        dst = np.concatenate([empty, *(s[1:] for s in seqs)])
        keys, counts = np.unique(src * n + dst, return_counts=True)  # sorted: row-major
        rows = keys // n
        self.indices, self.counts = keys % n, counts.astype(np.float64)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        self.out_total = np.bincount(rows, weights=self.counts, minlength=n).astype(np.float64)
        bought = np.bincount(np.concatenate([empty, *seqs]), minlength=n).astype(np.float64)
        self.popularity = bought / max(bought.sum(), 1.0)
        return {
            "train_interactions": int(bought.sum()),
            "transitions": len(src),
            "distinct_transitions": len(keys),
            "items_with_successors": int((self.out_total > 0).sum()),
        }

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        alpha = self.options.smoothing
        prior = alpha * self.popularity
        out = np.empty((len(examples), len(self.catalog)), dtype=np.float32)
        for r, ex in enumerate(examples):
            if len(ex.history) == 0:
                out[r] = self.popularity
                continue
            last = int(ex.history[-1])
            a, b = self.indptr[last], self.indptr[last + 1]
            row = prior.copy()
            row[self.indices[a:b]] += self.counts[a:b]
            out[r] = row / (self.out_total[last] + alpha)
        return out

    def config(self) -> dict[str, Any]:
        return self.options.as_dict()
