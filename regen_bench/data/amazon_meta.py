"""Amazon Reviews 2018 metadata: HTML-fragment text, price strings, JSON or Python-literal lines.

Used by :mod:`regen_bench.data.amazon`; each function turns one raw field or line into what
the REGEN data model holds, and raises DataFormatError naming file, line and field.
"""

from __future__ import annotations

import ast
import json
import math
import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

from regen_bench.data.regen import DataFormatError, optional_field, require_field
from regen_bench.data.schema import Item

Ctx = tuple[str, int]


# -- text and price cleaning --------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
# Tags after which text continues on a new line or cell: they become a space.
_BLOCK_TAGS = frozenset(
    {"br", "p", "div", "li", "ul", "ol", "tr", "td", "th", "table", "hr", "dd", "dt", "dl"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "section"}
)


class _TextExtractor(HTMLParser):
    """Text of an HTML fragment: the stdlib parser (tolerant of broken markup, unescapes
    entities); script/style content is dropped and block tags become spaces."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(self._skip - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def clean_text(value: str) -> str:
    """Plain text of a metadata string: HTML tags stripped, entities unescaped, spaces collapsed."""
    if "<" in value:
        parser = _TextExtractor()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    elif "&" in value:
        value = unescape(value)
    return _SPACE.sub(" ", value).strip()


_NUMBER = r"\$?\s*(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
#: A whole price string: "$12.99", "$1,299.00", "12.99" or a range "$5.99 - $12.99".
_PRICE = re.compile(rf"{_NUMBER}(?:\s*-\s*{_NUMBER})?")


def parse_price(value: Any) -> float | None:
    """A price in dollars, or None when missing, zero or not a price.

    A range ("$5.99 - $12.99", several sizes or colours) gives its low end, the price a shopper
    sees first. Anything else in the field (the 2018 files hold CSS and HTML fragments there)
    gives None rather than a number picked out of junk.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _PRICE.fullmatch(value.strip())
        if match is None:
            return None
        number = float(match.group(1).replace(",", ""))
    else:
        return None
    return number if math.isfinite(number) and number > 0 else None


# -- raw line parsing ---------------------------------------------------------------------------


def decode_meta_line(raw: bytes, ctx: Ctx) -> Any:
    """One metadata line: JSON, or else a Python literal (some Amazon meta files are written
    with Python's repr). Parsed with ``ast.literal_eval``, which evaluates no code."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        first_error = exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", f"invalid UTF-8 at byte {exc.start}"
        ) from None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        where = (
            f"{first_error.msg} at column {first_error.colno}"
            if isinstance(first_error, json.JSONDecodeError)
            else str(first_error)
        )
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", f"neither JSON ({where}) nor a Python literal"
        ) from None


def as_object(obj: Any, ctx: Ctx) -> dict[str, Any]:
    """``obj`` if a decoded line is an object (dict); DataFormatError otherwise."""
    if not isinstance(obj, dict):
        raise DataFormatError(
            ctx[0], ctx[1], "<line>", f"expected an object, got {type(obj).__name__}"
        )
    return obj


def require_id(obj: dict[str, Any], key: str, ctx: Ctx) -> str:
    """A required, non-empty identifier (``reviewerID``, ``asin``)."""
    value: str = require_field(obj, key, str, "", ctx)
    if not value.strip():
        raise DataFormatError(ctx[0], ctx[1], key, "empty")
    return value


def _strings(obj: dict[str, Any], key: str, ctx: Ctx) -> list[str]:
    """A field that is a string or a list of strings (both occur across Amazon releases)."""
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise DataFormatError(
        ctx[0], ctx[1], key, f"expected string or array of strings, got {type(value).__name__}"
    )


def _categories(obj: dict[str, Any], ctx: Ctx) -> tuple[str, ...]:
    """The category path: 2018 ``category`` (list), 2014 ``categories`` (list of paths, the
    first taken), else ``main_cat`` as a one-level path."""
    if isinstance(obj.get("categories"), list) and obj.get("category") is None:
        paths = obj["categories"]
        first = paths[0] if paths else []
        if not (isinstance(first, list) and all(isinstance(v, str) for v in first)):
            raise DataFormatError(ctx[0], ctx[1], "categories", "expected array of string arrays")
        levels = first
    else:
        levels = _strings(obj, "category", ctx)
    path = tuple(c for c in (clean_text(level) for level in levels) if c)
    if path:
        return path
    main = clean_text(optional_field(obj, "main_cat", str, "", ctx) or "")
    return (main,) if main else ()


def item_from_meta(obj: Any, ctx: Ctx) -> Item:
    """An :class:`Item` from one metadata object; HTML fragments are turned into plain text."""
    obj = as_object(obj, ctx)
    asin = require_id(obj, "asin", ctx)
    price = obj.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, (str, int, float))):
        raise DataFormatError(
            ctx[0], ctx[1], "price", f"expected string or number, got {type(price).__name__}"
        )
    brand = clean_text(optional_field(obj, "brand", str, "", ctx) or "")
    return Item(
        asin=asin,
        title=clean_text(optional_field(obj, "title", str, "", ctx) or ""),
        categories=_categories(obj, ctx),
        description=" ".join(
            d for d in (clean_text(part) for part in _strings(obj, "description", ctx)) if d
        ),
        price=parse_price(price),
        brand=brand or None,
    )
