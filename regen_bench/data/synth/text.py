"""Product text of the simulated store: titles, descriptions, critiques and reviews.

Everything here is a pure function of its arguments and an :class:`Rng`, so the text is as
deterministic as the world it describes. Templates (``tables/text.json``) are filled from
real item attributes and the user's real history, never from free-floating adjectives, so
that critiques, reviews and narratives can be checked against the data.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from functools import cache

from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.vocabulary import MIXED_COLOURS, TEXT, Family

_OPENINGS = TEXT.alts("description.openings")
_COUNTS = TEXT.alts("description.counts")
_TIER_NOTES = TEXT.keyed_alts("description.tier_notes")
_CRITIQUES = TEXT.keyed_alts("critiques")
_SUMMARIES = {int(stars): alts for stars, alts in TEXT.keyed_alts("reviews.summaries").items()}
_REVIEWED_ITEM = TEXT.keyed("reviews.item")
_CONTEXTS = TEXT.alts("reviews.contexts")
_BODIES = TEXT.keyed_alts("reviews.bodies")
_PACK_NOTES = TEXT.keyed_alts("reviews.pack_notes")
_CHANGE_NOTES = TEXT.keyed_alts("reviews.change_notes")
_REGRETS = TEXT.alts("reviews.regrets")


class _Fields(dict[str, object]):
    """Template fields where ``{Name}`` is field ``name`` with a capital first letter."""

    def __missing__(self, key: str) -> str:
        if key[:1].isupper():
            return str(self[key[:1].lower() + key[1:]]).capitalize()
        raise KeyError(key)


def fill(template: str, **fields: object) -> str:
    """``template`` with its ``{fields}`` filled in (``{Name}``: ``name`` capitalised)."""
    if _has_capitals(template):
        return template.format_map(_Fields(fields))
    return template.format_map(fields)


@cache
def _has_capitals(template: str) -> bool:
    return any(name[:1].isupper() for name in _field_names(template))


def _field_names(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@cache
def _pool_slots(templates: tuple[str, ...], pools: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Per template, its fields drawn from ``pools`` (first letter lower-cased), in order."""
    lowered = ([name[:1].lower() + name[1:] for name in _field_names(t)] for t in templates)
    return tuple(tuple(name for name in names if name in pools) for names in lowered)


def fill_drawn(
    rng: Rng, templates: tuple[str, ...], pools: Mapping[str, Sequence[str]], **fields: object
) -> str:
    """One of ``templates`` filled in, its fields named in ``pools`` drawn from them.

    Every alternative draws its own pool fields, in order, before one alternative is chosen,
    so how much of the random stream is used does not depend on which one wins (this order
    is part of what the shipped ``mini`` file was made with).
    """
    slots = _pool_slots(templates, tuple(pools))
    drawn = [[rng.choice(pools[name]) for name in names] for names in slots]
    k = rng.below(len(templates))
    return fill(templates[k], **fields, **dict(zip(slots[k], drawn[k], strict=True)))


def colour_phrase(fam: Family, colour: str) -> str:
    """How an item's colour reads inside a description sentence."""
    c = colour.lower()
    if colour.startswith(MIXED_COLOURS):
        return f"in {c}"
    return fam.colour_fmt.format(c=c)


def pack_label(fam: Family, n: int) -> str:
    """Title label of a pack size ("12-Pack", "1 Ream", "500 Labels")."""
    label = fam.pack_fmt.format(n=n)
    if n == 1:
        label = label.replace("Reams", "Ream").replace("Rolls", "Roll").replace("Pads", "Pad")
    return label


def pack_count(fam: Family, n: int) -> str:
    """Natural count phrase ("12 pens", "1 notebook")."""
    return f"{n} {fam.unit if n == 1 else fam.units}"


def title(brand: str, line: str, noun: str, colour: str, label: str) -> str:
    """Amazon-style title: brand, line and noun, then colour and pack (comma-separated)."""
    return f"{brand} {line} {noun}, {colour}, {label}"


def description(
    rng: Rng,
    fam: Family,
    brand: str,
    line: str,
    noun: str,
    spec: str,
    colour: str,
    n: int,
    tier: str,
) -> str:
    """Two to four product-voice sentences consistent with the item's attributes."""
    opening = fill(
        rng.choice(_OPENINGS),
        brand=brand,
        line=line,
        leaf=noun,
        noun=noun.lower(),
        spec=spec,
        looks=colour_phrase(fam, colour),
    )
    count = fill(rng.choice(_COUNTS), count=pack_count(fam, n))
    feats = rng.sample(fam.features, 1 + rng.below(2))
    return " ".join([opening, *(f + "." for f in feats), count, rng.choice(_TIER_NOTES[tier])])


def critique(rng: Rng, change: str, colour: str, label: str, brand: str) -> str:
    """A short user utterance asking for the change that led to the next purchase.

    ``change`` is one of colour, pack_up, pack_down, cheaper, pricier, brand; the text names
    the new colour or brand, or the direction of the pack size or price change.
    """
    return fill(rng.choice(_CRITIQUES[change]), colour=colour.lower(), label=label, brand=brand)


def review(
    rng: Rng,
    fam: Family,
    rating: int,
    brand: str,
    colour: str,
    n: int,
    context: str,
    change: str | None,
) -> tuple[str, str]:
    """(summary, text) of a review with the given rating that mentions the item's attributes."""
    summary = rng.choice(_SUMMARIES[rating])
    c = colour.lower()
    item = fill(
        _REVIEWED_ITEM["many" if n > 1 else "one"],
        colour=c,
        brand=brand,
        unit=fam.unit,
        units=fam.units,
    )
    if rng.random() < 0.5:
        context = rng.choice(_CONTEXTS)
    band = "good" if rating >= 4 else "mixed" if rating == 3 else "bad"
    pools = {"praise": fam.praises, "complaint": fam.complaints}
    parts = [fill_drawn(rng, _BODIES[band], pools, item=item, context=context)]
    if n > 1 and rng.random() < 0.5:
        parts.append(fill(rng.choice(_PACK_NOTES["good" if rating >= 4 else "fair"]), n=n))
    if change is not None:
        parts.append(fill(rng.choice(_CHANGE_NOTES[change]), colour=c, brand=brand))
    if rating <= 2:
        parts.append(rng.choice(_REGRETS))
    return summary, " ".join(parts)


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    """Word n-grams of a text, to check that one text does not quote another."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
