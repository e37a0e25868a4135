"""Shards: one inpainting or rating run spread over machines, and the merge of their outputs.

``--shard i/n`` gives a run the users whose stable hash falls in shard ``i`` of ``n``
(:func:`shard_index`: sha256 of the user id, mod ``n``), so a user's shard depends on nothing
but its id and ``n``: not on the file order, the other users or the machine. Each shard is an
ordinary run with its own output, cache and manifest, resumable on its own.

:func:`merge` joins the outputs of all ``n`` shards into one REGEN file, in the input file's
user order, so that it is byte for byte what the unsharded run with the same settings writes.
It reads each shard's manifest first and refuses, writing nothing, shards of different runs
(prompts, model, seed, input, options, shard count), a missing or duplicated shard, and any
shard whose records are not exactly the users the partition gives it. See docs/scaling.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regen_bench.data.regen import iter_lines
from regen_bench.fileio import read_json

#: Options that only say where or how the calls ran (which server, threads, the client's
#: timeouts and retries, the price), not what was asked: shards may differ in them (one server
#: per node).
PLACE_OPTIONS: frozenset[str] = frozenset(
    {
        "base_url",
        "organization",
        "num_threads",
        "price_per_mtok",
        "concurrency",
        "max_retries",
        "backoff_base_s",
        "backoff_max_s",
        "timeout_s",
        "timeout_per_token_s",
    }
)


def shard_index(user_id: str, count: int) -> int:
    """The shard (1-based) of ``user_id`` among ``count``: sha256 of the id, mod ``count``."""
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based), as ``--shard index/count`` says."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(
                f"--shard expects i/n with 1 <= i <= n (e.g. 2/4), got '{self.index}/{self.count}'"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` -> Shard; ValueError naming the problem."""
        head, sep, tail = text.partition("/")
        try:
            i, n = int(head), int(tail)
        except ValueError:
            i = n = 0
        if not sep or n < 1 or not 1 <= i <= n:
            raise ValueError(f"--shard expects i/n with 1 <= i <= n (e.g. 2/4), got '{text}'")
        return cls(i, n)

    def owns(self, user_id: str) -> bool:
        return shard_index(user_id, self.count) == self.index

    def as_dict(self) -> dict[str, Any]:
        """What a manifest records: the shard, and how users were dealt."""
        return {"index": self.index, "count": self.count, "partition": "sha256(user_id) mod count"}

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def content_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of the decompressed content of a REGEN-format file (as ``write_records`` returns
    and ``data info`` prints, placeholders aside)."""
    digest = hashlib.sha256()
    for _ in iter_lines(path, digest):
        pass
    return digest.hexdigest()


def user_id_of(raw: bytes, where: str) -> str:
    """The ``reviewer_id`` of one raw REGEN line; ValueError naming ``where`` if it has none."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: not a JSON record ({exc})") from None
    uid = value.get("reviewer_id") if isinstance(value, dict) else None
    if not isinstance(uid, str):
        raise ValueError(f"{where}: field 'reviewer_id': expected a string")
    return uid


# -- merging ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardOutput:
    """One shard's output file, its manifest and the shard it says it is."""

    path: Path
    manifest_path: Path
    manifest: dict[str, Any]
    shard: Shard


