"""Critique placeholders: strings that stand for "no critique" in a REGEN-format file.

The REGEN paper (section 3.2) keeps a sentinel placeholder on the purchase pairs that got no
critique (about 82% of them). Its exact string in the release is not confirmed, so the loader
treats a list of likely strings as "no critique" (:data:`DEFAULT_CRITIQUE_PLACEHOLDERS`,
compared stripped and case-insensitively), and a dataset adds its own through the dataset
option ``critique_placeholders``: a :class:`DatasetFile` returned by its plugin, or a
``FILE.options.json`` beside the file. When one critique string still covers a large share
of the pairs, :func:`critique_warning` says so and names the option, rather than letting the
sentinel pass as a critique. See docs/data-format.md, "Critique placeholders".
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regen_bench.data.regen import ReadReport

#: Critique strings read as "no critique" in every dataset (stripped, case-insensitive). A
#: guess: the release's own sentinel is to be confirmed against its files.
DEFAULT_CRITIQUE_PLACEHOLDERS: tuple[str, ...] = (
    "",
    "N/A",
    "NA",
    "None",
    "null",
    "nan",
    "no critique",
    "no_critique",
    "<no_critique>",
    "[NO_CRITIQUE]",
)
#: The dataset option that declares more placeholders (a list of strings).
OPTION = "critique_placeholders"
#: ``FILE`` + this suffix: the dataset options of a plain file (JSON object).
OPTIONS_SUFFIX = ".options.json"
#: A critique string on more than this share of adjacent purchase pairs is suspect (the paper
#: critiques 17.6% of Office's pairs and 18.6% of Clothing's).
PAIR_SHARE = 0.30
#: ... or on more than this share of the critiqued pairs.
CRITIQUE_SHARE = 0.50
#: ... and on at least this many pairs (a handful of repeats in a tiny file is no sentinel).
MIN_REPEATS = 20
#: How many of the most frequent critique strings a read report keeps.
KEEP_FREQUENT = 5


def normalize(text: str) -> str:
    """The form placeholders are compared in: stripped and case-folded."""
    return text.strip().casefold()


def effective_placeholders(*extra: Iterable[str]) -> tuple[str, ...]:
    """The defaults, then each extra string whose normalized form is new (order kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for text in (*DEFAULT_CRITIQUE_PLACEHOLDERS, *(s for group in extra for s in group)):
        key = normalize(text)
        if key not in seen:
            seen.add(key)
            out.append(text.strip())
    return tuple(out)


def placeholder_key(placeholders: Iterable[str]) -> str:
    """``""`` for the default list, else a short digest of the normalized set (it names the
    cache of the critiques read with that list)."""
    norm = sorted({normalize(s) for s in placeholders} | {""})
    if norm == sorted({normalize(s) for s in DEFAULT_CRITIQUE_PLACEHOLDERS}):
        return ""
    return hashlib.sha256(json.dumps(norm).encode()).hexdigest()[:12]


def fingerprint(content_sha256: str, dropped: Iterable[str]) -> str:
    """The dataset fingerprint: the content's sha256 when no non-empty placeholder was dropped
    (so a file without placeholders keeps the fingerprint it always had), else a sha256 of the
    content's and of the exact strings dropped (the critiques then differ from the file's)."""
    strings = sorted({s for s in dropped if s})
    if not strings:
        return content_sha256
    payload = json.dumps({"content": content_sha256, OPTION: strings}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class DatasetFile(os.PathLike[str]):
    """A dataset file and its dataset options: what a dataset plugin's factory may return in
    place of a bare path (``DatasetFile(path, critique_placeholders=("<<none>>",))``)."""

    def __init__(self, path: str | os.PathLike[str], *, critique_placeholders: Iterable[str] = ()):
        self.path = Path(path)
        self.critique_placeholders = _strings(list(critique_placeholders), f"{path}: {OPTION}")

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return (
            f"DatasetFile({str(self.path)!r}, critique_placeholders={self.critique_placeholders})"
        )


def options_path(data_file: str | os.PathLike[str]) -> Path:
    """Where the dataset options of ``data_file`` are read from: ``FILE.options.json``."""
    path = Path(data_file)
    return path.with_name(path.name + OPTIONS_SUFFIX)


def read_options(data_file: str | os.PathLike[str]) -> tuple[str, ...]:
    """The placeholders ``FILE.options.json`` declares (none without the file); a malformed
    file raises ValueError naming it and the field."""
    path = options_path(data_file)
    if not path.is_file():
        return ()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f'{path}: expected a JSON object such as {{"{OPTION}": [...]}}')
    unknown = sorted(set(data) - {OPTION})
    if unknown:
        raise ValueError(f"{path}: unknown dataset option '{unknown[0]}' (known: {OPTION})")
    return _strings(data.get(OPTION, []), f"{path}: field '{OPTION}'")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{where}: expected a list of strings, got {json.dumps(value)[:80]}")
    return tuple(value)


class FrequentStrings:
    """The most frequent strings of a stream in bounded memory (lossy counting, Manku and
    Motwani 2002): counts are exact up to ``width`` strings and at most ``n / width`` short
    after, and every string above that frequency is kept. A release holds millions of
    distinct critiques; a plain Counter of them would hold them all."""

    def __init__(self, width: int = 10_000):
        self.width, self.n = width, 0
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def add(self, text: str) -> None:
        self.n += 1
        if text in self.counts:
            self.counts[text] += 1
        else:
            self.counts[text] = 1
            self.errors[text] = (self.n - 1) // self.width
        if self.n % self.width == 0:
            bucket = self.n // self.width
            for key in [k for k, c in self.counts.items() if c + self.errors[k] <= bucket]:
                del self.counts[key], self.errors[key]

    def most_common(self, k: int) -> Counter[str]:
        return Counter(dict(Counter(self.counts).most_common(k)))


def critique_warning(
    report: ReadReport, *, name: str, source: str | os.PathLike[str]
) -> str | None:
    """One line when a single critique string is on a suspect share of the pairs (see
    :data:`PAIR_SHARE`, :data:`CRITIQUE_SHARE`), naming it and the option that declares it
    a placeholder; else None."""
    pairs = report.interactions - report.users
    if pairs <= 0 or not report.frequent_critiques:
        return None
    text, count = report.frequent_critiques.most_common(1)[0]
    of_pairs, of_critiques = count / pairs, count / max(report.critiqued_pairs, 1)
    if count < MIN_REPEATS or not (of_pairs > PAIR_SHARE or of_critiques > CRITIQUE_SHARE):
        return None
    quoted = json.dumps(text, ensure_ascii=False)
    return (
        f"regen-bench: warning: dataset '{name}': the critique {quoted} is on {count} of "
        f"{pairs} adjacent purchase pairs ({of_pairs:.1%}; {of_critiques:.1%} of the critiqued "
        f"pairs), where REGEN critiques about 18% of pairs: probably a 'no critique' "
        f"placeholder read as a critique. Declare it with the dataset option {OPTION}: write "
        f'{{"{OPTION}": [{quoted}]}} to {options_path(source)} (or return '
        f"DatasetFile(path, {OPTION}=[{quoted}]) from the dataset plugin); see "
        f"docs/data-format.md, 'Critique placeholders'"
    )
