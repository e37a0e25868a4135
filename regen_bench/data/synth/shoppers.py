"""Simulated shoppers: latent tastes, and how each next purchase is chosen.

A user has a persona, preferred branches, brands, colours, a price tier and a pack-size
habit. After the first purchase each step is one of:

- a *refinement*: a variant of the previous item in the same leaf that differs in exactly one
  of colour, pack size, brand or price tier, chosen mostly towards the user's taste. Only
  these pairs share >= 4 category levels, so only they carry a critique, and the critique
  names the change;
- a *complementary* move along the leaf graph (pens -> refills, printer paper -> ink, ...),
  preferring the same brand and colour as the previous item;
- a *taste-driven* pick from a preferred branch, or a *popular* pick (Zipf popularity).

That mix (:data:`LEGACY`, the packaged ``mini``) makes the next item nearly a function of the
last one. :data:`CALIBRATED` adds structure only a model of the whole history can use: a
complement of an item bought a few steps earlier (*recall*), another item of a leaf bought
before, loyal to that purchase (*revisit*, the repeat-category cycle), a working budget that
drifts and sharper lasting tastes. *Noise* purchases drawn uniformly from the catalog are a
knob too (off in :data:`CALIBRATED`, whose popular picks already ignore the history).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from regen_bench.data.synth.catalog import ItemSpec
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.store import SHORTLIST_RANDOM, SHORTLIST_TOP, Store
from regen_bench.data.synth.vocabulary import BRANCHES, HOUSE_BRAND, LEAVES, PERSONAS

#: Step mix after the first purchase (refinement, complementary, taste-driven, popular).
MOVE_WEIGHTS = (0.18, 0.55, 0.17, 0.09)
#: Share of taste-driven picks that go to one of the user's favourite leaves.
FAVOURITE_SHARE = 0.7
#: How a complementary pick weighs the user's taste (exponent) against matching the previous
#: item's brand, colour and price tier (factors).
COMPLEMENT_TASTE = 0.3
COMPLEMENT_BRAND = 10.0
COMPLEMENT_COLOUR = 5.0
COMPLEMENT_TIER = 3.0
#: Weight ratio between successive complement leaves (the first listed is the likeliest).
COMPLEMENT_DECAY = 0.3
#: Leaves with more items than this are sampled with numpy and indexes (see pick_leaf).
BIG_LEAF = 48
#: Taste factors: liked brand, liked colour, price tier at distance 0/1/2, pack size near or
#: far from the user's habit.
_LIKED_BRAND = 3.0
_LIKED_COLOUR = 2.5
_TIER_FIT = (3.0, 1.0, 0.3)
_PACK_NEAR = 2.0
_PACK_FAR = 0.7


@dataclass(frozen=True)
class Habits:
    """How simulated shoppers choose each next purchase (the simulator's behaviour knobs).

    The step weights need not sum to one. ``legacy`` habits reproduce the packaged ``mini``
    byte for byte (same random draws); any other values go through the extended step.
    """

    name: str = "legacy"
    refine: float = MOVE_WEIGHTS[0]
    complement: float = MOVE_WEIGHTS[1]
    taste: float = MOVE_WEIGHTS[2]
    popular: float = MOVE_WEIGHTS[3]
    #: A complement of an item bought 2..recall_lag steps back (not the last one).
    recall: float = 0.0
    #: Another item of a leaf bought before, close to that earlier purchase.
    revisit: float = 0.0
    #: An item drawn uniformly from the catalog: a purchase no history explains.
    noise: float = 0.0
    complement_brand: float = COMPLEMENT_BRAND
    complement_colour: float = COMPLEMENT_COLOUR
    complement_tier: float = COMPLEMENT_TIER
    complement_taste: float = COMPLEMENT_TASTE
    complement_decay: float = COMPLEMENT_DECAY
    favourite_share: float = FAVOURITE_SHARE
    #: A recall's anchor is drawn uniformly from the purchases recall_min_lag..recall_lag back
    #: (1 is the last one).
    recall_min_lag: int = 2
    recall_lag: int = 5
    #: A revisit's anchor: exactly revisit_lag purchases back (a cycle), or for 0 any earlier
    #: purchase, recent ones likelier.
    revisit_lag: int = 0
    #: Whether a revisit follows its anchor's brand, colour and tier (else the user's taste).
    revisit_loyal: bool = True
    #: Chance per step that the user's working price tier moves one step up or down.
    budget_drift: float = 0.0
    #: Exponent on the taste weight of taste-driven picks (> 1: tastes matter more).
    taste_sharpness: float = 1.0

    @property
    def legacy(self) -> bool:
        return self == LEGACY

    def with_values(self, **values: float | int | str) -> Habits:
        """A copy with some knobs changed (values are coerced to each knob's type)."""
        types = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ValueError(f"unknown shopper knob(s): {', '.join(unknown)}")
        kw = {
            k: str(v).lower() in ("1", "true", "yes") if types[k] is bool else types[k](v)
            for k, v in values.items()
        }
        return Habits(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **kw})


#: The packaged ``mini``: the next purchase follows mostly from the last one.
LEGACY = Habits()
#: Shoppers whose next purchase also depends on the longer history (see the module doc).
CALIBRATED = Habits(
    name="calibrated",
    refine=0.16,  # with these weights, 18.6% of adjacent pairs carry a critique (Office: 17.6%)
    complement=0.30,
    taste=0.15,
    popular=0.05,
    recall=0.12,
    revisit=0.07,
    noise=0.0,
    complement_brand=3.0,
    complement_colour=2.0,
    complement_tier=1.5,
    complement_taste=0.6,
    complement_decay=0.6,
    favourite_share=0.8,
    recall_min_lag=2,
    recall_lag=3,
    revisit_lag=4,
    budget_drift=0.12,
    taste_sharpness=1.5,
)
HABITS = {h.name: h for h in (LEGACY, CALIBRATED)}
#: What ``data synth`` and the packaged ``mini`` use.
DEFAULT_HABITS = CALIBRATED


@dataclass(slots=True)
class SynthUser:
    """A simulated user: latent tastes and the true story behind each purchase."""

    user_id: str
    persona: str
    branches: tuple[str, ...]
    brands: tuple[str, ...]
    tier: int
    pack_habit: int  # 0 small, 1 standard, 2 bulk
    colours: tuple[str, ...]
    leaves: tuple[int, ...]  # favourite leaves, where taste-driven picks mostly land
    items: list[int]
    moves: list[str]  # first, refine, complement, taste, popular
    changes: list[str | None]  # the refinement kind (critique.change) per purchase
    budget: int = 1  # working price tier: the base tier, drifting under some habits
    anchors: list[int | None] | None = None  # earlier purchase a recall/revisit builds on


def make_user(rng: Rng, store: Store, user_id: str) -> SynthUser:
    """A new user with tastes drawn from a persona, and no purchases yet."""
    names = list(PERSONAS)
    persona = names[rng.weighted([PERSONAS[p].share for p in names])]
    p = PERSONAS[persona]
    jittered = [(p.branches[b] * rng.uniform(0.6, 1.4), k) for k, b in enumerate(p.branches)]
    top = sorted(jittered, key=lambda wk: (-wk[0], wk[1]))[: 2 + rng.below(2)]
    branches = tuple(list(p.branches)[k] for _, k in top)
    tier = rng.weighted(p.tiers)
    brands: list[str] = []
    for b in branches:
        pool = [*BRANCHES[b].brands, HOUSE_BRAND] if tier == 0 else list(BRANCHES[b].brands)
        brands.extend(rng.sample(pool, 1 + (rng.random() < 0.3)))
    colours = tuple(rng.sample(p.palette, 2 + (rng.random() < 0.4)))
    leaf_pool = [k for k in store.by_leaf if LEAVES[k].branch in branches]
    leaves: list[int] = []
    for _ in range(min(len(leaf_pool), 3 + rng.below(3))):
        k = rng.weighted([LEAVES[x].weight for x in leaf_pool])
        leaves.append(leaf_pool.pop(k))
    u = SynthUser(
        user_id,
        persona,
        branches,
        tuple(dict.fromkeys(brands)),
        tier,
        rng.weighted(p.packs),
        colours,
        tuple(leaves),
        [],
        [],
        [],
    )
    u.budget = tier
    u.anchors = []
    return u


def _affinity(u: SynthUser, s: ItemSpec) -> float:
    """How well an item matches a user's taste (a multiplicative preference weight)."""
    a = _LIKED_BRAND if s.brand in u.brands else 1.0
    a *= _LIKED_COLOUR if s.colour in u.colours else 1.0
    a *= _TIER_FIT[abs(s.tier - u.budget)]
    span = max(len(s.family.packs) - 1, 1)
    a *= _PACK_NEAR if abs(s.pack_rank / span - u.pack_habit / 2) <= 0.34 else _PACK_FAR
    return a


def _pick(
    rng: Rng,
    store: Store,
    u: SynthUser,
    cands: list[int],
    after: ItemSpec | None = None,
    h: Habits = LEGACY,
) -> int | None:
    """Draw an item by taste x sqrt(popularity).

    A complement of ``after`` follows that item (its brand, colour and price tier) more than
    the user's general taste: a refill matches the pen, whoever buys it.
    """
    if not cands:
        return None
    w = []
    for i in cands:
        s = store.specs[i]
        x = math.sqrt(store.pop[i])
        if after is None:
            a = _affinity(u, s)
            x *= a if h.taste_sharpness == 1.0 else a**h.taste_sharpness
        else:
            x *= _affinity(u, s) ** h.complement_taste
            x *= h.complement_brand if s.brand == after.brand else 1.0
            x *= h.complement_colour if s.colour == after.colour else 1.0
            x *= h.complement_tier if s.tier == after.tier else 1.0
        w.append(x)
    return cands[rng.weighted(w)]


def pick_leaf(
    rng: Rng,
    store: Store,
    u: SynthUser,
    leaf: int,
    seen: set[int],
    group: tuple[str, ...] | None,
    after: ItemSpec | None = None,
    h: Habits = LEGACY,
) -> int | None:
    """:func:`_pick` over a leaf's items outside ``seen`` and outside the level-4 ``group``.

    Large leaves use the same weights computed with numpy (a Python loop over thousands of
    items per purchase step would take hours at Clothing scale).
    """
    items = store.by_leaf[leaf]
    if len(items) <= BIG_LEAF:
        cands = [i for i in items if i not in seen and store.specs[i].group != group]
        return _pick(rng, store, u, cands, after, h)
    if store.specs[items[0]].group == group:  # one leaf, one level-4 group
        return None
    full = store.leaf_arrays(leaf)
    # Weigh a shortlist: the leaf's most popular items plus a few drawn uniformly (the tail
    # is still bought through these draws and the cold-item cover). Weighing thousands of
    # items per purchase step would take hours for 1.2M users.
    drawn = [rng.below(len(items)) for _ in range(SHORTLIST_RANDOM)]
    pos = np.unique(np.concatenate((full["top"], np.asarray(drawn, dtype=np.int64))))
    arr = {key: col[pos] for key, col in full.items() if key != "top"}
    seen_pos = {store.pos_in_leaf[i] for i in seen if store.specs[i].leaf == leaf}
    keep = np.fromiter((p not in seen_pos for p in pos.tolist()), bool, len(pos))
    if not keep.any():
        return None
    # Lookup tables instead of np.isin: a user likes a handful of brands and colours.
    like_b = np.ones(len(store.brand_code))
    like_b[[store.brand_code[b] for b in u.brands if b in store.brand_code]] = _LIKED_BRAND
    like_c = np.ones(len(store.colour_code))
    like_c[[store.colour_code[c] for c in u.colours if c in store.colour_code]] = _LIKED_COLOUR
    a = like_b[arr["brand"]]
    a *= like_c[arr["colour"]]
    a *= np.array(_TIER_FIT)[np.abs(arr["tier"] - u.budget)]
    a *= np.where(np.abs(arr["pack_pos"] - u.pack_habit / 2) <= 0.34, _PACK_NEAR, _PACK_FAR)
    x = arr["sqrt_pop"].copy()
    if after is None:
        x *= a if h.taste_sharpness == 1.0 else a**h.taste_sharpness
    else:
        x *= a**h.complement_taste
        x *= np.where(arr["brand"] == store.brand_code.get(after.brand, -1), h.complement_brand, 1)
        x *= np.where(
            arr["colour"] == store.colour_code.get(after.colour, -1), h.complement_colour, 1
        )
        x *= np.where(arr["tier"] == after.tier, h.complement_tier, 1.0)
    cum = np.cumsum(x[keep])
    k = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(cum) - 1)
    return int(arr["idx"][keep][k])


