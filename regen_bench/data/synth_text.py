"""Vocabulary and text templates of the simulated office-supplies store (see ``synth``).

Everything here is a pure function of its arguments and a :class:`Rng`, so the text is as
deterministic as the world it describes. Templates are filled from real item attributes and
the user's real history, never from free-floating adjectives, so that critiques, reviews and
narratives can be checked against the data.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Rng:
    """Sampling built only on ``random.Random.random()``.

    Python guarantees that ``random()`` gives the same stream for the same seed on every
    version and platform; ``choice``/``shuffle``/``sample`` carry no such promise, so they are
    re-implemented here on top of it (that keeps the shipped file reproducible).
    """

    def __init__(self, seed: str):
        self._r = random.Random(seed)

    def random(self) -> float:
        return self._r.random()

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)``."""
        return min(int(self._r.random() * n), n - 1)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._r.random()

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def weighted(self, weights: Sequence[float]) -> int:
        """Index drawn with probability proportional to ``weights`` (not all zero)."""
        total = math.fsum(weights)
        x = self._r.random() * total
        acc = 0.0
        for i, w in enumerate(weights):
            acc += w
            if x < acc and w > 0:
                return i
        return max(i for i, w in enumerate(weights) if w > 0)

    def shuffle(self, items: list[T]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        pool = list(seq)
        self.shuffle(pool)
        return pool[:k]

    def expo(self, mean: float) -> float:
        return -mean * math.log(1.0 - self._r.random())

    def normal(self, mu: float, sigma: float) -> float:
        # Irwin-Hall: plain arithmetic, so no libm differences between platforms.
        return mu + sigma * (math.fsum(self._r.random() for _ in range(12)) - 6.0)


@dataclass(frozen=True)
class Family:
    """How a kind of product is described: units, variants, specs and review vocabulary."""

    unit: str
    units: str
    colours: tuple[str, ...]
    packs: tuple[int, ...]
    #: Title label of a pack size; ``{n}`` is the count.
    pack_fmt: str
    #: How the colour reads in a description, e.g. "{c} ink"; multi-colour names use "in {c}".
    colour_fmt: str
    specs: tuple[str, ...]
    features: tuple[str, ...]
    praises: tuple[str, ...]
    complaints: tuple[str, ...]


_PEN_PRAISE = (
    "they write smoothly without skipping",
    "the ink dries fast and does not smear",
    "they feel comfortable in the hand",
    "the lines come out crisp and even",
)
_PEN_GRIPE = (
    "the ink skipped on a few of them",
    "the grip got slippery after a while",
    "a couple dried out sooner than I expected",
)

FAMILIES: dict[str, Family] = {
    "pen": Family(
        "pen",
        "pens",
        ("Black", "Blue", "Red", "Green", "Purple", "Assorted Colors"),
        (4, 12, 24, 36),
        "{n}-Pack",
        "{c} ink",
        ("0.5 mm fine point", "0.7 mm medium point", "1.0 mm bold point"),
        (
            "A cushioned grip reduces hand fatigue",
            "Quick-drying ink resists smudging",
            "The retractable design keeps tips clean in a bag",
        ),
        _PEN_PRAISE,
        _PEN_GRIPE,
    ),
    "fountain": Family(
        "fountain pen",
        "fountain pens",
        ("Black", "Navy", "Burgundy", "Silver"),
        (1, 2, 3),
        "{n} Count",
        "a {c} barrel",
        ("fine steel nib", "medium steel nib", "broad steel nib"),
        ("It takes standard international ink cartridges", "A metal cap snaps on securely"),
        (
            "the nib glides across the page",
            "it feels balanced and solid",
            "the ink flow is steady and wet",
        ),
        ("the nib scratched a little at first", "it leaked once in my bag"),
    ),
    "refill": Family(
        "refill",
        "refills",
        ("Black", "Blue", "Red"),
        (2, 4, 6, 10),
        "{n}-Pack",
        "{c} ink",
        ("0.5 mm fine point", "0.7 mm medium point", "1.0 mm bold point"),
        ("Fits most standard retractable pens", "Long-lasting ink supply"),
        (
            "they fit my pens perfectly",
            "the ink lasts a long time",
            "writing feels like a brand new pen again",
        ),
        ("one refill did not fit my pen", "the ink ran out faster than expected"),
    ),
    "cartridge": Family(
        "ink cartridge",
        "ink cartridges",
        ("Black", "Blue", "Blue-Black"),
        (6, 12, 30),
        "{n} Count",
        "{c} ink",
        ("standard international size", "short international size"),
        (
            "Fits most fountain pens that take international cartridges",
            "Water-based ink that flows evenly",
        ),
        ("the ink colour is rich", "they fit my fountain pen", "no leaks so far"),
        ("one cartridge leaked a little", "the ink is paler than I hoped"),
    ),
    "pencil": Family(
        "pencil",
        "pencils",
        ("Yellow", "Black", "Blue", "Pink", "Silver"),
        (6, 12, 24, 48),
        "{n} Count",
        "a {c} barrel",
        ("HB #2 graphite", "0.7 mm lead", "0.5 mm lead"),
        ("Break-resistant lead", "A latex-free eraser on every pencil"),
        ("the lead does not break", "the eraser works cleanly", "they sharpen to a nice point"),
        ("the lead breaks too easily", "the erasers leave smudges"),
    ),
    "colored": Family(
        "colored pencil",
        "colored pencils",
        ("Assorted Colors", "Pastel Colors", "Metallic Colors"),
        (12, 24, 48, 72),
        "{n} Count",
        "pencils {c}",
        ("soft wax-based cores", "oil-based cores"),
        ("Rich pigments that layer and blend", "Pre-sharpened and ready to use"),
        ("the colours are vivid", "they blend nicely", "they suit coloring and doodles"),
        ("several cores were broken inside", "the colours are a bit waxy"),
    ),
    "lead": Family(
        "lead tube",
        "lead tubes",
        ("Black", "Red", "Blue"),
        (2, 4, 6),
        "{n} Tubes",
        "{c} lead",
        ("0.5 mm HB", "0.7 mm HB", "0.7 mm 2B"),
        ("Each tube holds 30 strong leads", "Smooth, break-resistant lead"),
        ("the leads rarely snap", "the lead writes dark and smooth"),
        ("the leads snap if you press hard", "the tubes are hard to open"),
    ),
    "eraser": Family(
        "eraser",
        "erasers",
        ("White", "Pink", "Black"),
        (3, 6, 12),
        "{n}-Pack",
        "{c}",
        ("vinyl", "soft polymer", "dust-free rubber"),
        ("Erases cleanly without tearing paper", "Leaves minimal crumbs"),
        ("they erase cleanly", "they do not smear graphite"),
        ("they crumble quickly", "they leave marks on the page"),
    ),
    "highlighter": Family(
        "highlighter",
        "highlighters",
        ("Yellow", "Pink", "Orange", "Assorted Colors", "Pastel Colors"),
        (4, 6, 12, 24),
        "{n}-Pack",
        "{c} ink",
        ("chisel tip", "dual chisel and fine tip"),
        ("Smear-guard ink does not smudge printed text", "Bright ink that resists fading"),
        (
            "there is no bleed-through",
            "the colour is bright and even",
            "they do not smear printed notes",
        ),
        ("a few dried out quickly", "the ink bleeds through thin pages"),
    ),
    "marker": Family(
        "marker",
        "markers",
        ("Black", "Blue", "Red", "Assorted Colors"),
        (4, 12, 24),
        "{n}-Pack",
        "{c} ink",
        ("fine point", "chisel tip", "ultra fine point"),
        ("Low-odor ink", "Marks on paper, cardboard, plastic and metal"),
        (
            "the ink is bold and dark",
            "the ink dries quickly and stays put",
            "the tips hold up well",
        ),
        ("the tips frayed quickly", "the ink smells strong"),
    ),
    "correction": Family(
        "correction tape",
        "correction tapes",
        ("White", "Blue", "Clear"),
        (2, 4, 10),
        "{n}-Pack",
        "a {c} dispenser",
        ("5 mm wide", "6 mm wide"),
        ("Dry tape lets you write over it right away", "A tear-resistant film"),
        ("it covers mistakes neatly", "you can write over it immediately"),
        ("the tape twisted and jammed", "it runs out quickly"),
    ),
    "notebook": Family(
        "notebook",
        "notebooks",
        ("Black", "Blue", "Red", "Green", "Purple", "Assorted Colors"),
        (1, 3, 6, 12),
        "Pack of {n}",
        "a {c} cover",
        ("college ruled, 100 sheets", "wide ruled, 70 sheets", "dot grid, 120 sheets"),
        ("Sturdy covers protect your notes", "Micro-perforated pages tear out cleanly"),
        (
            "the paper is thick enough for gel pens",
            "the cover is sturdy",
            "they are great for class notes",
        ),
        ("the binding came apart", "the paper is thinner than expected"),
    ),
    "pad": Family(
        "pad",
        "pads",
        ("Yellow", "White", "Pastel Colors"),
        (6, 12, 24),
        "{n} Pads",
        "{c} paper",
        ("8.5 x 11.75 in, 50 sheets", "5 x 8 in, 50 sheets"),
        ("Perforated sheets tear off cleanly", "A sturdy chipboard back"),
        ("the sheets tear off cleanly", "the paper takes ink well"),
        ("the pages curl", "the glue binding is weak"),
    ),
    "sticky": Family(
        "sticky note pad",
        "sticky note pads",
        ("Yellow", "Blue", "Pastel Colors", "Neon Colors", "Assorted Colors"),
        (6, 12, 24),
        "{n} Pads",
        "{c}",
        ("3 x 3 in", "3 x 5 in", "4 x 6 in lined"),
        ("Re-stick without leaving residue", "Stays on walls and monitors"),
        ("they stick and peel off cleanly", "the colours are cheerful"),
        ("they fall off the monitor", "the adhesive is weak"),
    ),
    "flags": Family(
        "flag",
        "flags",
        ("Assorted Colors", "Neon Colors", "Pastel Colors"),
        (100, 240, 500),
        "{n} Flags",
        "{c}",
        ("1 in wide", "0.5 in wide"),
        ("Write-on tips", "A dispenser that travels well"),
        ("they are easy to write on", "they are perfect for marking pages"),
        ("they are hard to pull out one by one", "the ink smudges on them"),
    ),
    "paper": Family(
        "ream",
        "reams",
        ("White", "Bright White", "Ivory"),
        (1, 3, 5, 10),
        "{n} Reams",
        "{c} sheets",
        ("20 lb, 92 bright", "24 lb, 96 bright"),
        ("500 sheets per ream, 8.5 x 11 in", "Jam-free in laser and inkjet printers"),
        ("there are no jams in my printer", "prints come out crisp and clean"),
        ("some sheets curled in humid weather", "it jammed a couple of times"),
    ),
    "cardstock": Family(
        "sheet",
        "sheets",
        ("White", "Ivory", "Kraft", "Pastel Colors"),
        (50, 100, 250),
        "{n} Sheets",
        "{c} card",
        ("65 lb", "80 lb", "110 lb"),
        ("Heavyweight sheets for cards and invitations", "Feeds through most home printers"),
        ("it is sturdy enough for invitations", "it feeds through my printer"),
        ("it jammed my printer", "the edges were bent"),
    ),
    "cards": Family(
        "card",
        "cards",
        ("White", "Pastel Colors", "Neon Colors"),
        (100, 300, 500),
        "{n} Cards",
        "{c}",
        ("3 x 5 in ruled", "4 x 6 in ruled"),
        ("Sturdy cards for flashcards and recipes", "Ruled on one side"),
        ("they are great for flashcards", "the cards are sturdy"),
        ("the card stock is thin", "the lines are faint"),
    ),
    "organizer": Family(
        "organizer",
        "organizers",
        ("Black", "White", "Silver", "Gray", "Rose Gold", "Clear"),
        (1, 2, 3),
        "{n} Count",
        "a {c} finish",
        ("mesh metal", "plastic", "bamboo"),
        ("Multiple compartments keep supplies sorted", "Non-slip feet protect the desk"),
        ("it keeps my desk tidy", "it is solid and well made", "it holds everything I need"),
        ("it arrived scratched", "smaller than it looked"),
    ),
    "stapler": Family(
        "stapler",
        "staplers",
        ("Black", "Silver", "Blue", "Red"),
        (1, 2),
        "{n} Count",
        "a {c} body",
        ("20-sheet capacity", "40-sheet capacity"),
        ("Jam-resistant mechanism", "A rubber base keeps it steady"),
        ("it never jams", "it gets through thick stacks"),
        ("it jams now and then", "the spring feels weak"),
    ),
    "staples": Family(
        "staple",
        "staples",
        ("Silver", "Black", "Gold"),
        (1000, 5000, 10000),
        "{n} Count",
        "{c}",
        ("standard 1/4 in", "heavy duty 3/8 in"),
        ("Fits most standard staplers", "Strong steel wire"),
        ("they fit my stapler", "there are no jams"),
        ("they jam my stapler", "they bend on thick stacks"),
    ),
    "clips": Family(
        "clip",
        "clips",
        ("Silver", "Black", "Assorted Colors", "Gold"),
        (12, 100, 500),
        "{n} Count",
        "{c}",
        ("small", "medium", "large"),
        ("Strong grip that holds papers firmly", "Rust-resistant finish"),
        ("they have a strong grip", "they are handy for bundling papers"),
        ("the coating chips off", "some are bent"),
    ),
    "scissors": Family(
        "pair of scissors",
        "pairs of scissors",
        ("Black", "Blue", "Pink", "Gray"),
        (1, 2, 3),
        "{n} Count",
        "{c} handles",
        ("8 in stainless steel", "7 in titanium-bonded"),
        ("Comfort-grip handles", "Sharp blades cut cleanly"),
        ("they cut cleanly", "they are comfortable to hold"),
        ("the blades are dull", "the handles feel flimsy"),
    ),
    "folder": Family(
        "folder",
        "folders",
        ("Manila", "Blue", "Red", "Green", "Assorted Colors"),
        (25, 50, 100),
        "{n} Count",
        "{c}",
        ("letter size, 1/3-cut tabs", "legal size, 1/3-cut tabs"),
        ("Reinforced tabs", "Heavyweight stock for long use"),
        ("they are sturdy and well made", "the tabs are easy to label"),
        ("the tabs tear easily", "thinner than I expected"),
    ),
    "binder": Family(
        "binder",
        "binders",
        ("Black", "White", "Blue", "Red"),
        (1, 4, 6, 12),
        "{n} Count",
        "a {c} cover",
        ("1 in D-ring", "2 in D-ring", "3 in D-ring"),
        ("A clear view cover for custom inserts", "Rings close without gaps"),
        ("the rings close tightly", "holds lots of pages"),
        ("the rings do not line up", "the cover cracked"),
    ),
    "protector": Family(
        "sheet protector",
        "sheet protectors",
        ("Clear", "Frosted"),
        (50, 100, 200),
        "{n} Count",
        "{c}",
        ("standard weight", "heavy weight"),
        ("Acid-free and archival safe", "Top-loading with reinforced holes"),
        ("they are crystal clear", "the holes are reinforced"),
        ("they tear at the holes", "they stick together"),
    ),
    "dividers": Family(
        "divider set",
        "divider sets",
        ("Assorted Colors", "White", "Pastel Colors"),
        (5, 10, 24),
        "{n} Sets",
        "{c} tabs",
        ("5-tab", "8-tab"),
        ("Write-on tabs", "Reinforced holes"),
        ("the tabs are easy to label", "they keep my binder organized"),
        ("the tabs are too short", "they feel flimsy"),
    ),
    "labels": Family(
        "label",
        "labels",
        ("White", "Clear", "Kraft", "Assorted Colors"),
        (100, 500, 1500),
        "{n} Labels",
        "{c}",
        ("1 x 2-5/8 in", "2 x 4 in"),
        ("Works with laser and inkjet printers", "Permanent adhesive"),
        ("they line up perfectly with the template", "they stick well"),
        ("they peel off", "printing was misaligned"),
    ),
    "inkjet": Family(
        "cartridge",
        "cartridges",
        ("Black", "Tri-Color", "Cyan", "Magenta", "Yellow"),
        (1, 2, 4),
        "{n}-Pack",
        "{c} ink",
        ("standard yield", "high yield"),
        ("Compatible with popular home inkjet printers", "Sharp, fade-resistant prints"),
        ("my printer recognised it right away", "prints look sharp"),
        ("it ran out quickly", "the printer did not recognise it at first"),
    ),
    "toner": Family(
        "toner cartridge",
        "toner cartridges",
        ("Black", "Cyan", "Magenta", "Yellow"),
        (1, 2, 4),
        "{n}-Pack",
        "{c} toner",
        ("standard yield", "high yield"),
        ("Crisp text for thousands of pages", "Easy drop-in installation"),
        ("it prints crisp text", "it lasted a long time"),
        ("the prints are streaky", "it leaked toner"),
    ),
    "labeler": Family(
        "label maker",
        "label makers",
        ("Black", "White", "Gray", "Pink"),
        (1, 2),
        "{n} Count",
        "a {c} case",
        ("handheld", "desktop with keyboard"),
        ("Prints on tapes up to 12 mm", "A QWERTY keyboard for fast typing"),
        ("it is easy to use out of the box", "labels look professional"),
        ("it eats batteries", "the keys are tiny"),
    ),
    "labeltape": Family(
        "tape cassette",
        "tape cassettes",
        ("Black on White", "Black on Clear", "White on Black"),
        (1, 2, 4),
        "{n} Rolls",
        "{c} print",
        ("12 mm", "9 mm", "18 mm"),
        ("Laminated tape resists water and fading", "Fits popular label makers"),
        ("fits my label maker", "the labels are durable"),
        ("the cassette jammed", "the adhesive is weak"),
    ),
    "planner": Family(
        "planner",
        "planners",
        ("Black", "Navy", "Pink", "Floral", "Teal"),
        (1, 2),
        "{n} Count",
        "a {c} cover",
        ("weekly and monthly, 8.5 x 11 in", "weekly, 5 x 8 in"),
        ("Thick paper that resists bleed-through", "Tabbed monthly pages"),
        ("the layout keeps me organized", "the paper handles my gel pens"),
        ("the binding is stiff", "not enough space for notes"),
    ),
    "calendar": Family(
        "calendar",
        "calendars",
        ("Black", "White", "Floral"),
        (1, 2),
        "{n} Count",
        "a {c} design",
        ("12 months, 15 x 12 in", "18 months, 22 x 17 in"),
        ("Large daily blocks for notes", "Reference calendars on every page"),
        ("the blocks are large enough to write in", "it looks nice on the wall"),
        ("the paper is thin", "it arrived creased"),
    ),
    "stickers": Family(
        "sticker",
        "stickers",
        ("Pastel Colors", "Neon Colors", "Floral", "Metallic Colors"),
        (500, 1000, 2000),
        "{n} Stickers",
        "{c}",
        ("functional icons", "decorative"),
        ("Removable and repositionable", "Sized for most planner boxes"),
        ("they look so cute in my planner", "they peel off easily"),
        ("they tear when peeling", "smaller than pictured"),
    ),
    "mailer": Family(
        "mailer",
        "mailers",
        ("White", "Kraft", "Pink", "Black"),
        (10, 25, 50, 100),
        "{n}-Pack",
        "{c}",
        ("6 x 10 in", "8.5 x 12 in", "10.5 x 16 in"),
        ("Self-seal adhesive strip", "Lightweight to save on postage"),
        ("they seal securely", "my items arrive safely"),
        ("the seal came open", "they tear easily"),
    ),
    "envelope": Family(
        "envelope",
        "envelopes",
        ("White", "Kraft", "Ivory"),
        (50, 100, 500),
        "{n} Count",
        "{c}",
        ("#10 security tint", "#10 window"),
        ("Peel-and-seal closure", "Security tint protects contents"),
        ("they seal well", "they run through my printer fine"),
        ("the glue does not hold", "they jam in the printer"),
    ),
    "tape": Family(
        "roll",
        "rolls",
        ("Clear", "Tan", "Brown"),
        (2, 6, 12, 36),
        "{n} Rolls",
        "{c} tape",
        ("1.88 in x 55 yd", "2.7 mil heavy duty"),
        ("Strong adhesive seals boxes securely", "Fits standard tape guns"),
        ("it sticks and holds", "it is easy to unroll"),
        ("it splits when unrolling", "the adhesive is weak"),
    ),
    "dispenser": Family(
        "dispenser",
        "dispensers",
        ("Black", "Clear", "Red"),
        (1, 2, 3),
        "{n} Count",
        "a {c} body",
        ("handheld", "weighted desktop"),
        ("A sharp serrated blade", "Non-skid base"),
        ("it cuts tape cleanly", "it is sturdy"),
        ("the blade is dull", "it tips over"),
    ),
    "box": Family(
        "box",
        "boxes",
        ("Kraft", "White", "Brown"),
        (10, 25, 50),
        "{n}-Pack",
        "{c}",
        ("8 x 6 x 4 in", "12 x 9 x 6 in", "12 x 12 x 12 in"),
        ("Strong corrugated walls", "Folds flat for storage"),
        ("the boxes are sturdy", "they are easy to assemble"),
        ("the boxes crush easily", "some arrived damaged"),
    ),
}

#: Colours naming a mix rather than one colour read better as "in pastel colors".
_MIXED = ("Assorted", "Pastel", "Neon", "Metallic", "Floral")


def colour_phrase(fam: Family, colour: str) -> str:
    """How an item's colour reads inside a description sentence."""
    c = colour.lower()
    if colour.startswith(_MIXED):
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
    tier_words = {
        "budget": ("An affordable everyday choice.", "Great value for daily use."),
        "standard": ("A dependable all-rounder.", "Reliable quality for work and school."),
        "premium": ("Premium materials and finish.", "Our finest construction, built to last."),
    }
    looks = colour_phrase(fam, colour)
    opening = rng.choice(
        (
            f"{brand} {line} {noun.lower()}, {spec}, {looks}.",
            f"The {brand} {line} {noun.lower()}: {spec}, {looks}.",
            f"{noun} by {brand} ({line} line): {spec}, {looks}.",
        )
    )
    count = rng.choice(
        (
            f"Includes {pack_count(fam, n)}.",
            f"This pack holds {pack_count(fam, n)}.",
            f"{pack_count(fam, n).capitalize()} per pack.",
        )
    )
    feats = rng.sample(fam.features, 1 + rng.below(2))
    return " ".join([opening, *(f + "." for f in feats), count, rng.choice(tier_words[tier])])


def _a(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


# --- critiques -----------------------------------------------------------------------------

_CRITIQUES: dict[str, tuple[str, ...]] = {
    "colour": (
        "Do you have this in {c}?",
        "Same thing but in {c}, please.",
        "I'd like these in {c} instead.",
        "Is there a {c} version?",
        "Can I get the {c} one?",
        "Looking for this exact one in {c}.",
        "Any chance this comes in {c}?",
        "Not this colour - {c} would be better.",
    ),
    "pack_up": (
        "I'd prefer a bigger pack.",
        "Is there a larger pack of these?",
        "Do you have a bulk pack, like the {label}?",
        "I go through these fast - a bigger pack, please.",
        "Same item in a larger quantity?",
        "Can I get more of these in one pack?",
        "Is there a {label} of this?",
    ),
    "pack_down": (
        "Do you have a smaller pack?",
        "That's too many - is there a smaller pack?",
        "I only need a few; is there a {label}?",
        "Same thing in a smaller quantity, please.",
        "Could I get fewer in the pack?",
    ),
    "cheaper": (
        "Something cheaper, please.",
        "Is there a more affordable version?",
        "That's a bit pricey - anything less expensive?",
        "Do you have a budget option of this?",
        "I'd like to spend less on these.",
        "Any lower-priced version from the same brand?",
    ),
    "pricier": (
        "I'd like a higher-quality version of this.",
        "Is there a premium version?",
        "Do you have a better-made one? I don't mind paying more.",
        "Show me the upgraded model, please.",
        "Something higher-end from the same brand?",
    ),
    "brand": (
        "Could I get this from {b} instead?",
        "Do you have the {b} version?",
        "I'd rather go with {b}.",
        "Is there something like this from {b}?",
        "Same thing but by {b}, please.",
        "I trust {b} more - do they make these?",
        "Any of these made by {b}?",
    ),
}


def critique(rng: Rng, change: str, colour: str, label: str, brand: str) -> str:
    """A short user utterance asking for the change that led to the next purchase.

    ``change`` is one of colour, pack_up, pack_down, cheaper, pricier, brand; the text names
    the new colour or brand, or the direction of the pack size or price change.
    """
    return rng.choice(_CRITIQUES[change]).format(c=colour.lower(), label=label, b=brand)


# --- reviews -------------------------------------------------------------------------------

_SUMMARIES = {
    5: (
        "Love these!",
        "Exactly what I needed",
        "Excellent quality",
        "Five stars",
        "Highly recommend",
        "Perfect",
    ),
    4: ("Very good", "Works well", "Good value", "Happy with it", "Solid choice"),
    3: ("It's okay", "Decent but not great", "Average", "Does the job"),
    2: ("Disappointed", "Not great", "Expected better"),
    1: ("Do not buy", "Poor quality", "Waste of money"),
}

_CHANGE_NOTES = {
    "colour": (
        "The {c} is exactly what I wanted.",
        "Much happier with {c} than the last ones.",
        "Glad I switched to {c}.",
    ),
    "pack_up": (
        "The bigger pack lasts much longer.",
        "Buying the larger pack saves me reordering.",
    ),
    "pack_down": ("The smaller pack is plenty for me.", "A smaller pack suits how much I use."),
    "cheaper": ("Cheaper than what I had and just as useful.", "Good to save a few dollars."),
    "pricier": ("Worth paying a bit more for.", "The upgrade is noticeable."),
    "brand": ("I prefer {b} to what I had before.", "Switching to {b} was a good call."),
}


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
    what = f"these {c} {brand} {fam.units}" if n > 1 else f"this {c} {brand} {fam.unit}"
    if rng.random() < 0.5:
        context = rng.choice(("at work", "at home", "for everyday use", "as a replacement"))
    if rating >= 4:
        body = rng.choice(
            (
                f"Bought {what} {context}, and {_rng_praise(rng, fam)}.",
                f"I use {what} {context}: {_rng_praise(rng, fam)}.",
                f"Got {what} {context}; {_rng_praise(rng, fam)}.",
                f"{_rng_praise(rng, fam).capitalize()}. I got {what} {context}.",
            )
        )
    elif rating == 3:
        body = rng.choice(
            (
                f"Bought {what} {context}. They are fine, but {rng.choice(fam.complaints)}.",
                f"Mixed feelings about {what}: "
                f"{_rng_praise(rng, fam)}, but {rng.choice(fam.complaints)}.",
            )
        )
    else:
        body = rng.choice(
            (
                f"Bought {what} {context}, and {rng.choice(fam.complaints)}.",
                f"Not impressed with {what}: {rng.choice(fam.complaints)}.",
            )
        )
    parts = [body]
    if n > 1 and rng.random() < 0.5:
        parts.append(
            rng.choice(
                (
                    f"The pack of {n} is {'good' if rating >= 4 else 'fair'} value.",
                    f"{n} in a pack is the right amount for me.",
                )
            )
        )
    if change is not None:
        parts.append(rng.choice(_CHANGE_NOTES[change]).format(c=c, b=brand))
    if rating <= 2:
        parts.append(rng.choice(("Would not buy again.", "I'll look for something else.")))
    return summary, " ".join(parts)


def _rng_praise(rng: Rng, fam: Family) -> str:
    return rng.choice(fam.praises)


# --- narratives ----------------------------------------------------------------------------


def join_words(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


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


_PRICE_ADJ = {
    "budget": ("budget-minded", "value-seeking", "price-conscious"),
    "mid-range": ("practical", "sensible", "quality-minded"),
    "premium": ("quality-focused", "discerning", "premium-loving"),
}


def user_profile(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    return rng.choice(
        (
            f"{adj.capitalize()} {f.persona} stocking up on {f.branches[0]}",
            f"{adj.capitalize()} {f.persona} and {f.brands[0]} fan",
            f"{f.persona.capitalize()} with a {adj} eye for {f.branches[0]}",
        )
    )


def user_summary(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    areas = join_words(f.branches[:2])
    return rng.choice(
        (
            f"This customer is a {adj} {f.persona} who mostly buys {areas}. They often choose "
            f"{f.brands[0]} and lean towards {f.colours[0]}.",
            f"A {f.persona} shopping for {areas}, usually {f.price_band} options, with "
            f"{f.brands[0]} as a go-to brand.",
            f"This shopper buys {areas} {f.context}, prefers {f.pack_habit} and tends to pick "
            f"{f.brands[0]}.",
            f"A {adj} buyer of {areas}; {f.brands[0]} and {f.colours[0]} come up again and again.",
        )
    )


def user_summary_long(rng: Rng, f: Facts) -> str:
    adj = rng.choice(_PRICE_ADJ[f.price_band])
    s = [
        rng.choice(
            (
                f"This customer appears to be a {f.persona} buying {f.context}.",
                f"Judging by the purchases, this is a {adj} {f.persona} who shops {f.context}.",
                f"A {adj} {f.persona}, this customer shops {f.context}.",
                f"Most of what this {f.persona} buys is {f.context}.",
            )
        )
    ]
    leaves = join_words(f.leaves[:3]).lower()
    s.append(
        rng.choice(
            (
                f"Over {_span(f.years)} they bought {f.n_purchases} items, mainly "
                f"{leaves}, across {join_words(f.branches[:3])}.",
                f"In {_span(f.years)} they bought {f.n_purchases} items from "
                f"{join_words(f.branches[:3])}, above all {leaves}.",
            )
        )
    )
    brand_s = (
        f"They return to {join_words(f.brands[:2])}"
        if len(f.brands) > 1
        else f"They stick with {f.brands[0]}"
    )
    s.append(
        f"{brand_s} and favour {join_words(f.colours[:2])}, choosing {f.price_band} "
        f"products in {f.pack_habit}."
    )
    if f.changes:
        asks = {
            "colour": "a different colour",
            "pack_up": "bigger packs",
            "pack_down": "smaller packs",
            "cheaper": "cheaper versions",
            "pricier": "higher-end versions",
            "brand": "a preferred brand",
        }
        wanted = [asks[c] for c in dict.fromkeys(f.changes)]
        s.append(f"When an item is not quite right they ask for {join_words(wanted)}.")
    if f.mean_rating >= 4.3:
        s.append(
            "Their reviews are warm and mostly five stars, praising products that work as promised."
        )
    elif f.mean_rating >= 3.5:
        s.append("Their reviews are generally positive but point out flaws when they see them.")
    else:
        s.append("They are a critical reviewer who calls out poor quality.")
    freq = f.n_purchases / max(f.years, 0.25)
    s.append("They shop regularly." if freq >= 4 else "They are an occasional buyer.")
    return " ".join(s)


def _span(years: float) -> str:
    if years < 1:
        months = max(1, round(years * 12))
        return "about a month" if months == 1 else f"about {months} months"
    return "about a year" if round(years) == 1 else f"about {round(years)} years"


def purchase_reason(
    rng: Rng,
    move: str,
    change: str | None,
    item: dict[str, str],
    prev: dict[str, str] | None,
    f: Facts,
) -> str:
    """Short reason for the last purchase, driven by how the user really got to it."""
    noun = item["noun"].lower()
    colour = item["colour"].lower()
    if move == "refine" and prev is not None and change is not None:
        return {
            "colour": f"The customer wanted the same {noun} they had, but in {colour}.",
            "pack_up": f"The customer needed a bigger pack of the {item['brand']} {noun}.",
            "pack_down": f"The customer wanted a smaller pack of the {item['brand']} {noun}.",
            "cheaper": f"The customer was after a more affordable {item['brand']} {noun}.",
            "pricier": f"The customer wanted a higher-end version of the {item['brand']} {noun}.",
            "brand": f"The customer preferred {item['brand']} for their {noun}.",
        }[change]
    if move == "complement" and prev is not None:
        return rng.choice(
            (
                f"The customer needed {noun} to go with the {prev['noun'].lower()} "
                f"they had just bought.",
                f"The customer wanted {noun} to "
                f"complement their {prev['brand']} {prev['noun'].lower()}.",
            )
        )
    if move == "taste":
        if item["brand"] in f.brands[:2]:
            why = f"from {item['brand']}, one of their most-bought brands"
        elif item["colour"].lower() in f.colours[:2]:
            why = f"in {item['colour'].lower()}, a colour they keep choosing"
        else:
            why = f"from {item['brand']} {f.context}"
        return rng.choice(
            (f"The customer wanted {noun} {why}.", f"The customer was stocking up on {noun} {why}.")
        )
    return rng.choice(
        (
            f"The customer picked a popular, well-reviewed {noun}.",
            f"The customer tried a best-selling {noun} from {item['brand']}.",
        )
    )


def purchase_explanation(
    rng: Rng, reason: str, item: dict[str, str], prev: dict[str, str] | None, f: Facts, rating: int
) -> str:
    """Longer explanation of the last purchase in the context of the whole history."""
    s = [reason.replace("The customer", "The customer, a " + f.persona + ",", 1)]
    if prev is not None:
        s.append(f"Just before, they had bought the {prev['title']}.")
    s.append(
        f"Their history centres on {join_words(f.branches[:2])}, with {f.brands[0]} as "
        f"their most bought brand."
    )
    verdict = (
        "they were pleased with it"
        if rating >= 4
        else "they found it acceptable"
        if rating == 3
        else "it disappointed them"
    )
    s.append(
        rng.choice(
            (
                f"They gave it {rating} out of 5, so {verdict}.",
                f"Their {rating}-star review suggests {verdict}.",
            )
        )
    )
    return " ".join(s)


def product_endorsement(
    rng: Rng, item: dict[str, str], fam: Family, f: Facts, earlier: Sequence[str]
) -> str:
    """Sales pitch for the last item from its attributes and the earlier history only."""
    pitch = rng.choice(
        (
            f"The {item['title']} is a smart pick for a {f.persona}.",
            f"Meet the {item['title']}: made for someone like you.",
            f"You'll get a lot out of the {item['title']}.",
        )
    )
    past = join_words(list(earlier)[:2]).lower() if earlier else f.branches[0]
    fit = rng.choice(
        (
            f"Since you have bought {past}, it fits right into your routine.",
            f"It pairs naturally with the {past} you already own.",
            f"Based on your earlier purchases of {past}, it suits the way you work.",
        )
    )
    value = {
        "budget": "at a budget-friendly price",
        "standard": "at a fair price",
        "premium": "with a premium build",
    }[item["tier"]]
    detail = (
        f"You get {item['count']} ({item['spec']}, {colour_phrase(fam, item['colour'])}) {value}."
    )
    close = rng.choice(
        (
            "A dependable choice you won't regret.",
            "Add it to your desk today.",
            "It is an easy upgrade for everyday work.",
        )
    )
    return " ".join([pitch, fit, detail, close])


_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = 8) -> set[tuple[str, ...]]:
    """Word n-grams of a text, to check that one text does not quote another."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
