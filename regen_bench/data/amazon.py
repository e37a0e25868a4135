"""Amazon Reviews 2018 raw files -> REGEN-format user sequences (``regen-bench data prepare``).

The rules, in the order they are applied (docs/data-format.md explains them for users):

1. Reviews (``<Category>.json.gz`` or ``<Category>_5.json.gz``) are streamed twice. The first
   pass keeps only (user, item, time, line number) in compact integer arrays; the second reads
   the rating and text of the reviews that survive the filters.
2. Each user's reviews are sorted by ``unixReviewTime``; equal times keep file order (a stable
   sort on the line number), so the same files always give the same sequences.
3. Repeated purchases of an item by the same user are removed, keeping the first. The paper
   uses CALRec's de-duplicated sequences, so "recommend the last item again" never wins.
4. Optional iterative k-core: users and items with fewer than k interactions are removed until
   none is left (users also need ``min_interactions``).
5. Users with fewer than ``min_interactions`` purchases are dropped (default 5).
6. Longer sequences keep their most recent ``max_len`` purchases (default 50).
7. Metadata (``meta_<Category>.json.gz``, JSON or Python-literal lines) is streamed once and
   read only for the items kept; the first line of an asin wins. Items without metadata are
   kept with an empty title (counted), so filtering never depends on metadata coverage.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from regen_bench.data.amazon_meta import (
    Ctx,
    as_object,
    decode_meta_line,
    item_from_meta,
    require_id,
)
from regen_bench.data.amazon_stats import (
    DEFAULT_MAX_LEN,
    DEFAULT_MIN_INTERACTIONS,
    PrepareStats,
)
from regen_bench.data.regen import (
    DataFormatError,
    decode_line,
    iter_lines,
    optional_field,
    require_field,
    write_records,
)
from regen_bench.data.schema import Interaction, Item, UserRecord


class PrepareError(ValueError):
    """``data prepare`` cannot produce a dataset (bad options, nothing left); nothing written."""


# -- raw review lines ---------------------------------------------------------------------------


def review_key(obj: Any, ctx: Ctx) -> tuple[str, str, int]:
    """Check one raw review and return (reviewerID, asin, unixReviewTime).

    Every field the harness uses is checked here, in the first pass, so that a bad line is
    found (and, with ``skip_bad_lines``, skipped) before any filtering.
    """
    obj = as_object(obj, ctx)
    user = require_id(obj, "reviewerID", ctx)
    asin = require_id(obj, "asin", ctx)
    rating = require_field(obj, "overall", (int, float), "", ctx)
    if not 1 <= rating <= 5:
        raise DataFormatError(ctx[0], ctx[1], "overall", f"expected 1-5, got {rating}")
    when = require_field(obj, "unixReviewTime", (int, float), "", ctx)
    if not math.isfinite(when):
        raise DataFormatError(ctx[0], ctx[1], "unixReviewTime", f"expected a time, got {when}")
    optional_field(obj, "summary", str, "", ctx)
    optional_field(obj, "reviewText", str, "", ctx)
    return user, asin, int(when)


# -- the pipeline -------------------------------------------------------------------------------


def _bar(
    path: str | os.PathLike[str], desc: str, progress: bool
) -> tuple[Any, Callable[[int], None]]:
    """A byte-sized progress bar over ``path`` and the callback that moves it."""
    bar = tqdm(
        total=os.path.getsize(path) if os.path.exists(path) else None,
        desc=desc,
        unit="B",
        unit_scale=True,
        disable=not progress,
    )

    def advance(position: int) -> None:
        bar.update(position - bar.n)

    return bar, advance


def _scan_reviews(
    path: str, stats: PrepareStats, skip_bad_lines: bool, progress: bool
) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """First pass: vocabularies and (user, item, time, line) of every good review line."""
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    # array('q') holds 8 bytes per value; a tuple per review would take ~15x more.
    users, items, times, lines = array("q"), array("q"), array("q"), array("q")
    bar, advance = _bar(path, "reviews (pass 1/2)", progress)
    with bar:
        for lineno, raw in iter_lines(path, on_progress=advance):
            if not raw.strip():
                continue
            ctx = (path, lineno)
            try:
                user, asin, when = review_key(decode_line(raw, ctx), ctx)
            except DataFormatError as exc:
                if not skip_bad_lines:
                    raise
                stats.bad_review_lines += 1
                stats.note_bad_line(exc)
                continue
            users.append(user_index.setdefault(user, len(user_index)))
            items.append(item_index.setdefault(asin, len(item_index)))
            times.append(when)
            lines.append(lineno)
    stats.reviews = len(users)
    stats.raw_users, stats.raw_items = len(user_index), len(item_index)
    as_np = [
        np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, np.int64)
        for a in (users, items, times, lines)
    ]
    return user_index, item_index, as_np[0], as_np[1], as_np[2], as_np[3]


def build_sequences(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    lines: np.ndarray,
    stats: PrepareStats,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort, de-duplicate, filter and truncate; return the kept (user, item, time, line) rows,
    grouped by user and oldest first within a user. Fills the drop counts of ``stats``."""
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    # Primary key user, then time; equal times keep file order (line numbers are unique).
    order = np.lexsort((lines, times, users))
    cols = [users[order], items[order], times[order], lines[order]]

    def keep(mask: np.ndarray) -> None:
        for i, col in enumerate(cols):
            cols[i] = col[mask]

    # Repeated purchases: np.unique returns the first occurrence in the sorted (time) order.
    _, first = np.unique(cols[0] * max(n_items, 1) + cols[1], return_index=True)
    mask = np.zeros(len(cols[0]), dtype=bool)
    mask[first] = True
    stats.repeats = int(len(mask) - mask.sum())
    keep(mask)

    if stats.k_core:
        user_min = max(stats.k_core, stats.min_interactions)
        before_users = len(np.unique(cols[0]))
        before_items = len(np.unique(cols[1]))
        before = len(cols[0])
        while len(cols[0]):
            user_count = np.bincount(cols[0], minlength=n_users)
            item_count = np.bincount(cols[1], minlength=n_items)
            drop = (user_count[cols[0]] < user_min) | (item_count[cols[1]] < stats.k_core)
            if not drop.any():
                break
            stats.kcore_rounds += 1
            keep(~drop)
        stats.kcore_users = before_users - len(np.unique(cols[0]))
        stats.kcore_items = before_items - len(np.unique(cols[1]))
        stats.kcore_interactions = before - len(cols[0])

    user_count = np.bincount(cols[0], minlength=n_users)
    short = user_count < stats.min_interactions
    stats.short_users = int((short & (user_count > 0)).sum())
    stats.short_interactions = int(user_count[short].sum())
    keep(~short[cols[0]])

    # Rows are grouped by user in increasing id; the block of user x ends at cumsum(count)[x].
    user_count = np.bincount(cols[0], minlength=n_users)
    ends = np.cumsum(user_count)
    from_end = ends[cols[0]] - 1 - np.arange(len(cols[0]))
    long = user_count > stats.max_len
    stats.truncated_users = int(long.sum())
    stats.truncated_interactions = int((user_count[long] - stats.max_len).sum())
    keep(from_end < stats.max_len)
    return cols[0], cols[1], cols[2], cols[3]


