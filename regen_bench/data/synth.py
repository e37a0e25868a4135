"""Deterministic simulator of an Amazon-like office-supplies store: the ``mini`` dataset.

The world: a five-level category tree (~55 leaves), fictional brands per branch, and items
that are variants (colour x pack size) of product lines (brand x price tier). Users have
latent tastes (a persona, preferred branches, brands, colours, a price band and a pack-size
habit) and buy 5-20 items, each step being one of:

- a *refinement*: a variant of the previous item in the same leaf that differs in exactly one
  of colour, pack size, brand or price tier, chosen mostly towards the user's taste. Only
  these pairs share >= 4 category levels, so only they carry a critique (as in REGEN, where
  critiques exist for pairs sharing at least four category levels), and the critique names
  the change;
- a *complementary* move along a leaf graph (pens -> refills, printer paper -> ink, ...),
  preferring the same brand and colour as the previous item;
- a *taste-driven* pick from a preferred branch, or a *popular* pick (Zipf popularity).

Everything is a pure function of ``(users, items, seed)``: all randomness comes from
``random.Random(str)`` streams through :class:`~regen_bench.data.synth_text.Rng`.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regen_bench.data import synth_text as tx
from regen_bench.data.regen import write_records
from regen_bench.data.schema import Interaction, Item, Narratives, UserRecord

DEFAULT_USERS = 2000
DEFAULT_ITEMS = 800
DEFAULT_SEED = 0

#: Pairs sharing at least this many category levels get a critique (REGEN section 3.2.3).
CRITIQUE_LEVELS = 4
TIERS = ("budget", "standard", "premium")
_TIER_PRICE = (0.62, 1.0, 1.6)
_LINE_NAMES = (
    ("Basics", "Everyday", "Value", "Essentials"),
    ("Classic", "Comfort", "Select", "Flex"),
    ("Pro", "Signature", "Elite", "Premier"),
)
#: Sold across every branch, like a marketplace's own label.
HOUSE_BRAND = "Stockroom"
#: Leaves with more items than this are sampled with numpy and indexes (see _pick_leaf).
BIG_LEAF = 48
#: A large leaf's shortlist per pick: its most popular items and some uniform draws.
SHORTLIST_TOP = 192
SHORTLIST_RANDOM = 16
#: Leaves asked for more items than this get extra generated brands (see _extra_lines).
EXTEND_QUOTA = 100
_BRAND_HEADS = (
    "Ash",
    "Bay",
    "Birch",
    "Blue",
    "Bright",
    "Brook",
    "Cedar",
    "Clear",
    "Cobalt",
    "Copper",
    "Crest",
    "Dale",
    "Elm",
    "Fern",
    "Field",
    "Fox",
    "Glen",
    "Gold",
    "Granite",
    "Harbor",
    "Hazel",
    "Iron",
    "Juniper",
    "Lake",
    "Linden",
    "Maple",
    "Meadow",
    "Mill",
    "North",
    "Oak",
    "Orchard",
    "Pine",
    "Quarry",
    "Raven",
    "Ridge",
    "River",
    "Rowan",
    "Sage",
    "Silver",
    "Slate",
    "Spruce",
    "Stone",
    "Summit",
    "Swift",
    "Thorn",
    "Vale",
    "West",
    "Willow",
)
_BRAND_TAILS = (
    "bank",
    "bay",
    "bridge",
    "brook",
    "craft",
    "crest",
    "dale",
    "field",
    "ford",
    "gate",
    "hall",
    "haven",
    "hill",
    "hurst",
    "land",
    "lane",
    "leigh",
    "line",
    "mark",
    "mere",
    "mont",
    "moor",
    "port",
    "ridge",
    "stead",
    "stone",
    "ton",
    "vale",
    "view",
    "well",
    "wick",
    "works",
)

_OS = ("Office Products", "Office & School Supplies")
_OE = ("Office Products", "Office Electronics")
#: Branch key -> (level-1/2 root, level-3 name, short name for narratives, brands).
BRANCHES: dict[str, tuple[tuple[str, str], str, str, tuple[str, ...]]] = {
    "writing": (
        _OS,
        "Writing & Correction Supplies",
        "writing supplies",
        ("Inkwell", "Penmark", "Scriptora", "Linea", "Quillcraft"),
    ),
    "paper": (_OS, "Paper", "paper & notebooks", ("Foliant", "Paperhaus", "Northmill", "Leafwise")),
    "desk": (
        _OS,
        "Desk Accessories & Workspace Organizers",
        "desk organisation",
        ("Deskwise", "Tidyline", "Steelbrook", "Orderly"),
    ),
    "filing": (
        _OS,
        "Filing Products",
        "filing supplies",
        ("Filemate", "Archiva", "Tabright", "Ledgerline"),
    ),
    "ink": (
        _OE,
        "Printer Ink & Toner",
        "printer ink & labels",
        ("Printwell", "Tonerex", "Inkhaus", "Cartrix"),
    ),
    "planners": (
        _OS,
        "Calendars, Planners & Personal Organizers",
        "planners & calendars",
        ("Dayfolio", "Weekwise", "Plannery", "Almanac & Co."),
    ),
    "shipping": (
        _OS,
        "Mailing & Shipping Supplies",
        "shipping supplies",
        ("Shipright", "Parcelpro", "Boxley", "Mailmark"),
    ),
}

#: (branch, level-4 group, leaf, family, base price of the smallest pack in cents, weight).
LEAVES: tuple[tuple[str, str, str, str, int, float], ...] = (
    ("writing", "Pens", "Ballpoint Pens", "pen", 299, 3.0),
    ("writing", "Pens", "Gel Ink Pens", "pen", 549, 3.0),
    ("writing", "Pens", "Rollerball Pens", "pen", 699, 1.2),
    ("writing", "Pens", "Fountain Pens", "fountain", 1899, 0.6),
    ("writing", "Pen Refills & Ink", "Ballpoint Refills", "refill", 399, 1.0),
    ("writing", "Pen Refills & Ink", "Gel Ink Refills", "refill", 499, 1.0),
    ("writing", "Pen Refills & Ink", "Fountain Pen Ink Cartridges", "cartridge", 599, 0.5),
    ("writing", "Pencils", "Wood-Cased Pencils", "pencil", 299, 1.5),
    ("writing", "Pencils", "Mechanical Pencils", "pencil", 499, 1.2),
    ("writing", "Pencils", "Colored Pencils", "colored", 699, 1.0),
    ("writing", "Pencil Leads & Erasers", "Lead Refills", "lead", 349, 0.7),
    ("writing", "Pencil Leads & Erasers", "Erasers", "eraser", 299, 0.7),
    ("writing", "Markers & Highlighters", "Highlighters", "highlighter", 399, 2.0),
    ("writing", "Markers & Highlighters", "Permanent Markers", "marker", 449, 1.5),
    ("writing", "Markers & Highlighters", "Dry Erase Markers", "marker", 599, 1.2),
    ("writing", "Correction Supplies", "Correction Tape", "correction", 399, 0.8),
    ("paper", "Notebooks & Writing Pads", "Spiral Notebooks", "notebook", 249, 2.0),
    ("paper", "Notebooks & Writing Pads", "Composition Notebooks", "notebook", 229, 1.5),
    ("paper", "Notebooks & Writing Pads", "Legal Pads", "pad", 899, 1.2),
    ("paper", "Sticky Notes & Flags", "Sticky Notes", "sticky", 599, 2.2),
    ("paper", "Sticky Notes & Flags", "Page Flags", "flags", 499, 0.8),
    ("paper", "Printer & Copy Paper", "Copy Paper", "paper", 899, 2.0),
    ("paper", "Printer & Copy Paper", "Cardstock", "cardstock", 1099, 0.8),
    ("paper", "Index Cards", "Index Cards", "cards", 349, 0.8),
    ("desk", "Desk Organizers", "Desktop Organizers", "organizer", 1999, 1.0),
    ("desk", "Desk Organizers", "Pen Holders", "organizer", 899, 0.8),
    ("desk", "Desk Organizers", "Drawer Organizers", "organizer", 1499, 0.7),
    ("desk", "Staplers & Punches", "Staplers", "stapler", 1299, 1.0),
    ("desk", "Staplers & Punches", "Hole Punches", "stapler", 1599, 0.6),
    ("desk", "Clips & Fasteners", "Staples", "staples", 349, 1.0),
    ("desk", "Clips & Fasteners", "Paper Clips", "clips", 299, 0.9),
    ("desk", "Clips & Fasteners", "Binder Clips", "clips", 499, 1.0),
    ("desk", "Cutting Tools", "Scissors", "scissors", 799, 0.9),
    ("filing", "Folders", "File Folders", "folder", 1199, 1.2),
    ("filing", "Folders", "Hanging Folders", "folder", 1499, 0.8),
    ("filing", "Binders", "Ring Binders", "binder", 499, 1.2),
    ("filing", "Binder Accessories", "Sheet Protectors", "protector", 899, 0.9),
    ("filing", "Binder Accessories", "Index Dividers", "dividers", 599, 0.6),
    ("filing", "Labels", "File Folder Labels", "labels", 799, 0.6),
    ("ink", "Inkjet Ink", "Inkjet Cartridges", "inkjet", 2499, 1.6),
    ("ink", "Laser Toner", "Toner Cartridges", "toner", 4999, 0.9),
    ("ink", "Label Makers", "Label Makers", "labeler", 2999, 0.5),
    ("ink", "Label Maker Tape", "Label Maker Tape", "labeltape", 1199, 0.5),
    ("planners", "Planners", "Weekly Planners", "planner", 1599, 1.2),
    ("planners", "Planners", "Academic Planners", "planner", 1299, 0.9),
    ("planners", "Calendars", "Wall Calendars", "calendar", 1199, 0.8),
    ("planners", "Calendars", "Desk Pad Calendars", "calendar", 999, 0.6),
    ("planners", "Planner Accessories", "Planner Stickers", "stickers", 699, 0.8),
    ("shipping", "Envelopes & Mailers", "Bubble Mailers", "mailer", 899, 1.4),
    ("shipping", "Envelopes & Mailers", "Poly Mailers", "mailer", 699, 1.1),
    ("shipping", "Envelopes & Mailers", "Business Envelopes", "envelope", 799, 0.8),
    ("shipping", "Packing Tape", "Packing Tape", "tape", 699, 1.2),
    ("shipping", "Tape Dispensers", "Tape Dispensers", "dispenser", 999, 0.5),
    ("shipping", "Shipping Boxes", "Corrugated Boxes", "box", 1599, 0.9),
    ("shipping", "Shipping Labels", "Shipping Labels", "labels", 1099, 1.0),
)

#: Leaf -> leaves bought next (pens -> refills -> notebooks ...). Edges inside one level-4
#: group are dropped when the graph is built: such a pair would need a critique.
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "Ballpoint Pens": ("Ballpoint Refills", "Spiral Notebooks", "Legal Pads", "Pen Holders"),
    "Gel Ink Pens": ("Gel Ink Refills", "Weekly Planners", "Spiral Notebooks", "Highlighters"),
    "Rollerball Pens": ("Gel Ink Refills", "Legal Pads", "Composition Notebooks"),
    "Fountain Pens": ("Fountain Pen Ink Cartridges", "Composition Notebooks"),
    "Ballpoint Refills": ("Ballpoint Pens", "Legal Pads"),
    "Gel Ink Refills": ("Gel Ink Pens", "Spiral Notebooks"),
    "Fountain Pen Ink Cartridges": ("Fountain Pens", "Composition Notebooks"),
    "Wood-Cased Pencils": ("Erasers", "Composition Notebooks", "Index Cards"),
    "Mechanical Pencils": ("Lead Refills", "Erasers", "Spiral Notebooks"),
    "Colored Pencils": ("Planner Stickers", "Spiral Notebooks", "Weekly Planners"),
    "Lead Refills": ("Mechanical Pencils", "Composition Notebooks"),
    "Erasers": ("Wood-Cased Pencils", "Mechanical Pencils"),
    "Highlighters": ("Sticky Notes", "Page Flags", "Index Cards"),
    "Permanent Markers": ("Shipping Labels", "Corrugated Boxes", "Packing Tape"),
    "Dry Erase Markers": ("Sticky Notes", "Index Cards", "Wall Calendars"),
    "Correction Tape": ("Ballpoint Pens", "Legal Pads"),
    "Spiral Notebooks": ("Gel Ink Pens", "Highlighters", "Sticky Notes"),
    "Composition Notebooks": ("Wood-Cased Pencils", "Ballpoint Pens"),
    "Legal Pads": ("Ballpoint Pens", "File Folders", "Binder Clips"),
    "Sticky Notes": ("Highlighters", "Desktop Organizers"),
    "Page Flags": ("Highlighters", "Gel Ink Pens"),
    "Copy Paper": ("Inkjet Cartridges", "Toner Cartridges", "Staplers", "Ring Binders"),
    "Cardstock": ("Inkjet Cartridges", "Scissors"),
    "Index Cards": ("Highlighters", "Binder Clips"),
    "Desktop Organizers": ("Sticky Notes", "Paper Clips", "Staplers"),
    "Pen Holders": ("Gel Ink Pens", "Scissors"),
    "Drawer Organizers": ("Paper Clips", "Binder Clips"),
    "Staplers": ("Staples", "File Folders"),
    "Hole Punches": ("Ring Binders", "Sheet Protectors"),
    "Staples": ("Staplers", "Copy Paper"),
    "Paper Clips": ("File Folders", "Desktop Organizers"),
    "Binder Clips": ("Legal Pads", "File Folders"),
    "Scissors": ("Packing Tape", "Cardstock"),
    "File Folders": ("File Folder Labels", "Label Makers", "Drawer Organizers"),
    "Hanging Folders": ("File Folder Labels", "Label Makers"),
    "Ring Binders": ("Sheet Protectors", "Index Dividers", "Hole Punches"),
    "Sheet Protectors": ("Ring Binders",),
    "Index Dividers": ("Ring Binders",),
    "File Folder Labels": ("File Folders", "Hanging Folders"),
    "Inkjet Cartridges": ("Copy Paper", "Cardstock", "Shipping Labels"),
    "Toner Cartridges": ("Copy Paper",),
    "Label Makers": ("Label Maker Tape", "File Folders"),
    "Label Maker Tape": ("Label Makers", "Hanging Folders"),
    "Weekly Planners": ("Gel Ink Pens", "Planner Stickers", "Highlighters"),
    "Academic Planners": ("Highlighters", "Planner Stickers", "Spiral Notebooks"),
    "Wall Calendars": ("Permanent Markers", "Dry Erase Markers"),
    "Desk Pad Calendars": ("Ballpoint Pens", "Desktop Organizers"),
    "Planner Stickers": ("Weekly Planners", "Colored Pencils", "Gel Ink Pens"),
    "Bubble Mailers": ("Shipping Labels", "Packing Tape"),
    "Poly Mailers": ("Shipping Labels", "Permanent Markers"),
    "Business Envelopes": ("Shipping Labels", "Copy Paper"),
    "Packing Tape": ("Tape Dispensers", "Corrugated Boxes"),
    "Tape Dispensers": ("Packing Tape",),
    "Corrugated Boxes": ("Packing Tape", "Bubble Mailers", "Permanent Markers"),
    "Shipping Labels": ("Bubble Mailers", "Inkjet Cartridges", "Corrugated Boxes"),
}

#: Persona -> (share, branch weights, tier weights, pack habit weights (small, standard,
#: bulk), colour palette, what they buy for).
PERSONAS: dict[
    str,
    tuple[
        float,
        dict[str, float],
        tuple[float, float, float],
        tuple[float, float, float],
        tuple[str, ...],
        str,
    ],
] = {
    "student": (
        0.22,
        {"writing": 4, "paper": 3, "planners": 2, "desk": 1},
        (0.6, 0.35, 0.05),
        (0.6, 0.3, 0.1),
        ("Blue", "Black", "Pink", "Purple", "Pastel Colors", "Assorted Colors"),
        "for school",
    ),
    "teacher": (
        0.12,
        {"writing": 3, "paper": 3, "filing": 1.5, "desk": 1, "planners": 1},
        (0.4, 0.5, 0.1),
        (0.1, 0.3, 0.6),
        ("Assorted Colors", "Neon Colors", "Black", "Red", "Yellow"),
        "for the classroom",
    ),
    "home-office worker": (
        0.2,
        {"paper": 2, "ink": 3, "desk": 2, "filing": 2, "writing": 1},
        (0.25, 0.55, 0.2),
        (0.3, 0.5, 0.2),
        ("Black", "Blue", "White", "Gray", "Bright White"),
        "for a home office",
    ),
    "office manager": (
        0.16,
        {"filing": 3, "paper": 2, "ink": 2, "desk": 2, "shipping": 1, "writing": 1},
        (0.35, 0.5, 0.15),
        (0.05, 0.35, 0.6),
        ("Black", "Blue", "Silver", "Manila", "White"),
        "for the office",
    ),
    "online seller": (
        0.1,
        {"shipping": 5, "ink": 2, "paper": 1, "writing": 1, "desk": 1},
        (0.5, 0.4, 0.1),
        (0.05, 0.25, 0.7),
        ("Kraft", "White", "Pink", "Clear", "Black"),
        "for packing orders",
    ),
    "planner enthusiast": (
        0.1,
        {"planners": 5, "writing": 3, "paper": 2},
        (0.15, 0.45, 0.4),
        (0.4, 0.5, 0.1),
        ("Pastel Colors", "Pink", "Floral", "Purple", "Teal"),
        "for planning and journaling",
    ),
    "stationery enthusiast": (
        0.1,
        {"writing": 5, "paper": 2, "desk": 1},
        (0.1, 0.4, 0.5),
        (0.5, 0.4, 0.1),
        ("Black", "Blue", "Navy", "Burgundy", "Blue-Black"),
        "for writing every day",
    ),
}

#: Step mix after the first purchase (refinement, complementary, taste-driven, popular).
MOVE_WEIGHTS = (0.18, 0.55, 0.17, 0.09)
#: Mean number of purchases beyond the minimum of five (lengths over 20 are redrawn).
EXTRA_LENGTH = 5.0
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
_T0 = 1388534400  # 2014-01-01 UTC
_T1 = 1546214400  # 2018-12-31 UTC
_DAY = 86400


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
    def family(self) -> tx.Family:
        return tx.FAMILIES[LEAVES[self.leaf][3]]

    @property
    def group(self) -> tuple[str, ...]:
        """Level-4 node: items sharing it share >= 4 category levels."""
        return self.item.categories[:CRITIQUE_LEVELS]


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


@dataclass
class World:
    """Everything :func:`synthesize` builds: catalog specs, users and their records."""

    specs: list[ItemSpec]
    users: list[SynthUser]
    records: list[UserRecord]

    def spec_by_asin(self) -> dict[str, ItemSpec]:
        return {s.asin: s for s in self.specs}


@dataclass(frozen=True)
class SynthStats:
    """Summary of a written synthetic dataset, for the CLI."""

    users: int
    items: int
    interactions: int
    items_per_user: float
    critique_coverage: float
    fingerprint: str
    path: str = ""
    size_bytes: int = 0

    def lines(self) -> list[str]:
        out = [
            f"users:             {self.users:,}",
            f"items:             {self.items:,}",
            f"interactions:      {self.interactions:,}",
            f"items per user:    {self.items_per_user:.2f}",
            f"critique coverage: {self.critique_coverage:.1%} of adjacent pairs",
            f"fingerprint:       sha256:{self.fingerprint}",
        ]
        if self.path:
            out.insert(0, f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB)")
        return out


# --- catalog -------------------------------------------------------------------------------


def _quotas(total: int) -> list[int]:
    """Items per leaf: proportional to sqrt(leaf weight), largest remainders, sums to total."""
    w = [math.sqrt(leaf[5]) for leaf in LEAVES]
    exact = [total * x / math.fsum(w) for x in w]
    q = [int(x) for x in exact]
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - q[i]), i))
    for i in order[: total - sum(q)]:
        q[i] += 1
    return q


def _asin(rng: tx.Rng, taken: set[str]) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while True:
        code = "B0" + "".join(alphabet[rng.below(36)] for _ in range(8))
        if code not in taken:
            taken.add(code)
            return code


def _price(base: int, fam: tx.Family, pack_rank: int, tier: int, brand_factor: float) -> int:
    """Price in cents ending in .99 (.49 under $5); bulk packs are cheaper per unit."""
    ratio = fam.packs[pack_rank] / fam.packs[0]
    cents = base * ratio**0.8 * _TIER_PRICE[tier] * brand_factor
    if cents < 500:
        return max(149, int(cents / 50) * 50 + 49)
    return int(cents / 100) * 100 + 99


def build_catalog(items: int, seed: int) -> list[ItemSpec]:
    """``items`` product variants over the category tree (depends on items and seed only)."""
    rng = tx.Rng(f"regen-mini/{seed}/catalog")
    brand_tier = {b: rng.weighted((1, 2, 1.2)) for br in BRANCHES.values() for b in br[3]}
    brand_tier[HOUSE_BRAND] = 0
    brand_factor = {b: rng.uniform(0.9, 1.12) for b in brand_tier}
    taken: set[str] = set()
    specs: list[ItemSpec] = []
    carry = 0  # what a small leaf could not fill moves on to the next leaf
    for leaf_idx, share in enumerate(_quotas(items)):
        quota, carry = share + carry, 0
        if quota == 0:
            continue
        branch, group, leaf, fam_key, base, _ = LEAVES[leaf_idx]
        root, level3, _, own_brands = BRANCHES[branch]
        fam = tx.FAMILIES[fam_key]
        path = (*root, level3, group, leaf)
        n_brands = max(2, min(len(own_brands) + 1, round(quota / 5)))
        brands = rng.sample((*own_brands, HOUSE_BRAND), n_brands)
        # Lines: each brand's own tier, and for some an adjacent tier (price refinements).
        lines: list[tuple[str, int]] = []
        for b in brands:
            t = brand_tier[b]
            lines.append((b, t))
            if quota >= 2 * n_brands and rng.random() < 0.7:
                lines.append((b, t + 1 if t < 2 and (t == 0 or rng.random() < 0.5) else t - 1))
        # Colours and packs shared by most lines so that brand/price variants exist.
        core_colours = fam.colours[: max(2, len(fam.colours) - 1)]
        grids: list[list[tuple[str, int]]] = []
        line_meta: list[tuple[str, str, str]] = []
        colours: list[str] = []
        packs: list[int] = []
        for li, (b, t) in enumerate(lines):
            if li and lines[li - 1][0] == b:
                # A brand's second line is the same product a tier up or down: same variants.
                colours, packs = list(colours), list(packs)
            else:
                colours = rng.sample(core_colours, min(len(core_colours), 2 + rng.below(2)))
                if rng.random() < 0.3:
                    colours.append(fam.colours[-1])
                packs = sorted(
                    rng.sample(range(len(fam.packs)), min(len(fam.packs), 2 + rng.below(2)))
                )
            cells = [(c, p) for c in colours for p in packs]
            # Fill the grid diagonal by diagonal: the first few variants differ in one thing.
            cells.sort(
                key=lambda cp: (colours.index(cp[0]) + packs.index(cp[1]), colours.index(cp[0]))
            )
            grids.append(cells)
            spec = line_meta[-1][2] if li and lines[li - 1][0] == b else rng.choice(fam.specs)
            line_meta.append((b, rng.choice(_LINE_NAMES[t]), spec))
        made = 0
        depth = 0
        while made < quota and depth < 64:
            for li, (b, t) in enumerate(lines):
                if made >= quota or depth >= len(grids[li]):
                    continue
                colour, pack_rank = grids[li][depth]
                brand, line, spec = line_meta[li]
                n = fam.packs[pack_rank]
                cents = _price(base, fam, pack_rank, t, brand_factor[b])
                label = tx.pack_label(fam, n)
                asin = _asin(rng, taken)
                item = Item(
                    asin=asin,
                    title=tx.title(brand, line, leaf, colour, label),
                    categories=path,
                    price=cents / 100,
                    brand=brand,
                    description=tx.description(
                        rng, fam, brand, line, leaf, spec, colour, n, TIERS[t]
                    ),
                )
                specs.append(
                    ItemSpec(
                        asin, leaf_idx, brand, line, t, colour, n, pack_rank, spec, cents, item
                    )
                )
                made += 1
            depth += 1
        if made < quota and quota > EXTEND_QUOTA:
            made += _extra_lines(
                rng, specs, taken, leaf_idx, quota - made, brand_tier, brand_factor, brands
            )
        carry = quota - made
    return specs


def _extra_lines(
    rng: tx.Rng,
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
    _, group, leaf, fam_key, base, _ = LEAVES[leaf_idx]
    root, level3, _, _ = BRANCHES[LEAVES[leaf_idx][0]]
    fam = tx.FAMILIES[fam_key]
    path = (*root, level3, group, leaf)
    names = set(used)
    made = 0
    while made < need:
        brand = ""
        for attempt in range(64):
            brand = rng.choice(_BRAND_HEADS) + rng.choice(_BRAND_TAILS)
            if attempt >= 32:
                brand += f" {2 + rng.below(98)}"
            if brand not in names:
                break
        names.add(brand)
        t = brand_tier.setdefault(brand, rng.weighted((1, 2, 1.2)))
        factor = brand_factor.setdefault(brand, rng.uniform(0.9, 1.12))
        colours = rng.sample(fam.colours, min(len(fam.colours), 2 + rng.below(2)))
        packs = sorted(rng.sample(range(len(fam.packs)), min(len(fam.packs), 2 + rng.below(2))))
        tiers = [t] + (
            [t + 1 if t < 2 and (t == 0 or rng.random() < 0.5) else t - 1] * (rng.random() < 0.7)
        )
        spec = rng.choice(fam.specs)
        for tier in tiers:
            line = rng.choice(_LINE_NAMES[tier])
            cells = sorted(
                ((c, p) for c in colours for p in packs),
                key=lambda cp: (colours.index(cp[0]) + packs.index(cp[1]), colours.index(cp[0])),
            )
            for colour, pack_rank in cells:
                if made >= need:
                    return made
                n = fam.packs[pack_rank]
                cents = _price(base, fam, pack_rank, tier, factor)
                asin = _asin(rng, taken)
                item = Item(
                    asin=asin,
                    title=tx.title(brand, line, leaf, colour, tx.pack_label(fam, n)),
                    categories=path,
                    price=cents / 100,
                    brand=brand,
                    description=tx.description(
                        rng, fam, brand, line, leaf, spec, colour, n, TIERS[tier]
                    ),
                )
                specs.append(
                    ItemSpec(
                        asin, leaf_idx, brand, line, tier, colour, n, pack_rank, spec, cents, item
                    )
                )
                made += 1
    return made


# --- users and their purchases -------------------------------------------------------------


class _Store:
    """Indexes over the catalog that the user simulation samples from."""

    def __init__(self, specs: list[ItemSpec], rng: tx.Rng):
        self.specs = specs
        self.by_leaf: dict[int, list[int]] = {}
        for i, s in enumerate(specs):
            self.by_leaf.setdefault(s.leaf, []).append(i)
        names = {leaf[2]: i for i, leaf in enumerate(LEAVES)}
        self.complements: dict[int, list[int]] = {}
        for leaf_idx, leaf in enumerate(LEAVES):
            targets = [names[t] for t in COMPLEMENTS.get(leaf[2], ())]
            # A complement in the same level-4 group would share four levels: not allowed.
            self.complements[leaf_idx] = [
                t for t in targets if t in self.by_leaf and LEAVES[t][:2] != leaf[:2]
            ]
        # Zipf-like popularity over a random order of the items, scaled by the leaf's weight.
        order = list(range(len(specs)))
        rng.shuffle(order)
        self.pop = [0.0] * len(specs)
        for rank, i in enumerate(order):
            self.pop[i] = LEAVES[specs[i].leaf][5] / (rank + 4) ** 1.1
        self.cum_pop: list[float] = []
        acc = 0.0
        for p in self.pop:
            acc += p
            self.cum_pop.append(acc)
        # Indexes for large leaves (Clothing scale), where scanning a whole leaf per purchase
        # step would cost hours; small leaves keep the plain scans (and the ``mini`` bytes).
        self.by_line: dict[tuple[int, str, str], list[int]] = {}
        self.by_cell: dict[tuple[int, str, int], list[int]] = {}
        for i, s in enumerate(specs):
            self.by_line.setdefault((s.leaf, s.brand, s.line), []).append(i)
            self.by_cell.setdefault((s.leaf, s.colour, s.pack), []).append(i)
        self.brand_code: dict[str, int] = {}
        self.colour_code: dict[str, int] = {}
        self.pos_in_leaf = [0] * len(specs)
        for idx in self.by_leaf.values():
            for pos, i in enumerate(idx):
                self.pos_in_leaf[i] = pos
                self.brand_code.setdefault(specs[i].brand, len(self.brand_code))
                self.colour_code.setdefault(specs[i].colour, len(self.colour_code))
        self._leaf_arrays: dict[int, dict[str, np.ndarray]] = {}

    def leaf_arrays(self, leaf: int) -> dict[str, np.ndarray]:
        """Columns of one leaf's items for vectorised weighting (built on first use)."""
        got = self._leaf_arrays.get(leaf)
        if got is None:
            idx = self.by_leaf[leaf]
            specs = [self.specs[i] for i in idx]
            bc, cc = self.brand_code, self.colour_code
            got = self._leaf_arrays[leaf] = {
                "idx": np.asarray(idx, dtype=np.int64),
                "sqrt_pop": np.sqrt(np.asarray([self.pop[i] for i in idx])),
                "brand": np.asarray([bc[s.brand] for s in specs]),
                "colour": np.asarray([cc[s.colour] for s in specs]),
                "tier": np.asarray([s.tier for s in specs]),
                "pack_pos": np.asarray(
                    [s.pack_rank / max(len(s.family.packs) - 1, 1) for s in specs]
                ),
            }
            pop = np.asarray([self.pop[i] for i in idx])
            got["top"] = np.sort(np.argsort(-pop, kind="stable")[:SHORTLIST_TOP])
        return got

    def popular(self, rng: tx.Rng) -> int:
        return min(
            bisect.bisect_right(self.cum_pop, rng.random() * self.cum_pop[-1]), len(self.specs) - 1
        )


