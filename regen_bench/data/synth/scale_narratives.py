"""The scale engine's narratives: the ``mini``'s six narratives, a block of users at a time.

The same templates (``tables/narratives.json``) and rules as :mod:`narratives`, filled from
facts read off each user's purchases; only the way alternatives are chosen differs: from an
array the block's numpy stream draws once, and with each user's template fields built once
(the ``mini``'s functions take three times as long, a quarter of the engine's time).
"""

from __future__ import annotations

from typing import NamedTuple

from regen_bench.data.schema import Narratives
from regen_bench.data.synth.catalog import ItemSpec

# The mini's templates, read once by its own module: one source for both engines.
from regen_bench.data.synth.narratives import (
    _ASKING,
    _ASKS,
    _CLOSES,
    _COMPLEMENT_REASONS,
    _DETAIL,
    _FITS,
    _FREQUENCY,
    _HISTORY,
    _LONG_HISTORIES,
    _LONG_OPENINGS,
    _LOYALTY,
    _PITCHES,
    _POPULAR_REASONS,
    _PREVIOUS,
    _PRICE_ADJ,
    _PROFILES,
    _RATINGS,
    _REFINE_REASONS,
    _REVIEWER,
    _SUBJECT,
    _SUBJECT_WITH_PERSONA,
    _SUMMARIES,
    _TASTE_REASONS,
    _TASTE_WHY,
    _TASTES,
    _VALUES,
    _VERDICTS,
)
from regen_bench.data.synth.scale_catalog import CHANGES
from regen_bench.data.synth.scale_shoppers import MOVES
from regen_bench.data.synth.text import colour_phrase, fill, join_words, pack_count
from regen_bench.data.synth.vocabulary import BRANCHES, LEAVES, PERSONAS, TIERS

_PERSONAS = list(PERSONAS)
_CONTEXTS = [p.context for p in PERSONAS.values()]
_BRANCH_SHORT = [BRANCHES[lf.branch].short for lf in LEAVES]
_LEAF_NAME = [lf.name for lf in LEAVES]
#: Random numbers a user's narratives use (one per alternative chosen, see :func:`narrate`).
DRAWS = 12


class UserFacts(NamedTuple):
    """What a user's narratives are written from (besides the purchases themselves)."""

    persona: int  # index into PERSONAS
    mean_tier: float
    mean_pack: float  # pack rank scaled to 0..1 within its family
    mean_rating: float
    years: float
    move: int  # MOVES index of the last purchase
    change: int  # CHANGES index of the last purchase's refinement, else -1
    rating: int  # of the last purchase


def _ranked(values: list[str]) -> tuple[str, ...]:
    """Distinct values, most frequent first (ties: first seen first, as sorting is stable)."""
    counts = dict.fromkeys(values, 0)
    for v in values:
        counts[v] += 1
    return tuple(sorted(counts, key=counts.__getitem__, reverse=True))


def _span(years: float) -> str:
    if years < 1:
        months = max(1, round(years * 12))
        return "about a month" if months == 1 else f"about {months} months"
    return "about a year" if round(years) == 1 else f"about {round(years)} years"


def _pick(alts: tuple[str, ...], r: int) -> str:
    return alts[r % len(alts)]


