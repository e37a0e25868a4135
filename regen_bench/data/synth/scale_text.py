"""The scale engine's text: a simulated block's users as REGEN records.

Reviews and critiques use the ``mini``'s templates (``tables/text.json``), filled from the
item's true attributes and, for a critique, the true change; which alternative is used comes
from one array of the block's numpy stream, so the Python per purchase is string filling
only. The narratives are written by :mod:`scale_narratives`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from regen_bench.data.schema import Interaction, Narratives, UserRecord
from regen_bench.data.synth.scale_catalog import CHANGES, Catalog
from regen_bench.data.synth.scale_narratives import DRAWS, UserFacts, narrate
from regen_bench.data.synth.scale_shoppers import DAY, Block
from regen_bench.data.synth.text import fill, pack_label
from regen_bench.data.synth.vocabulary import FAMILIES, LEAVES, PERSONAS, TEXT

_SUMMARIES = [TEXT.alts(f"reviews.summaries.{stars}") for stars in range(1, 6)]
_CONTEXTS = TEXT.alts("reviews.contexts")
_BODIES = TEXT.keyed_alts("reviews.bodies")
_BANDS = ("bad", "mixed", "good")
_PACK_NOTES = [TEXT.alts(f"reviews.pack_notes.{k}") for k in ("fair", "good")]
_CHANGE_NOTES = [TEXT.alts(f"reviews.change_notes.{c}") for c in CHANGES]
_CRITIQUES = [TEXT.alts(f"critiques.{c}") for c in CHANGES]
_REGRETS = TEXT.alts("reviews.regrets")
#: Review contexts: each persona's own, then the generic ones.
_CONTEXT_TEXT = [p.context for p in PERSONAS.values()] + list(_CONTEXTS)
_FAMILY_NAMES = list(FAMILIES)
_LEAF_FAMILY = np.array([_FAMILY_NAMES.index(lf.family) for lf in LEAVES])


def _flat(lists: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Lists of alternatives as one list, with each list's start and length."""
    sizes = np.array([len(x) for x in lists])
    return [t for x in lists for t in x], np.cumsum(sizes) - sizes, sizes


def _bodies() -> list[list[str]]:
    """Review bodies with the family's praise and complaint filled in, per (family, band,
    template): every combination, so that only the item and context are filled per review."""
    width = max(len(_BODIES[b]) for b in _BANDS)
    out: list[list[str]] = []
    for fam in FAMILIES.values():
        for band in _BANDS:
            for template in _BODIES[band]:
                out.append(
                    sorted(
                        {
                            fill(
                                template, item="{item}", context="{context}", praise=p, complaint=c
                            )
                            for p in fam.praises
                            for c in fam.complaints
                        }
                    )
                )
            out.extend([] for _ in range(width - len(_BODIES[band])))  # never drawn
    return out


_SUMMARY_TEXT, _SUMMARY_AT, _SUMMARY_N = _flat(_SUMMARIES)
_BODY_TEXT, _BODY_AT, _BODY_N = _flat(_bodies())
_PACK_TEXT, _PACK_AT, _PACK_N = _flat(_PACK_NOTES)
_CHANGE_TEXT, _CHANGE_AT, _CHANGE_N = _flat(_CHANGE_NOTES)
_CRITIQUE_TEXT, _CRITIQUE_AT, _CRITIQUE_N = _flat(_CRITIQUES)
_TEMPLATES_PER_BAND = np.array([len(_BODIES[b]) for b in _BANDS])


