"""The scale engine's catalog: the items of :func:`build_catalog` as numpy columns, with the
tables its shoppers draw from (popularity, per-leaf and per-tier ranges, each item's
refinements, complement and branch leaves)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regen_bench.data.synth.catalog import ItemSpec, build_catalog
from regen_bench.data.synth.vocabulary import BRANCHES, COMPLEMENTS, FAMILIES, LEAVES, PERSONAS

#: Changes a refinement makes (critique kinds, as ``tables/text.json`` names them).
CHANGES = ("colour", "pack_up", "pack_down", "cheaper", "pricier", "brand")
#: Weight ratio between successive complement leaves (the first listed is the likeliest).
COMPLEMENT_DECAY = 0.5
#: Other brands' variants of the same colour and pack that an item lists as refinements.
BRAND_ALTERNATIVES = 2
#: The smallest catalog: two items a leaf (as the ``mini`` engine), so that every leaf has one.
MIN_ITEMS = 2 * len(LEAVES)
#: First entropy word of every numpy stream of the scale engine (keeps them apart from any
#: other use of the same seed).
DOMAIN = 0x5CA1E


def draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF per row: ``cum`` holds rows of cumulative weights, ``u`` uniforms."""
    x = u * cum[:, -1]
    idx = (cum <= x[:, None]).sum(1)
    # Rounding can put x on the total: take the last index with a weight.
    last = (np.diff(cum, axis=1, prepend=0.0) > 0).cumsum(1).argmax(1)
    return np.minimum(idx, last)


def cum_rows(rows: list[list[float]]) -> np.ndarray:
    """Rows of weights (ragged, padded with zeros) as rows of cumulative weights."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for k, r in enumerate(rows):
        out[k, : len(r)] = r
    return np.cumsum(out, axis=1)


def _same_key_pairs(keys: list[np.ndarray], limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) for items a != b with equal keys; each a gets up to ``limit`` partners.

    Partners are the next members of a's key group in catalog order, wrapping around.
    """
    _, gid = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    gid = gid.reshape(-1)
    order = np.argsort(gid, kind="stable")
    counts = np.bincount(gid)
    size = counts[gid[order]]
    start = np.repeat(np.cumsum(counts) - counts, counts)  # of each sorted item's group
    pos = np.arange(len(order)) - start
    a_parts, b_parts = [], []
    for d in range(1, min(limit, int(size.max()) - 1) + 1):
        ok = d < size
        partner = start[ok] + (pos[ok] + d) % size[ok]
        a_parts.append(order[ok])
        b_parts.append(order[partner])
    if not a_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(a_parts), np.concatenate(b_parts)


@dataclass
class Catalog:
    """The catalog of :func:`build_catalog` as columns, and the tables shoppers draw from."""

    specs: list[ItemSpec]
    leaf: np.ndarray
    group: np.ndarray  # level-4 node id
    tier: np.ndarray
    colour: np.ndarray  # colour code (see colour_code)
    pack_pos: np.ndarray  # pack rank scaled to 0..1 within the family
    colour_code: dict[str, int]
    pop_cum: np.ndarray  # cumulative Zipf popularity, in item order
    seg_items: np.ndarray  # items by (leaf, tier)
    seg_cum: np.ndarray  # cumulative sqrt(popularity) in seg_items order
    seg_lo: np.ndarray  # [leaf, tier or 3 for any tier] -> range in seg_items
    seg_hi: np.ndarray
    refine_ptr: np.ndarray  # item -> range of its refinements in refine_item
    refine_item: np.ndarray
    refine_change: np.ndarray  # index into CHANGES
    comp_leaf: np.ndarray  # [leaf, k] -> k-th complement leaf
    comp_cum: np.ndarray
    comp_n: np.ndarray
    branch_leaf: np.ndarray  # [branch, k] -> k-th leaf of the branch
    branch_cum: np.ndarray
    leaf_branch: np.ndarray
    cover: np.ndarray  # catalog items in the order their introducing users come

    @property
    def size(self) -> int:
        return len(self.specs)


