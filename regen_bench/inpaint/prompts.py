"""The inpainting prompts: versioned template files, the history text, and the answer schemas.

The templates live in ``prompts/*.txt`` (package data) and use :class:`string.Template`
placeholders (``$history``; ``$$`` is a literal dollar), so JSON braces in the few-shot examples
need no escaping. Following the paper (section 3.2.2) each prompt is a task prefix with
instructions, few-shot examples, the user's history with item metadata and review text, and the
expected output format. The endorsement prompt withholds the last review: the last item is shown
with its metadata only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from regen_bench.data.schema import Interaction, Item, UserRecord

#: Bumped whenever a template, the history layout or the answer schemas change; written into
#: the run manifest. v2: answer strings have length limits (``FIELD_MIN_CHARS``/``_MAX_``).
PROMPT_VERSION = "inpaint-v2"
TEMPLATE_NAMES: tuple[str, ...] = ("system", "critique", "purchase_reason", "endorsement", "user")

#: Narrative calls per user: kind -> (template, answer fields -> Narratives attribute).
NARRATIVE_CALLS: dict[str, tuple[str, dict[str, str]]] = {
    "purchase_reason": (
        "purchase_reason",
        {"reason": "purchase_reason", "explanation": "purchase_explanation"},
    ),
    "endorsement": ("endorsement", {"endorsement": "product_endorsement"}),
    "user": (
        "user",
        {
            "brief_summary": "user_summary",
            "long_summary": "user_summary_long",
            "profile": "user_profile",
        },
    ),
}


@cache
def template_text(name: str) -> str:
    """The text of template ``name`` (``prompts/<name>.txt``)."""
    if name not in TEMPLATE_NAMES:
        raise KeyError(f"no inpainting template '{name}'")
    return (resources.files("regen_bench.inpaint") / "prompts" / f"{name}.txt").read_text("utf-8")


def templates_sha256() -> str:
    """One digest of all templates and the answer length limits of the schemas, so a manifest
    names the exact prompt text and answer format used."""
    import json

    digest = hashlib.sha256()
    for name in TEMPLATE_NAMES:
        digest.update(f"{name}\n{template_text(name)}\n".encode())
    limits = {"min": FIELD_MIN_CHARS, "max": FIELD_MAX_CHARS}
    digest.update(json.dumps(limits, sort_keys=True).encode())
    return digest.hexdigest()


def system_prompt() -> str:
    return template_text("system").strip()


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def describe_item(item: Item, max_chars: int) -> str:
    """Item metadata, one field per line (fields the item lacks are left out)."""
    lines = [f"Title: {_clip(item.title, max_chars) or item.asin}"]
    if item.categories:
        lines.append(f"Category: {' > '.join(item.categories)}")
    if item.brand:
        lines.append(f"Brand: {item.brand}")
    if item.price is not None:
        lines.append(f"Price: ${item.price:.2f}")
    if item.description:
        lines.append(f"Description: {_clip(item.description, max_chars)}")
    return "\n".join(lines)


def _describe_purchase(inter: Interaction, item: Item, max_chars: int, review: bool) -> str:
    day = datetime.fromtimestamp(inter.timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    lines = [f"Date: {day}", describe_item(item, max_chars)]
    if review:
        lines.append(f"Rating: {inter.rating:g}/5")
        if inter.summary:
            lines.append(f"Review title: {_clip(inter.summary, max_chars)}")
        if inter.text:
            lines.append(f"Review: {_clip(inter.text, max_chars)}")
    return "\n".join(lines)


def history_text(
    record: UserRecord, max_chars: int, *, upto: int | None = None, label_last: bool = True
) -> str:
    """The purchases ``[:upto]`` (all by default), oldest first, each with its review."""
    inters = record.interactions[:upto]
    blocks = []
    for k, inter in enumerate(inters, start=1):
        last = label_last and k == len(inters)
        head = "LAST PURCHASE" if last else f"Purchase {k}"
        body = _describe_purchase(inter, record.items[inter.item_id], max_chars, review=True)
        blocks.append(f"{head}\n{body}")
    return "\n\n".join(blocks)


def critique_prompt(current: Item, desired: Item, n: int, max_chars: int) -> str:
    """Ask for ``n`` critiques that steer from ``current`` to ``desired`` (item descriptions)."""
    return Template(template_text("critique")).substitute(
        n=n,
        current=describe_item(current, max_chars),
        desired=describe_item(desired, max_chars),
        slots=", ".join(['"..."'] * n),
    )


def narrative_prompt(kind: str, record: UserRecord, max_chars: int) -> str:
    """The prompt of one narrative call (``NARRATIVE_CALLS``) for ``record``."""
    template, _ = NARRATIVE_CALLS[kind]
    if kind == "endorsement":
        # The paper withholds the last review: earlier purchases with reviews, then the last
        # item with its metadata only (no rating, review title or review text).
        last = record.interactions[-1]
        earlier = history_text(record, max_chars, upto=-1, label_last=False)
        return Template(template_text(template)).substitute(
            history=earlier or "(none)",
            item=describe_item(record.items[last.item_id], max_chars),
        )
    return Template(template_text(template)).substitute(history=history_text(record, max_chars))


@cache
def example_texts() -> frozenset[str]:
    """Every answer string of the templates' few-shot examples (whitespace-normalised).

    Small models often copy an example instead of answering; such answers are rejected.
    """
    import json

    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            text = " ".join(value.split())
            if text and text != "...":
                found.add(text)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for name in TEMPLATE_NAMES:
        for line in template_text(name).replace("$$", "$").splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                walk(json.loads(line[start:]))
            except json.JSONDecodeError:
                continue
    return frozenset(found)


#: Longest answer string, in characters, per answer field (a critique: per critique). Enforced
#: by ``maxLength`` (lm-format-enforcer stops the string there, so a looping small model ends)
#: and checked by the client's validation for every backend. Sized well above what the
#: instructions ask for (e.g. four to six sentences for the long summary).
FIELD_MAX_CHARS: dict[str, int] = {
    "critique": 120,
    "reason": 200,
    "explanation": 500,
    "endorsement": 600,
    "brief_summary": 300,
    "long_summary": 800,
    "profile": 60,
}


#: Shortest answer string per field: about half of the shortest text the instructions ask for,
#: so a model cannot close a field with a fragment (``"[Purchase 1]"``) under constrained
#: decoding, while any real answer passes.
FIELD_MIN_CHARS: dict[str, int] = {
    "critique": 10,
    "reason": 20,
    "explanation": 60,
    "endorsement": 80,
    "brief_summary": 30,
    "long_summary": 100,
    "profile": 8,
}


def _string(field: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": FIELD_MIN_CHARS[field],
        "maxLength": FIELD_MAX_CHARS[field],
    }


def critique_schema(n: int = 3) -> dict[str, Any]:
    """``{"critiques": [str, ...]}``: 1 to ``n`` strings of at most 120 characters.

    Schemas are kept minimal (no ``additionalProperties``): backends without structured output
    paste the schema into the prompt, and small models copy long schemas instead of answering.
    """
    items = {"type": "array", "items": _string("critique"), "minItems": 1, "maxItems": n}
    return {"type": "object", "properties": {"critiques": items}, "required": ["critiques"]}


def narrative_schema(kind: str) -> dict[str, Any]:
    """A flat object of the call's string fields (simple enough for small local models)."""
    fields = list(NARRATIVE_CALLS[kind][1])
    return {
        "type": "object",
        "properties": {f: _string(f) for f in fields},
        "required": fields,
    }


def answer_token_budget(schema: dict[str, Any]) -> int:
    """A ``max_tokens`` that never cuts an answer the schema's lengths allow.

    Every token holds at least one character, and English text takes about four per token:
    half a token per allowed character, plus the JSON keys and punctuation, is enough, while
    ``maxLength`` (not this budget) is what ends a looping answer.
    """
    chars = 0
    overhead = 8
    for prop in schema["properties"].values():
        overhead += 12
        if prop.get("type") == "array":
            chars += prop["items"]["maxLength"] * prop["maxItems"]
            overhead += 4 * prop["maxItems"]
        else:
            chars += prop["maxLength"]
    return overhead + (chars + 1) // 2
