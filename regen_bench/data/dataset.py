"""Datasets backed by compact columns (:mod:`regen_bench.data.store`): catalog and users.

Nothing here holds millions of Python objects: :class:`Catalog` builds an :class:`Item` when
one is looked up and ``Dataset.users`` builds a :class:`UserSequence` when one is accessed,
both from (usually memory-mapped) arrays.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from regen_bench.data.placeholders import (
    DatasetFile,
    critique_warning,
    effective_placeholders,
    read_options,
)
from regen_bench.data.regen import ReadReport
from regen_bench.data.schema import Item, Narratives, UserRecord
from regen_bench.data.store import Store, build_store
from regen_bench.data.store_cache import load_file_store

log = logging.getLogger(__name__)
#: (source, fingerprint, string) of the placeholder warnings given, so each is given once.
_WARNED: set[tuple[str, str, str]] = set()


class Catalog:
    """The item vocabulary: items in first-seen order and their integer indices.

    Built from items (``Catalog(items)``, ``add``) it keeps them in a list; backed by a
    store (``Catalog.from_store``) it builds each Item on lookup and the asin index on first
    use, so a 380k-item catalog costs nothing until it is used.
    """

    def __init__(self, items: Iterable[Item] = ()):
        self._items: list[Item] | None = []
        self._index: dict[str, int] | None = {}
        self._store: Store | None = None
        for item in items:
            self.add(item)

    @classmethod
    def from_store(cls, store: Store) -> Catalog:
        catalog = cls()
        catalog._items, catalog._index, catalog._store = None, None, store
        return catalog

    @property
    def items(self) -> Sequence[Item]:
        return self._items if self._items is not None else _ItemView(self)

    @property
    def index(self) -> dict[str, int]:
        """asin -> index (built on first use for a store-backed catalog)."""
        if self._index is None:
            assert self._store is not None
            col = self._store.text["asin"]
            self._index = {col.text(i): i for i in range(len(self))}
        return self._index

    def add(self, item: Item) -> int:
        """Index of ``item``, adding it if its asin is new (the first metadata seen wins)."""
        if self._items is None:
            raise TypeError("a catalog loaded from a dataset file is read-only")
        assert self._index is not None
        idx = self._index.get(item.asin)
        if idx is None:
            idx = self._index[item.asin] = len(self._items)
            self._items.append(item)
        return idx

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else self._store.n_items  # type: ignore[union-attr]

    def __getitem__(self, idx: int) -> Item:
        if self._items is not None:
            return self._items[idx]
        idx = int(idx)
        if not -len(self) <= idx < len(self):
            raise IndexError(f"item index {idx} out of range")
        return self._store.item(idx % len(self))  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[Item]:
        return (self[i] for i in range(len(self)))

    def asin(self, idx: int) -> str:
        """The asin of item ``idx`` (cheaper than building the Item)."""
        if self._items is not None:
            return self._items[int(idx)].asin
        return self._store.text["asin"].text(int(idx))  # type: ignore[union-attr]

    def ids(self, indices: Iterable[int]) -> list[str]:
        return [self.asin(i) for i in indices]


class _ItemView(Sequence[Item]):
    """``catalog.items`` of a store-backed catalog: items built on access."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog

    def __len__(self) -> int:
        return len(self._catalog)

    @overload
    def __getitem__(self, i: int) -> Item: ...
    @overload
    def __getitem__(self, i: slice) -> list[Item]: ...
    def __getitem__(self, i: int | slice) -> Item | list[Item]:
        if isinstance(i, slice):
            return [self._catalog[k] for k in range(*i.indices(len(self)))]
        return self._catalog[i]


@dataclass
class UserSequence:
    """One user's purchases as catalog indices, oldest first, with what the tasks need."""

    user_id: str
    items: np.ndarray  # int64 catalog indices
    timestamps: np.ndarray  # int64 unix seconds
    ratings: np.ndarray  # float32, 1-5
    #: critiques[i] led the user from items[i-1] to items[i]; None where there is none.
    critiques: tuple[str | None, ...]
    reviews: tuple[tuple[str, str], ...] = ()  # (summary, text) per purchase
    narratives: Narratives = field(default_factory=Narratives)

    def __len__(self) -> int:
        return len(self.items)

    def head(self, n: int) -> UserSequence:
        """The first ``n`` purchases (narratives kept: they describe the whole user)."""
        return UserSequence(
            self.user_id,
            self.items[:n],
            self.timestamps[:n],
            self.ratings[:n],
            self.critiques[:n],
            self.reviews[:n],
            self.narratives,
        )


