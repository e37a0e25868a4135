"""Compact columnar storage of a dataset: flat numpy arrays, memory-mapped from a folder.

One streaming pass over the user records builds flat numpy arrays: per-interaction item
indices (int32), timestamps (int64) and ratings (float32) with per-user offsets, catalog
columns, and every text field (user ids, asins, titles, descriptions, reviews, critiques,
narratives) as one UTF-8 blob plus int64 offsets and a null mask. Opening a folder memory-maps
these files (``np.load(mmap_mode="r")``), so it costs milliseconds and almost no memory
whatever the file size; text is decoded only when a user or item is looked at. Where such
folders live and when one is trusted: :mod:`regen_bench.data.store_cache`.

Plain ``.npy`` files were chosen over Arrow (``datasets``/``pyarrow``): both memory-map
without copying, but numpy is already a core dependency while ``pyarrow`` is an optional extra,
and the access pattern here is "slice of a user" (offset arithmetic), not columnar queries.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from regen_bench.data import placeholders
from regen_bench.data.regen import ReadReport
from regen_bench.data.schema import NARRATIVE_TYPES, Item, Narratives, UserRecord

#: Bump when the layout changes: older caches are then rebuilt. (2: critique placeholders
#: dropped while building, their counts in the read report.)
STORE_VERSION = 2
#: Joins category levels inside the categories text column (cannot occur in a level name).
_LEVEL_SEP = "\x1f"

USER_TEXT = ("user_id", *(f"narrative.{t}" for t in NARRATIVE_TYPES))
INTERACTION_TEXT = ("summary", "text", "critique")
ITEM_TEXT = ("asin", "title", "description", "brand", "categories")
_ARRAYS = {
    "user_offsets": np.int64,
    "items": np.int32,
    "timestamps": np.int64,
    "ratings": np.float32,
    "price": np.float64,
}


class StoreError(ValueError):
    """A cache folder is incomplete or inconsistent (it is then rebuilt)."""


class TextColumn:
    """Strings stored as one UTF-8 blob with offsets; ``None`` where the null mask says so."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, null: np.ndarray):
        # Plain ndarray views of the (memory-mapped) buffers: np.memmap's Python-level
        # __getitem__ made reading one user's strings 3x slower, for no benefit.
        self.blob, self.offsets, self.null = (np.asarray(a) for a in (blob, offsets, null))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str | None:
        if self.null[i]:
            return None
        return bytes(self.blob[self.offsets[i] : self.offsets[i + 1]]).decode("utf-8")

    def text(self, i: int) -> str:
        """The string at ``i``, ``""`` for null."""
        return self[i] or ""

    def slice(self, start: int, stop: int) -> tuple[str | None, ...]:
        """Strings ``start..stop-1`` (one blob read for the whole range)."""
        offs = self.offsets[start : stop + 1].tolist()
        if len(offs) < 2:
            return ()
        base = offs[0]
        raw = bytes(self.blob[base : offs[-1]])
        null = self.null[start:stop].tolist()
        return tuple(
            None if null[k] else raw[offs[k] - base : offs[k + 1] - base].decode()
            for k in range(len(offs) - 1)
        )


class _TextWriter:
    """Appends strings to a byte sink, remembering offsets and nulls (streaming build)."""

    def __init__(self, sink: IO[bytes]):
        self.sink = sink
        self.offsets = array("q", [0])
        self.null = bytearray()
        self.size = 0

    def add(self, value: str | None) -> None:
        if value:
            data = value.encode("utf-8")
            self.sink.write(data)
            self.size += len(data)
        self.offsets.append(self.size)
        self.null.append(value is None)


