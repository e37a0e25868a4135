"""Check the calibrated world's stories: critiques only on refinements, anchors hold."""

from collections import Counter

from regen_bench.data.synth import CALIBRATED, simulate
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.store import Store

specs, people = simulate(2000, 800, 0, CALIBRATED)
store = Store(specs, Rng("x"))  # complements do not depend on the rng
bad: Counter[str] = Counter()
moves: Counter[str] = Counter()
for u in people:
    assert u.anchors is not None and len(u.anchors) == len(u.items)
    for k in range(1, len(u.items)):
        a, b = specs[u.items[k - 1]], specs[u.items[k]]
        moves[u.moves[k]] += 1
        if (a.group == b.group) != (u.moves[k] == "refine"):
            bad["group/refine mismatch"] += 1
        anchor = u.anchors[k]
        j = k - 1 if anchor is None else anchor  # moves without an anchor follow the last one
        if u.moves[k] == "recall":
            s = specs[u.items[j]]
            if b.leaf not in store.complements[s.leaf] or not 2 <= k - j <= CALIBRATED.recall_lag:
                bad["recall anchor"] += 1
        if u.moves[k] == "revisit" and (
            specs[u.items[j]].leaf != b.leaf or k - j != CALIBRATED.revisit_lag
        ):
            bad["revisit anchor"] += 1
        if u.moves[k] == "complement" and b.leaf not in store.complements[a.leaf]:
            bad["complement"] += 1
    assert len(set(u.items)) == len(u.items)
print("moves", {m: round(c / sum(moves.values()), 3) for m, c in moves.most_common()})
print("violations", dict(bad) or "none")
