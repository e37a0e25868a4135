"""A dataset's profile: the summary statistics docs/data-format.md compares ``mini`` with REGEN
Office on ("The embedded `mini` and how it compares with REGEN"; ``regen-bench data info
DATASET --profile`` prints them)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from regen_bench.data.schema import UserRecord

#: (field, row name, format spec) in the order of ``Profile.rows()``: the names the CLI prints
#: and the docs table uses.
_ROWS = (
    ("users", "users", ".0f"),
    ("items", "items", ".0f"),
    ("purchases_per_user", "purchases per user", ".2f"),
    ("critique_coverage", "critique coverage", ".1%"),
    ("category_depth", "category depth", ".2f"),
    ("review_words", "words per review", ".1f"),
    ("critique_words", "words per critique", ".1f"),
    ("reason_words", "words per purchase reason", ".1f"),
    ("explanation_words", "words per purchase explanation", ".1f"),
    ("endorsement_words", "words per product endorsement", ".1f"),
    ("long_summary_words", "words per long user summary", ".1f"),
    ("rating", "mean rating", ".2f"),
)
#: The narratives whose length is profiled (``Narratives`` fields).
_NARRATIVES = (
    "purchase_reason",
    "purchase_explanation",
    "product_endorsement",
    "user_summary_long",
)
#: What ``rows()`` shows for a mean over nothing (e.g. words per critique without critiques).
MISSING = "n/a"


@dataclass(frozen=True)
class Profile:
    """Summary statistics of a dataset; a mean over nothing is NaN (shown as ``n/a``)."""

    users: float
    #: Distinct item ids among the purchases.
    items: float
    purchases_per_user: float
    #: Share of adjacent purchase pairs whose later purchase has a critique (as
    #: ``Dataset.critique_coverage``: placeholders are None once read, a first purchase's
    #: critique is not counted, 0.0 without pairs).
    critique_coverage: float
    #: Levels of the purchased item's category path, over purchases (no path: 0 levels).
    category_depth: float
    #: Words (whitespace-separated) of the review text, over purchases.
    review_words: float
    #: ... of the critiques counted in ``critique_coverage``.
    critique_words: float
    #: ... of each narrative, over the users that have it (not None, not blank).
    reason_words: float
    explanation_words: float
    endorsement_words: float
    long_summary_words: float
    #: Mean rating over purchases.
    rating: float

    def rows(self) -> list[tuple[str, str]]:
        """(name, formatted value) of every statistic, in a fixed order."""
        return [
            (name, MISSING if math.isnan(value) else format(value, spec))
            for attr, name, spec in _ROWS
            for value in (float(getattr(self, attr)),)
        ]


def _mean(total: float, count: int) -> float:
    return total / count if count else math.nan


def _words(text: str) -> int:
    return len(text.split())


def profile(records: Iterable[UserRecord]) -> Profile:
    """The profile of ``records``, streamed: memory grows with the distinct items only.

    Critiques count as the records carry them: :func:`regen_bench.data.regen.iter_records` reads
    a placeholder as None, so read with the dataset's list (``Dataset.critique_placeholders``)
    to match ``Dataset.critique_coverage()``.
    """
    items: set[str] = set()
    users = purchases = pairs = critiques = critique_words = 0
    depth = review_words = 0
    rating = 0.0
    # narrative type -> [words, users that have it]
    narratives = {name: [0, 0] for name in _NARRATIVES}
    for record in records:
        users += 1
        purchases += len(record.interactions)
        pairs += max(len(record.interactions) - 1, 0)
        for pos, inter in enumerate(record.interactions):
            items.add(inter.item_id)
            item = record.items.get(inter.item_id)
            depth += len(item.categories) if item is not None else 0
            review_words += _words(inter.text)
            rating += inter.rating
            if pos and inter.critique is not None:
                critiques += 1
                critique_words += _words(inter.critique)
        for name, tally in narratives.items():
            text = record.narratives.get(name)
            if text is not None and text.strip():
                tally[0] += _words(text)
                tally[1] += 1
    return Profile(
        users=float(users),
        items=float(len(items)),
        purchases_per_user=_mean(purchases, users),
        critique_coverage=critiques / pairs if pairs else 0.0,
        category_depth=_mean(depth, purchases),
        review_words=_mean(review_words, purchases),
        critique_words=_mean(critique_words, critiques),
        reason_words=_mean(*narratives["purchase_reason"]),
        explanation_words=_mean(*narratives["purchase_explanation"]),
        endorsement_words=_mean(*narratives["product_endorsement"]),
        long_summary_words=_mean(*narratives["user_summary_long"]),
        rating=_mean(rating, purchases),
    )


__all__ = ["MISSING", "Profile", "profile"]
