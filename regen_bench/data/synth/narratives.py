"""Narratives of a simulated user: profile, summaries, and the story of the last purchase.

Every sentence is a template from ``tables/narratives.json`` filled with :class:`Facts` read
off the user's true history, or with the true attributes of the items involved, so each
narrative can be checked against the data it describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.text import colour_phrase, fill, join_words
from regen_bench.data.synth.vocabulary import NARRATIVES as N
from regen_bench.data.synth.vocabulary import Family

_PRICE_ADJ = N.keyed_alts("price_adjectives")
_PROFILES = N.alts("profiles")
_SUMMARIES = N.alts("summaries")
_LONG_OPENINGS = N.alts("long_summary.openings")
_LONG_HISTORIES = N.alts("long_summary.histories")
_LOYALTY = N.keyed("long_summary.loyalty")
_TASTES = N.one("long_summary.tastes")
_ASKS = N.keyed("long_summary.asks")
_ASKING = N.one("long_summary.asking")
_REVIEWER = N.keyed("long_summary.reviewer")
_FREQUENCY = N.keyed("long_summary.frequency")
_REFINE_REASONS = N.keyed("reasons.refine")
_COMPLEMENT_REASONS = N.alts("reasons.complement")
_TASTE_WHY = N.keyed("reasons.taste_why")
_TASTE_REASONS = N.alts("reasons.taste")
_POPULAR_REASONS = N.alts("reasons.popular")
_SUBJECT, _SUBJECT_WITH_PERSONA = N.alts("explanation.subject")
_PREVIOUS = N.one("explanation.previous")
_HISTORY = N.one("explanation.history")
_VERDICTS = N.keyed("explanation.verdicts")
_RATINGS = N.alts("explanation.ratings")
_PITCHES = N.alts("endorsement.pitches")
_FITS = N.alts("endorsement.fits")
_VALUES = N.keyed("endorsement.values")
_DETAIL = N.one("endorsement.detail")
_CLOSES = N.alts("endorsement.closes")


@dataclass(frozen=True)
class Facts:
    """What the narratives may say about a user: all read off the true history and tastes."""

    persona: str
    branches: tuple[str, ...]  # most bought first (short names)
    leaves: tuple[str, ...]  # product nouns, most bought first
    brands: tuple[str, ...]  # most bought first
    colours: tuple[str, ...]  # most bought first (lower case)
    price_band: str  # budget / mid-range / premium, from the prices actually paid
    pack_habit: str  # "bulk packs" / "small packs" / "standard packs"
    mean_rating: float
    n_purchases: int
    years: float
    changes: tuple[str, ...]  # refinement kinds the user asked for, oldest first
    context: str  # what they buy for, from the persona

    def fields(self) -> dict[str, object]:
        """The template fields every narrative may use."""
        return {
            "persona": self.persona,
            "context": self.context,
            "price_band": self.price_band,
            "pack_habit": self.pack_habit,
            "branch": self.branches[0],
            "areas": join_words(self.branches[:2]),
            "brand": self.brands[0],
            "colour": self.colours[0],
        }


@dataclass(frozen=True)
class ItemView:
    """What the narratives may say about one bought item."""

    title: str
    noun: str  # the leaf name
    brand: str
    colour: str
    spec: str
    count: str  # natural count phrase ("12 pens")
    tier: str  # budget / standard / premium


def user_profile(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    return fill(rng.choice(_PROFILES), adj=adj, **f.fields())


def user_summary(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    return fill(rng.choice(_SUMMARIES), adj=adj, **f.fields())


def user_summary_long(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    s = [fill(rng.choice(_LONG_OPENINGS), adj=adj, **f.fields())]
    s.append(
        fill(
            rng.choice(_LONG_HISTORIES),
            span=_span(f.years),
            n=f.n_purchases,
            leaves=join_words(f.leaves[:3]).lower(),
            branches=join_words(f.branches[:3]),
        )
    )
    loyalty = fill(
        _LOYALTY["several" if len(f.brands) > 1 else "one"], brands=join_words(f.brands[:2])
    )
    s.append(fill(_TASTES, loyalty=loyalty, colours=join_words(f.colours[:2]), **f.fields()))
    if f.changes:
        wanted = [_ASKS[c] for c in dict.fromkeys(f.changes)]
        s.append(fill(_ASKING, asks=join_words(wanted)))
    if f.mean_rating >= 4.3:
        s.append(_REVIEWER["warm"])
    elif f.mean_rating >= 3.5:
        s.append(_REVIEWER["positive"])
    else:
        s.append(_REVIEWER["critical"])
    freq = f.n_purchases / max(f.years, 0.25)
    s.append(_FREQUENCY["regular" if freq >= 4 else "occasional"])
    return " ".join(s)


def _span(years: float) -> str:
    if years < 1:
        months = max(1, round(years * 12))
        return "about a month" if months == 1 else f"about {months} months"
    return "about a year" if round(years) == 1 else f"about {round(years)} years"


def purchase_reason(
    rng: Rng, move: str, change: str | None, item: ItemView, prev: ItemView | None, f: Facts
) -> str:
    """Short reason for the last purchase, driven by how the user really got to it."""
    noun = item.noun.lower()
    colour = item.colour.lower()
    if move == "refine" and prev is not None and change is not None:
        return fill(_REFINE_REASONS[change], noun=noun, colour=colour, brand=item.brand)
    if move == "complement" and prev is not None:
        return fill(
            rng.choice(_COMPLEMENT_REASONS),
            noun=noun,
            prev_noun=prev.noun.lower(),
            prev_brand=prev.brand,
        )
    if move == "taste":
        if item.brand in f.brands[:2]:
            why = "brand"
        elif colour in f.colours[:2]:
            why = "colour"
        else:
            why = "context"
        because = fill(_TASTE_WHY[why], brand=item.brand, colour=colour, context=f.context)
        return fill(rng.choice(_TASTE_REASONS), noun=noun, why=because)
    return fill(rng.choice(_POPULAR_REASONS), noun=noun, brand=item.brand)


def purchase_explanation(
    rng: Rng, reason: str, item: ItemView, prev: ItemView | None, f: Facts, rating: int
) -> str:
    """Longer explanation of the last purchase in the context of the whole history."""
    s = [reason.replace(_SUBJECT, fill(_SUBJECT_WITH_PERSONA, persona=f.persona), 1)]
    if prev is not None:
        s.append(fill(_PREVIOUS, title=prev.title))
    s.append(fill(_HISTORY, **f.fields()))
    verdict = _VERDICTS["good" if rating >= 4 else "fair" if rating == 3 else "bad"]
    s.append(fill(rng.choice(_RATINGS), rating=rating, verdict=verdict))
    return " ".join(s)


def product_endorsement(
    rng: Rng, item: ItemView, fam: Family, f: Facts, earlier: Sequence[str]
) -> str:
    """Sales pitch for the last item from its attributes and the earlier history only."""
    pitch = fill(rng.choice(_PITCHES), title=item.title, persona=f.persona)
    past = join_words(list(earlier)[:2]).lower() if earlier else f.branches[0]
    fit = fill(rng.choice(_FITS), past=past)
    detail = fill(
        _DETAIL,
        count=item.count,
        spec=item.spec,
        looks=colour_phrase(fam, item.colour),
        value=_VALUES[item.tier],
    )
    return " ".join([pitch, fit, detail, rng.choice(_CLOSES)])
