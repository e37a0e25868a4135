"""The simulated store's catalog: product variants over the category tree.

Items are variants (colour x pack size) of product lines (brand x price tier), leaf by leaf.
A brand often has two lines a tier apart with the same variants, and most lines share their
colours and pack sizes, so that every kind of refinement (colour, pack, price, brand) exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from regen_bench.data.schema import Item
from regen_bench.data.synth import text as tx
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.vocabulary import (
    BRANCHES,
    BRAND_HEADS,
    BRAND_TAILS,
    FAMILIES,
    HOUSE_BRAND,
    LEAVES,
    LINE_NAMES,
    TIERS,
    Family,
)

#: Pairs sharing at least this many category levels get a critique (REGEN section 3.2.3).
CRITIQUE_LEVELS = 4
#: Price factor of each tier.
TIER_PRICE = (0.62, 1.0, 1.6)
#: Weights of a brand's own tier (budget, standard, premium).
BRAND_TIER_WEIGHTS = (1, 2, 1.2)
#: Leaves asked for more items than this get extra generated brands (see _extra_lines).
EXTEND_QUOTA = 100


@dataclass(frozen=True)
class ItemSpec:
    """The attributes behind one catalog item (what titles, critiques and tests rely on)."""

    asin: str
    leaf: int  # index into LEAVES
    brand: str
    line: str
    tier: int  # 0 budget, 1 standard, 2 premium
    colour: str
    pack: int
    pack_rank: int  # index of ``pack`` in the family's pack sizes
    spec: str
    price_cents: int
    item: Item

    @property
    def family(self) -> Family:
        return FAMILIES[LEAVES[self.leaf].family]

    @property
    def group(self) -> tuple[str, ...]:
        """Level-4 node: items sharing it share >= 4 category levels."""
        return self.item.categories[:CRITIQUE_LEVELS]


@dataclass(frozen=True)
class _Line:
    """A product line being laid out in one leaf: who makes it and how it is described."""

    brand: str
    name: str
    tier: int
    spec: str
    price_factor: float


def _quotas(total: int) -> list[int]:
    """Items per leaf: proportional to sqrt(leaf weight), largest remainders, sums to total."""
    w = [math.sqrt(leaf.weight) for leaf in LEAVES]
    exact = [total * x / math.fsum(w) for x in w]
    q = [int(x) for x in exact]
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - q[i]), i))
    for i in order[: total - sum(q)]:
        q[i] += 1
    return q


def _asin(rng: Rng, taken: set[str]) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        code = "B0" + "".join(alphabet[rng.below(36)] for _ in range(8))
        if code not in taken:
            taken.add(code)
            return code


def _price(base: int, fam: Family, pack_rank: int, tier: int, brand_factor: float) -> int:
    """Price in cents ending in .99 (.49 under $5); bulk packs are cheaper per unit."""
    ratio = fam.packs[pack_rank] / fam.packs[0]
    cents = base * ratio**0.8 * TIER_PRICE[tier] * brand_factor
    if cents < 500:
        return max(149, int(cents / 50) * 50 + 49)
    return int(cents / 100) * 100 + 99


def _adjacent_tier(rng: Rng, t: int) -> int:
    """A tier next to ``t`` for a brand's second line: up from budget, down from premium."""
    return t + 1 if t < 2 and (t == 0 or rng.random() < 0.5) else t - 1


def _grid(colours: list[str], packs: list[int]) -> list[tuple[str, int]]:
    """A line's (colour, pack rank) variants, diagonal by diagonal.

    Filled in this order, the first few variants of a line differ in one thing only.
    """
    return sorted(
        ((c, p) for c in colours for p in packs),
        key=lambda cp: (colours.index(cp[0]) + packs.index(cp[1]), colours.index(cp[0])),
    )


def _variant(
    rng: Rng, taken: set[str], leaf_idx: int, line: _Line, colour: str, pack_rank: int
) -> ItemSpec:
    """One catalog item: a line's variant in one colour and pack size."""
    leaf = LEAVES[leaf_idx]
    branch = BRANCHES[leaf.branch]
    fam = FAMILIES[leaf.family]
    n = fam.packs[pack_rank]
    cents = _price(leaf.base_cents, fam, pack_rank, line.tier, line.price_factor)
    asin = _asin(rng, taken)
    item = Item(
        asin=asin,
        title=tx.title(line.brand, line.name, leaf.name, colour, tx.pack_label(fam, n)),
        categories=(*branch.root, branch.level3, leaf.group, leaf.name),
        price=cents / 100,
        brand=line.brand,
        description=tx.description(
            rng, fam, line.brand, line.name, leaf.name, line.spec, colour, n, TIERS[line.tier]
        ),
    )
    return ItemSpec(
        asin,
        leaf_idx,
        line.brand,
        line.name,
        line.tier,
        colour,
        n,
        pack_rank,
        line.spec,
        cents,
        item,
    )


