"""Merging the outputs of ``rate --shard i/n``: one REGEN file, one table, one summary.

The REGEN file is the unsharded run's, byte for byte (each user's scores depend only on the
user, the rater, the model, the runs and the seed). The score tables are joined in the order an
unsharded run writes them (real outputs by input user, then the negatives by input user); the
negatives themselves were drawn within each shard, so the bias table, recomputed over the
joined rows, measures the same thing as an unsharded run's on different random draws.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from regen_bench.fileio import atomic_write, write_temp
from regen_bench.rating.pipeline import SUMMARY_SUFFIX, TABLE_SUFFIX
from regen_bench.rating.report import COLUMNS, bias_table, format_bias_table
from regen_bench.shards import (
    ShardOutput,
    check_same,
    input_file,
    input_user_ids,
    load_outputs,
    merged_lines,
    shard_index,
    sum_usage,
    without_place_options,
)

#: Summary fields that must agree between shards (None: compared as they are).
SAME_FIELDS = {
    "rater": None,
    "dataset_sha256": None,
    "backend": None,
    "backend_model": None,
    "backend_config": without_place_options,
    "rater_options": None,
    "runs": None,
    "seed": None,
    "limit": None,
    "bias_check": None,
}
SUMMED = ("users", "outputs", "negatives", "failed_runs")


def _table_rows(o: ShardOutput, real: bool) -> Iterator[dict[str, str]]:
    path = Path(f"{o.path}{TABLE_SUFFIX}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file (every rate run writes one)")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}:1: expected the columns {', '.join(COLUMNS)}")
        for row in reader:
            if (row["variant"] == "real") == real:
                yield row


def _joined_rows(
    outs: Sequence[ShardOutput], source: Path, limit: int | None
) -> Iterator[dict[str, str]]:
    """Every shard's table rows, real ones first, each part in the input's user order."""
    count = outs[0].shard.count
    for real in (True, False):
        readers = {o.shard.index: _table_rows(o, real) for o in outs}
        pending: dict[int, dict[str, str] | None] = {i: next(r, None) for i, r in readers.items()}
        for uid in input_user_ids(source, limit):
            i = shard_index(uid, count)
            while (row := pending[i]) is not None and row["user_id"] == uid:
                yield row
                pending[i] = next(readers[i], None)
        for o in outs:
            row = pending[o.shard.index]
            if row is not None:
                raise ValueError(
                    f"{o.path}{TABLE_SUFFIX}: a row of user '{row['user_id']}' out of the input's "
                    f"order of shard {o.shard}"
                )


def _csv_bytes(rows: Iterator[dict[str, str]]) -> Iterator[bytes]:
    """``rows`` as csv, as ``write_table`` writes them."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buf.tell() > 1 << 16:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def _scores(table: Path) -> Iterator[dict[str, Any]]:
    """The rows of a score table as :func:`bias_table` reads them."""
    with open(table, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            score = row["score"]
            yield {**row, "score": int(score) if score else None}


def merge_ratings(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Merge the outputs of all shards of one rate run into ``out`` (plus ``.scores.csv`` and
    ``.rating.json``); the lines to print. ValueError, with nothing written, on any mismatch."""
    outs = load_outputs(paths, SUMMARY_SUFFIX)
    check_same(outs, SAME_FIELDS)
    source = input_file(outs, dataset)
    first = outs[0].manifest
    limit = first.get("limit")
    # The table goes to a temp file first: if it or the records do not merge, nothing is kept.
    table = Path(f"{out}{TABLE_SUFFIX}")
    tmp, _ = write_temp(table, _csv_bytes(_joined_rows(outs, source, limit)))
    try:
        fingerprint = atomic_write(
            out,
            merged_lines(source, None, outs, "output_sha256"),
            compress=str(out).endswith(".gz"),
        )
        bias = bias_table(_scores(tmp)) if first.get("bias_check") else None
        os.replace(tmp, table)
    finally:
        tmp.unlink(missing_ok=True)
    doc = {k: v for k, v in first.items() if k not in SUMMED}
    for k in SUMMED:
        doc[k] = sum(int(o.manifest.get(k) or 0) for o in outs)
    doc.update(
        {
            "dataset": str(source),
            "dataset_file": str(source),
            "output_sha256": fingerprint,
            "shard": None,
            "failure_samples": [f for o in outs for f in o.manifest.get("failure_samples", [])][
                :10
            ],
            "usage": sum_usage(o.manifest.get("usage") or {} for o in outs),
            "bias": bias,
            "merged_from": [
                {
                    "output": str(o.path),
                    "shard": o.shard.as_dict(),
                    "output_sha256": o.manifest.get("output_sha256"),
                    "users": o.manifest.get("users"),
                    "backend_config": o.manifest.get("backend_config"),
                }
                for o in outs
            ],
        }
    )
    atomic_write(f"{out}{SUMMARY_SUFFIX}", [json.dumps(doc, indent=2).encode("utf-8")])
    lines = [
        f"merged {len(outs)} shards of a rate run: {doc['outputs']} outputs of {doc['users']} "
        f"users rated, {doc['failed_runs']} failed runs",
    ]
    if bias is not None:
        lines += ["bias check: share of scores >= 6 (real vs negatives A, B)"]
        lines += ["  " + line for line in format_bias_table(bias)]
    lines.append(f"wrote {out} (sha256 {fingerprint[:12]}), {TABLE_SUFFIX}, {SUMMARY_SUFFIX}")
    return lines


__all__ = ["SAME_FIELDS", "merge_ratings"]
