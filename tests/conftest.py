"""Shared fixtures: small hand-built REGEN records."""

from __future__ import annotations

import pytest

from regen_bench.data.schema import Interaction, Item, Narratives, UserRecord


def make_record(
    user_id: str, asins: list[str], critiques: dict[int, str] | None = None, **narratives: str
) -> UserRecord:
    """A user who bought ``asins`` in order; items get a 5-level category path."""
    critiques = critiques or {}
    items = {
        a: Item(
            asin=a,
            title=f"Item {a}",
            categories=(
                "Office Products",
                "Office & School Supplies",
                "Writing",
                "Pens",
                f"Leaf {a[-1]}",
            ),
            description=f"About {a}",
            price=None if a.endswith("0") else 9.5,
            brand="Acme",
        )
        for a in asins
    }
    inter = [
        Interaction(
            item_id=a,
            timestamp=1_500_000_000 + 86400 * i,
            rating=4.0,
            summary=f"s{i}",
            text=f"t{i}",
            critique=critiques.get(i),
        )
        for i, a in enumerate(asins)
    ]
    return UserRecord(
        user_id=user_id, interactions=inter, items=items, narratives=Narratives(**narratives)
    )


@pytest.fixture
def records() -> list[UserRecord]:
    return [
        make_record(
            "u1",
            ["A1", "A2", "A3", "A4"],
            {2: "In black, please"},
            purchase_reason="needed pens",
            user_summary="likes pens",
        ),
        make_record("u2", ["A2", "A3", "A5"], product_endorsement="great pen"),
        make_record("u3", ["A1", "A5"]),
    ]
