"""``itemknn``: item-based top-N recommendation (Deshpande & Karypis, ACM TOIS 2004).

Two items are similar when the same training users bought both: the cosine of their binary
user vectors, ``co-buyers(i, j) / (sqrt(buyers(i) * buyers(j)) + shrink)``. Each item keeps only
its ``neighbours`` most similar items (ties: lower catalog index first). A user's score for item
j is the sum, over the newest ``history`` purchases h (newest first, t = 0, 1, ...), of
``decay**t * sim(h, j)``. Items that no recent purchase points to rank below every item that
one does, ordered among themselves by training purchase count (the ``popularity`` ranking).

Only the training split is read (each user's first N-2 purchases); ``valid`` is ignored, and a
test example's history is input only. Critique text is ignored. There is no randomness: the
``seed`` is recorded but unused. The similarities are built in pure numpy as sparse
(row, column, value) arrays, so memory grows with the number of co-bought pairs, not with the
square of the catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench_plugins.itemknn.options import ItemKNNOptions

#: Users per block when counting co-bought pairs: a block holds at most this many pairs.
_PAIRS_PER_BLOCK = 1 << 24


def _user_sets(train: Sequence[UserSequence]) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct items, concatenated, and how many each user has."""
    sets = [np.unique(np.asarray(u.items, dtype=np.int64)) for u in train]
    lengths = np.array([len(s) for s in sets], dtype=np.int64)
    flat = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    return flat, lengths


def _pairs(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (a, b), a != b, of items bought by the same user."""
    starts = np.cumsum(lengths) - lengths
    per_element = np.repeat(lengths, lengths)  # the size of each element's user set
    rows = np.repeat(flat, per_element)
    block = np.cumsum(per_element) - per_element
    offsets = np.arange(int(per_element.sum())) - np.repeat(block, per_element)
    cols = flat[np.repeat(np.repeat(starts, lengths), per_element) + offsets]
    keep = rows != cols
    return rows[keep], cols[keep]


def cooccurrence(
    flat: np.ndarray, lengths: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse co-buyer counts: (rows, cols, counts) of every pair bought by >= 1 same user."""
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    starts = np.concatenate([[0], np.cumsum(lengths)])
    squares = np.cumsum(lengths * lengths)
    lo = 0
    while lo < len(lengths):
        # the largest block of users from lo whose pairs fit (always at least one user)
        base = squares[lo - 1] if lo else 0
        hi = max(lo + 1, int(np.searchsorted(squares, base + _PAIRS_PER_BLOCK, side="right")))
        rows, cols = _pairs(flat[starts[lo] : starts[hi]], lengths[lo:hi])
        k, c = np.unique(rows * n_items + cols, return_counts=True)
        keys.append(k)
        counts.append(c)
        lo = hi
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    count: np.ndarray
    if len(keys) == 1:
        key, count = keys[0], counts[0].astype(np.float64)
    else:
        key, inverse = np.unique(np.concatenate(keys), return_inverse=True)
        count = np.bincount(inverse, weights=np.concatenate(counts).astype(np.float64))
    return key // n_items, key % n_items, count


class ItemKNN(Model):
    """Cosine item-item similarity over training purchases, top ``neighbours`` per item."""

    options: ItemKNNOptions

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        super().__init__(catalog, seed=seed)
        self.options = ItemKNNOptions.parse(config, model="itemknn")
        n = len(catalog)
        # The neighbour lists in compressed-row form: row i's neighbours are
        # indices[indptr[i]:indptr[i + 1]] with similarities values[...], most similar first.
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        self.indices = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0, dtype=np.float64)
        self.backoff = np.full(n, -1.0, dtype=np.float64)

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        n, opts = len(self.catalog), self.options
        flat, lengths = _user_sets(train)
        buyers = np.bincount(flat, minlength=n).astype(np.float64)
        rows, cols, co = cooccurrence(flat, lengths, n)
        sim = co / (np.sqrt(buyers[rows] * buyers[cols]) + opts.shrink)
        # Row by row, most similar first, ties by column: the first `neighbours` of each row stay.
        order = np.lexsort((cols, -sim, rows))
        rows, cols, sim = rows[order], cols[order], sim[order]
        per_row = np.bincount(rows, minlength=n)
        row_start = np.cumsum(per_row) - per_row
        keep = np.arange(len(rows)) - row_start[rows] < opts.neighbours
        rows, self.indices, self.values = rows[keep], cols[keep], sim[keep]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        # Back-off for items no recent purchase points to: below every neighbour score (>= 0),
        # ordered by training purchase count, in [-1, 0).
        bought = [np.asarray(u.items, dtype=np.int64) for u in train]
        counts = np.bincount(np.concatenate([np.zeros(0, np.int64), *bought]), minlength=n)
        self.backoff = counts / (counts.max(initial=0) + 1.0) - 1.0
        return {
            "users": len(train),
            "items_bought": int((buyers > 0).sum()),
            "co_bought_pairs": len(co),
            "neighbours_kept": len(self.indices),
        }

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        opts = self.options
        weights = opts.decay ** np.arange(opts.history, dtype=np.float64)
        out = np.empty((len(examples), len(self.catalog)), dtype=np.float32)
        for r, ex in enumerate(examples):
            knn = np.zeros(len(self.catalog), dtype=np.float64)
            recent = np.asarray(ex.history[-opts.history :])[::-1]  # newest first
            for t, item in enumerate(recent):
                a, b = self.indptr[item], self.indptr[item + 1]
                knn[self.indices[a:b]] += weights[t] * self.values[a:b]
            out[r] = np.where(knn > 0, knn, self.backoff)
        return out

    def config(self) -> dict[str, Any]:
        return self.options.as_dict()
