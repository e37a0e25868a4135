"""Inpainting: fill critiques and narratives of a REGEN-format file with an LLM backend.

The pipeline (paper section 3.2) in three steps, each a plain function:

1. :func:`~regen_bench.inpaint.plan.plan_calls` turns the users into LLM calls (one critique
   call per similar adjacent pair, three narrative calls per user).
2. :func:`run_calls` answers them through :class:`regen_bench.llm.LLMClient`, whose sqlite
   cache commits every finished call before the next starts: that cache *is* the run's
   persistence, so a crash, Ctrl-C or ``kill -9`` loses nothing and the same command resumes.
3. :func:`~regen_bench.inpaint.answers.apply_answers` validates the answers, picks one critique
   per pair and writes them into the records; unusable answers become failures, never
   exceptions.

:func:`inpaint` wires the steps together and writes the output atomically, plus a manifest
(``<out>.inpaint.json``: prompt version and digest, backend, options, coverage, usage) and a
failures file (``<out>.inpaint-failures.jsonl``). With ``shard`` (``--shard i/n``) a run takes
only the users of that shard (:mod:`regen_bench.shards`) and records the shard in its manifest;
:func:`regen_bench.inpaint.merge.merge_inpaint` joins the shards' outputs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import UserRecord
from regen_bench.fileio import atomic_write
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.answers import apply_answers, check_answer
from regen_bench.inpaint.plan import Call, InpaintConfig, dry_run_text, plan_calls
from regen_bench.llm import LLMClient, LLMResponse
from regen_bench.shards import Shard, content_sha256

MANIFEST_SUFFIX = ".inpaint.json"
FAILURES_SUFFIX = ".inpaint-failures.jsonl"
CACHE_SUFFIX = ".inpaint-cache.sqlite"


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


def sidecar(out: str | Path, suffix: str) -> Path:
    """``<out><suffix>``: the manifest, failures and cache files live next to the output."""
    return Path(f"{out}{suffix}")


def load_users(path: str | Path, limit: int | None = None) -> list[UserRecord]:
    """The first ``limit`` users (all when None) of a REGEN-format file."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    return list(itertools.islice(iter_records(path), limit))


def inpaint(
    dataset: str | Path,
    out: str | Path,
    backend: str,
    *,
    backend_config: dict[str, Any] | None = None,
    config: InpaintConfig | None = None,
    limit: int | None = None,
    shard: Shard | None = None,
    dry_run: bool = False,
    concurrency: int = 4,
    schema_retries: int = 2,
    reask_temperature: float = 0.7,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> InpaintReport | None:
    """Inpaint the first ``limit`` users of ``dataset`` into ``out`` (None for a dry run).

    The cache ``<out>.inpaint-cache.sqlite`` keeps every finished call; rerunning the same
    command after an interruption answers those from it without calling the backend. With
    ``shard``, only that shard's users among the first ``limit`` are inpainted (a shard may
    have none: its output is then empty).
    """
    from regen_bench.llm import make_client
    from regen_bench.plugins import get_plugin_manager

    config = config or InpaintConfig()
    backend_config = dict(backend_config or {})
    get_plugin_manager().get("llm_backend", backend)  # unknown name: fail before any work
    records = load_users(dataset, limit)
    if not records:
        raise ValueError(f"{dataset}: no users to inpaint")
    in_scope = len(records)
    if shard is not None:
        records = [r for r in records if shard.owns(r.user_id)]
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
        part = f" (shard {shard} of {in_scope})" if shard is not None else ""
        log(
            f"inpainting {len(records)} users{part} with {backend}:{client.backend.model}: "
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
        "dataset_file": str(Path(dataset).resolve()),  # where merge finds the input
        "dataset_sha256": content_sha256(dataset),
        "shard": shard.as_dict() if shard is not None else None,
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
