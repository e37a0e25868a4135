"""Model options from the command line: shared by the first-party torch models."""

from __future__ import annotations

from typing import Any


def coerce_option(model: str, name: str, value: Any, default: Any) -> Any:
    """Bring a value (possibly a command-line string) to the type of its default."""
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "0", "false", "no"}:
            return value.lower() in {"1", "true", "yes"}
        if isinstance(value, bool | int):
            return bool(value)
    elif isinstance(default, int):
        if not isinstance(value, bool):
            try:
                if float(value) == int(float(value)):
                    return int(float(value))
            except (TypeError, ValueError, OverflowError):
                pass
    elif isinstance(default, float):
        if not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    elif isinstance(value, str):
        return value
    raise ValueError(f"{model} option '{name}' must be a {type(default).__name__}, got {value!r}")