def build_catalog(items: int, seed: int) -> list[ItemSpec]:
    """``items`` product variants over the category tree (depends on items and seed only)."""
    rng = Rng(f"regen-mini/{seed}/catalog")
    brand_tier = {
        b: rng.weighted(BRAND_TIER_WEIGHTS) for br in BRANCHES.values() for b in br.brands
    }
    brand_tier[HOUSE_BRAND] = 0
    brand_factor = {b: rng.uniform(0.9, 1.12) for b in brand_tier}
    taken: set[str] = set()
    specs: list[ItemSpec] = []
    carry = 0  # what a small leaf could not fill moves on to the next leaf
    for leaf_idx, share in enumerate(_quotas(items)):
        quota, carry = share + carry, 0
        if quota == 0:
            continue
        fam = FAMILIES[LEAVES[leaf_idx].family]
        own_brands = BRANCHES[LEAVES[leaf_idx].branch].brands
        n_brands = max(2, min(len(own_brands) + 1, round(quota / 5)))
        brands = rng.sample((*own_brands, HOUSE_BRAND), n_brands)
        # Lines: each brand's own tier, and for some an adjacent tier (price refinements).
        tiers: list[tuple[str, int]] = []
        for b in brands:
            t = brand_tier[b]
            tiers.append((b, t))
            if quota >= 2 * n_brands and rng.random() < 0.7:
                tiers.append((b, _adjacent_tier(rng, t)))
        # Colours and packs shared by most lines so that brand/price variants exist.
        core_colours = fam.colours[: max(2, len(fam.colours) - 1)]
        grids: list[list[tuple[str, int]]] = []
        lines: list[_Line] = []
        colours: list[str] = []
        packs: list[int] = []
        for li, (b, t) in enumerate(tiers):
            second = li > 0 and tiers[li - 1][0] == b
            if second:
                # A brand's second line is the same product a tier up or down: same variants.
                colours, packs = list(colours), list(packs)
            else:
                colours = rng.sample(core_colours, min(len(core_colours), 2 + rng.below(2)))
                if rng.random() < 0.3:
                    colours.append(fam.colours[-1])
                packs = sorted(
                    rng.sample(range(len(fam.packs)), min(len(fam.packs), 2 + rng.below(2)))
                )
            grids.append(_grid(colours, packs))
            spec = lines[-1].spec if second else rng.choice(fam.specs)
            lines.append(_Line(b, rng.choice(LINE_NAMES[t]), t, spec, brand_factor[b]))
        made = 0
        depth = 0
        while made < quota and depth < 64:
            for line, grid in zip(lines, grids, strict=True):
                if made >= quota or depth >= len(grid):
                    continue
                specs.append(_variant(rng, taken, leaf_idx, line, *grid[depth]))
                made += 1
            depth += 1
        if made < quota and quota > EXTEND_QUOTA:
            made += _extra_lines(
                rng, specs, taken, leaf_idx, quota - made, brand_tier, brand_factor, brands
            )
        carry = quota - made
    return specs


def _extra_lines(
    rng: Rng,
    specs: list[ItemSpec],
    taken: set[str],
    leaf_idx: int,
    need: int,
    brand_tier: dict[str, int],
    brand_factor: dict[str, float],
    used: list[str],
) -> int:
    """Fill a large leaf with extra brands' product lines; return how many items were made.

    A leaf's own brands give at most a few hundred variants; a Clothing-scale catalog needs
    thousands per leaf. Extra brands get generated names and the same line structure (a
    brand's lines share colours and packs, so every refinement kind still exists). Only
    leaves above :data:`EXTEND_QUOTA` come here, so small worlds (``mini``) are unchanged.
    """
    fam = FAMILIES[LEAVES[leaf_idx].family]
    names = set(used)
    made = 0
    while made < need:
        brand = ""
        for attempt in range(64):
            brand = rng.choice(BRAND_HEADS) + rng.choice(BRAND_TAILS)
            if attempt >= 32:
                brand += f" {2 + rng.below(98)}"
            if brand not in names:
                break
        names.add(brand)
        t = brand_tier.setdefault(brand, rng.weighted(BRAND_TIER_WEIGHTS))
        factor = brand_factor.setdefault(brand, rng.uniform(0.9, 1.12))
        colours = rng.sample(fam.colours, min(len(fam.colours), 2 + rng.below(2)))
        packs = sorted(rng.sample(range(len(fam.packs)), min(len(fam.packs), 2 + rng.below(2))))
        # The adjacent tier is drawn before whether the brand gets a second line at all.
        tiers = [t] + [_adjacent_tier(rng, t)] * (rng.random() < 0.7)
        spec = rng.choice(fam.specs)
        for tier in tiers:
            line = _Line(brand, rng.choice(LINE_NAMES[tier]), tier, spec, factor)
            for colour, pack_rank in _grid(colours, packs):
                if made >= need:
                    return made
                specs.append(_variant(rng, taken, leaf_idx, line, colour, pack_rank))
                made += 1
    return made