class Store:
    """The columns of one dataset (memory-mapped when opened from a cache folder)."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        text: dict[str, TextColumn],
        report: ReadReport,
        meta: dict[str, Any] | None = None,
    ):
        # ndarray views, not np.memmap (see TextColumn): still mapped, faster to index.
        self.user_offsets = np.asarray(arrays["user_offsets"])
        self.items = np.asarray(arrays["items"])
        self.timestamps = np.asarray(arrays["timestamps"])
        self.ratings = np.asarray(arrays["ratings"])
        self.price = np.asarray(arrays["price"])
        self.text = text
        self.report = report
        self.meta = meta or {}
        self.path: Path | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_offsets) - 1

    @property
    def n_items(self) -> int:
        return len(self.price)

    @property
    def fingerprint(self) -> str:
        """The content's sha256, mixed with the placeholder strings dropped if any (see
        :func:`regen_bench.data.placeholders.fingerprint`)."""
        return placeholders.fingerprint(self.report.sha256, self.report.placeholder_critiques)

    def lengths(self) -> np.ndarray:
        """Purchases per user (int64)."""
        return np.diff(self.user_offsets)

    def item(self, idx: int) -> Item:
        t = self.text
        cats = t["categories"].text(idx)
        price = float(self.price[idx])
        return Item(
            asin=t["asin"].text(idx),
            title=t["title"].text(idx),
            categories=tuple(cats.split(_LEVEL_SEP)) if cats else (),
            description=t["description"].text(idx),
            price=None if np.isnan(price) else price,
            brand=t["brand"][idx],
        )

    def narratives(self, user: int) -> Narratives:
        return Narratives(**{n: self.text[f"narrative.{n}"][user] for n in NARRATIVE_TYPES})

    def check(self) -> None:
        """Raise StoreError unless every column has the length the others imply."""
        n_users, n_inter, n_items = self.n_users, len(self.items), self.n_items
        if n_users < 0 or (n_users and int(self.user_offsets[-1]) != n_inter):
            raise StoreError("user offsets do not match the interactions")
        for name, want in (("timestamps", n_inter), ("ratings", n_inter)):
            if len(getattr(self, name)) != want:
                raise StoreError(f"{name}: {len(getattr(self, name))} rows, expected {want}")
        sizes = {**dict.fromkeys(USER_TEXT, n_users), **dict.fromkeys(INTERACTION_TEXT, n_inter)}
        sizes.update(dict.fromkeys(ITEM_TEXT, n_items))
        for name, want in sizes.items():
            col = self.text[name]
            if len(col) != want or len(col.null) != want:
                raise StoreError(f"text column {name}: {len(col)} rows, expected {want}")
            if want and int(col.offsets[-1]) != len(col.blob):
                raise StoreError(f"text column {name}: blob size does not match its offsets")
        if self.meta.get("users", n_users) != n_users:
            raise StoreError("user count differs from meta.json")


def build_store(records: Iterable[UserRecord], out_dir: Path | None = None) -> Store:
    """One pass over ``records`` into columns: files in ``out_dir``, else in memory.

    ``report`` of the result is a fresh :class:`ReadReport`: a caller that reads a file sets
    the report it filled while reading (or, for a cache folder, records it in ``meta.json``).
    """
    sinks: dict[str, IO[bytes]] = {}
    for name in (*USER_TEXT, *INTERACTION_TEXT, *ITEM_TEXT):
        sinks[name] = open(out_dir / f"{name}.bin", "wb") if out_dir else io.BytesIO()  # noqa: SIM115
    try:
        writers = {name: _TextWriter(sink) for name, sink in sinks.items()}
        user_offsets = array("q", [0])
        items, timestamps, ratings, price = array("i"), array("q"), array("f"), array("d")
        index: dict[str, int] = {}
        for rec in records:
            for asin, item in rec.items.items():
                if asin not in index:  # the first metadata seen wins
                    index[asin] = len(index)
                    writers["asin"].add(item.asin)
                    writers["title"].add(item.title)
                    writers["description"].add(item.description)
                    writers["brand"].add(item.brand)
                    writers["categories"].add(_LEVEL_SEP.join(item.categories))
                    price.append(np.nan if item.price is None else item.price)
            for inter in rec.interactions:
                items.append(index[inter.item_id])
                timestamps.append(inter.timestamp)
                ratings.append(inter.rating)
                writers["summary"].add(inter.summary)
                writers["text"].add(inter.text)
                writers["critique"].add(inter.critique)
            user_offsets.append(len(items))
            writers["user_id"].add(rec.user_id)
            for n in NARRATIVE_TYPES:
                writers[f"narrative.{n}"].add(getattr(rec.narratives, n))
    finally:
        for sink in sinks.values():
            if out_dir:
                sink.close()
    arrays: dict[str, np.ndarray] = {
        "user_offsets": np.frombuffer(user_offsets, np.int64),
        "items": np.frombuffer(items, np.int32),
        "timestamps": np.frombuffer(timestamps, np.int64),
        "ratings": np.frombuffer(ratings, np.float32),
        "price": np.frombuffer(price, np.float64),
    }
    text = {}
    for name, w in writers.items():
        offsets = np.frombuffer(w.offsets, np.int64)
        null = np.frombuffer(bytes(w.null), np.bool_)
        if out_dir:
            np.save(out_dir / f"{name}.offsets.npy", offsets)
            np.save(out_dir / f"{name}.null.npy", null)
            blob = np.empty(0, np.uint8)  # reopened memory-mapped by open_store
        else:
            blob = np.frombuffer(sinks[name].getvalue(), np.uint8)  # type: ignore[attr-defined]
        text[name] = TextColumn(blob, offsets, null)
    if out_dir:
        for name, arr in arrays.items():
            np.save(out_dir / f"{name}.npy", arr)
    return Store(arrays, text, ReadReport())


def report_to_json(report: ReadReport) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        out[f.name] = dict(value) if isinstance(value, Counter) else value
    return out


def _report_from_json(data: dict[str, Any]) -> ReadReport:
    report = ReadReport()
    for f in dataclasses.fields(report):
        if f.name in data:
            value = data[f.name]
            current = getattr(report, f.name)
            setattr(report, f.name, Counter(value) if isinstance(current, Counter) else value)
    return report


def _memmap_blob(path: Path) -> np.ndarray:
    # np.memmap refuses empty files; an empty column is an empty array.
    if path.stat().st_size == 0:
        return np.empty(0, np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")


def open_store(folder: str | os.PathLike[str], mmap: bool = True) -> Store:
    """Open a folder written by :func:`build_store` plus its ``meta.json`` (see
    :mod:`regen_bench.data.store_cache`); StoreError if it is not whole."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("version") != STORE_VERSION:
            raise StoreError(f"store version {meta.get('version')}, expected {STORE_VERSION}")
        mode: Literal["r"] | None = "r" if mmap else None
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
            for name in _ARRAYS
        }
        for name, dtype in _ARRAYS.items():
            if arrays[name].dtype != dtype or arrays[name].ndim != 1:
                raise StoreError(f"{name}.npy has dtype {arrays[name].dtype}")
        text = {}
        for name in (*USER_TEXT, *INTERACTION_TEXT, *ITEM_TEXT):
            blob_path = folder / f"{name}.bin"
            blob = (
                _memmap_blob(blob_path) if mmap else np.frombuffer(blob_path.read_bytes(), np.uint8)
            )
            text[name] = TextColumn(
                blob,
                np.load(folder / f"{name}.offsets.npy", mmap_mode=mode, allow_pickle=False),
                np.load(folder / f"{name}.null.npy", mmap_mode=mode, allow_pickle=False),
            )
        store = Store(arrays, text, _report_from_json(meta["report"]), meta)
        store.check()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{folder}: {exc}") from None
    store.path = folder
    return store
