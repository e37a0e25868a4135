"""Deterministic simulator of an Amazon-like office-supplies store: the ``mini`` dataset.

The world: a five-level category tree (~55 leaves), fictional brands per branch, and items
that are variants (colour x pack size) of product lines (brand x price tier). Users have
latent tastes and buy 5-20 items; each step refines the previous item (only these pairs
share >= 4 category levels, so only they carry a critique, as in REGEN), buys a complement,
follows the user's taste, or picks something popular. Reviews, critiques and narratives are
filled from templates with the true attributes and history, so they can be checked.

Everything is a pure function of ``(users, items, seed)`` and the shoppers' ``Habits``: all
randomness comes from ``random.Random(str)`` streams through :class:`Rng`.

Modules: ``vocabulary`` (read from the data files ``tables/*.json``), ``catalog`` (items),
``store`` (indexes over them), ``shoppers`` (tastes and purchase steps), ``world`` (the
catalog plus everyone's purchases), ``text`` and ``narratives`` (what is written),
``records`` (users as REGEN records), ``writer`` (REGEN files and their statistics).

``scale`` and its ``scale_*`` modules are a second engine for Clothing-size worlds
(``data synth --engine scale`` / ``--preset clothing``): the same catalog and templates,
shoppers simulated with numpy a block of users at a time, in worker processes; not imported
here, so ``mini`` users never load it.
"""

from regen_bench.data.synth.catalog import CRITIQUE_LEVELS, ItemSpec, build_catalog
from regen_bench.data.synth.records import iter_synthetic, synthesize, synthesize_world
from regen_bench.data.synth.rng import Rng
from regen_bench.data.synth.shoppers import (
    CALIBRATED,
    DEFAULT_HABITS,
    HABITS,
    LEGACY,
    Habits,
    SynthUser,
)
from regen_bench.data.synth.text import shingles
from regen_bench.data.synth.vocabulary import (
    BRANCHES,
    COMPLEMENTS,
    FAMILIES,
    HOUSE_BRAND,
    LEAVES,
    PERSONAS,
    TIERS,
    Family,
)
from regen_bench.data.synth.world import DEFAULT_ITEMS, DEFAULT_SEED, DEFAULT_USERS, World, simulate
from regen_bench.data.synth.writer import SynthStats, write_synthetic

__all__ = [
    "BRANCHES",
    "CALIBRATED",
    "COMPLEMENTS",
    "CRITIQUE_LEVELS",
    "DEFAULT_HABITS",
    "DEFAULT_ITEMS",
    "DEFAULT_SEED",
    "DEFAULT_USERS",
    "FAMILIES",
    "HABITS",
    "HOUSE_BRAND",
    "LEAVES",
    "LEGACY",
    "PERSONAS",
    "TIERS",
    "Family",
    "Habits",
    "ItemSpec",
    "Rng",
    "SynthStats",
    "SynthUser",
    "World",
    "build_catalog",
    "iter_synthetic",
    "shingles",
    "simulate",
    "synthesize",
    "synthesize_world",
    "write_synthetic",
]
