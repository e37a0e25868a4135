"""Merging the outputs of ``inpaint --shard i/n`` into the file the unsharded run writes.

The records come in the input's user order, byte for byte as each shard wrote them, so the
merged file has the fingerprint of an unsharded run with the same settings. The failures files
are merged in the order an unsharded run writes them (call kind, then user, then pair), and one
manifest sums the shards' counts and usage and lists the shards it was made from.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from regen_bench.fileio import atomic_write
from regen_bench.inpaint.pipeline import FAILURES_SUFFIX, MANIFEST_SUFFIX, sidecar
from regen_bench.inpaint.plan import CALL_KINDS
from regen_bench.shards import (
    ShardOutput,
    check_same,
    input_file,
    input_user_ids,
    load_outputs,
    merged_lines,
    sum_usage,
    without_place_options,
)

#: Manifest fields that must agree between shards (None: compared as they are).
SAME_FIELDS = {
    "prompt_version": None,
    "prompt_sha256": None,
    "dataset_sha256": None,
    "backend": None,
    "backend_model": None,
    "backend_config": without_place_options,
    "config": None,
    "limit": None,
    "schema_retries": None,
    "reask_temperature": None,
}
#: Counts of the manifest that add up over shards.
SUMMED = ("users", "adjacent_pairs", "eligible_pairs", "critiques", "calls", "cached_calls")


def _failure_rows(outs: Sequence[ShardOutput]) -> list[dict[str, Any]]:
    rows = []
    for o in outs:
        path = sidecar(o.path, FAILURES_SUFFIX)
        if not path.is_file():
            raise ValueError(f"{path}: no such file (every inpaint run writes one)")
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("user_id"), str):
                    raise ValueError("expected an object with a 'user_id'")
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a failure row ({exc})") from None
            rows.append(row)
    return rows


def _ordered(rows: list[dict[str, Any]], order: dict[str, int]) -> Iterator[bytes]:
    """``rows`` in the unsharded order: call kind, then the user's input position (a stable
    sort keeps each user's pairs in order)."""
    kinds = {k: n for n, k in enumerate(CALL_KINDS)}

    def key(row: dict[str, Any]) -> tuple[int, int]:
        return kinds.get(row.get("kind", ""), len(kinds)), order.get(row["user_id"], -1)

    for row in sorted(rows, key=key):
        yield json.dumps(row, ensure_ascii=False, sort_keys=True).encode() + b"\n"


def merge_inpaint(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Merge the outputs of all shards of one inpaint run into ``out`` (plus its manifest and
    failures file); the lines to print. ValueError, with nothing written, on any mismatch."""
    outs = load_outputs(paths, MANIFEST_SUFFIX)
    check_same(outs, SAME_FIELDS)
    source = input_file(outs, dataset)
    limit = outs[0].manifest.get("limit")
    failures = _failure_rows(outs)
    failing = {r["user_id"] for r in failures}
    order: dict[str, int] = {}
    if failing:
        for pos, uid in enumerate(input_user_ids(source, limit)):
            if uid in failing:
                order.setdefault(uid, pos)
    fingerprint = atomic_write(
        out,
        merged_lines(source, limit, outs, "output_sha256"),
        compress=str(out).endswith(".gz"),
    )
    failures_path = sidecar(Path(out), FAILURES_SUFFIX)
    atomic_write(failures_path, _ordered(failures, order))
    first = outs[0].manifest
    manifest = {k: v for k, v in first.items() if k not in SUMMED}
    for k in SUMMED:
        manifest[k] = sum(int(o.manifest.get(k) or 0) for o in outs)
    pairs = manifest["adjacent_pairs"]
    manifest.update(
        {
            "dataset": str(source),
            "dataset_file": str(source),
            "output": str(out),
            "output_sha256": fingerprint,
            "shard": None,
            "critique_coverage": round(manifest["critiques"] / pairs, 6) if pairs else 0.0,
            "failures": dict(
                sum((Counter(o.manifest.get("failures") or {}) for o in outs), Counter())
            ),
            "failures_file": failures_path.name,
            "cache_file": None,
            "usage": sum_usage(o.manifest.get("usage") or {} for o in outs),
            "merged_from": [
                {
                    "output": str(o.path),
                    "shard": o.shard.as_dict(),
                    "output_sha256": o.manifest.get("output_sha256"),
                    "users": o.manifest.get("users"),
                    "calls": o.manifest.get("calls"),
                    "cached_calls": o.manifest.get("cached_calls"),
                    "cache_file": o.manifest.get("cache_file"),
                    "backend_config": o.manifest.get("backend_config"),
                }
                for o in outs
            ],
        }
    )
    atomic_write(
        sidecar(Path(out), MANIFEST_SUFFIX),
        [json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"],
    )
    return [
        f"merged {len(outs)} shards of an inpaint run: {manifest['users']} users, "
        f"{manifest['critiques']} critiques ({manifest['critique_coverage']:.1%} of adjacent "
        f"pairs), {len(failures)} failures",
        f"wrote {out} (sha256 {fingerprint[:12]}; + {MANIFEST_SUFFIX} manifest, {FAILURES_SUFFIX})",
    ]


__all__ = ["SAME_FIELDS", "merge_inpaint"]