def narrate(bought: list[ItemSpec], changes: list[int], u: UserFacts, r: list[int]) -> Narratives:
    """The six narratives of a user who bought ``bought`` (with these refinement changes),
    the alternatives chosen by the :data:`DRAWS` numbers ``r``."""
    persona = _PERSONAS[u.persona]
    branches = _ranked([_BRANCH_SHORT[s.leaf] for s in bought])
    leaves = _ranked([_LEAF_NAME[s.leaf] for s in bought])
    brands = _ranked([s.brand for s in bought])
    colours = _ranked([s.colour.lower() for s in bought])
    band = "budget" if u.mean_tier < 0.6 else "premium" if u.mean_tier > 1.4 else "mid-range"
    if u.mean_pack < 0.3:
        pack_habit = "small packs"
    elif u.mean_pack > 0.6:
        pack_habit = "bulk packs"
    else:
        pack_habit = "standard packs"
    fields = {
        "persona": persona,
        "context": _CONTEXTS[u.persona],
        "price_band": band,
        "pack_habit": pack_habit,
        "branch": branches[0],
        "areas": join_words(branches[:2]),
        "brand": brands[0],
        "colour": colours[0],
    }
    adj = _PRICE_ADJ[band]
    profile = fill(_pick(_PROFILES, r[0]), adj=_pick(adj, r[1]), **fields)
    summary = fill(_pick(_SUMMARIES, r[2]), adj=_pick(adj, r[3]), **fields)

    long = [fill(_pick(_LONG_OPENINGS, r[4]), adj=_pick(adj, r[5]), **fields)]
    long.append(
        fill(
            _pick(_LONG_HISTORIES, r[6]),
            span=_span(u.years),
            n=len(bought),
            leaves=join_words(leaves[:3]).lower(),
            branches=join_words(branches[:3]),
        )
    )
    loyalty = _LOYALTY["several" if len(brands) > 1 else "one"].format(
        brands=join_words(brands[:2])
    )
    long.append(fill(_TASTES, loyalty=loyalty, colours=join_words(colours[:2]), **fields))
    asked = dict.fromkeys(CHANGES[c] for c in changes if c >= 0)
    if asked:
        long.append(_ASKING.format(asks=join_words([_ASKS[c] for c in asked])))
    if u.mean_rating >= 4.3:
        long.append(_REVIEWER["warm"])
    elif u.mean_rating >= 3.5:
        long.append(_REVIEWER["positive"])
    else:
        long.append(_REVIEWER["critical"])
    regular = len(bought) / max(u.years, 0.25) >= 4
    long.append(_FREQUENCY["regular" if regular else "occasional"])

    last, prev = bought[-1], bought[-2]
    reason = _reason(last, prev, u, brands, colours, r[7])
    explanation = " ".join(
        [
            reason.replace(_SUBJECT, _SUBJECT_WITH_PERSONA.format(persona=persona), 1),
            _PREVIOUS.format(title=prev.item.title),
            _HISTORY.format(**fields),
            _pick(_RATINGS, r[8]).format(
                rating=u.rating,
                verdict=_VERDICTS["good" if u.rating >= 4 else "fair" if u.rating == 3 else "bad"],
            ),
        ]
    )
    # Written from the item and the earlier history only: the last review is withheld.
    earlier = list(dict.fromkeys(_LEAF_NAME[s.leaf] for s in reversed(bought[:-1])))
    past = join_words(earlier[:2]).lower() if earlier else branches[0]
    fam = last.family
    detail = _DETAIL.format(
        count=pack_count(fam, last.pack),
        spec=last.spec,
        looks=colour_phrase(fam, last.colour),
        value=_VALUES[TIERS[last.tier]],
    )
    endorsement = " ".join(
        [
            _pick(_PITCHES, r[9]).format(title=last.item.title, persona=persona),
            _pick(_FITS, r[10]).format(past=past),
            detail,
            _pick(_CLOSES, r[11]),
        ]
    )
    return Narratives(
        purchase_reason=reason,
        purchase_explanation=explanation,
        product_endorsement=endorsement,
        user_summary=summary,
        user_summary_long=" ".join(long),
        user_profile=profile,
    )


def _reason(
    last: ItemSpec,
    prev: ItemSpec,
    u: UserFacts,
    brands: tuple[str, ...],
    colours: tuple[str, ...],
    r: int,
) -> str:
    """Why the last purchase was made, from the move that really led to it (noise is told as
    a popular pick: the reason templates have no other)."""
    noun = _LEAF_NAME[last.leaf].lower()
    colour = last.colour.lower()
    move = MOVES[u.move]
    if move == "refine" and u.change >= 0:
        return _REFINE_REASONS[CHANGES[u.change]].format(noun=noun, colour=colour, brand=last.brand)
    if move == "complement":
        return _pick(_COMPLEMENT_REASONS, r).format(
            noun=noun, prev_noun=_LEAF_NAME[prev.leaf].lower(), prev_brand=prev.brand
        )
    if move == "taste":
        if last.brand in brands[:2]:
            why = "brand"
        elif colour in colours[:2]:
            why = "colour"
        else:
            why = "context"
        because = _TASTE_WHY[why].format(
            brand=last.brand, colour=colour, context=_CONTEXTS[u.persona]
        )
        return _pick(_TASTE_REASONS, r).format(noun=noun, why=because)
    return _pick(_POPULAR_REASONS, r).format(noun=noun, brand=last.brand)
