"""Export a dataset as RecBole 1.2.1 atomic files (``regen-bench data export --format recbole``).

``OUT/<name>.inter`` has one row per purchase (users in dataset order, each user's purchases in
sequence order): ``user_id:token``, ``item_id:token``, ``rating:float``, ``timestamp:float``.
``OUT/<name>.item`` has one row per catalog item, in catalog order: ``item_id:token``,
``title:token``, ``categories:token_seq``, ``description:token``, ``price:float`` (empty when
unknown), ``brand:token`` (empty when none). ``<name>`` is OUT's folder name, because RecBole
reads ``<data_path>/<name>/<name>.inter``: name OUT after the dataset.

The files are the inverse of ``regen-bench data import --format recbole --time-key exact``
(:mod:`regen_bench.data.recbole`): sequences, ratings, titles, descriptions, prices and brands
come back unchanged. Titles and descriptions are ``token`` columns, read back verbatim (as
``token_seq`` the import would collapse runs of spaces). Categories are ``token_seq``, one token
per level, and a token cannot hold a space, so the spaces inside a level are written as ``_``
(``Office Products`` -> ``Office_Products``): the one field that comes back changed. Cells are
written with ``csv``'s minimal quoting (a cell holding a tab, a line break or a ``"`` is quoted,
its quotes doubled), which RecBole's reader (pandas, python engine) and
:mod:`regen_bench.data.recbole_atomic` both undo.

Timestamps: RecBole orders each user's interactions by a stable sort of its float32 copy of the
timestamp, min-max normalised first with ``normalize_all``. The dataset's own Unix times are
written when every user's times strictly increase under each of those keys (the import's
``TIME_KEYS``), so the order does not even rest on the sort being stable. Otherwise (REGEN's
Amazon times have a resolution of one day, so purchases of one day tie, and a dataset's
order may go against its times) every timestamp is written as the purchase's 0-based position
in its user's sequence, a key that every one of those sorts keeps in sequence order;
:attr:`RecboleExport.timestamps` says which was written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regen_bench.data.dataset import Dataset
from regen_bench.data.recbole import TIME_KEYS, time_keys
from regen_bench.data.recbole_atomic import FIELD_SEPARATOR, SEQ_SEPARATOR

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
ITEM_HEADER = (
    "item_id:token",
    "title:token",
    "categories:token_seq",
    "description:token",
    "price:float",
    "brand:token",
)
#: What a space inside a category level becomes (a token_seq token cannot hold a space).
LEVEL_SPACE = "_"
#: What makes a cell quoted: the separator, a line break or a quote.
_QUOTED = (FIELD_SEPARATOR, "\n", "\r", '"')


@dataclass(frozen=True)
class RecboleExport:
    """What :func:`export_recbole` wrote."""

    name: str  # the RecBole dataset name: OUT's folder name
    users: int
    items: int
    interactions: int
    timestamps: str  # "original" (the dataset's Unix times) or "position" (see the module doc)

    def summary(self) -> str:
        return (
            f"dataset {self.name}: users {self.users}, items {self.items}, interactions "
            f"{self.interactions}, timestamps {self.timestamps}"
        )


def _timestamps(ds: Dataset) -> np.ndarray:
    """Every purchase's Unix time, users in order (the store's column where there is one)."""
    if ds.store is not None:
        return np.asarray(ds.store.timestamps, dtype=np.int64)
    return np.concatenate([u.timestamps for u in ds.users] or [np.zeros(0, np.int64)])


def keeps_order(times: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether every user's ``times`` (users concatenated, ``lengths`` each) strictly increase
    under each of RecBole's sort keys (:data:`~regen_bench.data.recbole.TIME_KEYS`)."""
    if len(times) < 2:
        return True
    # A step from one user's last purchase to the next user's first is no step at all.
    within = np.ones(len(times) - 1, dtype=bool)
    starts = np.cumsum(lengths)[:-1]
    within[starts[(starts > 0) & (starts < len(times))] - 1] = False
    for how in TIME_KEYS:
        keys = time_keys(times.astype(np.float64), how)
        if not np.all(np.diff(keys)[within] > 0):
            return False
    return True


def _level(level: str) -> str:
    return level.replace(SEQ_SEPARATOR, LEVEL_SPACE)


def _cell(text: str) -> str:
    """``text`` as a cell, quoted where a reader would split it: csv's minimal quoting, done
    here because ``csv.writer`` leaves a carriage return unquoted unless the line ends in one."""
    if any(c in text for c in _QUOTED):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_rows(path: Path, header: Iterable[str], rows: Iterable[list[str]]) -> None:
    # Text is valid UTF-8: a dataset's store could not hold anything else.
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(FIELD_SEPARATOR.join(header) + "\n")
        for cells in rows:
            fh.write(FIELD_SEPARATOR.join(_cell(c) for c in cells) + "\n")


def _inter_rows(ds: Dataset, positions: bool) -> Iterable[list[str]]:
    for user in ds.users:
        asins = ds.catalog.ids(user.items)
        times = range(len(user)) if positions else user.timestamps.tolist()
        for asin, rating, time in zip(asins, user.ratings, times, strict=True):
            rating_text = np.format_float_positional(rating, trim="-")
            yield [user.user_id, asin, rating_text, str(time)]


def _item_rows(ds: Dataset) -> Iterable[list[str]]:
    for item in ds.catalog:
        yield [
            item.asin,
            item.title,
            SEQ_SEPARATOR.join(_level(c) for c in item.categories if c),
            item.description,
            "" if item.price is None else repr(item.price),
            item.brand or "",
        ]


def export_recbole(ds: Dataset, out: str | os.PathLike[str]) -> RecboleExport:
    """Write ``ds`` as RecBole atomic files in the folder ``out`` (new or empty; all or
    nothing: the files are written to a temporary folder that is then renamed to ``out``)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output '{out}' exists and is not empty")
    name = out.resolve().name
    lengths = ds.lengths()
    original = keeps_order(_timestamps(ds), lengths)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # A folder made inside the temporary one gets the umask's mode, not mkdtemp's 0700.
        final = tmp / name
        final.mkdir()
        _write_rows(final / f"{name}.inter", INTER_HEADER, _inter_rows(ds, not original))
        _write_rows(final / f"{name}.item", ITEM_HEADER, _item_rows(ds))
        if out.exists():
            out.rmdir()
        os.replace(final, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RecboleExport(
        name=name,
        users=len(lengths),
        items=len(ds.catalog),
        interactions=int(lengths.sum()),
        timestamps="original" if original else "position",
    )


__all__ = ["INTER_HEADER", "ITEM_HEADER", "RecboleExport", "export_recbole", "keeps_order"]