def _make_user(rng: tx.Rng, store: _Store, user_id: str) -> SynthUser:
    names = list(PERSONAS)
    persona = names[rng.weighted([PERSONAS[p][0] for p in names])]
    _, bweights, tiers, packs, palette, _ = PERSONAS[persona]
    jittered = [(bweights[b] * rng.uniform(0.6, 1.4), k) for k, b in enumerate(bweights)]
    top = sorted(jittered, key=lambda wk: (-wk[0], wk[1]))[: 2 + rng.below(2)]
    branches = tuple(list(bweights)[k] for _, k in top)
    tier = rng.weighted(tiers)
    brands: list[str] = []
    for b in branches:
        pool = [*BRANCHES[b][3], HOUSE_BRAND] if tier == 0 else list(BRANCHES[b][3])
        brands.extend(rng.sample(pool, 1 + (rng.random() < 0.3)))
    colours = tuple(rng.sample(palette, 2 + (rng.random() < 0.4)))
    leaf_pool = [k for k in store.by_leaf if LEAVES[k][0] in branches]
    leaves: list[int] = []
    for _ in range(min(len(leaf_pool), 3 + rng.below(3))):
        k = rng.weighted([LEAVES[x][5] for x in leaf_pool])
        leaves.append(leaf_pool.pop(k))
    return SynthUser(
        user_id,
        persona,
        branches,
        tuple(dict.fromkeys(brands)),
        tier,
        rng.weighted(packs),
        colours,
        tuple(leaves),
        [],
        [],
        [],
    )