def _refinements(
    store: Store, u: SynthUser, prev: int, seen: set[int]
) -> list[tuple[int, str, float]]:
    """Variants of ``prev`` differing in exactly one attribute: (item, change, weight)."""
    p = store.specs[prev]
    out: list[tuple[int, str, float]] = []
    scan = store.by_leaf[p.leaf]
    if len(scan) > BIG_LEAF:
        # Every variant shares prev's line or its (colour, pack) cell: scan just those, in
        # catalog order; of a crowded cell only the first SHORTLIST_TOP brands' variants.
        scan = sorted(
            {
                *store.by_line[(p.leaf, p.brand, p.line)],
                *store.by_cell[(p.leaf, p.colour, p.pack)][:SHORTLIST_TOP],
            }
        )
    for i in scan:
        s = store.specs[i]
        if i in seen:
            continue
        same_line = s.brand == p.brand and s.line == p.line
        if same_line and s.pack == p.pack and s.colour != p.colour:
            w = 3.0 if s.colour in u.colours and p.colour not in u.colours else 1.0
            out.append((i, "colour", w))
        elif same_line and s.colour == p.colour and s.pack != p.pack:
            up = s.pack > p.pack
            want = (u.pack_habit == 2 and up) or (u.pack_habit == 0 and not up)
            out.append((i, "pack_up" if up else "pack_down", 2.5 if want else 1.0))
        elif (
            s.brand == p.brand
            and s.colour == p.colour
            and s.pack == p.pack
            and s.tier != p.tier
            and s.price_cents != p.price_cents
        ):
            cheaper = s.price_cents < p.price_cents
            toward = abs(s.tier - u.budget) < abs(p.tier - u.budget)
            out.append((i, "cheaper" if cheaper else "pricier", 3.0 if toward else 0.8))
        elif s.brand != p.brand and s.colour == p.colour and s.pack == p.pack:
            w = 3.0 if s.brand in u.brands and p.brand not in u.brands else 0.8
            out.append((i, "brand", w))
    return out


