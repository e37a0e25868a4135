"""``rate_file``: a REGEN-format file in, the same file with rater scores out (plus a table).

Where scores go in the file's ``metadata`` block (docs/rating.md shows an example):

- narratives: ``metadata.last_purchase.{reason,explanation,endorsement}`` and
  ``metadata.user.{brief_summary,long_summary,profile}``, each ``{attribute: score}``, named
  like the field that holds the narrative (the release's own flat scores are kept as they are);
- critiques: ``metadata.critiques``, a list aligned with ``purchase_history`` (null where the
  purchase has no rated critique, else ``{quality, specificity, relevance}``);
- per-run scores: ``metadata.rating_runs`` (``"critiques[3].quality": [6, 6, 5, ...]``);
- what rated them: ``metadata.raters.<rater>`` (backend, model, runs, seed, failed runs).

Negative samples are rated for the bias check only: their scores go to the table, not the file.
The run is resumable: every finished LLM call is committed to ``<out>.rate-cache.sqlite`` and
a rerun answers it from there. With ``shard`` (``--shard i/n``) a run rates and writes only the
users of that shard (:mod:`regen_bench.shards`); :func:`regen_bench.rating.merge.merge_ratings`
joins the shards' outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from regen_bench.data.regen import dumps_record, iter_records
from regen_bench.data.schema import UserRecord
from regen_bench.fileio import atomic_write
from regen_bench.llm import check_options, make_client
from regen_bench.plugins import PluginManager, UnknownNameError, get_plugin_manager
from regen_bench.rating.ensemble import Rater, SubjectRating, rate_subjects
from regen_bench.rating.report import (
    bias_table,
    format_bias_table,
    score_rows,
    write_report,
    write_table,
)
from regen_bench.rating.subjects import (
    KINDS,
    NARRATIVE_FIELDS,
    negative_samples,
    subjects_for,
)
from regen_bench.shards import Shard, content_sha256

SUMMARY_SUFFIX = ".rating.json"
TABLE_SUFFIX = ".scores.csv"
CACHE_SUFFIX = ".rate-cache.sqlite"


@dataclass
class RatingOutcome:
    """What :func:`rate_file` wrote and measured."""

    out: Path
    table: Path
    summary: Path
    users: int
    subjects: int
    failed_runs: int
    total_runs: int
    usage: dict[str, Any]
    bias: dict[str, dict[str, dict[str, float | int | None]]] | None
    plots: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        u = self.usage
        out = [
            f"rated {self.subjects} outputs of {self.users} users "
            f"({self.total_runs} rater runs incl. negatives, {self.failed_runs} failed)",
            f"llm: {u['backend']}:{u['model']} {u['requests']} requests "
            f"({u['cache_hits']} from the cache, {u['calls']} backend calls), "
            f"{u['failures']} failed, {u['wall_s']:.1f}s",
        ]
        if self.bias is not None:
            out += ["bias check: share of scores >= 6 (real vs negatives A, B)"]
            out += ["  " + line for line in format_bias_table(self.bias)]
        out.append(f"wrote {self.out}, {self.table.name}, {self.summary.name}")
        out += [f"figure {p}" for p in self.plots]
        return out


def dataset_path(name_or_path: str, plugins: PluginManager) -> Path:
    """The file of a registered dataset, or ``name_or_path`` itself if it is a file."""
    if name_or_path in plugins.entries["dataset"]:
        return Path(plugins.get("dataset", name_or_path).factory(data_dir=None))
    if os.path.isfile(name_or_path):
        return Path(name_or_path)
    if os.path.sep in name_or_path or os.path.exists(name_or_path):
        raise FileNotFoundError(f"dataset file '{name_or_path}' does not exist")
    raise UnknownNameError("dataset", name_or_path, plugins.names("dataset"))


def make_rater(name: str, plugins: PluginManager, **options: Any) -> Rater:
    """The ``rater`` plugin ``name`` built with ``options`` (unknown options are an error)."""
    entry = plugins.get("rater", name)
    check_options(f"rater '{name}'", entry.factory, options)
    rater = entry.factory(**options)
    if getattr(rater, "kind", None) not in KINDS:
        raise ValueError(
            f"rater '{name}' rates kind {getattr(rater, 'kind', None)!r}, not one of {KINDS}"
        )
    return cast(Rater, rater)


def _put_scores(
    record: UserRecord, rater: str, ratings: Sequence[SubjectRating], info: dict[str, Any]
) -> None:
    """Write the final and per-run scores of ``ratings`` into ``record.scores`` (metadata)."""
    meta = record.scores
    runs_block: dict[str, Any] = meta.setdefault("rating_runs", {})
    critiques: list[dict[str, int] | None] | None = None
    if info["kind"] == "critique":
        critiques = [None] * len(record.interactions)
        meta["critiques"] = critiques
        for k in [k for k in runs_block if k.startswith("critiques[")]:
            del runs_block[k]
    for rating in ratings:
        s = rating.subject
        for (text, attr), score in rating.final.items():
            if critiques is not None:
                where = f"critiques[{s.position}]"
                slot = critiques[s.position] or {}
                critiques[s.position] = slot
            else:
                block, fld = NARRATIVE_FIELDS[text]
                parent = meta.get(block)
                if not isinstance(parent, dict):
                    parent = meta[block] = {}
                slot = parent.setdefault(fld, {})
                where = f"{block}.{fld}"
            if score is None:
                slot.pop(attr, None)
            else:
                slot[attr] = score
            runs_block[f"{where}.{attr}"] = rating.runs[(text, attr)]
    meta.setdefault("raters", {})[rater] = {k: v for k, v in info.items() if k != "kind"} | {
        "failed_runs": sum(len(r.failures) for r in ratings)
    }


def rate_file(
    dataset: str,
    out: str | os.PathLike[str],
    *,
    rater: str,
    backend: str,
    backend_options: dict[str, Any] | None = None,
    rater_options: dict[str, Any] | None = None,
    runs: int = 7,
    limit: int | None = None,
    shard: Shard | None = None,
    seed: int = 0,
    concurrency: int = 4,
    plots: str | os.PathLike[str] | None = None,
    bias_check: bool = True,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
    plugins: PluginManager | None = None,
) -> RatingOutcome:
    """Rate the first ``limit`` users of ``dataset`` (a name or a file) and write ``out``.

    ``out`` is the dataset with scores in its ``metadata`` blocks (users past ``limit`` are
    copied unchanged); ``<out>.scores.csv`` holds one row per (output, variant, text,
    attribute) with the per-run scores; ``<out>.rating.json`` the settings, LLM usage and the
    bias table. With ``plots``, PNG figures and a markdown report are written there.

    With ``shard``, only that shard's users are rated (those among the first ``limit``) and
    written (the others of the shard copied unchanged); negative samples are drawn from the
    shard's users.
    """
    plugins = plugins or get_plugin_manager()
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    the_rater = make_rater(rater, plugins, **(rater_options or {}))
    source = dataset_path(dataset, plugins)
    out = Path(out)
    records: list[UserRecord] = []
    for record in iter_records(source):
        if limit is not None and len(records) >= limit:
            break
        records.append(record)
    if shard is not None:
        records = [r for r in records if shard.owns(r.user_id)]
    real = [s for r in records for s in subjects_for(the_rater.kind, r)]
    negatives = negative_samples(real, records, seed) if bias_check and real else []
    client = make_client(
        backend,
        cache_path=Path(cache) if cache is not None else Path(f"{out}{CACHE_SUFFIX}"),
        concurrency=concurrency,
        # A malformed answer is one failed run of the ensemble (the ensemble is the redundancy);
        # re-asking a seeded local model would give the same answer again.
        schema_retries=0,
        plugin_manager=plugins,
        **(backend_options or {}),
    )
    try:
        ratings = rate_subjects(
            the_rater, [*real, *negatives], client, runs=runs, seed=seed, progress=progress
        )
        usage = client.usage()
    finally:
        client.close()
    by_user: dict[str, list[SubjectRating]] = {}
    for rating in ratings[: len(real)]:
        by_user.setdefault(rating.subject.user_id, []).append(rating)
    info = {
        "kind": the_rater.kind,
        "backend": backend,
        "model": usage["model"],
        "runs": runs,
        "seed": seed,
    }
    for record in records:
        _put_scores(record, rater, by_user.get(record.user_id, []), info)

    def lines() -> Iterator[bytes]:
        rated = iter(records)
        for k, record in enumerate(iter_records(source)):
            if shard is not None and not shard.owns(record.user_id):
                continue
            yield dumps_record(next(rated) if limit is None or k < limit else record)

    fingerprint = atomic_write(out, lines(), compress=str(out).endswith(".gz"))
    rows = score_rows(rater, ratings)
    table = Path(f"{out}{TABLE_SUFFIX}")
    write_table(rows, table)
    bias = bias_table(rows) if bias_check else None
    failed = sum(len(r.failures) for r in ratings)
    summary = Path(f"{out}{SUMMARY_SUFFIX}")
    doc = {
        "rater": rater,
        "dataset": str(dataset),
        "dataset_file": str(source.resolve()),  # where merge finds the input
        "dataset_sha256": content_sha256(source),
        "shard": shard.as_dict() if shard is not None else None,
        "output_sha256": fingerprint,
        "backend": backend,
        "backend_model": usage["model"],
        # As inpaint's manifest: option names holding secrets are left out.
        "backend_config": {
            k: v for k, v in sorted((backend_options or {}).items()) if "key" not in k
        },
        "rater_options": dict(sorted((rater_options or {}).items())),
        "limit": limit,
        "bias_check": bias_check,
        "users": len(records),
        "outputs": len(real),
        "negatives": len(negatives),
        "runs": runs,
        "seed": seed,
        "failed_runs": failed,
        "failure_samples": [f for r in ratings for f in r.failures][:10],
        "usage": usage,
        "bias": bias,
    }
    atomic_write(summary, [json.dumps(doc, indent=2).encode("utf-8")])
    outcome = RatingOutcome(
        out=out,
        table=table,
        summary=summary,
        users=len(records),
        subjects=len(real),
        failed_runs=failed,
        total_runs=len(ratings) * runs,
        usage=usage,
        bias=bias,
    )
    if plots is not None:
        header = [
            f"Rater `{rater}` via `{backend}` ({usage['model']}), {runs} runs per output, "
            f"seed {seed}; {len(records)} users, {len(real)} outputs, {failed} of "
            f"{outcome.total_runs} runs failed.",
        ]
        outcome.plots = write_report(Path(plots), rater, rows, header, bias)
    return outcome


__all__ = [
    "CACHE_SUFFIX",
    "SUMMARY_SUFFIX",
    "TABLE_SUFFIX",
    "RatingOutcome",
    "dataset_path",
    "make_rater",
    "rate_file",
]
