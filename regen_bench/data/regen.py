"""Reader and writer of the REGEN release layout: one JSON object per user (gz or plain).

This layout is the harness's interchange format: everything that produces data writes it and
everything that consumes data reads it. The confirmed release fields are read strictly; unknown
fields are accepted and counted; the critique and endorsement fields, whose names in the
release are unconfirmed, are recognised through :data:`CRITIQUE_FIELDS` and
:data:`ENDORSEMENT_FIELDS` (add a name there to read a newer release).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from regen_bench.data.placeholders import (
    DEFAULT_CRITIQUE_PLACEHOLDERS,
    KEEP_FREQUENT,
    FrequentStrings,
    normalize,
)
from regen_bench.data.schema import Interaction, Item, Narratives, UserRecord
from regen_bench.fileio import atomic_write

# The one mapping table for the release fields whose names are unconfirmed: a newer release
# with other field names is a one-line change here (docs/data-format.md says the same).
#: Field names (on a purchase_history entry) that hold the critique leading to that purchase,
#: tried in order (the first non-null wins). The first name is the one our writer emits.
CRITIQUE_FIELDS: tuple[str, ...] = ("critique", "user_critique")
#: Field names (in ``last_purchase``) that hold the product endorsement of the last item,
#: tried in order. The first name is the one our writer emits.
ENDORSEMENT_FIELDS: tuple[str, ...] = ("endorsement", "product_endorsement")

_ITEM_FIELDS = {"asin", "title", "category", "description", "price", "brand"}
_REVIEW_FIELDS = {"summary", "rating", "text", "unix_time"}
_PURCHASE_FIELDS = {"item", "review", *CRITIQUE_FIELDS}
_LAST_FIELDS = {"reason", "explanation", *ENDORSEMENT_FIELDS}
_USER_FIELDS = {"profile", "brief_summary", "long_summary"}
_TOP_FIELDS = {"reviewer_id", "purchase_history", "last_purchase", "user", "metadata"}
#: Lines between two ``on_progress`` calls of :func:`iter_lines`.
_PROGRESS_EVERY = 4096
#: Category paths are joined with this separator in the release.
CATEGORY_SEPARATOR = " - "


class DataFormatError(ValueError):
    """A REGEN-format file is malformed; the message names file, line and field."""

    def __init__(self, path: str | os.PathLike[str], line: int, field: str, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")


#: How many messages of skipped lines a :class:`ReadReport` keeps as samples.
MAX_BAD_LINE_MESSAGES = 5


@dataclass
class ReadReport:
    """What a read saw besides the records: unknown fields, skipped lines, the fingerprint."""

    users: int = 0
    interactions: int = 0
    critiques: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)
    sha256: str = ""
    #: Lines skipped as malformed (only with ``skip_bad_lines``), and the first few messages.
    bad_lines: int = 0
    bad_line_messages: list[str] = field(default_factory=list)
    #: The critique strings read as "no critique" (docs/data-format.md, "Critique
    #: placeholders"), and how many of each exact (stripped) string were dropped.
    critique_placeholders: list[str] = field(
        default_factory=lambda: list(DEFAULT_CRITIQUE_PLACEHOLDERS)
    )
    placeholder_critiques: Counter[str] = field(default_factory=Counter)
    #: Adjacent purchase pairs (a purchase after the first) that kept a critique, and the
    #: most frequent of those critiques (set when the file is read to the end).
    critiqued_pairs: int = 0
    frequent_critiques: Counter[str] = field(default_factory=Counter)

    def note_bad_line(self, error: DataFormatError) -> None:
        """Count a skipped line, keeping its message among the first few samples."""
        self.bad_lines += 1
        if len(self.bad_line_messages) < MAX_BAD_LINE_MESSAGES:
            self.bad_line_messages.append(str(error))


def open_text(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a plain or gzip file for binary line reading (gzip recognised by its magic bytes)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def require_field(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, ctx: tuple[str, int]
) -> Any:
    """``obj[key]`` checked against ``kind``; DataFormatError naming ``where + key`` if not."""
    if key not in obj:
        raise DataFormatError(ctx[0], ctx[1], f"{where}{key}", "missing")
    return _checked(obj[key], kind, f"{where}{key}", ctx)


def optional_field(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, ctx: tuple[str, int]
) -> Any:
    """Like :func:`require_field`, but a missing or null value gives None."""
    value = obj.get(key)
    return None if value is None else _checked(value, kind, f"{where}{key}", ctx, " or null")


def _checked(
    value: Any, kind: type | tuple[type, ...], name: str, ctx: tuple[str, int], alt: str = ""
) -> Any:
    """``value`` if it is a ``kind`` (a bool never is); else DataFormatError naming ``name``."""
    if not isinstance(value, kind) or isinstance(value, bool):
        got = _kind_name(type(value))
        raise DataFormatError(ctx[0], ctx[1], name, f"expected {_kind_name(kind)}{alt}, got {got}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "dict": "object",
        "list": "array",
        "bool": "boolean",
        "NoneType": "null",
    }
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def _first(obj: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if obj.get(name) is not None:
            return name, obj[name]
    return names[0], None


def _note_unknown(obj: dict[str, Any], known: set[str], where: str, unknown: Counter[str]) -> None:
    for key in obj:
        if key not in known:
            unknown[f"{where}{key}"] += 1


def _category_path(category: str | None) -> tuple[str, ...]:
    """The release joins category levels with " - "; null or empty means no path."""
    return tuple(category.split(CATEGORY_SEPARATOR)) if category else ()


def _price(value: float | None, where: str, ctx: tuple[str, int]) -> float | None:
    """The release writes 0 for a missing price; negative or non-finite prices are errors."""
    if value is None or value == 0:
        return None
    if not math.isfinite(value) or value < 0:
        raise DataFormatError(ctx[0], ctx[1], where, f"expected a price >= 0, got {value}")
    return float(value)


#: The normalized default placeholders (what a read uses unless told otherwise).
_DEFAULT_NORMALIZED = frozenset(normalize(s) for s in DEFAULT_CRITIQUE_PLACEHOLDERS)


def parse_record(
    obj: Any,
    ctx: tuple[str, int],
    report: ReadReport | None = None,
    placeholders: frozenset[str] = _DEFAULT_NORMALIZED,
) -> UserRecord:
    """Turn one decoded JSON line into a :class:`UserRecord`; raise DataFormatError if bad.

    A critique whose normalized form is in ``placeholders`` (normalized strings; empty and
    whitespace-only always) is read as None. ``report`` is only updated when the whole line is
    good, so a skipped line leaves no trace in its counts.
    """
    if not isinstance(obj, dict):
        raise DataFormatError(ctx[0], ctx[1], "<line>", "expected a JSON object")
    unknown: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    n_critiques = n_pair_critiques = 0
    _note_unknown(obj, _TOP_FIELDS, "", unknown)
    user_id = require_field(obj, "reviewer_id", str, "", ctx)
    history = require_field(obj, "purchase_history", list, "", ctx)
    if not history:
        raise DataFormatError(ctx[0], ctx[1], "purchase_history", "empty")
    items: dict[str, Item] = {}
    interactions: list[Interaction] = []
    for pos, entry in enumerate(history):
        where = f"purchase_history[{pos}]."
        if not isinstance(entry, dict):
            raise DataFormatError(ctx[0], ctx[1], where[:-1], "expected an object")
        _note_unknown(entry, _PURCHASE_FIELDS, "purchase_history[].", unknown)
        item = require_field(entry, "item", dict, where, ctx)
        review = require_field(entry, "review", dict, where, ctx)
        _note_unknown(item, _ITEM_FIELDS, "purchase_history[].item.", unknown)
        _note_unknown(review, _REVIEW_FIELDS, "purchase_history[].review.", unknown)
        asin = require_field(item, "asin", str, where + "item.", ctx)
        category = optional_field(item, "category", str, where + "item.", ctx)
        price = optional_field(item, "price", (int, float), where + "item.", ctx)
        if asin not in items:
            items[asin] = Item(
                asin=asin,
                title=optional_field(item, "title", str, where + "item.", ctx) or "",
                categories=_category_path(category),
                description=optional_field(item, "description", str, where + "item.", ctx) or "",
                price=_price(price, where + "item.price", ctx),
                brand=optional_field(item, "brand", str, where + "item.", ctx),
            )
        rating = require_field(review, "rating", (int, float), where + "review.", ctx)
        if not 1 <= rating <= 5:
            raise DataFormatError(
                ctx[0], ctx[1], where + "review.rating", f"expected 1-5, got {rating}"
            )
        crit_name, critique = _first(entry, CRITIQUE_FIELDS)
        if critique is not None and not isinstance(critique, str):
            raise DataFormatError(ctx[0], ctx[1], where + crit_name, "expected string or null")
        if isinstance(critique, str):
            critique = critique.strip()
            if not critique or normalize(critique) in placeholders:
                dropped[critique] += 1
                critique = None
        if critique is not None:
            n_critiques += 1
            n_pair_critiques += int(pos > 0)
        when = require_field(review, "unix_time", (int, float), where + "review.", ctx)
        if not math.isfinite(when):
            raise DataFormatError(
                ctx[0], ctx[1], where + "review.unix_time", f"expected a time, got {when}"
            )
        interactions.append(
            Interaction(
                item_id=asin,
                timestamp=int(when),
                rating=float(rating),
                summary=optional_field(review, "summary", str, where + "review.", ctx) or "",
                text=optional_field(review, "text", str, where + "review.", ctx) or "",
                critique=critique,
            )
        )
    last = optional_field(obj, "last_purchase", dict, "", ctx) or {}
    user = optional_field(obj, "user", dict, "", ctx) or {}
    _note_unknown(last, _LAST_FIELDS, "last_purchase.", unknown)
    _note_unknown(user, _USER_FIELDS, "user.", unknown)
    end_name, _ = _first(last, ENDORSEMENT_FIELDS)
    narratives = Narratives(
        purchase_reason=optional_field(last, "reason", str, "last_purchase.", ctx),
        purchase_explanation=optional_field(last, "explanation", str, "last_purchase.", ctx),
        product_endorsement=optional_field(last, end_name, str, "last_purchase.", ctx),
        user_summary=optional_field(user, "brief_summary", str, "user.", ctx),
        user_summary_long=optional_field(user, "long_summary", str, "user.", ctx),
        user_profile=optional_field(user, "profile", str, "user.", ctx),
    )
    scores = optional_field(obj, "metadata", dict, "", ctx) or {}
    if report is not None:
        report.users += 1
        report.interactions += len(interactions)
        report.critiques += n_critiques
        report.critiqued_pairs += n_pair_critiques
        report.placeholder_critiques.update(dropped)
        report.unknown_fields.update(unknown)
    return UserRecord(
        user_id=user_id,
        interactions=interactions,
        items=items,
        narratives=narratives,
        scores=scores,
    )


def decode_line(raw: bytes, ctx: tuple[str, int]) -> Any:
    """Decode one JSON line; invalid UTF-8 or JSON raises DataFormatError naming the column."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", f"invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", f"invalid UTF-8 at byte {exc.start}"
        ) from None
    except RecursionError:
        # The stdlib decoder recurses per nesting level; a hostile line of "[[[[..." would
        # otherwise escape as a traceback. No REGEN record nests more than a few levels.
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", "invalid JSON (nested too deeply)"
        ) from None