def _affinity(u: SynthUser, s: ItemSpec) -> float:
    """How well an item matches a user's taste (a multiplicative preference weight)."""
    a = 3.0 if s.brand in u.brands else 1.0
    a *= 2.5 if s.colour in u.colours else 1.0
    a *= (3.0, 1.0, 0.3)[abs(s.tier - u.tier)]
    span = max(len(s.family.packs) - 1, 1)
    a *= 2.0 if abs(s.pack_rank / span - u.pack_habit / 2) <= 0.34 else 0.7
    return a


def _pick(
    rng: tx.Rng, store: _Store, u: SynthUser, cands: list[int], after: ItemSpec | None = None
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
            x *= _affinity(u, s)
        else:
            x *= _affinity(u, s) ** COMPLEMENT_TASTE
            x *= COMPLEMENT_BRAND if s.brand == after.brand else 1.0
            x *= COMPLEMENT_COLOUR if s.colour == after.colour else 1.0
            x *= COMPLEMENT_TIER if s.tier == after.tier else 1.0
        w.append(x)
    return cands[rng.weighted(w)]


def _pick_leaf(
    rng: tx.Rng,
    store: _Store,
    u: SynthUser,
    leaf: int,
    seen: set[int],
    group: tuple[str, ...] | None,
    after: ItemSpec | None = None,
) -> int | None:
    """:func:`_pick` over a leaf's items outside ``seen`` and outside the level-4 ``group``.

    Large leaves use the same weights computed with numpy (a Python loop over thousands of
    items per purchase step would take hours at Clothing scale).
    """
    items = store.by_leaf[leaf]
    if len(items) <= BIG_LEAF:
        cands = [i for i in items if i not in seen and store.specs[i].group != group]
        return _pick(rng, store, u, cands, after)
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
    like_b[[store.brand_code[b] for b in u.brands if b in store.brand_code]] = 3.0
    like_c = np.ones(len(store.colour_code))
    like_c[[store.colour_code[c] for c in u.colours if c in store.colour_code]] = 2.5
    a = like_b[arr["brand"]]
    a *= like_c[arr["colour"]]
    a *= np.array((3.0, 1.0, 0.3))[np.abs(arr["tier"] - u.tier)]
    a *= np.where(np.abs(arr["pack_pos"] - u.pack_habit / 2) <= 0.34, 2.0, 0.7)
    x = arr["sqrt_pop"].copy()
    if after is None:
        x *= a
    else:
        x *= a**COMPLEMENT_TASTE
        x *= np.where(arr["brand"] == store.brand_code.get(after.brand, -1), COMPLEMENT_BRAND, 1)
        x *= np.where(
            arr["colour"] == store.colour_code.get(after.colour, -1), COMPLEMENT_COLOUR, 1
        )
        x *= np.where(arr["tier"] == after.tier, COMPLEMENT_TIER, 1.0)
    cum = np.cumsum(x[keep])
    k = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(cum) - 1)
    return int(arr["idx"][keep][k])


