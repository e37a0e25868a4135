"""Structured answers: the JSON-schema instruction for backends without structured output,
finding the JSON value in an answer, and validating it against the request's schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class SchemaViolation(ValueError):
    """An answer that is not JSON or does not follow the request's ``json_schema``."""


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The instruction a backend without structured output appends to the prompt."""
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False)
    return (
        "Answer with one JSON value only (no prose, no code fences) that follows this "
        f"JSON schema:\n{text}"
    )


def extract_json(text: str) -> tuple[Any, str]:
    """Parse the JSON value in ``text``: plain, inside a code fence, or after some prose.

    Returns (value, exact JSON text); raises :class:`SchemaViolation` when there is none.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    try:
        return json.loads(body), body
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(body):
        if ch in "{[":
            try:
                value, end = decoder.raw_decode(body, i)
            except json.JSONDecodeError:
                continue
            return value, body[i:end]
    raise SchemaViolation(f"answer is not JSON: {text[:80]!r}")


def validate_json_answer(text: str, schema: Mapping[str, Any]) -> str:
    """The JSON text of a valid answer; :class:`SchemaViolation` (one line) otherwise."""
    value, body = extract_json(text)
    try:
        import jsonschema  # lazy: only structured requests need it
    except ImportError:
        raise SchemaViolation(
            "validating json_schema answers needs jsonschema: pip install 'regen-bench[api]'"
        ) from None
    validator_cls = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaViolation(f"answer does not follow json_schema at {where}: {error.message}")
    return body
