"""Dataclasses of the REGEN data model (the file layout they map to: docs/data-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Narrative types of the conversational task, in the paper's order. The key is what the CLI
#: and result files use; ``user_profile`` is a narrative of the data set but not a task target
#: in the paper's tables, so it is carried in the data and exposed as a task target as well.
NARRATIVE_TYPES: tuple[str, ...] = (
    "purchase_reason",
    "purchase_explanation",
    "product_endorsement",
    "user_summary",
    "user_summary_long",
    "user_profile",
)
#: The narrative types of the paper's Tables 4 and 5, in their column order (the grid's
#: narrative types and the leaderboard's columns).
PAPER_NARRATIVES: tuple[str, ...] = (
    "purchase_reason",
    "user_summary",
    "product_endorsement",
    "purchase_explanation",
    "user_summary_long",
)


@dataclass(frozen=True)
class Item:
    """One catalog item (an Amazon product)."""

    asin: str
    title: str
    categories: tuple[str, ...] = ()
    description: str = ""
    #: None when unknown (the release writes 0 for a missing price).
    price: float | None = None
    brand: str | None = None


@dataclass(frozen=True)
class Interaction:
    """One purchase (review) of a user, and the critique that led the user *to* this item."""

    item_id: str
    timestamp: int
    rating: float
    summary: str = ""
    text: str = ""
    #: None where the previous item and this one were not similar enough for a critique.
    critique: str | None = None


@dataclass
class Narratives:
    """User-level and last-purchase narratives; None where the file has none."""

    purchase_reason: str | None = None
    purchase_explanation: str | None = None
    product_endorsement: str | None = None
    user_summary: str | None = None
    user_summary_long: str | None = None
    user_profile: str | None = None

    def get(self, narrative_type: str) -> str | None:
        if narrative_type not in NARRATIVE_TYPES:
            raise KeyError(narrative_type)
        value: str | None = getattr(self, narrative_type)
        return value

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in NARRATIVE_TYPES}


@dataclass
class UserRecord:
    """One user of a REGEN-format file: the ordered purchases with the items they refer to."""

    user_id: str
    interactions: list[Interaction]
    items: dict[str, Item]
    narratives: Narratives = field(default_factory=Narratives)
    #: Rater scores as in the release ``metadata`` block (nested dicts of 1-7 integers).
    scores: dict[str, Any] = field(default_factory=dict)
