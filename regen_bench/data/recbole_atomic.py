"""Reader of RecBole atomic files (``.inter``, ``.item``, ``.user``): typed, checked rows.

An atomic file is tab-separated text with a header of ``name:type`` columns, type one of
``token``, ``float``, ``token_seq`` (space-separated tokens) or ``float_seq``. It is read the
way RecBole 1.2.1 reads it (``csv`` quoting rules, as pandas' python engine, UTF-8, blank lines
skipped), but strictly: a wrong column count, an unknown type or a value that does not parse
stops the read with :class:`AtomicFormatError` naming file, line and column.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from regen_bench.data.regen import DataFormatError

FIELD_SEPARATOR = "\t"
SEQ_SEPARATOR = " "
FIELD_TYPES = ("token", "float", "token_seq", "float_seq")


class AtomicFormatError(DataFormatError):
    """An atomic file is malformed: ``file:line: column N 'name:type': problem``."""

    def __init__(self, path: str | os.PathLike[str], line: int, column: str, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, column, problem
        ValueError.__init__(self, f"{path}:{line}: {column}: {problem}")


@dataclass(frozen=True)
class Column:
    """One header cell: ``name:type`` at 0-based ``index``."""

    name: str
    type: str
    index: int

    @property
    def where(self) -> str:
        """How an error names the column: ``column 4 'timestamp:float'``."""
        return f"column {self.index + 1} '{self.name}:{self.type}'"


#: A parsed cell: str (token), float (float, NaN when empty) or a list (the sequences).
Value = str | float | list[str] | list[float]


@dataclass
class AtomicFile:
    """An atomic file's path and header; :meth:`rows` streams its checked rows."""

    path: Path
    columns: list[Column]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def require(self, name: str, types: Sequence[str] = FIELD_TYPES) -> Column:
        """The column ``name``, which must exist and be of one of ``types``."""
        col = self.column(name)
        if col is None:
            have = ", ".join(f"{c.name}:{c.type}" for c in self.columns)
            raise AtomicFormatError(self.path, 1, "header", f"no '{name}' column (has {have})")
        if col.type not in types:
            raise AtomicFormatError(
                self.path, 1, col.where, f"expected type {' or '.join(types)}, got {col.type}"
            )
        return col

    def rows(self) -> Iterator[tuple[int, list[Value]]]:
        """Yield ``(line number, values)``; every cell is checked against its column's type."""
        with open(self.path, "rb") as fh:
            reader = csv.reader(_decoded(fh, self.path), delimiter=FIELD_SEPARATOR)
            next(reader)  # the header, read by open_atomic
            try:
                for cells in reader:
                    lineno = reader.line_num
                    if not cells or cells == [""]:
                        continue
                    if len(cells) != len(self.columns):
                        raise AtomicFormatError(
                            self.path,
                            lineno,
                            f"column {len(cells)}",
                            f"expected {len(self.columns)} tab-separated columns, got {len(cells)}",
                        )
                    yield (
                        lineno,
                        [
                            _parse(col, cell, self.path, lineno)
                            for col, cell in zip(self.columns, cells, strict=True)
                        ],
                    )
            except csv.Error as exc:
                raise AtomicFormatError(self.path, reader.line_num, "<line>", str(exc)) from None


def _decoded(fh: IO[bytes], path: Path) -> Iterator[str]:
    """The lines of a binary file as text; invalid UTF-8 is an error naming its line."""
    for lineno, raw in enumerate(fh, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AtomicFormatError(
                path, lineno, "<line>", f"invalid UTF-8 at byte {exc.start}"
            ) from None


def _parse(col: Column, cell: str, path: Path, lineno: int) -> Value:
    if col.type == "token":
        return cell
    if col.type == "token_seq":
        return [t for t in cell.split(SEQ_SEPARATOR) if t]
    if col.type == "float":
        return _float(cell, col, path, lineno) if cell.strip() else math.nan
    return [_float(t, col, path, lineno) for t in cell.split(SEQ_SEPARATOR) if t]


def _float(text: str, col: Column, path: Path, lineno: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise AtomicFormatError(
            path, lineno, col.where, f"expected a number, got '{text[:40]}'"
        ) from None


def open_atomic(path: str | os.PathLike[str]) -> AtomicFile:
    """Read and check the header of an atomic file (rows are read by :meth:`AtomicFile.rows`)."""
    path = Path(path)
    with open(path, "rb") as fh:
        header = next(csv.reader(_decoded(fh, path), delimiter=FIELD_SEPARATOR), [])
    if header:
        header[0] = header[0].removeprefix("\ufeff")
    if not header or header == [""]:
        raise AtomicFormatError(path, 1, "header", "empty file (expected a name:type header)")
    columns: list[Column] = []
    for i, cell in enumerate(header):
        name, sep, kind = cell.partition(":")
        where = f"column {i + 1} '{cell}'"
        if not sep or not name:
            raise AtomicFormatError(path, 1, where, "expected name:type, e.g. user_id:token")
        if kind not in FIELD_TYPES:
            raise AtomicFormatError(
                path, 1, where, f"unknown type '{kind}' (expected {', '.join(FIELD_TYPES)})"
            )
        if any(c.name == name for c in columns):
            raise AtomicFormatError(path, 1, where, f"column '{name}' appears twice")
        columns.append(Column(name, kind, i))
    return AtomicFile(path, columns)
