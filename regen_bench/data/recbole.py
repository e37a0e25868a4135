"""RecBole atomic files -> REGEN-format user sequences (`regen-bench data import`).

The rules (docs/data-format.md explains them for users):

1. ``DIR/<name>.inter`` is read, ``<name>`` being the folder's name (or the one ``.inter`` file
   in it); ``<name>.item`` gives the item text, ``<name>.user`` is checked and counted only (the
   REGEN format has no user attributes).
2. Each user's interactions are ordered by timestamp; equal timestamps keep file order. This is
   RecBole's rule: ``Dataset.build`` sorts the whole ``.inter`` table by time with a stable
   sort (``Interaction.sort``: ``np.argsort(kind="stable")``), and the sequential dataset then
   sorts by (user, time), stably again. RecBole sorts its float32 copy of the timestamp, though,
   so timestamps a few seconds apart can tie there: ``time_key`` reproduces that exactly
   (:func:`time_keys`). Without a time column the file order is the time order.
3. Nothing is de-duplicated or filtered (RecBole's defaults ``rm_dup_inter: ~``, no
   ``*_inter_num_interval``), except users with fewer than ``--min-interactions``.
4. Item columns map to the REGEN item fields by name (:data:`ITEM_FIELDS`); items without an
   ``.item`` row keep an empty title; ``.item`` rows of items nobody interacted with are not
   part of the catalog (the REGEN format holds items inside user histories).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regen_bench.data.recbole_atomic import (
    AtomicFile,
    AtomicFormatError,
    Column,
    Value,
    open_atomic,
)
from regen_bench.data.recbole_stats import (
    DEFAULT_MIN_INTERACTIONS,
    IMPLICIT_RATING,
    ImportStats,
)
from regen_bench.data.regen import write_records
from regen_bench.data.schema import Interaction, Item, UserRecord

DEFAULT_USER_FIELD = "user_id"
DEFAULT_ITEM_FIELD = "item_id"
DEFAULT_TIME_FIELD = "timestamp"
DEFAULT_RATING_FIELD = "rating"
#: ``--time-key`` choices: the exact timestamp (default), or RecBole's own sort key: its float32
#: copy of the timestamp, min-max normalised first in the ``-normalized`` variant.
TIME_KEYS = ("exact", "float32", "float32-normalized")

#: Item columns read into the REGEN item fields: the first column of the ``.item`` header whose
#: lower-cased name matches wins. ``title`` matches any name *containing* ``title``
#: (``movie_title``, ``book_title``); the others match whole names. Add a name here to map it.
ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "categories": ("categories", "category", "genre", "genres", "class", "classes"),
    "description": ("description", "desc", "summary"),
    "price": ("price",),
    "brand": ("brand", "manufacturer"),
}


class RecboleImportError(ValueError):
    """The folder or the options cannot give a dataset (missing file, nothing left)."""


@dataclass
class _Row:
    time: float
    item: str
    rating: float
    key: float = 0.0  # what the order sorts by (see time_keys)


def time_keys(times: np.ndarray, how: str) -> np.ndarray:
    """Sort keys of float64 timestamps under ``--time-key`` ``how`` (one of :data:`TIME_KEYS`).

    RecBole keeps float columns as float32 tensors and sorts those, so timestamps closer than a
    float32 step (64 s at today's Unix times; much less after min-max normalisation, which its
    ml-100k config turns on with ``normalize_all: True``) tie and keep file order.
    """
    if how == "exact":
        return times
    if how not in TIME_KEYS:
        raise RecboleImportError(f"--time-key must be one of {', '.join(TIME_KEYS)}, got {how}")
    if how == "float32-normalized":
        low, high = times.min(), times.max()
        times = np.ones_like(times) if high == low else (times - low) / (high - low)
    return times.astype(np.float32)


def find_atomic_files(folder: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """``(inter, item, user)`` paths of a RecBole dataset folder (item and user may not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"'{folder}' is not a folder (expected a RecBole dataset folder)")
    inter = folder / f"{folder.resolve().name}.inter"
    if not inter.is_file():
        found = sorted(folder.glob("*.inter"))
        if len(found) != 1:
            listed = ", ".join(p.name for p in found) or "none"
            raise RecboleImportError(
                f"expected {inter} (RecBole names files after their folder); .inter files "
                f"in {folder}: {listed}"
            )
        inter = found[0]
    return inter, inter.with_suffix(".item"), inter.with_suffix(".user")


