"""Inpainting: fill critiques and narratives of a REGEN-format file with an LLM backend.

The pipeline (paper section 3.2) in three steps, each a plain function:

1. :func:`plan_calls` turns the users into LLM calls: one critique call per adjacent pair whose
   category paths share at least ``min_shared_levels`` levels (asking for ``candidates``
   critiques at once), and three narrative calls per user (purchase reason + explanation,
   product endorsement without the last review, user summaries + profile).
2. :func:`run_calls` answers them through :class:`regen_bench.llm.LLMClient`, whose sqlite
   cache commits every finished call before the next starts: that cache *is* the run's
   persistence, so a crash, Ctrl-C or ``kill -9`` loses nothing and the same command resumes.
   Every request carries a seed derived from (seed, user, call), so sampled requests are
   cacheable too.
3. :func:`apply_answers` validates the answers, picks one critique per pair at random (seeded per
   user and pair) and writes them into the records; malformed answers (after the client's
   bounded re-asking) become failures with their reason, never exceptions.

:func:`inpaint` wires the steps together and writes the output atomically, plus a manifest
(``<out>.inpaint.json``: prompt version and digest, backend, options, coverage, usage) and a
failures file (``<out>.inpaint-failures.jsonl``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import Narratives, UserRecord
from regen_bench.fileio import atomic_write
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.checks import text_problem
from regen_bench.llm import LLMClient, LLMRequest, LLMResponse

#: Order in which call kinds are sent: equal kinds share batches of a local backend.
CALL_KINDS: tuple[str, ...] = ("critique", *P.NARRATIVE_CALLS)
MANIFEST_SUFFIX = ".inpaint.json"
FAILURES_SUFFIX = ".inpaint-failures.jsonl"
CACHE_SUFFIX = ".inpaint-cache.sqlite"


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


@dataclass
class InpaintReport:
    """What a run did: counts, coverage, failures and usage (also the manifest's content)."""

    dataset: str
    output: str
    users: int = 0
    pairs: int = 0
    eligible_pairs: int = 0
    critiques: int = 0
    calls: int = 0
    fresh_calls: int = 0
    cached_calls: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    usage: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def coverage(self) -> float:
        """Share of adjacent pairs that carry a critique (REGEN: ~17.6% Office)."""
        return self.critiques / self.pairs if self.pairs else 0.0

    def lines(self) -> list[str]:
        rate = self.fresh_calls / self.wall_s if self.wall_s > 0 else 0.0
        fails = ", ".join(f"{k} {v}" for k, v in sorted(self.failures.items())) or "none"
        u = self.usage
        cost = u.get("cost_usd")
        return [
            f"users:            {self.users}",
            f"adjacent pairs:   {self.pairs} ({self.eligible_pairs} share >= the category "
            f"levels asked)",
            f"critiques:        {self.critiques} ({self.coverage:.1%} of adjacent pairs)",
            f"calls:            {self.calls} ({self.cached_calls} from the cache, "
            f"{self.fresh_calls} answered now, {rate:.3f} calls/s)",
            f"failures:         {fails}",
            f"tokens:           {u.get('prompt_tokens', 0)} in, {u.get('completion_tokens', 0)} "
            f"out" + (f", ${cost:.4f}" if cost is not None else ""),
        ]


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


def run_calls(
    client: LLMClient, calls: Sequence[Call], *, progress: bool = True
) -> list[LLMResponse]:
    """Answer ``calls`` in order, showing a bar with ETA, tokens and cost.

    The calls go to the client in rounds (one batch of a local batched backend, twice the
    concurrency of a threaded one) so the bar and the running usage move as calls finish.
    Fresh answers go through :func:`check_answer`, so unusable ones are re-asked.
    """
    from tqdm.auto import tqdm

    if callable(getattr(client.backend, "complete_batch", None)):
        step = max(1, int(getattr(client.backend, "batch_size", 8) or 8))
    else:
        step = 2 * client.concurrency
    out: list[LLMResponse] = []
    bar = tqdm(total=len(calls), unit="call", desc="inpaint", disable=not progress)
    try:
        for start in range(0, len(calls), step):
            chunk = calls[start : start + step]
            out.extend(
                client.complete_many([c.request for c in chunk], progress=False, check=check_answer)
            )
            u = client.usage()
            postfix = {
                "tok": u["prompt_tokens"] + u["completion_tokens"],
                "cached": u["cache_hits"],
                "failed": u["failures"],
            }
            if u["cost_usd"] is not None:
                postfix["usd"] = round(u["cost_usd"], 4)
            bar.set_postfix(postfix, refresh=False)
            bar.update(len(chunk))
    finally:
        bar.close()
    return out


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


def sidecar(out: str | Path, suffix: str) -> Path:
    """``<out><suffix>``: the manifest, failures and cache files live next to the output."""
    return Path(f"{out}{suffix}")


def load_users(path: str | Path, limit: int | None = None) -> list[UserRecord]:
    """The first ``limit`` users (all when None) of a REGEN-format file."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    return list(itertools.islice(iter_records(path), limit))


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


def inpaint(
    dataset: str | Path,
    out: str | Path,
    backend: str,
    *,
    backend_config: dict[str, Any] | None = None,
    config: InpaintConfig | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    concurrency: int = 4,
    schema_retries: int = 2,
    reask_temperature: float = 0.7,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> InpaintReport | None:
    """Inpaint the first ``limit`` users of ``dataset`` into ``out`` (None for a dry run).

    The cache ``<out>.inpaint-cache.sqlite`` keeps every finished call; rerunning the same
    command after an interruption answers those from it without calling the backend.
    """
    from regen_bench.llm import make_client
    from regen_bench.plugins import get_plugin_manager

    config = config or InpaintConfig()
    backend_config = dict(backend_config or {})
    get_plugin_manager().get("llm_backend", backend)  # unknown name: fail before any work
    records = load_users(dataset, limit)
    if not records:
        raise ValueError(f"{dataset}: no users to inpaint")
    calls = plan_calls(records, config)
    if dry_run:
        log(dry_run_text(calls, len(records)))
        return None
    report = InpaintReport(dataset=str(dataset), output=str(out), users=len(records))
    report.pairs = sum(len(r.interactions) - 1 for r in records)
    report.eligible_pairs = sum(c.kind == "critique" for c in calls)
    report.calls = len(calls)
    cache_path = sidecar(out, CACHE_SUFFIX)
    start = time.perf_counter()
    with make_client(
        backend,
        cache_path=cache_path,
        concurrency=concurrency,
        schema_retries=schema_retries,
        reask_temperature=reask_temperature,
        **backend_config,
    ) as client:
        log(
            f"inpainting {len(records)} users with {backend}:{client.backend.model}: "
            f"{len(calls)} calls (finished calls are kept in {cache_path})"
        )
        responses = run_calls(client, calls, progress=progress)
        report.usage = client.usage()
    report.wall_s = time.perf_counter() - start
    report.cached_calls = sum(r.cached for r in responses)
    report.fresh_calls = len(responses) - report.cached_calls
    filled, failures = apply_answers(records, calls, responses, config)
    report.critiques = sum(i.critique is not None for r in filled for i in r.interactions[1:])
    report.failures = Counter(f["kind"] for f in failures)
    failures_path = sidecar(out, FAILURES_SUFFIX)
    atomic_write(
        failures_path,
        (json.dumps(f, ensure_ascii=False, sort_keys=True).encode() + b"\n" for f in failures),
    )
    fingerprint = write_records(filled, out)
    manifest = {
        "prompt_version": P.PROMPT_VERSION,
        "prompt_sha256": P.templates_sha256(),
        "dataset": str(dataset),
        "output": str(out),
        "output_sha256": fingerprint,
        "backend": backend,
        "backend_model": report.usage.get("model"),
        # Option names only for values that may be secrets (keys come from the environment,
        # but a base_url or similar is kept: it says where the answers came from).
        "backend_config": {k: v for k, v in sorted(backend_config.items()) if "key" not in k},
        "config": dataclasses.asdict(config),
        "limit": limit,
        "schema_retries": schema_retries,
        "reask_temperature": reask_temperature,
        "users": report.users,
        "adjacent_pairs": report.pairs,
        "eligible_pairs": report.eligible_pairs,
        "critiques": report.critiques,
        "critique_coverage": round(report.coverage, 6),
        "calls": report.calls,
        "cached_calls": report.cached_calls,
        "failures": dict(report.failures),
        "failures_file": failures_path.name,
        "cache_file": cache_path.name,
        "usage": report.usage,
    }
    atomic_write(
        sidecar(out, MANIFEST_SUFFIX),
        [json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"],
    )
    return report