def next_purchase(
    rng: Rng, store: Store, u: SynthUser, seen: set[int], h: Habits = LEGACY
) -> tuple[int, str, str | None]:
    """One purchase step: (item, move, refinement change or None).

    Under non-legacy habits the step also records, in ``u.anchors``, the index of the earlier
    purchase a recall or revisit builds on (None otherwise).
    """
    if not h.legacy:
        return _next_extended(rng, store, u, seen, h)
    prev = u.items[-1] if u.items else None
    move = (
        ("taste", "popular")[rng.random() < 0.3]
        if prev is None
        else (("refine", "complement", "taste", "popular")[rng.weighted(MOVE_WEIGHTS)])
    )
    if prev is not None and move == "refine":
        options = _refinements(store, u, prev, seen)
        if options:
            k = rng.weighted([w for _, _, w in options])
            return options[k][0], "refine", options[k][1]
        move = "complement"
    group = store.specs[prev].group if prev is not None else None

    def allowed(i: int) -> bool:
        # Anything but a refinement must leave the level-4 group: no critique there.
        return i not in seen and store.specs[i].group != group

    if prev is not None and move == "complement":
        leaves = store.complements[store.specs[prev].leaf]
        if leaves:
            # The first-listed complement is the most natural next buy.
            leaf = leaves[rng.weighted([COMPLEMENT_DECAY**k for k in range(len(leaves))])]
            got = pick_leaf(rng, store, u, leaf, seen, group, store.specs[prev])
            if got is not None:
                return got, "complement", None
        move = "taste"
    if move == "taste" and u.leaves and rng.random() < FAVOURITE_SHARE:
        leaf = u.leaves[rng.weighted([LEAVES[k].weight for k in u.leaves])]
        got = pick_leaf(rng, store, u, leaf, seen, group)
        if got is not None:
            return got, "taste", None
    if move == "taste":
        for _ in range(8):
            weights = [(4.0 if b in u.branches else 0.25) for b in BRANCHES]
            branch = list(BRANCHES)[rng.weighted(weights)]
            leaves = [k for k in store.by_leaf if LEAVES[k].branch == branch]
            if not leaves:
                continue
            leaf = leaves[rng.weighted([LEAVES[k].weight for k in leaves])]
            got = pick_leaf(rng, store, u, leaf, seen, group)
            if got is not None:
                return got, "taste", None
    for _ in range(200):
        i = store.popular(rng)
        if allowed(i):
            return i, "popular", None
    return next(i for i in range(len(store.specs)) if allowed(i)), "popular", None


