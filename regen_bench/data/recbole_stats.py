"""What ``regen-bench data import --format recbole`` read, mapped, dropped and wrote."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MIN_INTERACTIONS = 1
#: The rating written when the ``.inter`` file has none (implicit feedback) or with
#: ``ignore_ratings``: the REGEN format requires a 1-5 rating, and no task reads it.
IMPLICIT_RATING = 5.0


@dataclass
class ImportStats:
    """What ``import_recbole`` read, mapped, dropped and wrote."""

    inter_path: str = ""
    rows: int = 0
    raw_users: int = 0
    raw_items: int = 0
    users: int = 0
    items: int = 0
    interactions: int = 0
    tied: int = 0  # interactions sharing their timestamp with another of the same user
    short_users: int = 0
    short_interactions: int = 0
    min_interactions: int = DEFAULT_MIN_INTERACTIONS
    has_time: bool = True
    time_key: str = "exact"
    ratings: str = "column"  # "column", "none" (no column) or "ignored"
    item_path: str | None = None
    mapped: dict[str, str] = field(default_factory=dict)  # REGEN field -> item column
    ignored_columns: list[str] = field(default_factory=list)
    items_without_row: int = 0
    unused_item_rows: int = 0
    duplicate_item_rows: int = 0
    user_path: str | None = None
    user_rows: int = 0
    fingerprint: str = ""
    path: str = ""

    def lines(self) -> list[str]:
        """Human-readable summary: counts first, then ordering, mapping and drops."""
        n = self.interactions
        out = [
            f"users          {self.users:,}",
            f"items          {self.items:,}",
            f"items/user     {n / self.users if self.users else 0:.2f} ({n:,} interactions)",
            f"read           {self.rows:,} interactions of {self.raw_users:,} users and "
            f"{self.raw_items:,} items from {self.inter_path}",
            "order          "
            + (
                f"by timestamp ({self.time_key} key), ties in file order ({self.tied:,} "
                "interactions share their user's key with another)"
                if self.has_time
                else "file order (no timestamp column; timestamps written as 0)"
            ),
        ]
        if self.min_interactions > 1:
            out.append(
                f"dropped        {self.short_users:,} users with fewer than "
                f"{self.min_interactions} interactions ({self.short_interactions:,} interactions)"
            )
        if self.ratings != "column":
            why = "no rating column" if self.ratings == "none" else "ratings ignored"
            out.append(f"ratings        {why}: written as {IMPLICIT_RATING:g}")
        if self.item_path is None:
            out.append("item text      none (no .item file): titles empty")
        else:
            mapped = ", ".join(f"{k} <- {v}" for k, v in self.mapped.items()) or "nothing"
            out.append(f"item text      {mapped} from {self.item_path}")
            if self.ignored_columns:
                out.append(f"ignored        item columns {', '.join(self.ignored_columns)}")
            out.append(
                f"item rows      {self.items_without_row:,} items without a row (empty title), "
                f"{self.unused_item_rows:,} rows of items without interactions, "
                f"{self.duplicate_item_rows:,} repeated rows (the first kept)"
            )
        if self.user_path is not None:
            out.append(f"user file      {self.user_rows:,} rows checked (attributes not kept)")
        if self.path:
            out.append(f"wrote          {self.path} (sha256 {self.fingerprint[:12]})")
        return out
