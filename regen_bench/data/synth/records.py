"""Simulated users as REGEN records: dates, ratings, reviews, critiques and narratives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from regen_bench.data.schema import Interaction, Narratives, UserRecord
from regen_bench.data.synth import narratives as nv
from regen_bench.data.synth import text as tx
from regen_bench.data.synth.catalog import ItemSpec
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.shoppers import DEFAULT_HABITS, Habits, SynthUser
from regen_bench.data.synth.vocabulary import BRANCHES, LEAVES, PERSONAS, TIERS
from regen_bench.data.synth.world import (
    DEFAULT_ITEMS,
    DEFAULT_SEED,
    DEFAULT_USERS,
    World,
    simulate,
)

_T0 = 1388534400  # 2014-01-01 UTC
_T1 = 1546214400  # 2018-12-31 UTC
_DAY = 86400
#: How the extended moves (see shoppers.Habits) are narrated.
_TOLD_AS = {"recall": "taste", "revisit": "taste", "noise": "popular"}


def _timestamps(rng: Rng, moves: list[str], pace: float) -> list[int]:
    """Day-resolution unix times in 2014-2018, strictly increasing; refinements come fast."""
    gaps = [0] + [1 + int(rng.expo(4.0 if m == "refine" else pace)) for m in moves[1:]]
    total = sum(gaps)
    room = (_T1 - _T0) // _DAY
    if total > room:
        gaps = [0] + [max(1, g * room // (total + len(gaps))) for g in gaps[1:]]
        total = sum(gaps)
    day = rng.below(max(room - total, 0) + 1)
    out = []
    for g in gaps:
        day += g
        out.append(_T0 + day * _DAY)
    return out


def _rating(rng: Rng, u: SynthUser, s: ItemSpec, move: str, leniency: float) -> int:
    """Star rating: higher the better the item fits the user's taste (Amazon-like skew)."""
    match = (
        (s.brand in u.brands)
        + (s.colour in u.colours)
        + (s.tier == u.tier)
        - 2 * (abs(s.tier - u.tier) == 2)
    )
    # A few purchases simply go wrong (defects, wrong size): the 1-2 star tail of real data.
    if rng.random() < 0.05 + 0.04 * (match <= 0):
        return 1 + (rng.random() < 0.4)
    x = 4.3 + 0.3 * match + leniency + rng.normal(0.0, 0.75) + (0.2 if move == "refine" else 0)
    return max(1, min(5, round(x)))


def _item_view(s: ItemSpec) -> nv.ItemView:
    return nv.ItemView(
        title=s.item.title,
        noun=LEAVES[s.leaf].name,
        brand=s.brand,
        colour=s.colour,
        spec=s.spec,
        count=tx.pack_count(s.family, s.pack),
        tier=TIERS[s.tier],
    )


def _ranked(values: list[str]) -> tuple[str, ...]:
    """Distinct values, most frequent first (ties: first seen first)."""
    counts = Counter(values)
    first = {v: k for k, v in reversed(list(enumerate(values)))}
    return tuple(sorted(dict.fromkeys(values), key=lambda v: (-counts[v], first[v])))


def _facts(u: SynthUser, specs: list[ItemSpec], ratings: list[int], times: list[int]) -> nv.Facts:
    bought = [specs[i] for i in u.items]
    mean_tier = sum(s.tier for s in bought) / len(bought)
    pack_pos = sum(s.pack_rank / max(len(s.family.packs) - 1, 1) for s in bought) / len(bought)
    if pack_pos < 0.3:
        pack_habit = "small packs"
    elif pack_pos > 0.6:
        pack_habit = "bulk packs"
    else:
        pack_habit = "standard packs"
    return nv.Facts(
        persona=u.persona,
        branches=_ranked([BRANCHES[LEAVES[s.leaf].branch].short for s in bought]),
        leaves=_ranked([LEAVES[s.leaf].name for s in bought]),
        brands=_ranked([s.brand for s in bought]),
        colours=_ranked([s.colour.lower() for s in bought]),
        price_band="budget" if mean_tier < 0.6 else "premium" if mean_tier > 1.4 else "mid-range",
        pack_habit=pack_habit,
        mean_rating=sum(ratings) / len(ratings),
        n_purchases=len(bought),
        years=(times[-1] - times[0]) / (365.25 * _DAY),
        changes=tuple(c for c in u.changes if c is not None),
        context=PERSONAS[u.persona].context,
    )


def _user_record(rng: Rng, u: SynthUser, specs: list[ItemSpec]) -> UserRecord:
    times = _timestamps(rng, u.moves, rng.uniform(20.0, 120.0))
    leniency = rng.normal(0.0, 0.35)
    context = PERSONAS[u.persona].context
    interactions: list[Interaction] = []
    ratings: list[int] = []
    for k, i in enumerate(u.items):
        s, change = specs[i], u.changes[k]
        rating = _rating(rng, u, s, u.moves[k], leniency)
        summary, text = tx.review(rng, s.family, rating, s.brand, s.colour, s.pack, context, change)
        crit = None
        if change is not None:
            crit = tx.critique(rng, change, s.colour, tx.pack_label(s.family, s.pack), s.brand)
        ratings.append(rating)
        interactions.append(Interaction(s.asin, times[k], float(rating), summary, text, crit))
    f = _facts(u, specs, ratings, times)
    last, prev = specs[u.items[-1]], specs[u.items[-2]]
    last_view, prev_view = _item_view(last), _item_view(prev)
    # A recall or revisit is told as a taste-driven buy, noise as a popular one: the reason
    # templates speak of the previous item only for refinements and complements.
    told = _TOLD_AS.get(u.moves[-1], u.moves[-1])
    reason = nv.purchase_reason(rng, told, u.changes[-1], last_view, prev_view, f)
    earlier = list(dict.fromkeys(LEAVES[specs[i].leaf].name for i in reversed(u.items[:-1])))
    narratives = Narratives(
        purchase_reason=reason,
        purchase_explanation=nv.purchase_explanation(
            rng, reason, last_view, prev_view, f, ratings[-1]
        ),
        # Written from the item and the earlier history only: the last review is withheld.
        product_endorsement=nv.product_endorsement(rng, last_view, last.family, f, earlier),
        user_summary=nv.user_summary(rng, f),
        user_summary_long=nv.user_summary_long(rng, f),
        user_profile=nv.user_profile(rng, f),
    )
    items = {specs[i].asin: specs[i].item for i in u.items}
    return UserRecord(u.user_id, interactions, items, narratives, scores={})


def iter_synthetic(
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    habits: Habits = DEFAULT_HABITS,
) -> Iterator[UserRecord]:
    """The simulated store's users as REGEN records, made one at a time (bounded memory)."""
    specs, people = simulate(users, items, seed, habits)
    yield from _records(specs, people, seed)


def synthesize(
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    habits: Habits = DEFAULT_HABITS,
) -> list[UserRecord]:
    """The simulated store's users as REGEN records (same arguments, same records)."""
    return list(iter_synthetic(users, items, seed, habits))


def synthesize_world(
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    habits: Habits = DEFAULT_HABITS,
) -> World:
    """Build the catalog, the users and their REGEN records (a pure function of the args)."""
    specs, people = simulate(users, items, seed, habits)
    return World(specs, people, list(_records(specs, people, seed)))


def _records(specs: list[ItemSpec], people: list[SynthUser], seed: int) -> Iterator[UserRecord]:
    text_rng = Rng(f"regen-mini/{seed}/text")
    for u in people:
        yield _user_record(text_rng, u, specs)
