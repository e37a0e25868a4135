"""Indexes over the simulated catalog that shoppers sample from."""

from __future__ import annotations

import bisect

import numpy as np

from regen_bench.data.synth.catalog import ItemSpec
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.vocabulary import COMPLEMENTS, LEAVES

#: A large leaf's shortlist per pick: its most popular items and some uniform draws.
SHORTLIST_TOP = 192
SHORTLIST_RANDOM = 16


class Store:
    """The catalog by leaf, the complement graph, item popularity and large-leaf indexes."""

    def __init__(self, specs: list[ItemSpec], rng: Rng):
        self.specs = specs
        self.by_leaf: dict[int, list[int]] = {}
        for i, s in enumerate(specs):
            self.by_leaf.setdefault(s.leaf, []).append(i)
        names = {leaf.name: i for i, leaf in enumerate(LEAVES)}
        self.complements: dict[int, list[int]] = {}
        for leaf_idx, leaf in enumerate(LEAVES):
            targets = [names[t] for t in COMPLEMENTS.get(leaf.name, ())]
            # A complement in the same level-4 group would share four levels: not allowed.
            self.complements[leaf_idx] = [
                t
                for t in targets
                if t in self.by_leaf
                and (LEAVES[t].branch, LEAVES[t].group) != (leaf.branch, leaf.group)
            ]
        # Zipf-like popularity over a random order of the items, scaled by the leaf's weight.
        order = list(range(len(specs)))
        rng.shuffle(order)
        self.pop = [0.0] * len(specs)
        for rank, i in enumerate(order):
            self.pop[i] = LEAVES[specs[i].leaf].weight / (rank + 4) ** 1.1
        self.cum_pop: list[float] = []
        acc = 0.0
        for p in self.pop:
            acc += p
            self.cum_pop.append(acc)
        # Indexes for large leaves (Clothing scale), where scanning a whole leaf per purchase
        # step would cost hours; small leaves keep the plain scans (and the ``mini`` bytes).
        self.by_line: dict[tuple[int, str, str], list[int]] = {}
        self.by_cell: dict[tuple[int, str, int], list[int]] = {}
        for i, s in enumerate(specs):
            self.by_line.setdefault((s.leaf, s.brand, s.line), []).append(i)
            self.by_cell.setdefault((s.leaf, s.colour, s.pack), []).append(i)
        self.brand_code: dict[str, int] = {}
        self.colour_code: dict[str, int] = {}
        self.pos_in_leaf = [0] * len(specs)
        for idx in self.by_leaf.values():
            for pos, i in enumerate(idx):
                self.pos_in_leaf[i] = pos
                self.brand_code.setdefault(specs[i].brand, len(self.brand_code))
                self.colour_code.setdefault(specs[i].colour, len(self.colour_code))
        self._leaf_arrays: dict[int, dict[str, np.ndarray]] = {}

    def leaf_arrays(self, leaf: int) -> dict[str, np.ndarray]:
        """Columns of one leaf's items for vectorised weighting (built on first use)."""
        got = self._leaf_arrays.get(leaf)
        if got is None:
            idx = self.by_leaf[leaf]
            specs = [self.specs[i] for i in idx]
            bc, cc = self.brand_code, self.colour_code
            got = self._leaf_arrays[leaf] = {
                "idx": np.asarray(idx, dtype=np.int64),
                "sqrt_pop": np.sqrt(np.asarray([self.pop[i] for i in idx])),
                "brand": np.asarray([bc[s.brand] for s in specs]),
                "colour": np.asarray([cc[s.colour] for s in specs]),
                "tier": np.asarray([s.tier for s in specs]),
                "pack_pos": np.asarray(
                    [s.pack_rank / max(len(s.family.packs) - 1, 1) for s in specs]
                ),
            }
            pop = np.asarray([self.pop[i] for i in idx])
            got["top"] = np.sort(np.argsort(-pop, kind="stable")[:SHORTLIST_TOP])
        return got

    def popular(self, rng: Rng) -> int:
        """An item drawn by popularity."""
        return min(
            bisect.bisect_right(self.cum_pop, rng.random() * self.cum_pop[-1]), len(self.specs) - 1
        )
