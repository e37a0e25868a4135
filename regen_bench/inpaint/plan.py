"""Step 1 of inpainting: the LLM calls a set of users needs, and the options that shape them.

One critique call per adjacent pair whose category paths share at least ``min_shared_levels``
levels (asking for ``candidates`` critiques at once), and three narrative calls per user
(purchase reason + explanation, product endorsement without the last review, user summaries +
profile). Every request carries a seed derived from (seed, user, call), so sampled requests are
cacheable too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regen_bench.data.schema import UserRecord
from regen_bench.inpaint import prompts as P
from regen_bench.llm import LLMRequest

#: Order in which call kinds are sent: equal kinds share batches of a local backend.
CALL_KINDS: tuple[str, ...] = ("critique", *P.NARRATIVE_CALLS)


@dataclass(frozen=True)
class InpaintConfig:
    """What shapes the prompts and the choices (all recorded in the manifest)."""

    #: Adjacent pairs sharing at least this many category levels get a critique (paper: 4).
    min_shared_levels: int = 4
    #: Critiques asked for per pair; one is kept at random.
    candidates: int = 3
    seed: int = 0
    temperature: float = 0.0
    #: Characters kept of each title, description and review (release texts can be pages).
    max_field_chars: int = 240
    #: Answer token limits per call kind; a kind left out gets
    #: :func:`~regen_bench.inpaint.prompts.answer_token_budget` of its schema, which never cuts
    #: an answer the schema's ``maxLength`` allows.
    max_tokens: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_shared_levels < 1:
            raise ValueError(f"min_shared_levels must be >= 1, got {self.min_shared_levels}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        if self.max_field_chars < 20:
            raise ValueError(f"max_field_chars must be >= 20, got {self.max_field_chars}")
        unknown = set(self.max_tokens) - set(CALL_KINDS)
        if unknown:
            raise ValueError(
                f"max_tokens: unknown call kind(s) {', '.join(sorted(unknown))} "
                f"(kinds: {', '.join(CALL_KINDS)})"
            )
        bad = {k: v for k, v in self.max_tokens.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"max_tokens must be integers >= 1, got {bad}")

    def tokens_for(self, kind: str, schema: dict[str, Any]) -> int:
        """The ``max_tokens`` of a ``kind`` call answering under ``schema``."""
        return self.max_tokens.get(kind) or P.answer_token_budget(schema)


@dataclass(frozen=True)
class Call:
    """One LLM call of the plan: whose, what kind, and for critiques the destination purchase."""

    user: int
    kind: str
    request: LLMRequest
    #: Index of the purchase the critique leads *to* (critique calls only).
    position: int | None = None


def shared_levels(a: Sequence[str], b: Sequence[str]) -> int:
    """Number of leading category levels two paths have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):  # paths of different depth
        if x != y:
            break
        n += 1
    return n


def _request_seed(seed: int, user_id: str, kind: str, position: int | None) -> int:
    """A per-call seed: stable across runs (cache hits on resume), distinct between calls."""
    blob = f"regen-inpaint/{seed}/{user_id}/{kind}/{position}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


def plan_calls(records: Sequence[UserRecord], config: InpaintConfig) -> list[Call]:
    """Every call the records need, grouped by kind (critiques first)."""
    system = P.system_prompt()
    by_kind: dict[str, list[Call]] = {k: [] for k in CALL_KINDS}

    def request(
        kind: str, prompt: str, schema: dict[str, Any], user_id: str, pos: int | None
    ) -> LLMRequest:
        return LLMRequest(
            system=system,
            prompt=prompt,
            temperature=config.temperature,
            max_tokens=config.tokens_for(kind, schema),
            seed=_request_seed(config.seed, user_id, kind, pos),
            json_schema=schema,
        )

    for u, rec in enumerate(records):
        for k in range(1, len(rec.interactions)):
            cur = rec.items[rec.interactions[k - 1].item_id]
            nxt = rec.items[rec.interactions[k].item_id]
            if shared_levels(cur.categories, nxt.categories) < config.min_shared_levels:
                continue
            prompt = P.critique_prompt(cur, nxt, config.candidates, config.max_field_chars)
            schema = P.critique_schema(config.candidates)
            req = request("critique", prompt, schema, rec.user_id, k)
            by_kind["critique"].append(Call(u, "critique", req, k))
        for kind in P.NARRATIVE_CALLS:
            prompt = P.narrative_prompt(kind, rec, config.max_field_chars)
            req = request(kind, prompt, P.narrative_schema(kind), rec.user_id, None)
            by_kind[kind].append(Call(u, kind, req))
    return [c for kind in CALL_KINDS for c in by_kind[kind]]


def dry_run_text(calls: Sequence[Call], users: int, shown: int = 1) -> str:
    """The first ``shown`` prompt(s) of each call kind and the number of calls per kind."""
    counts = Counter(c.kind for c in calls)
    parts = []
    for kind in CALL_KINDS:
        for call in [c for c in calls if c.kind == kind][:shown]:
            parts.append(
                f"===== {kind} prompt (user #{call.user}"
                + (f", purchase {call.position}" if call.position is not None else "")
                + f") =====\n[system]\n{call.request.system}\n[user]\n{call.request.prompt}\n"
            )
    summary = ", ".join(f"{k} {counts[k]}" for k in CALL_KINDS)
    parts.append(f"{len(calls)} calls for {users} users ({summary}); nothing was sent")
    return "\n".join(parts)