def load_outputs(paths: Sequence[str | os.PathLike[str]], suffix: str) -> list[ShardOutput]:
    """Each output with its manifest ``<path><suffix>``; ValueError for a file that is not a
    shard (no manifest, or a manifest without a shard), or a shard set that is incomplete."""
    if not paths:
        raise ValueError("merge: no shard outputs given")
    outs = []
    for p in paths:
        path = Path(p)
        mpath = Path(f"{path}{suffix}")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        doc = read_json(mpath)
        if not isinstance(doc, dict):
            raise ValueError(f"{mpath}: not a manifest (expected a JSON object)")
        spec = doc.get("shard")
        if spec is None:
            raise ValueError(f"{mpath}: not a shard (the run was made without --shard)")
        try:
            shard = Shard(int(spec["index"]), int(spec["count"]))
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{mpath}: field 'shard': expected {{index, count}}") from None
        outs.append(ShardOutput(path, mpath, doc, shard))
    counts = {o.shard.count for o in outs}
    if len(counts) > 1:
        first = outs[0]
        other = next(o for o in outs if o.shard.count != first.shard.count)
        raise ValueError(
            f"{other.manifest_path}: shard {other.shard} of a run in {other.shard.count} shards, "
            f"but {first.manifest_path} is shard {first.shard}: shard counts differ"
        )
    count = outs[0].shard.count
    seen: dict[int, ShardOutput] = {}
    for o in outs:
        if o.shard.index in seen:
            raise ValueError(
                f"{o.manifest_path}: shard {o.shard} given twice (also {seen[o.shard.index].path})"
            )
        seen[o.shard.index] = o
    missing = [str(i) for i in range(1, count + 1) if i not in seen]
    if missing:
        raise ValueError(f"merge: shard(s) {', '.join(missing)} of {count} missing")
    return sorted(outs, key=lambda o: o.shard.index)


def check_same(
    outs: Sequence[ShardOutput], fields: Mapping[str, Callable[[Any], Any] | None]
) -> None:
    """ValueError naming the first manifest field (after its normaliser) that differs."""
    first = outs[0]
    for name, norm in fields.items():
        want = first.manifest.get(name)
        want = norm(want) if norm else want
        for o in outs[1:]:
            got = o.manifest.get(name)
            got = norm(got) if norm else got
            if got != want:
                raise ValueError(
                    f"{o.manifest_path}: '{name}' is {json.dumps(got)[:200]}, "
                    f"but {json.dumps(want)[:200]} in {first.manifest_path}: "
                    "shards of different runs cannot be merged"
                )


def without_place_options(options: Any) -> Any:
    """Backend options without the :data:`PLACE_OPTIONS` (compared between shards)."""
    if not isinstance(options, dict):
        return options
    return {k: v for k, v in options.items() if k not in PLACE_OPTIONS}


def input_file(outs: Sequence[ShardOutput], dataset: str | os.PathLike[str] | None) -> Path:
    """The input file the shards were made from (``dataset``, else the manifest's), checked
    against the sha256 recorded in the shards' manifests."""
    path = Path(dataset) if dataset is not None else Path(str(outs[0].manifest.get("dataset_file")))
    if not path.is_file():
        raise ValueError(
            f"{path}: the input file of the shards is not here; name it with --dataset"
        )
    want = outs[0].manifest.get("dataset_sha256")
    got = content_sha256(path)
    if got != want:
        raise ValueError(
            f"{path}: content sha256 {got[:12]} is not the input of the shards "
            f"({str(want)[:12]} in {outs[0].manifest_path})"
        )
    return path


def input_user_ids(path: Path, limit: int | None) -> Iterator[str]:
    """The user ids of the first ``limit`` (all when None) users of a REGEN-format file."""
    n = 0
    for lineno, raw in iter_lines(path):
        if limit is not None and n >= limit:
            return
        if not raw.strip():
            continue
        n += 1
        yield user_id_of(raw, f"{path}:{lineno}")


