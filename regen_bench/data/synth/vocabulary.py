"""The simulator's vocabulary and sentence templates, read from the JSON files in ``tables/``.

``catalog.json``: the category tree, its brands and product-line names; ``families.json``: how
each kind of product is named, sized, described and reviewed; ``shoppers.json``: personas and
which leaves are bought after which; ``text.json`` and ``narratives.json``: sentence templates.
Numbers keep their JSON type (a weight written ``4`` stays an int), so every value is exactly
the one written in the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

#: Price tiers, by index: items and users carry the index, text uses the name.
TIERS = ("budget", "standard", "premium")


def _load(name: str) -> Any:  # parsed JSON: shapes are checked where values are read
    path = resources.files("regen_bench.data.synth") / "tables" / name
    return json.loads(path.read_text("utf-8"))


class Branch(NamedTuple):
    """A level-3 branch of the category tree."""

    root: tuple[str, ...]  # levels 1 and 2
    level3: str
    short: str  # how narratives name it ("writing supplies")
    brands: tuple[str, ...]  # its own brands (the house brand is sold everywhere)


class Leaf(NamedTuple):
    """A level-5 leaf of the category tree; its index in :data:`LEAVES` identifies it."""

    branch: str  # key into BRANCHES
    group: str  # level-4 name
    name: str  # level-5 name, also the product noun
    family: str  # key into FAMILIES
    base_cents: int  # price of the smallest pack
    weight: float  # popularity


class Persona(NamedTuple):
    """A kind of shopper: how common, and what they buy."""

    share: float
    branches: dict[str, float]  # branch key -> weight
    tiers: tuple[float, ...]  # weights of budget, standard, premium
    packs: tuple[float, ...]  # weights of small, standard and bulk packs
    palette: tuple[str, ...]
    context: str  # what they buy for ("for school")


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


class Templates:
    """One template file: lists of alternatives, single templates and keyed tables of them.

    Values are looked up by a dotted path (``"reviews.bodies.good"``) and checked for shape,
    so a damaged file fails on import with the file and path named.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[str, object] = _load(name)

    def _get(self, path: str) -> object:
        node: object = self._data
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"{self.name}: no {path!r}")
            node = node[key]
        return node

    def _bad(self, path: str, what: str) -> TypeError:
        return TypeError(f"{self.name}: {path!r} must be {what}")

    def one(self, path: str) -> str:
        """A single template."""
        got = self._get(path)
        if not isinstance(got, str):
            raise self._bad(path, "a string")
        return got

    def alts(self, path: str) -> tuple[str, ...]:
        """Alternatives, one of which is drawn."""
        got = self._get(path)
        if not isinstance(got, list) or not got or not all(isinstance(s, str) for s in got):
            raise self._bad(path, "a non-empty list of strings")
        return tuple(got)

    def keyed(self, path: str) -> dict[str, str]:
        """A table of single templates (or words) by key."""
        got = self._get(path)
        if not isinstance(got, dict):
            raise self._bad(path, "an object")
        return {key: self.one(f"{path}.{key}") for key in got}

    def keyed_alts(self, path: str) -> dict[str, tuple[str, ...]]:
        """A table of alternatives by key."""
        got = self._get(path)
        if not isinstance(got, dict):
            raise self._bad(path, "an object")
        return {key: self.alts(f"{path}.{key}") for key in got}


_catalog = _load("catalog.json")
#: Sold across every branch, like a marketplace's own label.
HOUSE_BRAND: str = _catalog["house_brand"]
#: Branch key -> branch, in the order the tree lists them.
BRANCHES: dict[str, Branch] = {
    key: Branch(tuple(b["root"]), b["level3"], b["short"], tuple(b["brands"]))
    for key, b in _catalog["branches"].items()
}
#: Every leaf, branch by branch and group by group.
LEAVES: tuple[Leaf, ...] = tuple(
    Leaf(key, group, row["leaf"], row["family"], row["base_cents"], row["weight"])
    for key, b in _catalog["branches"].items()
    for group, rows in b["groups"].items()
    for row in rows
)
#: Product-line names by price tier index.
LINE_NAMES: tuple[tuple[str, ...], ...] = tuple(tuple(_catalog["line_names"][t]) for t in TIERS)
#: Generated brand names are a head and a tail ("Cedar" + "field").
BRAND_HEADS: tuple[str, ...] = tuple(_catalog["brand_heads"])
BRAND_TAILS: tuple[str, ...] = tuple(_catalog["brand_tails"])

_families = _load("families.json")
FAMILIES: dict[str, Family] = {
    key: Family(
        unit=f["unit"],
        units=f["units"],
        colours=tuple(f["colours"]),
        packs=tuple(f["packs"]),
        pack_fmt=f["pack_fmt"],
        colour_fmt=f["colour_fmt"],
        specs=tuple(f["specs"]),
        features=tuple(f["features"]),
        praises=tuple(f["praises"]),
        complaints=tuple(f["complaints"]),
    )
    for key, f in _families["families"].items()
}
#: Colours naming a mix rather than one colour read better as "in pastel colors".
MIXED_COLOURS: tuple[str, ...] = tuple(_families["mixed_colours"])

_shoppers = _load("shoppers.json")
#: Persona name -> persona, in the order users are drawn from.
PERSONAS: dict[str, Persona] = {
    name: Persona(
        p["share"],
        dict(p["branches"]),
        tuple(p["tiers"]),
        tuple(p["packs"]),
        tuple(p["palette"]),
        p["context"],
    )
    for name, p in _shoppers["personas"].items()
}
#: Leaf -> leaves bought next, likeliest first (pens -> refills -> notebooks ...).
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    leaf: tuple(nexts) for leaf, nexts in _shoppers["complements"].items()
}

TEXT = Templates("text.json")
NARRATIVES = Templates("narratives.json")
