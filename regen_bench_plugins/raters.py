"""First-party auto-raters (paper section 3.3, Table 3): ``narrative`` and ``critique``.

Each rater writes one prompt per subject and run and reads a small flat JSON answer of 1-7
integers; the ensemble, seeding, caching and aggregation are the core's
(:mod:`regen_bench.rating`). The attribute definitions are the paper's Table 3, verbatim.
Runs sample (``temperature`` > 0) under a per-run seed, so the seven runs differ and each is
still cacheable.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from regen_bench import Register, hookimpl
from regen_bench.llm import LLMRequest
from regen_bench.rating import NARRATIVE_FIELDS, Scores, Subject
from regen_bench.rating.subjects import Purchase

#: Bumped whenever a prompt changes (cached answers then no longer match, as they should not).
PROMPT_VERSION = 1
#: Table 3 of the paper.
NARRATIVE_ATTRIBUTES: dict[str, str] = {
    "veracity": "Accuracy and truthfulness of the purchase reason, analyzing specific evidence "
    "and inconsistencies within the user's purchase history.",
    "personalization": "Extent to which the narrative prioritizes information directly from the "
    "user's reviews and statements, as opposed to relying on product descriptions or general "
    "assumptions.",
    "persuasiveness": "LLM's ability to act as a skilled salesperson, crafting language that "
    "effectively promotes a product to the user.",
}
CRITIQUE_ATTRIBUTES: dict[str, str] = {
    "quality": "Effectiveness of the refinement query in guiding the recommender towards desired "
    "Destination Item effectively.",
    "specificity": "Precision of the query in narrowing the search.",
    "relevance": "Meaningfulness and typicality of the query's attributes for finding the desired "
    "item.",
}
NARRATIVE_LABELS: dict[str, str] = {
    "purchase_reason": "purchase reason",
    "purchase_explanation": "purchase reason explanation",
    "product_endorsement": "product endorsement",
    "user_summary": "brief user summary",
    "user_summary_long": "detailed user summary",
    "user_profile": "user profile",
}
SYSTEM = (
    "You are a strict, impartial rater of texts written for an online shop. You score each "
    "attribute on a 7-point Likert scale: 1 = very poor, 4 = acceptable, 7 = excellent. "
    "Reply with one JSON object of integers and nothing else."
)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _purchase_line(purchase: Purchase, limit: int) -> str:
    inter, item = purchase
    leaf = item.categories[-1] if item.categories else "?"
    review = _clip(f"{inter.summary}. {inter.text}".strip(". "), limit)
    return f"{item.title} [{leaf}] rated {inter.rating:g}/5; review: {review}"


def _history(subject: Subject, max_history: int, limit: int) -> str:
    shown = subject.history[-max_history:]
    if not shown:
        return "(no earlier purchases)"
    first = len(subject.history) - len(shown) + 1
    return "\n".join(f"{first + k}. {_purchase_line(p, limit)}" for k, p in enumerate(shown))


def _schema(keys: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "integer", "minimum": 1, "maximum": 7} for k in keys},
        "required": keys,
        "additionalProperties": False,
    }


class _Rater(ABC):
    """Options, answer keys, the request around a prompt body, and parsing, for both raters."""

    name = ""
    kind = ""

    def __init__(
        self,
        *,
        temperature: float = 0.7,
        max_history: int = 10,
        max_field_chars: int = 200,
        max_tokens: int | None = None,
    ):
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(
                f"rater {self.name}: temperature must be > 0 (the ensemble runs must differ), "
                f"got {temperature!r}"
            )
        for label, value in (("max_history", max_history), ("max_field_chars", max_field_chars)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"rater {self.name}: {label} must be a positive integer")
        self.temperature = float(temperature)
        self.max_history = max_history
        self.max_field_chars = max_field_chars
        self.max_tokens = max_tokens

    @abstractmethod
    def attributes(self, subject: Subject) -> dict[str, tuple[str, ...]]:
        """Text name -> the attributes scored for it."""

    @abstractmethod
    def request(self, subject: Subject, *, seed: int) -> LLMRequest:
        """The prompt of one run (see :meth:`_request`)."""

    def keys(self, subject: Subject) -> dict[str, tuple[str, str]]:
        """Answer key -> (text, attribute): flat, so a small model can write it."""
        attrs = self.attributes(subject)
        several = len(attrs) > 1
        out: dict[str, tuple[str, str]] = {}
        for text, names in attrs.items():
            prefix = f"{NARRATIVE_FIELDS[text][1]}_" if several else ""
            for attr in names:
                out[f"{prefix}{attr}"] = (text, attr)
        return out

    def _request(self, subject: Subject, body: str, seed: int) -> LLMRequest:
        keys = list(self.keys(subject))
        return LLMRequest(
            system=SYSTEM,
            # A concrete example keeps small local models on the JSON track; its mid-scale
            # value says nothing about the answer.
            prompt=f"{body}\n\nReply with a JSON object with these integer keys: "
            f"{', '.join(keys)}.\nExample reply: " + json.dumps({k: 4 for k in keys}),
            temperature=self.temperature,
            seed=seed,
            max_tokens=self.max_tokens or 16 + 12 * len(keys),
            json_schema=_schema(keys),
        )

    def parse(self, subject: Subject, answer: object) -> Scores:
        """The scores of a run from its JSON answer; ValueError names a missing key."""
        if not isinstance(answer, dict):
            raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
        scores: Scores = {}
        for key, (text, attr) in self.keys(subject).items():
            if key not in answer:
                raise ValueError(f"answer lacks '{key}'")
            scores.setdefault(text, {})[attr] = answer[key]
        return scores


class NarrativeRater(_Rater):
    """Veracity and personalization of every narrative, persuasiveness of the endorsement.

    One call per narrative group (purchase reason + explanation; the user summaries and
    profile; the endorsement), as in the paper, so one group's reasoning does not bias another's.
    Options: ``temperature`` (> 0), ``max_history`` (purchases shown), ``max_field_chars``
    (characters kept of each review), ``max_tokens`` (answer length; default grows with keys).
    """

    name = "narrative"
    kind = "narrative"

    def attributes(self, subject: Subject) -> dict[str, tuple[str, ...]]:
        return {
            text: ("veracity", "personalization", "persuasiveness")
            if text == "product_endorsement"
            else ("veracity", "personalization")
            for text, _ in subject.texts
        }

    def request(self, subject: Subject, *, seed: int) -> LLMRequest:
        used = {a for names in self.attributes(subject).values() for a in names}
        defs = "\n".join(f"- {a}: {d}" for a, d in NARRATIVE_ATTRIBUTES.items() if a in used)
        texts = "\n".join(
            f'{NARRATIVE_LABELS[name]}: "{_clip(text, 4 * self.max_field_chars)}"'
            for name, text in subject.texts
        )
        body = (
            "Rate the narratives below, written about a customer and their last purchase.\n"
            f"Attributes:\n{defs}\n\n"
            "Purchase history (oldest first):\n"
            f"{_history(subject, self.max_history, self.max_field_chars)}\n"
            f"Last purchase: {_purchase_line(subject.destination, self.max_field_chars)}\n\n"
            f"Narratives:\n{texts}"
        )
        return self._request(subject, body, seed)


class CritiqueRater(_Rater):
    """Quality, specificity and relevance of a critique, given the preceding conversation
    (history), the current item (the last purchase before it) and the destination item.

    Options as for :class:`NarrativeRater`.
    """

    name = "critique"
    kind = "critique"

    def attributes(self, subject: Subject) -> dict[str, tuple[str, ...]]:
        return {"critique": tuple(CRITIQUE_ATTRIBUTES)}

    def request(self, subject: Subject, *, seed: int) -> LLMRequest:
        defs = "\n".join(f"- {a}: {d}" for a, d in CRITIQUE_ATTRIBUTES.items())
        _, item = subject.destination
        current = (
            _purchase_line(subject.history[-1], self.max_field_chars)
            if subject.history
            else "(none)"
        )
        body = (
            "A shopper was shown the current item and replied with a critique (a refinement "
            "query) to steer the recommender to the destination item. Rate the critique.\n"
            f"Attributes:\n{defs}\n\n"
            "Conversation so far (purchases, oldest first):\n"
            f"{_history(subject, self.max_history, self.max_field_chars)}\n"
            f"Current item: {current}\n"
            f'Critique: "{dict(subject.texts)["critique"]}"\n'
            f"Destination item: {item.title} [{' > '.join(item.categories[-2:]) or '?'}]: "
            f"{_clip(item.description, self.max_field_chars)}"
        )
        return self._request(subject, body, seed)


@hookimpl
def register_raters(register: Register) -> None:
    register(
        "narrative",
        NarrativeRater,
        summary="veracity, personalization (+ persuasiveness) of narratives, 3 calls per user",
    )
    register(
        "critique",
        CritiqueRater,
        summary="quality, specificity, relevance of critiques given history and items",
    )