def build(items: int, seed: int) -> Catalog:
    """The catalog of ``build_catalog(items, seed)`` and its sampling tables (pure function)."""
    specs = build_catalog(items, seed)
    n = len(specs)
    groups: dict[tuple[str, str], int] = {}
    leaf_group = np.array([groups.setdefault((lf.branch, lf.group), len(groups)) for lf in LEAVES])
    colour_code = {c: k for k, c in enumerate(_colours())}
    brands: dict[str, int] = {}
    leaf = np.fromiter((s.leaf for s in specs), np.int64, n)
    tier = np.fromiter((s.tier for s in specs), np.int64, n)
    colour = np.fromiter((colour_code[s.colour] for s in specs), np.int64, n)
    pack = np.fromiter((s.pack for s in specs), np.int64, n)
    brand = np.fromiter((brands.setdefault(s.brand, len(brands)) for s in specs), np.int64, n)
    price = np.fromiter((s.price_cents for s in specs), np.int64, n)
    span = np.fromiter((max(len(s.family.packs) - 1, 1) for s in specs), np.float64, n)
    pack_pos = np.fromiter((s.pack_rank for s in specs), np.float64, n) / span

    rng = np.random.default_rng(np.random.SeedSequence([DOMAIN, seed], spawn_key=(1,)))
    # Zipf-like popularity over a random order of the items, scaled by the leaf's weight.
    rank = np.empty(n, np.int64)
    rank[rng.permutation(n)] = np.arange(n)
    leaf_weight = np.array([lf.weight for lf in LEAVES])
    pop = leaf_weight[leaf] / (rank + 4.0) ** 1.1
    cover = rng.permutation(n)

    seg_items = np.lexsort((tier, leaf))
    seg_cum = np.cumsum(np.sqrt(pop[seg_items]))
    # Ranges of seg_items per leaf and tier, and per leaf (column 3: any tier).
    sorted_leaf, sorted_tier = leaf[seg_items], tier[seg_items]
    keys = np.arange(len(LEAVES))
    seg_lo = np.zeros((len(LEAVES), 4), np.int64)
    seg_hi = np.zeros((len(LEAVES), 4), np.int64)
    for t in range(3):
        seg_lo[:, t] = np.searchsorted(sorted_leaf * 3 + sorted_tier, keys * 3 + t, "left")
        seg_hi[:, t] = np.searchsorted(sorted_leaf * 3 + sorted_tier, keys * 3 + t, "right")
    seg_lo[:, 3] = np.searchsorted(sorted_leaf, keys, "left")
    seg_hi[:, 3] = np.searchsorted(sorted_leaf, keys, "right")
    if (seg_hi[:, 3] == seg_lo[:, 3]).any():
        raise ValueError(f"every leaf needs an item: use items >= {MIN_ITEMS}")
    ptr, cand, change = _refinements(leaf, brand, tier, colour, pack, price)
    comp_leaf, comp_cum, comp_n = _complements(leaf_group)
    branch_leaf, branch_cum = _branch_leaves()
    return Catalog(
        specs=specs,
        leaf=leaf,
        group=leaf_group[leaf],
        tier=tier,
        colour=colour,
        pack_pos=pack_pos,
        colour_code=colour_code,
        pop_cum=np.cumsum(pop),
        seg_items=seg_items,
        seg_cum=seg_cum,
        seg_lo=seg_lo,
        seg_hi=seg_hi,
        refine_ptr=ptr,
        refine_item=cand,
        refine_change=change,
        comp_leaf=comp_leaf,
        comp_cum=comp_cum,
        comp_n=comp_n,
        branch_leaf=branch_leaf,
        branch_cum=branch_cum,
        leaf_branch=np.array([list(BRANCHES).index(lf.branch) for lf in LEAVES]),
        cover=cover,
    )


def _colours() -> list[str]:
    names = [c for f in FAMILIES.values() for c in f.colours]
    names += [c for p in PERSONAS.values() for c in p.palette]
    return list(dict.fromkeys(names))


def _refinements(
    leaf: np.ndarray,
    brand: np.ndarray,
    tier: np.ndarray,
    colour: np.ndarray,
    pack: np.ndarray,
    price: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's one-attribute variants in its leaf, as CSR (ptr, item, change code).

    Pairs must really differ in the attribute named: the catalog can hold the same variant
    twice (a line of a two-colour family lists a colour twice), and those two are no
    refinement of each other.
    """
    parts = []
    a, b = _same_key_pairs([leaf, brand, tier, pack], 8)  # the line in another colour
    keep = colour[a] != colour[b]
    parts.append((a[keep], b[keep], np.full(int(keep.sum()), CHANGES.index("colour"))))
    a, b = _same_key_pairs([leaf, brand, tier, colour], 8)  # another pack size
    keep = pack[a] != pack[b]
    a, b = a[keep], b[keep]
    parts.append((a, b, np.where(pack[b] > pack[a], 1, 2)))
    a, b = _same_key_pairs([leaf, brand, colour, pack], 8)  # the brand's other line
    keep = (tier[a] != tier[b]) & (price[a] != price[b])
    a, b = a[keep], b[keep]
    parts.append((a, b, np.where(price[b] < price[a], 3, 4)))
    a, b = _same_key_pairs([leaf, colour, pack], BRAND_ALTERNATIVES)  # another brand
    keep = brand[a] != brand[b]
    parts.append((a[keep], b[keep], np.full(int(keep.sum()), CHANGES.index("brand"))))
    src = np.concatenate([p[0] for p in parts])
    dst = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([p[2] for p in parts])
    order = np.lexsort((dst, src))
    ptr = np.concatenate(([0], np.cumsum(np.bincount(src, minlength=len(leaf)))))
    return ptr, dst[order].astype(np.int64), kind[order].astype(np.int8)


def _complements(leaf_group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complement leaves per leaf (outside its level-4 group), their weights and number."""
    names = {lf.name: k for k, lf in enumerate(LEAVES)}
    rows: list[list[int]] = []
    for k, lf in enumerate(LEAVES):
        targets = [names[t] for t in COMPLEMENTS.get(lf.name, ())]
        rows.append([t for t in targets if leaf_group[t] != leaf_group[k]])
    width = max(len(r) for r in rows)
    table = np.array([r + [0] * (width - len(r)) for r in rows])
    weights = [[COMPLEMENT_DECAY**j for j in range(len(r))] or [1.0] for r in rows]
    return table, cum_rows(weights), np.array([len(r) for r in rows])


def _branch_leaves() -> tuple[np.ndarray, np.ndarray]:
    """Each branch's leaves, with their popularity weights."""
    rows = [[k for k, lf in enumerate(LEAVES) if lf.branch == b] for b in BRANCHES]
    width = max(len(r) for r in rows)
    table = np.array([r + [r[-1]] * (width - len(r)) for r in rows])
    return table, cum_rows([[LEAVES[k].weight for k in r] for r in rows])