class Writer:
    """Turns blocks of one catalog into REGEN records (holds per-item text made once)."""

    def __init__(self, cat: Catalog, bare: bool = False):
        self.cat, self.bare = cat, bare
        one, many = TEXT.keyed("reviews.item")["one"], TEXT.keyed("reviews.item")["many"]
        specs = cat.specs
        # The review's name for each item ("these blue Inkwell pens"), made once per item.
        self.phrase = [
            fill(
                many if s.pack > 1 else one,
                colour=s.colour.lower(),
                brand=s.brand,
                unit=s.family.unit,
                units=s.family.units,
            )
            for s in specs
        ]
        self.family = _LEAF_FAMILY[cat.leaf]
        self.pack = np.fromiter((s.pack for s in specs), np.int64, len(specs))

    def records(self, block: Block) -> Iterator[UserRecord]:
        """The block's users in order."""
        specs = self.cat.specs
        inters = self._interactions(block)
        ends = np.cumsum(block.lengths)
        starts = ends - block.lengths
        draws = block.rng.integers(0, 1 << 20, (len(block.lengths), DRAWS)).tolist()
        facts = _user_facts(self.cat, block, starts)
        items = block.items.tolist()
        changes = block.changes.tolist()
        for u, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            bought = [specs[i] for i in items[lo:hi]]
            narratives = Narratives()
            if not self.bare:
                narratives = narrate(bought, changes[lo:hi], facts[u], draws[u])
            yield UserRecord(
                block.user_ids[u],
                inters[lo:hi],
                {s.asin: s.item for s in bought},
                narratives,
                scores={},
            )

    def _interactions(self, block: Block) -> list[Interaction]:
        """Every purchase of the block with its review (and critique): the alternatives are
        drawn with numpy, so the loop only fills strings."""
        n = len(block.items)
        r = block.rng.integers(0, 1 << 20, (8, n))
        stars = block.ratings
        band = np.where(stars >= 4, 2, np.where(stars == 3, 1, 0))
        summary = _SUMMARY_AT[stars - 1] + r[0] % _SUMMARY_N[stars - 1]
        persona = np.repeat(block.persona, block.lengths)
        generic = len(PERSONAS) + r[1] // 2 % len(_CONTEXTS)
        context = np.where(r[1] % 2 == 0, persona, generic)
        slot = (self.family[block.items] * len(_BANDS) + band) * _TEMPLATES_PER_BAND.max()
        slot += r[2] % _TEMPLATES_PER_BAND[band]
        body = _BODY_AT[slot] + r[3] % _BODY_N[slot]
        pack = self.pack[block.items]
        note_kind = (stars >= 4).astype(np.int64)
        note = np.where(
            (pack > 1) & (r[4] % 2 == 0), _PACK_AT[note_kind] + r[5] % _PACK_N[note_kind], -1
        )
        change = block.changes.astype(np.int64)
        safe = np.maximum(change, 0)
        change_note = np.where(change >= 0, _CHANGE_AT[safe] + r[6] % _CHANGE_N[safe], -1)
        critique = np.where(
            (change >= 0) & (not self.bare), _CRITIQUE_AT[safe] + r[7] % _CRITIQUE_N[safe], -1
        )
        regret = np.where(stars <= 2, r[4] // 2 % len(_REGRETS), -1)
        specs, phrase = self.cat.specs, self.phrase
        out = []
        for i, t, st, s_i, c_i, b_i, p_i, n_i, k_i, q_i, g_i in zip(
            block.items.tolist(),
            block.times.tolist(),
            stars.tolist(),
            summary.tolist(),
            context.tolist(),
            body.tolist(),
            pack.tolist(),
            note.tolist(),
            change_note.tolist(),
            critique.tolist(),
            regret.tolist(),
            strict=True,
        ):
            s = specs[i]
            text = _BODY_TEXT[b_i].format(item=phrase[i], context=_CONTEXT_TEXT[c_i])
            if n_i >= 0:
                text += " " + _PACK_TEXT[n_i].format(n=p_i)
            crit = None
            if k_i >= 0:
                colour = s.colour.lower()
                text += " " + _CHANGE_TEXT[k_i].format(colour=colour, brand=s.brand)
                if q_i >= 0:
                    label = pack_label(s.family, p_i)
                    crit = _CRITIQUE_TEXT[q_i].format(colour=colour, label=label, brand=s.brand)
            if g_i >= 0:
                text += " " + _REGRETS[g_i]
            out.append(Interaction(s.asin, t, float(st), _SUMMARY_TEXT[s_i], text, crit))
        return out


def _user_facts(cat: Catalog, block: Block, starts: np.ndarray) -> list[UserFacts]:
    """What each user's narratives need besides the purchases (means taken with numpy)."""
    n = block.lengths
    last = starts + n - 1
    columns = zip(
        block.persona.tolist(),
        (np.add.reduceat(cat.tier[block.items], starts) / n).tolist(),
        (np.add.reduceat(cat.pack_pos[block.items], starts) / n).tolist(),
        (np.add.reduceat(block.ratings, starts) / n).tolist(),
        ((block.times[last] - block.times[starts]) / (365.25 * DAY)).tolist(),
        block.moves[last].tolist(),
        block.changes[last].tolist(),
        block.ratings[last].tolist(),
        strict=True,
    )
    return [UserFacts(*c) for c in columns]
