"""What the API backends (``openai``, ``gemini``) share: request fields, error mapping, answers.

Used as ``from regen_bench_plugins.llm_backends import _api`` so call sites read
``_api.status_error(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from regen_bench.llm import (
    BackendError,
    LLMError,
    LLMRequest,
    LLMResponse,
    RetryableError,
    parse_retry_after,
)

#: A price option as users write it: ``"in,out"`` (the command line) or a pair of numbers.
PriceOption = str | Sequence[float] | None


def sampling_fields(request: LLMRequest, *, stop_key: str) -> dict[str, Any]:
    """``top_p``, ``seed`` and the stop strings of ``request``, only where set.

    ``stop_key`` is the API's name for the stop strings (``stop``, ``stop_sequences``).
    """
    fields: dict[str, Any] = {}
    if request.top_p is not None:
        fields["top_p"] = request.top_p
    if request.seed is not None:
        fields["seed"] = request.seed
    if request.stop:
        fields[stop_key] = list(request.stop)
    return fields


def status_error(
    message: str, *, retryable: bool, headers: Mapping[str, str] | None = None
) -> LLMError:
    """The error for an HTTP error answer: a RetryableError carrying the server's Retry-After,
    or a BackendError for a status that retrying cannot fix."""
    if retryable:
        return RetryableError(message, retry_after=parse_retry_after(dict(headers or {})))
    return BackendError(message)


def transport_error(exc: BaseException) -> RetryableError:
    """A timeout or a lost connection: worth another attempt."""
    return RetryableError(f"{type(exc).__name__}: {exc}")


def malformed_body(detail: object) -> RetryableError:
    """A success status with a body that is not an answer (truncated, HTML, no choices):
    overloaded servers and proxies send these now and then, so it is retried (within bounds)."""
    return RetryableError(f"malformed response body: {detail}")


def response(
    text: str, usage: object, token_fields: tuple[str, str], *, latency_s: float, model: str
) -> LLMResponse:
    """The response for an answer ``text``; token counts are read off the SDK's ``usage``
    object by their names in ``token_fields`` (prompt, completion), 0 where the server sent
    none."""
    prompt_field, completion_field = token_fields
    return LLMResponse(
        text=text,
        prompt_tokens=int(getattr(usage, prompt_field, 0) or 0),
        completion_tokens=int(getattr(usage, completion_field, 0) or 0),
        latency_s=latency_s,
        model=model,
    )
