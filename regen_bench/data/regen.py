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
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from regen_bench.data.schema import Interaction, Item, Narratives, UserRecord
from regen_bench.fileio import atomic_write

#: Field names (on a purchase_history entry) that hold the critique leading to that purchase.
#: The first name is the one our writer emits.
CRITIQUE_FIELDS: tuple[str, ...] = ("critique", "user_critique")
#: Field names (in ``last_purchase``) that hold the product endorsement of the last item.
ENDORSEMENT_FIELDS: tuple[str, ...] = ("endorsement", "product_endorsement")

_ITEM_FIELDS = {"asin", "title", "category", "description", "price", "brand"}
_REVIEW_FIELDS = {"summary", "rating", "text", "unix_time"}
_PURCHASE_FIELDS = {"item", "review", *CRITIQUE_FIELDS}
_LAST_FIELDS = {"reason", "explanation", *ENDORSEMENT_FIELDS}
_USER_FIELDS = {"profile", "brief_summary", "long_summary"}
_TOP_FIELDS = {"reviewer_id", "purchase_history", "last_purchase", "user", "metadata"}
#: Category paths are joined with this separator in the release.
CATEGORY_SEPARATOR = " - "


class DataFormatError(ValueError):
    """A REGEN-format file is malformed; the message names file, line and field."""

    def __init__(self, path: str | os.PathLike[str], line: int, field: str, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        super().__init__(f"{path}:{line}: field '{field}': {problem}")


@dataclass
class ReadReport:
    """What a read saw besides the records: unknown fields and the content fingerprint."""

    users: int = 0
    interactions: int = 0
    critiques: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)
    sha256: str = ""


def open_text(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a plain or gzip file for binary line reading (gzip recognised by its magic bytes)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _require(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, ctx: tuple[str, int]
) -> Any:
    if key not in obj:
        raise DataFormatError(ctx[0], ctx[1], f"{where}{key}", "missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError(
            ctx[0],
            ctx[1],
            f"{where}{key}",
            f"expected {_kind_name(kind)}, got {type(value).__name__}",
        )
    return value


def _optional(
    obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, ctx: tuple[str, int]
) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError(
            ctx[0],
            ctx[1],
            f"{where}{key}",
            f"expected {_kind_name(kind)} or null, got {type(value).__name__}",
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        "str": "string",
        "int": "integer",
        "float": "number",
        "dict": "object",
        "list": "array",
    }
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def _first(obj: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any]:
    for name in names:
        if obj.get(name) is not None:
            return name, obj[name]
    return names[0], None


def _note_unknown(obj: dict[str, Any], known: set[str], where: str, report: ReadReport) -> None:
    for key in obj:
        if key not in known:
            report.unknown_fields[f"{where}{key}"] += 1


def parse_record(obj: Any, ctx: tuple[str, int], report: ReadReport | None = None) -> UserRecord:
    """Turn one decoded JSON line into a :class:`UserRecord`; raise DataFormatError if bad."""
    report = report if report is not None else ReadReport()
    if not isinstance(obj, dict):
        raise DataFormatError(ctx[0], ctx[1], "<line>", "expected a JSON object")
    _note_unknown(obj, _TOP_FIELDS, "", report)
    user_id = _require(obj, "reviewer_id", str, "", ctx)
    history = _require(obj, "purchase_history", list, "", ctx)
    if not history:
        raise DataFormatError(ctx[0], ctx[1], "purchase_history", "empty")
    items: dict[str, Item] = {}
    interactions: list[Interaction] = []
    for pos, entry in enumerate(history):
        where = f"purchase_history[{pos}]."
        if not isinstance(entry, dict):
            raise DataFormatError(ctx[0], ctx[1], where[:-1], "expected an object")
        _note_unknown(entry, _PURCHASE_FIELDS, "purchase_history[].", report)
        item = _require(entry, "item", dict, where, ctx)
        review = _require(entry, "review", dict, where, ctx)
        _note_unknown(item, _ITEM_FIELDS, "purchase_history[].item.", report)
        _note_unknown(review, _REVIEW_FIELDS, "purchase_history[].review.", report)
        asin = _require(item, "asin", str, where + "item.", ctx)
        category = _optional(item, "category", str, where + "item.", ctx)
        price = _optional(item, "price", (int, float), where + "item.", ctx)
        if asin not in items:
            items[asin] = Item(
                asin=asin,
                title=_optional(item, "title", str, where + "item.", ctx) or "",
                categories=tuple(category.split(CATEGORY_SEPARATOR)) if category else (),
                description=_optional(item, "description", str, where + "item.", ctx) or "",
                # The release writes 0 for a missing price.
                price=float(price) if price else None,
                brand=_optional(item, "brand", str, where + "item.", ctx),
            )
        rating = _require(review, "rating", (int, float), where + "review.", ctx)
        if not 1 <= rating <= 5:
            raise DataFormatError(
                ctx[0], ctx[1], where + "review.rating", f"expected 1-5, got {rating}"
            )
        crit_name, critique = _first(entry, CRITIQUE_FIELDS)
        if critique is not None and not isinstance(critique, str):
            raise DataFormatError(ctx[0], ctx[1], where + crit_name, "expected string or null")
        critique = critique.strip() or None if isinstance(critique, str) else None
        if critique is not None:
            report.critiques += 1
        interactions.append(
            Interaction(
                item_id=asin,
                timestamp=int(_require(review, "unix_time", (int, float), where + "review.", ctx)),
                rating=float(rating),
                summary=_optional(review, "summary", str, where + "review.", ctx) or "",
                text=_optional(review, "text", str, where + "review.", ctx) or "",
                critique=critique,
            )
        )
    last = _optional(obj, "last_purchase", dict, "", ctx) or {}
    user = _optional(obj, "user", dict, "", ctx) or {}
    _note_unknown(last, _LAST_FIELDS, "last_purchase.", report)
    _note_unknown(user, _USER_FIELDS, "user.", report)
    end_name, _ = _first(last, ENDORSEMENT_FIELDS)
    narratives = Narratives(
        purchase_reason=_optional(last, "reason", str, "last_purchase.", ctx),
        purchase_explanation=_optional(last, "explanation", str, "last_purchase.", ctx),
        product_endorsement=_optional(last, end_name, str, "last_purchase.", ctx),
        user_summary=_optional(user, "brief_summary", str, "user.", ctx),
        user_summary_long=_optional(user, "long_summary", str, "user.", ctx),
        user_profile=_optional(user, "profile", str, "user.", ctx),
    )
    scores = _optional(obj, "metadata", dict, "", ctx) or {}
    report.users += 1
    report.interactions += len(interactions)
    return UserRecord(
        user_id=user_id,
        interactions=interactions,
        items=items,
        narratives=narratives,
        scores=scores,
    )


def iter_records(
    path: str | os.PathLike[str], report: ReadReport | None = None
) -> Iterator[UserRecord]:
    """Stream the users of a REGEN-format file (plain or gzip), one record at a time.

    ``report`` is filled while reading; its ``sha256`` (of the decompressed bytes, so the same
    content gives the same fingerprint however it is compressed) is set once the file is read
    to the end. Blank lines are skipped; any other malformed line raises DataFormatError.
    """
    report = report if report is not None else ReadReport()
    digest = hashlib.sha256()
    try:
        with open_text(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                digest.update(raw)
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(
                        path, lineno, "<line>", f"invalid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                yield parse_record(obj, (str(path), lineno), report)
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(path, 0, "<file>", f"unreadable or truncated: {exc}") from None
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