def _read_review_text(
    path: str, lines: np.ndarray, progress: bool
) -> dict[int, tuple[float, str, str]]:
    """Second pass: (rating, summary, text) of the kept review lines, by line number."""
    wanted = np.zeros(int(lines.max()) + 1 if len(lines) else 0, dtype=bool)
    wanted[lines] = True
    out: dict[int, tuple[float, str, str]] = {}
    bar, advance = _bar(path, "reviews (pass 2/2)", progress)
    with bar:
        for lineno, raw in iter_lines(path, on_progress=advance):
            if lineno >= len(wanted):  # past the last kept review: the rest is not needed
                bar.update((bar.total or bar.n) - bar.n)
                break
            if wanted[lineno]:
                obj = decode_line(raw, (path, lineno))
                out[lineno] = (
                    float(obj["overall"]),
                    obj.get("summary") or "",
                    obj.get("reviewText") or "",
                )
    if len(out) != len(lines):
        raise PrepareError(f"{path} changed while it was being read; run data prepare again")
    return out


def read_meta(
    path: str,
    needed: set[str],
    stats: PrepareStats,
    skip_bad_lines: bool = False,
    progress: bool = True,
) -> dict[str, Item]:
    """Items of ``needed`` asins from a metadata file (first line of an asin wins)."""
    found: dict[str, Item] = {}
    bar, advance = _bar(path, "metadata", progress)
    with bar:
        for lineno, raw in iter_lines(path, on_progress=advance):
            if not raw.strip():
                continue
            stats.meta_lines += 1
            ctx = (path, lineno)
            try:
                obj = decode_meta_line(raw, ctx)
                asin = require_id(as_object(obj, ctx), "asin", ctx)
                # Lines of items no kept sequence uses are not checked beyond their asin.
                if asin not in needed:
                    continue
                if asin in found:
                    stats.meta_duplicates += 1
                    continue
                found[asin] = item_from_meta(obj, ctx)
            except DataFormatError as exc:
                if not skip_bad_lines:
                    raise
                stats.bad_meta_lines += 1
                stats.note_bad_line(exc)
    return found