def merged_lines(
    input_path: Path,
    limit: int | None,
    outs: Sequence[ShardOutput],
    digest_field: str,
) -> Iterator[bytes]:
    """The shards' raw lines in the input's user order (first ``limit`` users).

    Each shard must hold exactly its users of that range, in input order, and have the content
    sha256 its manifest records in ``digest_field``; ValueError names the shard file and line
    where it does not (raised before the last line, so an atomic writer keeps nothing).
    """
    count = outs[0].shard.count
    hashes = {o.path: hashlib.sha256() for o in outs}
    readers = {
        o.shard.index: ((n, raw) for n, raw in iter_lines(o.path, hashes[o.path]) if raw.strip())
        for o in outs
    }
    by_index = {o.shard.index: o for o in outs}
    for k, uid in enumerate(input_user_ids(input_path, limit), start=1):
        i = shard_index(uid, count)
        o = by_index[i]
        got = next(readers[i], None)
        if got is None:
            raise ValueError(
                f"{o.path}: ends before user '{uid}' (user {k} of {input_path}), "
                f"which belongs to shard {i}/{count}: the shard is incomplete"
            )
        lineno, raw = got
        found = user_id_of(raw, f"{o.path}:{lineno}")
        if found != uid:
            raise ValueError(
                f"{o.path}:{lineno}: user '{found}' where shard {i}/{count} should hold "
                f"'{uid}' (user {k} of {input_path}): not a shard of this input"
            )
        yield raw
    for o in outs:
        extra = next(readers[o.shard.index], None)
        if extra is not None:
            lineno, raw = extra
            raise ValueError(
                f"{o.path}:{lineno}: user '{user_id_of(raw, f'{o.path}:{lineno}')}' is not "
                f"among the input's users of shard {o.shard}"
            )
    for o in outs:
        if hashes[o.path].hexdigest() != o.manifest.get(digest_field):
            raise ValueError(
                f"{o.path}: content differs from the sha256 in {o.manifest_path} "
                "(the file was changed after its run)"
            )


def sum_usage(usages: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """LLM usage of several runs: counts, tokens, cost and client seconds summed."""
    usages = list(usages)
    out: dict[str, Any] = dict(usages[0]) if usages else {}
    for key in out:
        values = [u.get(key) for u in usages]
        if key in ("backend", "model"):
            continue
        if any(v is None for v in values):
            out[key] = None
        elif all(isinstance(v, (int, float)) for v in values):
            total = sum(v for v in values if isinstance(v, (int, float)))
            out[key] = round(total, 4) if isinstance(total, float) else total
    wall = out.get("wall_s")
    if isinstance(wall, (int, float)):
        done = out.get("completion_tokens", 0)
        out["tokens_per_s"] = round(done / wall, 2) if wall > 0 else 0.0
    return out


def output_kind(path: str | os.PathLike[str]) -> str:
    """``inpaint`` or ``rate``: which command wrote ``path``, from the manifest beside it."""
    from regen_bench.inpaint.pipeline import MANIFEST_SUFFIX
    from regen_bench.rating.pipeline import SUMMARY_SUFFIX

    found = [
        kind
        for kind, suffix in (("inpaint", MANIFEST_SUFFIX), ("rate", SUMMARY_SUFFIX))
        if Path(f"{path}{suffix}").is_file()
    ]
    if len(found) != 1:
        raise ValueError(
            f"{path}: expected exactly one of {path}{MANIFEST_SUFFIX} (inpaint) or "
            f"{path}{SUMMARY_SUFFIX} (rate) beside it, found "
            + (" and ".join(found) if found else "none")
        )
    return found[0]


def merge(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Merge the outputs of every shard of one ``inpaint`` or ``rate`` run into ``out``; the
    lines to print. Nothing is written unless every check passes."""
    if not paths:
        raise ValueError("merge: no shard outputs given")
    for p in paths:
        if not Path(p).is_file():
            raise ValueError(f"{p}: no such file")
    kinds = {str(p): output_kind(p) for p in paths}
    if len(set(kinds.values())) > 1:
        raise ValueError(
            "merge: outputs of inpaint and rate mixed: "
            + ", ".join(f"{p} ({k})" for p, k in kinds.items())
        )
    target = Path(out).resolve()
    for p in paths:
        if Path(p).resolve() == target:
            raise ValueError(
                f"{out}: the merged file would overwrite a shard; choose another --out"
            )
    if next(iter(kinds.values())) == "inpaint":
        from regen_bench.inpaint.merge import merge_inpaint

        return merge_inpaint(paths, out, dataset=dataset)
    from regen_bench.rating.merge import merge_ratings

    return merge_ratings(paths, out, dataset=dataset)


__all__ = [
    "PLACE_OPTIONS",
    "Shard",
    "ShardOutput",
    "check_same",
    "content_sha256",
    "input_file",
    "input_user_ids",
    "load_outputs",
    "merge",
    "merged_lines",
    "output_kind",
    "shard_index",
    "sum_usage",
    "without_place_options",
]