def _read_inter(
    inter: AtomicFile,
    user_field: str,
    item_field: str,
    time_field: str,
    rating_field: str | None,
    stats: ImportStats,
) -> dict[str, list[_Row]]:
    """Interactions grouped by user (users in order of first appearance), in file order."""
    user_col = inter.require(user_field, ("token",))
    item_col = inter.require(item_field, ("token",))
    time_col = None
    if inter.column(time_field) is not None:
        time_col = inter.require(time_field, ("float",))
    rating_col = None
    if rating_field is not None and inter.column(rating_field) is not None:
        rating_col = inter.require(rating_field, ("float",))
    stats.has_time = time_col is not None
    if rating_col is None and stats.ratings == "column":
        stats.ratings = "none"
    users: dict[str, list[_Row]] = {}
    items: set[str] = set()
    for lineno, values in inter.rows():
        user = _token(values, user_col, inter.path, lineno)
        item = _token(values, item_col, inter.path, lineno)
        time = 0.0
        if time_col is not None:
            time = _finite(values, time_col, inter.path, lineno)
        rating = IMPLICIT_RATING
        if rating_col is not None:
            rating = _finite(values, rating_col, inter.path, lineno)
            if not 1 <= rating <= 5:
                raise AtomicFormatError(
                    inter.path,
                    lineno,
                    rating_col.where,
                    f"expected a rating 1-5 (the REGEN scale), got {rating:g}; "
                    "pass --ignore-ratings to import the interactions without their ratings",
                )
        users.setdefault(user, []).append(_Row(time, item, rating))
        items.add(item)
        stats.rows += 1
    if not stats.rows:
        raise RecboleImportError(f"{inter.path} has no interactions")
    stats.raw_users, stats.raw_items = len(users), len(items)
    return users


def _token(values: list[Value], col: Column, path: Path, lineno: int) -> str:
    value = values[col.index]
    assert isinstance(value, str)
    if not value:
        raise AtomicFormatError(path, lineno, col.where, "empty (an id is required)")
    return value


def _finite(values: list[Value], col: Column, path: Path, lineno: int) -> float:
    value = values[col.index]
    assert isinstance(value, float)
    if not math.isfinite(value):
        got = "an empty cell" if math.isnan(value) else str(value)
        raise AtomicFormatError(path, lineno, col.where, f"expected a number, got {got}")
    return value