#: Steps of the extended mix, in the order of :meth:`Habits` weights used below.
_MOVES = ("refine", "complement", "recall", "revisit", "taste", "popular", "noise")


def _next_extended(
    rng: Rng, store: Store, u: SynthUser, seen: set[int], h: Habits
) -> tuple[int, str, str | None]:
    """:func:`next_purchase` with recall, revisit, noise and a drifting budget."""
    anchors = u.anchors if u.anchors is not None else []
    u.anchors = anchors
    if h.budget_drift and rng.random() < h.budget_drift:
        u.budget = min(2, max(0, u.budget + (1 if rng.random() < 0.5 else -1)))
    prev = u.items[-1] if u.items else None
    if prev is None:
        move = ("taste", "popular")[rng.random() < 0.3]
    else:
        mix = (h.refine, h.complement, h.recall, h.revisit, h.taste, h.popular, h.noise)
        move = _MOVES[rng.weighted(mix)]
    anchors.append(None)
    if prev is not None and move == "refine":
        options = _refinements(store, u, prev, seen)
        if options:
            k = rng.weighted([w for _, _, w in options])
            return options[k][0], "refine", options[k][1]
        move = "complement"
    group = store.specs[prev].group if prev is not None else None

    def allowed(i: int) -> bool:
        # Anything but a refinement must leave the level-4 group: no critique there.
        return i not in seen and store.specs[i].group != group

    def complement_of(anchor: int) -> int | None:
        leaves = store.complements[store.specs[anchor].leaf]
        if not leaves:
            return None
        leaf = leaves[rng.weighted([h.complement_decay**k for k in range(len(leaves))])]
        return pick_leaf(rng, store, u, leaf, seen, group, store.specs[anchor], h)

    n = len(u.items)
    if move == "recall":
        # Lag 1 (the last item) is excluded: a complement of it is an ordinary complement.
        lo = max(2, h.recall_min_lag)
        back = [k for k in range(max(0, n - h.recall_lag), n - lo + 1)]
        back = [k for k in back if store.complements[store.specs[u.items[k]].leaf]]
        if back:
            k = back[rng.below(len(back))]
            got = complement_of(u.items[k])
            if got is not None:
                anchors[-1] = k
                return got, "recall", None
        move = "taste"
    if move == "revisit":
        if h.revisit_lag > 0:
            back = [n - h.revisit_lag] if n - h.revisit_lag >= 0 else []
        else:
            back = list(range(n - 1))
        back = [k for k in back if store.specs[u.items[k]].group != group]
        if back:
            k = back[rng.weighted([1.0 + j for j in range(len(back))])]
            s = store.specs[u.items[k]]
            follow = s if h.revisit_loyal else None
            got = pick_leaf(rng, store, u, s.leaf, seen, group, follow, h)
            if got is not None:
                anchors[-1] = k
                return got, "revisit", None
        move = "taste"
    if prev is not None and move == "complement":
        got = complement_of(prev)
        if got is not None:
            return got, "complement", None
        move = "taste"
    if move == "noise":
        for _ in range(200):
            i = rng.below(len(store.specs))
            if allowed(i):
                return i, "noise", None
        move = "popular"
    if move == "taste" and u.leaves and rng.random() < h.favourite_share:
        leaf = u.leaves[rng.weighted([LEAVES[k].weight for k in u.leaves])]
        got = pick_leaf(rng, store, u, leaf, seen, group, None, h)
        if got is not None:
            return got, "taste", None
    if move == "taste":
        for _ in range(8):
            weights = [(4.0 if b in u.branches else 0.25) for b in BRANCHES]
            branch = list(BRANCHES)[rng.weighted(weights)]
            leaves = [k for k in store.by_leaf if LEAVES[k].branch == branch]
            if not leaves:
                continue
            leaf = leaves[rng.weighted([LEAVES[k].weight for k in leaves])]
            got = pick_leaf(rng, store, u, leaf, seen, group, None, h)
            if got is not None:
                return got, "taste", None
    for _ in range(200):
        i = store.popular(rng)
        if allowed(i):
            return i, "popular", None
    return next(i for i in range(len(store.specs)) if allowed(i)), "popular", None