def _refinements(
    store: _Store, u: SynthUser, prev: int, seen: set[int]
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
            toward = abs(s.tier - u.tier) < abs(p.tier - u.tier)
            out.append((i, "cheaper" if cheaper else "pricier", 3.0 if toward else 0.8))
        elif s.brand != p.brand and s.colour == p.colour and s.pack == p.pack:
            w = 3.0 if s.brand in u.brands and p.brand not in u.brands else 0.8
            out.append((i, "brand", w))
    return out


def _next(rng: tx.Rng, store: _Store, u: SynthUser, seen: set[int]) -> tuple[int, str, str | None]:
    """One purchase step: (item, move, refinement change or None)."""
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
            got = _pick_leaf(rng, store, u, leaf, seen, group, store.specs[prev])
            if got is not None:
                return got, "complement", None
        move = "taste"
    if move == "taste" and u.leaves and rng.random() < FAVOURITE_SHARE:
        leaf = u.leaves[rng.weighted([LEAVES[k][5] for k in u.leaves])]
        got = _pick_leaf(rng, store, u, leaf, seen, group)
        if got is not None:
            return got, "taste", None
    if move == "taste":
        for _ in range(8):
            weights = [(4.0 if b in u.branches else 0.25) for b in BRANCHES]
            branch = list(BRANCHES)[rng.weighted(weights)]
            leaves = [k for k in store.by_leaf if LEAVES[k][0] == branch]
            if not leaves:
                continue
            leaf = leaves[rng.weighted([LEAVES[k][5] for k in leaves])]
            got = _pick_leaf(rng, store, u, leaf, seen, group)
            if got is not None:
                return got, "taste", None
    for _ in range(200):
        i = store.popular(rng)
        if allowed(i):
            return i, "popular", None
    return next(i for i in range(len(store.specs)) if allowed(i)), "popular", None


def _timestamps(rng: tx.Rng, moves: list[str], pace: float) -> list[int]:
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


def _rating(rng: tx.Rng, u: SynthUser, s: ItemSpec, move: str, leniency: float) -> int:
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


def _item_view(s: ItemSpec) -> dict[str, str]:
    return {
        "title": s.item.title,
        "noun": LEAVES[s.leaf][2],
        "brand": s.brand,
        "colour": s.colour,
        "spec": s.spec,
        "pack": tx.pack_label(s.family, s.pack),
        "count": tx.pack_count(s.family, s.pack),
        "tier": TIERS[s.tier],
    }


def _ranked(values: list[str]) -> tuple[str, ...]:
    """Distinct values, most frequent first (ties: first seen first)."""
    counts = Counter(values)
    first = {v: k for k, v in reversed(list(enumerate(values)))}
    return tuple(sorted(dict.fromkeys(values), key=lambda v: (-counts[v], first[v])))


def _facts(u: SynthUser, specs: list[ItemSpec], ratings: list[int], times: list[int]) -> tx.Facts:
    bought = [specs[i] for i in u.items]
    mean_tier = sum(s.tier for s in bought) / len(bought)
    pack_pos = sum(s.pack_rank / max(len(s.family.packs) - 1, 1) for s in bought) / len(bought)
    return tx.Facts(
        persona=u.persona,
        branches=_ranked([BRANCHES[LEAVES[s.leaf][0]][2] for s in bought]),
        leaves=_ranked([LEAVES[s.leaf][2] for s in bought]),
        brands=_ranked([s.brand for s in bought]),
        colours=_ranked([s.colour.lower() for s in bought]),
        price_band="budget" if mean_tier < 0.6 else "premium" if mean_tier > 1.4 else "mid-range",
        pack_habit="small packs"
        if pack_pos < 0.3
        else "bulk packs"
        if pack_pos > 0.6
        else "standard packs",
        mean_rating=sum(ratings) / len(ratings),
        n_purchases=len(bought),
        years=(times[-1] - times[0]) / (365.25 * _DAY),
        changes=tuple(c for c in u.changes if c is not None),
        context=PERSONAS[u.persona][5],
    )


def _user_record(rng: tx.Rng, u: SynthUser, specs: list[ItemSpec]) -> UserRecord:
    times = _timestamps(rng, u.moves, rng.uniform(20.0, 120.0))
    leniency = rng.normal(0.0, 0.35)
    context = PERSONAS[u.persona][5]
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
    reason = tx.purchase_reason(
        rng, u.moves[-1], u.changes[-1], _item_view(last), _item_view(prev), f
    )
    earlier = list(dict.fromkeys(LEAVES[specs[i].leaf][2] for i in reversed(u.items[:-1])))
    narratives = Narratives(
        purchase_reason=reason,
        purchase_explanation=tx.purchase_explanation(
            rng, reason, _item_view(last), _item_view(prev), f, ratings[-1]
        ),
        # Written from the item and the earlier history only: the last review is withheld.
        product_endorsement=tx.product_endorsement(rng, _item_view(last), last.family, f, earlier),
        user_summary=tx.user_summary(rng, f),
        user_summary_long=tx.user_summary_long(rng, f),
        user_profile=tx.user_profile(rng, f),
    )
    items = {specs[i].asin: specs[i].item for i in u.items}
    return UserRecord(u.user_id, interactions, items, narratives, scores={})


def simulate(
    users: int = DEFAULT_USERS, items: int = DEFAULT_ITEMS, seed: int = DEFAULT_SEED
) -> tuple[list[ItemSpec], list[SynthUser]]:
    """The catalog and every user's purchases, without text (a pure function of the args).

    Users are small here (indices and tastes, no text), so a Clothing-scale world fits in
    memory; the text records are made one at a time by :func:`iter_synthetic`.
    """
    if users < 1 or items < 2 * len(LEAVES):
        raise ValueError(f"need users >= 1 and items >= {2 * len(LEAVES)}")
    specs = build_catalog(items, seed)
    store = _Store(specs, tx.Rng(f"regen-mini/{seed}/popularity"))
    rng = tx.Rng(f"regen-mini/{seed}/users")
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    taken: set[str] = set()
    people: list[SynthUser] = []
    for _ in range(users):
        user_id = "A" + "".join(alphabet[rng.below(36)] for _ in range(13))
        while user_id in taken:
            user_id = "A" + "".join(alphabet[rng.below(36)] for _ in range(13))
        taken.add(user_id)
        u = _make_user(rng, store, user_id)
        n = 21
        while n > 20:  # a smooth tail, without a pile-up at the maximum
            n = 5 + int(rng.expo(EXTRA_LENGTH))
        seen: set[int] = set()
        for _ in range(n):
            i, move, change = _next(rng, store, u, seen)
            seen.add(i)
            u.items.append(i)
            u.moves.append(move if u.items[:-1] else "first")
            u.changes.append(change)
        people.append(u)
    del taken
    _cover_cold_items(store, people)
    return specs, people


def iter_synthetic(
    users: int = DEFAULT_USERS, items: int = DEFAULT_ITEMS, seed: int = DEFAULT_SEED
) -> Iterator[UserRecord]:
    """The simulated store's users as REGEN records, made one at a time (bounded memory)."""
    specs, people = simulate(users, items, seed)
    text_rng = tx.Rng(f"regen-mini/{seed}/text")
    for u in people:
        yield _user_record(text_rng, u, specs)


def synthesize_world(
    users: int = DEFAULT_USERS, items: int = DEFAULT_ITEMS, seed: int = DEFAULT_SEED
) -> World:
    """Build the catalog, the users and their REGEN records (a pure function of the args)."""
    specs, people = simulate(users, items, seed)
    text_rng = tx.Rng(f"regen-mini/{seed}/text")
    records = [_user_record(text_rng, u, specs) for u in people]
    return World(specs, people, records)


def _cover_cold_items(store: _Store, people: list[SynthUser]) -> None:
    """Give every item nobody bought one buyer, so the catalog is the one that was built.

    The item replaces a taste-driven or popular pick (never a refinement or complement, and
    never next to an item of its own level-4 group) whose item was bought by others too, so
    every story in the sequence stays true. Each cold item takes the first such slot in user
    order.

    A slot that fails the move rule or whose item has a single buyer left can never qualify
    again (counts only fall), so such slots are skipped for good with a "next live slot"
    union-find; only the level-4 neighbour rule is checked per cold item. This finds the same
    slots as scanning every user from the start for every cold item, which is quadratic and
    takes days at Clothing scale.
    """
    counts = Counter(i for u in people for i in u.items)
    cold_items = [c for c in range(len(store.specs)) if not counts[c]]
    if not cold_items:
        return
    lengths = np.fromiter((len(u.items) for u in people), np.int64, len(people))
    owner = np.repeat(np.arange(len(people), dtype=np.int64), lengths)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    # nxt[p]: p itself while slot p may still qualify, else a later slot (path-compressed).
    nxt = np.arange(total + 1, dtype=np.int64)

    def live(p: int) -> int:
        root = p
        while nxt[root] != root:
            root = int(nxt[root])
        while nxt[p] != root:
            nxt[p], p = root, int(nxt[p])
        return root

    specs = store.specs
    for p in range(total):
        u = people[int(owner[p])]
        k = p - int(first[owner[p]])
        after = u.moves[k + 1] if k + 1 < len(u.items) else None
        if u.moves[k] not in ("first", "taste", "popular") or after in ("refine", "complement"):
            nxt[p] = p + 1
    exhausted: set[tuple[str, ...]] = set()
    for cold in cold_items:
        group = specs[cold].group
        if group in exhausted:
            # No slot was left for this group: more cold items than buyers (a catalog far
            # larger than its users); rescanning for every such item would be quadratic.
            continue
        p = live(0)
        while p < total:
            u = people[int(owner[p])]
            k = p - int(first[owner[p]])
            i = u.items[k]
            if counts[i] <= 1:
                nxt[p] = p + 1
            elif cold not in u.items and all(
                specs[u.items[j]].group != group for j in (k - 1, k + 1) if 0 <= j < len(u.items)
            ):
                counts[i] -= 1
                counts[cold] += 1
                u.items[k] = cold
                nxt[p] = p + 1  # now holds an item with a single buyer
                break
            p = live(p + 1)
        else:
            exhausted.add(group)


def synthesize(
    users: int = DEFAULT_USERS, items: int = DEFAULT_ITEMS, seed: int = DEFAULT_SEED
) -> list[UserRecord]:
    """The simulated store's users as REGEN records (same arguments, same records)."""
    return list(iter_synthetic(users, items, seed))


def write_synthetic(
    out_path: str | os.PathLike[str],
    users: int = DEFAULT_USERS,
    items: int = DEFAULT_ITEMS,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
    bare: bool = False,
) -> SynthStats:
    """Synthesize and write a REGEN-format file (gzip if ``.gz``); return its statistics.

    Records are written as they are made, so memory stays bounded by the (text-free) world.
    ``bare`` leaves critiques and narratives out (reviews are kept): the input of
    ``regen-bench inpaint``, as ``data prepare`` would give from raw reviews.
    """
    counts = {"users": 0, "pairs": 0, "critiques": 0, "interactions": 0}
    asins: set[str] = set()

    def counted() -> Iterator[UserRecord]:
        records: Iterator[UserRecord] = iter_synthetic(users, items, seed)
        if progress:
            from tqdm.auto import tqdm

            records = tqdm(records, total=users, unit="user", desc="synth")
        for rec in records:
            if bare:
                rec = UserRecord(
                    rec.user_id,
                    [dataclasses.replace(i, critique=None) for i in rec.interactions],
                    rec.items,
                    Narratives(),
                    scores={},
                )
            counts["users"] += 1
            counts["interactions"] += len(rec.interactions)
            counts["pairs"] += len(rec.interactions) - 1
            counts["critiques"] += sum(i.critique is not None for i in rec.interactions[1:])
            asins.update(i.item_id for i in rec.interactions)
            yield rec

    fingerprint = write_records(counted(), out_path)
    return SynthStats(
        users=counts["users"],
        items=len(asins),
        interactions=counts["interactions"],
        items_per_user=counts["interactions"] / counts["users"],
        critique_coverage=counts["critiques"] / counts["pairs"] if counts["pairs"] else 0.0,
        fingerprint=fingerprint,
        path=str(out_path),
        size_bytes=Path(out_path).stat().st_size,
    )
