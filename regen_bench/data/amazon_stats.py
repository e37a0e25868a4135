"""What ``regen-bench data prepare`` read, dropped (per reason) and wrote, and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from regen_bench.data.regen import MAX_BAD_LINE_MESSAGES, DataFormatError

DEFAULT_MIN_INTERACTIONS = 5
DEFAULT_MAX_LEN = 50


@dataclass
class PrepareStats:
    """What ``prepare`` read, dropped (per reason) and wrote."""

    min_interactions: int = DEFAULT_MIN_INTERACTIONS
    max_len: int = DEFAULT_MAX_LEN
    k_core: int | None = None
    reviews: int = 0  # good review lines read
    raw_users: int = 0
    raw_items: int = 0
    bad_review_lines: int = 0
    repeats: int = 0  # interactions: repeated purchase of an item by the same user
    kcore_rounds: int = 0
    kcore_users: int = 0
    kcore_items: int = 0
    kcore_interactions: int = 0
    short_users: int = 0
    short_interactions: int = 0
    truncated_users: int = 0
    truncated_interactions: int = 0
    users: int = 0
    items: int = 0
    interactions: int = 0
    meta_lines: int = 0
    bad_meta_lines: int = 0
    meta_duplicates: int = 0
    items_without_meta: int = 0
    bad_line_messages: list[str] = field(default_factory=list)
    fingerprint: str = ""
    path: str = ""

    @property
    def items_per_user(self) -> float:
        """Mean sequence length (the paper's Table 1 "I/U")."""
        return self.interactions / self.users if self.users else 0.0

    def note_bad_line(self, error: DataFormatError) -> None:
        """Keep the message of a skipped line among the first few samples (callers count)."""
        if len(self.bad_line_messages) < MAX_BAD_LINE_MESSAGES:
            self.bad_line_messages.append(str(error))

    def dropped(self) -> dict[str, int]:
        """Interactions removed, per reason."""
        out = {
            "repeated purchase of the same item (first kept)": self.repeats,
            f"users with < {self.min_interactions} interactions": self.short_interactions,
            f"older than the most recent {self.max_len}": self.truncated_interactions,
        }
        if self.k_core:
            out[f"{self.k_core}-core filtering"] = self.kcore_interactions
        return out

    def lines(self) -> list[str]:
        """Human-readable summary: Table 1 figures first, then what was dropped and why."""
        out = [
            f"users          {self.users:,}",
            f"items          {self.items:,}",
            f"items/user     {self.items_per_user:.2f} ({self.interactions:,} interactions)",
            f"read           {self.reviews:,} reviews of {self.raw_users:,} users and "
            f"{self.raw_items:,} items",
            f"dropped        {self.repeats:,} repeated purchases of an item by the same user "
            "(the first is kept)",
        ]
        if self.k_core:
            out.append(
                f"dropped        {self.kcore_interactions:,} interactions, {self.kcore_users:,} "
                f"users and {self.kcore_items:,} items by {self.k_core}-core filtering "
                f"({self.kcore_rounds} rounds)"
            )
        out += [
            f"dropped        {self.short_users:,} users with fewer than "
            f"{self.min_interactions} interactions ({self.short_interactions:,} interactions)",
            f"dropped        {self.truncated_interactions:,} interactions older than the most "
            f"recent {self.max_len} of {self.truncated_users:,} users",
            f"metadata       {self.items - self.items_without_meta:,} of {self.items:,} items "
            f"found; {self.items_without_meta:,} without metadata kept with an empty title; "
            f"{self.meta_duplicates:,} repeated meta lines ignored",
        ]
        if self.bad_review_lines or self.bad_meta_lines:
            out.append(
                f"skipped        {self.bad_review_lines:,} bad review lines and "
                f"{self.bad_meta_lines:,} bad meta lines, e.g.:"
            )
            out += [f"  {m}" for m in self.bad_line_messages]
        if self.path:
            out.append(f"wrote          {self.path} (sha256 {self.fingerprint[:12]})")
        return out