def _text(value: Value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if isinstance(value, float) and math.isnan(value) else str(value)


def _item_columns(item: AtomicFile, item_field: str, stats: ImportStats) -> dict[str, Column]:
    """REGEN item field -> ``.item`` column, by :data:`ITEM_FIELDS`; the rest are ignored."""
    mapped: dict[str, Column] = {}
    for target, names in ITEM_FIELDS.items():
        for col in item.columns:
            low = col.name.lower()
            hit = names[0] in low if target == "title" else low in names
            if hit and col.name != item_field and col not in mapped.values():
                mapped[target] = col
                break
    used = {item_field, *(c.name for c in mapped.values())}
    stats.mapped = {k: c.name for k, c in mapped.items()}
    stats.ignored_columns = [c.name for c in item.columns if c.name not in used]
    return mapped


def _make_item(asin: str, values: list[Value], mapped: dict[str, Column]) -> Item:
    def get(target: str) -> Value | None:
        col = mapped.get(target)
        return None if col is None else values[col.index]

    cats = get("categories")
    if isinstance(cats, list):
        categories = tuple(str(c) for c in cats)
    else:
        categories = (_text(cats),) if cats is not None and _text(cats) else ()
    price_value = get("price")
    price = None
    if price_value is not None:
        try:
            price = float(_text(price_value))
        except ValueError:
            price = None
        if price is not None and (not math.isfinite(price) or price <= 0):
            price = None  # the REGEN format has no negative prices; 0 means missing
    brand = get("brand")
    return Item(
        asin=asin,
        title=_text(get("title") or ""),
        categories=categories,
        description=_text(get("description") or ""),
        price=price,
        brand=(_text(brand) or None) if brand is not None else None,
    )


def _read_items(
    path: Path, item_field: str, wanted: set[str], stats: ImportStats
) -> dict[str, Item]:
    """The catalog rows of the items in ``wanted``; the first row of an item wins."""
    item_file = open_atomic(path)
    id_col = item_file.require(item_field, ("token",))
    mapped = _item_columns(item_file, item_field, stats)
    found: dict[str, Item] = {}
    seen: set[str] = set()
    for lineno, values in item_file.rows():
        asin = _token(values, id_col, path, lineno)
        if asin in seen:
            stats.duplicate_item_rows += 1
            continue
        seen.add(asin)
        if asin in wanted:
            found[asin] = _make_item(asin, values, mapped)
        else:
            stats.unused_item_rows += 1
    return found


def _check_users(path: Path, user_field: str, stats: ImportStats) -> None:
    user_file = open_atomic(path)
    id_col = user_file.require(user_field, ("token",))
    for lineno, values in user_file.rows():
        _token(values, id_col, path, lineno)
        stats.user_rows += 1


def import_recbole(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    min_interactions: int = DEFAULT_MIN_INTERACTIONS,
    user_field: str = DEFAULT_USER_FIELD,
    item_field: str = DEFAULT_ITEM_FIELD,
    time_field: str = DEFAULT_TIME_FIELD,
    rating_field: str = DEFAULT_RATING_FIELD,
    ignore_ratings: bool = False,
    require_item_file: bool = True,
    time_key: str = "exact",
) -> ImportStats:
    """Convert the RecBole dataset in ``folder`` into a REGEN-format file at ``out``.

    Every file is read and checked before anything is written, and the file is written
    atomically, so a bad file (AtomicFormatError: file, line, column) or a bad option
    (RecboleImportError) leaves ``out`` as it was.
    """
    if min_interactions < 1:
        raise RecboleImportError(f"--min-interactions must be at least 1, got {min_interactions}")
    inter_path, item_path, user_path = find_atomic_files(folder)
    if os.path.abspath(out) in {os.path.abspath(p) for p in (inter_path, item_path, user_path)}:
        raise RecboleImportError(f"--out '{out}' is an input file; choose another path")
    if require_item_file and not item_path.is_file():
        raise RecboleImportError(
            f"no item file {item_path} (item titles and categories); pass --no-item-file to "
            "import the interactions alone"
        )
    if time_key not in TIME_KEYS:
        raise RecboleImportError(
            f"--time-key must be one of {', '.join(TIME_KEYS)}, got {time_key}"
        )
    stats = ImportStats(
        inter_path=str(inter_path),
        min_interactions=min_interactions,
        time_key=time_key,
        ratings="ignored" if ignore_ratings else "column",
    )
    users = _read_inter(
        open_atomic(inter_path),
        user_field,
        item_field,
        time_field,
        None if ignore_ratings else rating_field,
        stats,
    )
    kept: dict[str, list[_Row]] = {}
    for user, rows in users.items():
        if len(rows) < min_interactions:
            stats.short_users += 1
            stats.short_interactions += len(rows)
            continue
        kept[user] = rows
    if not kept:
        raise RecboleImportError(
            f"no user has {min_interactions} or more interactions in {inter_path}; nothing written"
        )
    rows_kept = [r for rows in kept.values() for r in rows]
    keys = time_keys(np.array([r.time for r in rows_kept], dtype=np.float64), time_key)
    for row, key in zip(rows_kept, keys.tolist(), strict=True):
        row.key = key
    for user, rows in kept.items():
        # sorted() is stable: equal keys keep file order, as RecBole's sort does.
        kept[user] = sorted(rows, key=lambda r: r.key)
    wanted = {r.item for r in rows_kept}
    catalog: dict[str, Item] = {}
    if item_path.is_file():
        stats.item_path = str(item_path)
        catalog = _read_items(item_path, item_field, wanted, stats)
    if user_path.is_file():
        stats.user_path = str(user_path)
        _check_users(user_path, user_field, stats)
    for asin in wanted - catalog.keys():
        catalog[asin] = Item(asin=asin, title="")
        stats.items_without_row += stats.item_path is not None
    stats.users, stats.items = len(kept), len(wanted)
    stats.interactions = sum(len(rows) for rows in kept.values())
    stats.tied = sum(_tied(rows) for rows in kept.values())
    stats.fingerprint = write_records(_records(kept, catalog), out)
    stats.path = str(out)
    return stats


def _tied(rows: Sequence[_Row]) -> int:
    """Interactions whose sort key equals a neighbour's (rows are sorted)."""
    return sum(
        1
        for i, r in enumerate(rows)
        if (i and rows[i - 1].key == r.key) or (i + 1 < len(rows) and rows[i + 1].key == r.key)
    )


def _records(users: dict[str, list[_Row]], catalog: dict[str, Item]) -> Iterator[UserRecord]:
    for user, rows in users.items():
        yield UserRecord(
            user_id=user,
            interactions=[Interaction(r.item, int(r.time), r.rating) for r in rows],
            items={r.item: catalog[r.item] for r in rows},
        )