def iter_lines(
    path: str | os.PathLike[str],
    digest: Any = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, raw line)`` of a plain or gzip file, 1-based.

    A truncated or corrupt gzip raises DataFormatError naming the file and the last complete
    line, never a partial read passed off as the whole file. ``digest`` (a hashlib object), if
    given, is updated with every line; ``on_progress``, if given, is called now and then with
    the number of bytes of the file on disk consumed so far (for byte-sized progress bars).
    """
    lineno = 0
    try:
        with open_text(path) as fh:
            disk = fh.fileobj if isinstance(fh, gzip.GzipFile) else fh
            for lineno, raw in enumerate(fh, start=1):
                if digest is not None:
                    digest.update(raw)
                if on_progress is not None and not lineno % _PROGRESS_EVERY:
                    on_progress(disk.tell())
                yield lineno, raw
            if on_progress is not None:
                on_progress(disk.tell())
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if isinstance(exc, (EOFError, gzip.BadGzipFile, zlib.error)):
            raise DataFormatError(
                path,
                lineno + 1,
                "<file>",
                f"gzip data truncated or corrupt after line {lineno} (the last complete line): "
                f"{exc}; the file is incomplete, copy or download it again",
            ) from None
        raise DataFormatError(path, lineno + 1, "<file>", f"unreadable: {exc}") from None


def iter_records(
    path: str | os.PathLike[str],
    report: ReadReport | None = None,
    *,
    skip_bad_lines: bool = False,
    critique_placeholders: Iterable[str] = DEFAULT_CRITIQUE_PLACEHOLDERS,
) -> Iterator[UserRecord]:
    """Stream the users of a REGEN-format file (plain or gzip), one record at a time.

    ``report`` is filled while reading; its ``sha256`` (of the decompressed bytes, so the same
    content gives the same fingerprint however it is compressed) is set once the file is read
    to the end. Blank lines are skipped. A malformed line (invalid JSON, a missing required
    field, a wrong type) raises DataFormatError naming file, line and field, or, with
    ``skip_bad_lines``, is skipped and counted in ``report.bad_lines`` (the first messages are
    kept in ``report.bad_line_messages``). A truncated gzip always raises: the fingerprint of
    a partial file would be wrong. Critiques in ``critique_placeholders`` (compared stripped
    and case-insensitively; the whole list, see
    :func:`regen_bench.data.placeholders.effective_placeholders`) are read as None and counted
    in ``report.placeholder_critiques``; the most frequent kept ones are in
    ``report.frequent_critiques`` once the file is read to the end.
    """
    report = report if report is not None else ReadReport()
    placeholders = [s.strip() for s in critique_placeholders]
    report.critique_placeholders = placeholders
    normalized = frozenset(normalize(s) for s in placeholders) | {""}
    frequent = FrequentStrings()
    digest = hashlib.sha256()
    name = str(path)
    for lineno, raw in iter_lines(path, digest):
        if not raw.strip():
            continue
        try:
            record = parse_record(
                decode_line(raw, (name, lineno)), (name, lineno), report, normalized
            )
        except DataFormatError as exc:
            if not skip_bad_lines:
                raise
            report.note_bad_line(exc)
            continue
        for inter in record.interactions[1:]:
            if inter.critique is not None:
                frequent.add(inter.critique)
        yield record
    report.frequent_critiques = frequent.most_common(KEEP_FREQUENT)
    report.sha256 = digest.hexdigest()


def record_to_json(record: UserRecord) -> dict[str, Any]:
    """The REGEN release layout of one user, plus our ``critique`` and ``endorsement`` fields."""
    history = []
    for inter in record.interactions:
        item = record.items[inter.item_id]
        item_obj: dict[str, Any] = {
            "asin": item.asin,
            "title": item.title,
            "category": CATEGORY_SEPARATOR.join(item.categories) if item.categories else None,
            "description": item.description,
            "price": item.price if item.price is not None else 0.0,
        }
        if item.brand is not None:
            item_obj["brand"] = item.brand
        history.append(
            {
                "item": item_obj,
                "review": {
                    "summary": inter.summary,
                    "rating": inter.rating,
                    "text": inter.text,
                    "unix_time": inter.timestamp,
                },
                CRITIQUE_FIELDS[0]: inter.critique,
            }
        )
    n = record.narratives
    return {
        "reviewer_id": record.user_id,
        "purchase_history": history,
        "last_purchase": {
            "reason": n.purchase_reason,
            "explanation": n.purchase_explanation,
            ENDORSEMENT_FIELDS[0]: n.product_endorsement,
        },
        "user": {
            "profile": n.user_profile,
            "brief_summary": n.user_summary,
            "long_summary": n.user_summary_long,
        },
        "metadata": record.scores,
    }


def dumps_record(record: UserRecord) -> bytes:
    """Canonical serialisation of one user: compact JSON, sorted keys, UTF-8, one line."""
    return (
        json.dumps(
            record_to_json(record), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        + "\n"
    ).encode("utf-8")


def write_records(records: Iterable[UserRecord], path: str | os.PathLike[str]) -> str:
    """Write users atomically (temp file then rename); gzip when the name ends in ``.gz``.

    The gzip header carries no name or timestamp, so the same records give the same bytes.
    Returns the sha256 fingerprint of the (decompressed) content.
    """
    return atomic_write(
        path, (dumps_record(r) for r in records), compress=str(path).endswith(".gz")
    )