def prepare(
    reviews: str | os.PathLike[str],
    meta: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    min_interactions: int = DEFAULT_MIN_INTERACTIONS,
    max_len: int = DEFAULT_MAX_LEN,
    k_core: int | None = None,
    skip_bad_lines: bool = False,
    progress: bool = True,
) -> PrepareStats:
    """Turn Amazon 2018 reviews + metadata into a REGEN-format file at ``out`` (atomically).

    Narratives are empty and critiques None: the result is the input of inpainting, and a
    dataset for the ``sequential`` task as it stands. Raises DataFormatError (file, line,
    field) on a bad line unless ``skip_bad_lines``, and PrepareError on bad options or when no
    user is left; in both cases nothing is written.
    """
    if min_interactions < 1:
        raise PrepareError(f"--min-interactions must be at least 1, got {min_interactions}")
    if max_len < 1:
        raise PrepareError(f"--max-len must be at least 1, got {max_len}")
    if k_core is not None and k_core < 1:
        raise PrepareError(f"--k-core must be at least 1, got {k_core}")
    reviews, meta = str(reviews), str(meta)
    for name, src in (("--reviews", reviews), ("--meta", meta)):
        if not os.path.isfile(src):
            raise FileNotFoundError(f"{name} file '{src}' does not exist")
        if os.path.exists(out) and os.path.samefile(src, out):
            raise PrepareError(f"--out '{out}' is the {name} file; choose another path")
    stats = PrepareStats(min_interactions=min_interactions, max_len=max_len, k_core=k_core)

    user_index, item_index, users, items, times, lines = _scan_reviews(
        reviews, stats, skip_bad_lines, progress
    )
    users, items, times, lines = build_sequences(users, items, times, lines, stats)
    if not len(users):
        raise PrepareError(
            f"no user has {min_interactions} or more interactions after filtering "
            f"{stats.reviews:,} reviews of {reviews}; nothing written"
        )
    user_names = np.array(list(user_index), dtype=object)
    asins = list(item_index)
    del user_index, item_index
    texts = _read_review_text(reviews, lines, progress)

    kept_items = np.unique(items)
    catalog = read_meta(meta, {asins[i] for i in kept_items}, stats, skip_bad_lines, progress)
    for i in kept_items:
        if asins[i] not in catalog:
            catalog[asins[i]] = Item(asin=asins[i], title="")
            stats.items_without_meta += 1

    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    stops = np.r_[starts[1:], len(users)]
    # Users are written in reviewerID order: the file does not depend on the input's order.
    by_name = np.argsort(user_names[users[starts]], kind="stable")
    stats.users, stats.items, stats.interactions = len(starts), len(kept_items), len(users)

    def records() -> Iterator[UserRecord]:
        for b in tqdm(by_name, desc="write", unit="user", disable=not progress):
            rows = range(starts[b], stops[b])
            interactions = []
            for r in rows:
                rating, summary, text = texts[int(lines[r])]
                interactions.append(
                    Interaction(
                        item_id=asins[items[r]],
                        timestamp=int(times[r]),
                        rating=rating,
                        summary=summary,
                        text=text,
                    )
                )
            yield UserRecord(
                user_id=str(user_names[users[starts[b]]]),
                interactions=interactions,
                items={it.item_id: catalog[it.item_id] for it in interactions},
            )

    stats.fingerprint = write_records(records(), out)
    stats.path = str(Path(out))
    return stats
