"""What a rater rates: :class:`Subject` (one LLM call's worth of text plus its context).

A narrative subject is one of the paper's three narrative groups of a user (section 3.3.2: one
call per group so one group's reasoning does not bias another's); its context is the user's
history before the last purchase and the last purchase itself. A critique subject is one
critique with the preceding conversation (the purchases before it; the last one is the current
item) and the destination item the critique leads to.

Negative samples for the bias check (section 3.3.3) keep the rated text and swap the context to
another user's: variant ``A`` swaps the history, variant ``B`` the history and the destination.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from regen_bench.data.schema import Interaction, Item, UserRecord

KINDS: tuple[str, ...] = ("narrative", "critique")
VARIANTS: tuple[str, ...] = ("real", "A", "B")
#: The paper's three narrative groups, each rated in a call of its own.
NARRATIVE_GROUPS: dict[str, tuple[str, ...]] = {
    "last_purchase": ("purchase_reason", "purchase_explanation"),
    "user": ("user_summary", "user_summary_long", "user_profile"),
    "endorsement": ("product_endorsement",),
}
#: Where each narrative's scores go in the file's ``metadata`` block: (block, field), matching
#: the field that holds the narrative itself (``last_purchase.reason`` -> ``metadata.
#: last_purchase.reason``).
NARRATIVE_FIELDS: dict[str, tuple[str, str]] = {
    "purchase_reason": ("last_purchase", "reason"),
    "purchase_explanation": ("last_purchase", "explanation"),
    "product_endorsement": ("last_purchase", "endorsement"),
    "user_summary": ("user", "brief_summary"),
    "user_summary_long": ("user", "long_summary"),
    "user_profile": ("user", "profile"),
}

#: One purchase as shown to a rater: what was bought and what the user said about it.
Purchase = tuple[Interaction, Item]


@dataclass(frozen=True)
class Subject:
    """One thing rated in one call: ``texts`` (name -> text) in the context of a history.

    ``group`` is a narrative group or ``critique``; ``position`` is the index of the destination
    purchase in the user's history (the critique leads to it; for narratives the last one).
    ``source_user`` is whose history is shown (another user's in negatives).
    """

    user_id: str
    kind: str
    group: str
    position: int
    texts: tuple[tuple[str, str], ...]
    history: tuple[Purchase, ...]
    destination: Purchase
    variant: str = "real"
    source_user: str = ""

    @property
    def key(self) -> str:
        """A stable id of what is rated (without the variant)."""
        return f"{self.user_id}/{self.group}/{self.position}"


def _purchases(record: UserRecord) -> list[Purchase]:
    return [(i, record.items[i.item_id]) for i in record.interactions]


def narrative_subjects(record: UserRecord) -> list[Subject]:
    """One subject per narrative group that has at least one narrative."""
    bought = _purchases(record)
    out = []
    for group, names in NARRATIVE_GROUPS.items():
        texts = tuple(
            (name, text)
            for name in names
            if (text := record.narratives.get(name)) is not None and text.strip()
        )
        if texts:
            out.append(
                Subject(
                    user_id=record.user_id,
                    kind="narrative",
                    group=group,
                    position=len(bought) - 1,
                    texts=texts,
                    history=tuple(bought[:-1]),
                    destination=bought[-1],
                    source_user=record.user_id,
                )
            )
    return out


def critique_subjects(record: UserRecord) -> list[Subject]:
    """One subject per critique (a critique at position 0 has no preceding item and is skipped)."""
    bought = _purchases(record)
    return [
        Subject(
            user_id=record.user_id,
            kind="critique",
            group="critique",
            position=pos,
            texts=(("critique", inter.critique),),
            history=tuple(bought[:pos]),
            destination=bought[pos],
            source_user=record.user_id,
        )
        for pos, inter in enumerate(record.interactions)
        if inter.critique and pos > 0
    ]


def subjects_for(kind: str, record: UserRecord) -> list[Subject]:
    """The subjects of ``kind`` (narrative or critique) of one user."""
    if kind == "narrative":
        return narrative_subjects(record)
    if kind == "critique":
        return critique_subjects(record)
    raise ValueError(f"unknown subject kind '{kind}'; choose from: {', '.join(KINDS)}")


def negative_samples(
    subjects: Sequence[Subject], pool: Sequence[UserRecord], seed: int
) -> list[Subject]:
    """Variants A and B of every subject, with contexts taken from other users of ``pool``.

    The other user is drawn with a generator seeded by (seed, subject), so a subject gets the
    same negatives whatever else is rated, and never its own user. A narrative gets the other
    user's purchases before their last one (A) and also their last purchase (B); a critique gets
    the other user's purchases before a random cut (A) and also the purchase at the cut (B).
    """
    donors = [r for r in pool if len(r.interactions) >= 2]
    out: list[Subject] = []
    for subject in subjects:
        others = [r for r in donors if r.user_id != subject.user_id]
        if not others:
            raise ValueError(
                "negative samples need at least one other user with 2+ purchases; "
                "rate more users or turn the bias check off"
            )
        # str seeds are hashed with sha512 by random.Random: stable across runs and platforms.
        rng = random.Random(f"{seed}|{subject.key}")
        donor = others[rng.randrange(len(others))]
        bought = _purchases(donor)
        cut = len(bought) - 1 if subject.kind == "narrative" else rng.randrange(1, len(bought))
        history = tuple(bought[:cut])
        out.append(replace(subject, variant="A", history=history, source_user=donor.user_id))
        out.append(
            replace(
                subject,
                variant="B",
                history=history,
                destination=bought[cut],
                source_user=donor.user_id,
            )
        )
    return out


__all__ = [
    "KINDS",
    "NARRATIVE_FIELDS",
    "NARRATIVE_GROUPS",
    "VARIANTS",
    "Purchase",
    "Subject",
    "critique_subjects",
    "narrative_subjects",
    "negative_samples",
    "subjects_for",
]
