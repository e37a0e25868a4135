"""Helpers for plugin factories and backends: option checks, ``Retry-After`` and price parsing."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        if "retry-after" in lower:
            value = lower["retry-after"].strip()
            try:
                return max(0.0, float(value))
            except ValueError:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def parse_price_per_mtok(value: Any) -> tuple[float, float] | None:
    """``(in, out)`` USD per million tokens from a pair or an ``"in,out"`` string."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        price = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        price = ()
    if len(price) != 2 or min(price) < 0:
        raise ValueError(f"price_per_mtok must be two numbers >= 0 (input,output), got {value!r}")
    return (price[0], price[1])


def check_options(what: str, factory: Callable[..., Any], config: Mapping[str, Any]) -> None:
    """Raise ValueError naming unknown or missing options of ``factory`` (keyword config)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the factory decide
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    named = {n: p for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(config) - set(named))
    if unknown:
        raise ValueError(
            f"unknown option(s) for {what}: {', '.join(unknown)}. "
            f"Options: {', '.join(sorted(named)) or '(none)'}"
        )
    missing = [n for n, p in named.items() if p.default is p.empty and n not in config]
    if missing:
        raise ValueError(f"missing option(s) for {what}: {', '.join(missing)}")