class UserList(Sequence[UserSequence]):
    """``Dataset.users`` of a store: a read-only sequence that builds users on access."""

    def __init__(self, store: Store, *, reviews: bool = True, narratives: bool = True):
        self.store = store
        self.reviews, self.narratives = reviews, narratives

    def without_text(self, *, narratives: bool = False) -> UserList:
        """The same users without their reviews (and narratives unless asked): what building
        examples needs, at a third of the cost per user."""
        return UserList(self.store, reviews=False, narratives=narratives)

    def __len__(self) -> int:
        return self.store.n_users

    def _user(self, u: int) -> UserSequence:
        s = self.store
        a, b = int(s.user_offsets[u]), int(s.user_offsets[u + 1])
        reviews: tuple[tuple[str, str], ...] = ()
        if self.reviews:
            summaries = s.text["summary"].slice(a, b)
            texts = s.text["text"].slice(a, b)
            reviews = tuple((x or "", y or "") for x, y in zip(summaries, texts, strict=True))
        return UserSequence(
            user_id=s.text["user_id"].text(u),
            # Copies: a few numbers per user, and callers may write to them or hand them to
            # torch, which dislikes read-only memory maps.
            items=np.array(s.items[a:b], dtype=np.int64),
            timestamps=np.array(s.timestamps[a:b], dtype=np.int64),
            ratings=np.array(s.ratings[a:b], dtype=np.float32),
            critiques=s.text["critique"].slice(a, b),
            reviews=reviews,
            narratives=s.narratives(u) if self.narratives else Narratives(),
        )

    @overload
    def __getitem__(self, i: int) -> UserSequence: ...
    @overload
    def __getitem__(self, i: slice) -> list[UserSequence]: ...
    def __getitem__(self, i: int | slice) -> UserSequence | list[UserSequence]:
        n = len(self)
        if isinstance(i, slice):
            return [self._user(k) for k in range(*i.indices(n))]
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"user index {i} out of range")
        return self._user(i % n)

    def __iter__(self) -> Iterator[UserSequence]:
        return (self._user(k) for k in range(len(self)))


def directory_message(path: str | os.PathLike[str]) -> str:
    """What a folder given where a dataset file is expected is told (one line)."""
    return (
        f"dataset file '{path}' is a directory, expected a dataset file (a REGEN-format "
        ".jsonl or .jsonl.gz, see docs/data-format.md)"
    )


@dataclass
class Dataset:
    """A loaded dataset: its name, source, content fingerprint, catalog and user sequences."""

    name: str
    catalog: Catalog
    users: Sequence[UserSequence]
    fingerprint: str = ""
    source: str = ""
    report: ReadReport = field(default_factory=ReadReport)
    #: The columns behind ``catalog`` and ``users`` (None for a dataset built from objects).
    store: Store | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_store(cls, name: str, store: Store, **kw: object) -> Dataset:
        return cls(
            name=name,
            catalog=Catalog.from_store(store),
            users=UserList(store),
            store=store,
            **kw,  # type: ignore[arg-type]
        )

    @classmethod
    def from_records(cls, name: str, records: Iterable[UserRecord], **kw: object) -> Dataset:
        """A dataset of in-memory records (columns built in memory, no cache)."""
        return cls.from_store(name, build_store(records), **kw)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        skip_bad_lines: bool = False,
        cache: bool = True,
        progress: bool = False,
        critique_placeholders: Iterable[str] = (),
    ) -> Dataset:
        """Load a REGEN-format file (fingerprint = sha256 of its decompressed content, mixed
        with the critique placeholder strings dropped when there were any).

        The first load streams the file into a columnar cache beside it (see
        :mod:`regen_bench.data.store_cache`); later loads memory-map the cache. ``cache=False``
        builds the columns in memory and writes nothing. ``skip_bad_lines`` skips malformed
        lines (counted in ``report``) instead of stopping at the first one. Critiques equal to
        a placeholder are read as None: the defaults, those of a
        :class:`~regen_bench.data.placeholders.DatasetFile` ``path``, of ``FILE.options.json``
        and ``critique_placeholders``. A critique string left on a suspect share of the pairs
        is logged once as a warning that names it and the option to declare it.
        """
        if Path(path).is_dir():
            raise IsADirectoryError(directory_message(path))
        placeholders = effective_placeholders(
            path.critique_placeholders if isinstance(path, DatasetFile) else (),
            read_options(path),
            critique_placeholders,
        )
        store = load_file_store(
            path,
            skip_bad_lines=skip_bad_lines,
            cache=cache,
            progress=progress,
            critique_placeholders=placeholders,
        )
        ds = cls.from_store(
            name or Path(path).name.split(".")[0],
            store,
            fingerprint=store.fingerprint,
            source=os.fspath(path),
            report=store.report,
        )
        ds._warn_placeholder()
        return ds

    def _warn_placeholder(self) -> None:
        warning = critique_warning(self.report, name=self.name, source=self.source)
        key = (self.source, self.fingerprint, warning or "")
        if warning and key not in _WARNED:
            _WARNED.add(key)
            log.warning("%s", warning)

    @property
    def critique_placeholders(self) -> list[str]:
        """The critique strings read as "no critique" when the file was loaded."""
        return list(self.report.critique_placeholders)

    def lengths(self) -> np.ndarray:
        """Purchases per user, in user order (int64)."""
        if self.store is not None:
            return self.store.lengths()
        return np.fromiter((len(u) for u in self.users), np.int64, len(self.users))

    def critique_coverage(self) -> float:
        """Share of adjacent purchase pairs that carry a critique (REGEN: ~17.6% Office),
        placeholders not counted."""
        if self.store is not None:
            lengths = self.store.lengths()
            pairs = int(np.maximum(lengths - 1, 0).sum())
            has = ~np.asarray(self.store.text["critique"].null, dtype=bool)
            firsts = np.asarray(self.store.user_offsets[:-1])[lengths > 0]
            with_critique = int(has.sum()) - int(has[firsts].sum())
        else:
            pairs = sum(max(len(u) - 1, 0) for u in self.users)
            with_critique = sum(c is not None for u in self.users for c in u.critiques[1:])
        return with_critique / pairs if pairs else 0.0
