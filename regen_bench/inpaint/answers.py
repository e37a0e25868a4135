"""Step 3 of inpainting: answers checked, one critique chosen per pair, records filled in.

Malformed answers (after the client's bounded re-asking) become failures with their reason,
never exceptions; the choice among critique candidates is seeded per user and pair.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from typing import Any

from regen_bench.data.schema import Narratives, UserRecord
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.checks import text_problem
from regen_bench.inpaint.plan import Call, InpaintConfig
from regen_bench.llm import LLMRequest, LLMResponse


def call_kind(request: LLMRequest) -> str:
    """The call kind of an inpainting request, from the fields its schema asks for."""
    props = set((request.json_schema or {}).get("properties", {}))
    if props == {"critiques"}:
        return "critique"
    for kind, (_, fields) in P.NARRATIVE_CALLS.items():
        if props == set(fields):
            return kind
    raise ValueError("not an inpainting request")


def check_answer(request: LLMRequest, text: str) -> None:
    """The client's answer check: ValueError (the reason) for an unusable schema-valid answer.

    The same rules as :func:`apply_answers`, run as soon as an answer arrives so that a copy of
    the few-shot example or a looping answer is re-asked (``--schema-retries``).
    """
    kind = call_kind(request)
    if kind == "critique":
        items = (request.json_schema or {})["properties"]["critiques"]
        parse_critiques(text, int(items.get("maxItems", 3)))
    else:
        parse_narratives(kind, text)


def parse_critiques(text: str, n: int) -> list[str]:
    """Up to ``n`` distinct usable critiques from a schema-valid answer; ValueError if none.

    Empty ones, placeholders, copies of a few-shot example and looping ones are dropped.
    """
    value = json.loads(text)
    seen: dict[str, None] = {}
    for c in value["critiques"]:
        c = " ".join(str(c).split())
        if c and c != "..." and c.lower() not in {s.lower() for s in seen}:
            seen[c] = None
    if not seen:
        raise ValueError("no non-empty critique in the answer")
    problems = {c: text_problem(c, P.example_texts()) for c in seen}
    fresh = [c for c, why in problems.items() if why is None]
    if not fresh:
        raise ValueError(f"every critique is unusable: the first {next(iter(problems.values()))}")
    return fresh[:n]


def parse_narratives(kind: str, text: str) -> dict[str, str]:
    """The call's narrative fields from a schema-valid answer; ValueError on an empty field,
    a copy of the few-shot example or a looping text."""
    value = json.loads(text)
    out: dict[str, str] = {}
    for key, attr in P.NARRATIVE_CALLS[kind][1].items():
        body = " ".join(str(value[key]).split())
        if not body or body == "...":
            raise ValueError(f"field '{key}' is empty")
        why = text_problem(body, P.example_texts())
        if why is not None:
            raise ValueError(f"field '{key}' {why}")
        out[attr] = body
    return out


def choose(candidates: Sequence[str], seed: int, user_id: str, position: int) -> str:
    """One candidate at random, the same for the same (seed, user, pair) in every run."""
    return random.Random(f"regen-inpaint/{seed}/{user_id}/{position}").choice(list(candidates))


def apply_answers(
    records: Sequence[UserRecord],
    calls: Sequence[Call],
    responses: Sequence[LLMResponse],
    config: InpaintConfig,
) -> tuple[list[UserRecord], list[dict[str, Any]]]:
    """New records with the answers filled in, and one failure row per unusable answer.

    Every critique of the input is replaced: pairs without a (valid) answer get None.
    """
    critiques: dict[tuple[int, int], str] = {}
    narratives: dict[int, dict[str, str]] = {}
    failures: list[dict[str, Any]] = []
    for call, resp in zip(calls, responses, strict=True):
        rec = records[call.user]
        reason = resp.error
        if reason is None:
            try:
                if call.kind == "critique":
                    assert call.position is not None
                    options = parse_critiques(resp.text, config.candidates)
                    critiques[call.user, call.position] = choose(
                        options, config.seed, rec.user_id, call.position
                    )
                else:
                    narratives.setdefault(call.user, {}).update(
                        parse_narratives(call.kind, resp.text)
                    )
            except (ValueError, KeyError, TypeError) as exc:
                reason = f"unusable answer: {exc}"
        if reason is not None:
            failures.append(
                {
                    "user_id": rec.user_id,
                    "kind": call.kind,
                    "position": call.position,
                    "reason": reason,
                    "answer": resp.text[:500],
                }
            )
    out = []
    for u, rec in enumerate(records):
        inters = [
            dataclasses.replace(inter, critique=critiques.get((u, k)))
            for k, inter in enumerate(rec.interactions)
        ]
        out.append(
            dataclasses.replace(
                rec, interactions=inters, narratives=Narratives(**narratives.get(u, {}))
            )
        )
    return out, failures
