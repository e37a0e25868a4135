"""LLM request and response types, the backend protocol, and the errors a backend raises."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from regen_bench.llm.schema import extract_json, schema_instruction


class LLMError(Exception):
    """Base class of backend errors."""


class BackendError(LLMError):
    """A permanent failure (bad request, auth, unknown model): retrying will not help."""


class RetryableError(LLMError):
    """A transient failure (rate limit, 5xx, timeout, connection): the client retries it.

    ``retry_after`` is the wait in seconds the server asked for (``Retry-After``), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeout(RetryableError):
    """No answer within the attempt's timeout. The server may still be generating it (most
    servers finish an abandoned non-streamed request), so :class:`regen_bench.llm.LLMClient`
    does not send it again: it lowers its concurrency and reports the call as failed."""


@dataclass(frozen=True)
class LLMRequest:
    """One prompt. ``temperature=0`` is greedy; ``json_schema`` asks for a structured answer."""

    system: str
    prompt: str
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float | None = None
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.system, str) or not isinstance(self.prompt, str):
            raise ValueError("LLMRequest: system and prompt must be strings")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 <= t < math.inf):
            raise ValueError(f"LLMRequest: temperature must be a number >= 0, got {t!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ValueError(f"LLMRequest: max_tokens must be an int, got {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise ValueError(f"LLMRequest: max_tokens must be >= 1, got {self.max_tokens}")
        if self.top_p is not None and not (0 < self.top_p <= 1):
            raise ValueError(f"LLMRequest: top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"LLMRequest: seed must be an int or None, got {self.seed!r}")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise ValueError("LLMRequest: json_schema must be a dict (a JSON schema) or None")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"LLMRequest: stop must hold non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", stop)  # accept a list, store a tuple (frozen)

    @property
    def cacheable(self) -> bool:
        """Greedy requests, and sampled ones with a seed, give a reproducible answer."""
        return self.temperature == 0 or self.seed is not None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def canonical(self) -> str:
        """A canonical JSON text of the request (sorted keys, no whitespace)."""
        data = self.to_dict()
        data["temperature"] = float(self.temperature)
        data["stop"] = list(self.stop)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def __hash__(self) -> int:  # json_schema is a dict: hash the canonical text instead
        return hash(self.canonical())

    def prompt_with_schema(self) -> str:
        """The prompt plus the schema instruction, for backends without structured output."""
        if self.json_schema is None:
            return self.prompt
        return f"{self.prompt}\n\n{schema_instruction(self.json_schema)}"


@dataclass(frozen=True)
class LLMResponse:
    """One answer. ``error`` is set (and ``text`` may be empty) when the request failed."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    model: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self) -> Any:
        """The answer parsed as JSON (after code fences are stripped)."""
        return extract_json(self.text)[0]


@runtime_checkable
class Backend(Protocol):
    """What an ``llm_backend`` plugin's factory returns.

    ``complete`` answers one request or raises :class:`RequestTimeout` (no answer within
    ``timeout_s``, which bounds one attempt), :class:`RetryableError` (rate limit, 5xx, lost
    connection) or :class:`BackendError` (permanent). A local
    backend may also define ``complete_batch(requests, *, timeout_s=None) -> list[LLMResponse]``
    and ``batch_size: int``; the client then sends it batches instead of parallel calls.
    ``price_per_mtok`` is (input, output) USD per million tokens, or None when unknown.
    A backend that loads weights itself may define ``weights() -> dict[str, str]``: option ->
    :func:`regen_bench.weights.pin` of what it loaded (``model`` is recorded as the run's
    ``narrator`` role, any other option as ``narrator.<option>``); a remote API has none. Its
    factory may define ``check_weights(options)``, which a run's preflight calls before
    training: it raises :class:`~regen_bench.weights.WeightsError` for weights that could not
    be pinned (a hub id neither in the cache nor reachable) without loading anything.
    """

    name: str
    model: str
    price_per_mtok: tuple[float, float] | None

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse: ...


#: ``check(request, text)`` raises ValueError (the reason) for an answer that is unusable.
AnswerCheck = Callable[[LLMRequest, str], None]
