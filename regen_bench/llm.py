"""LLM backends: request/response types, the backend protocol, and :class:`LLMClient`.

A backend plugin answers one :class:`LLMRequest` at a time (``complete``), optionally a batch
(``complete_batch``, for local models). The client adds what every long job needs: a sqlite
request cache (each call is committed as soon as it finishes, so jobs resume), bounded
concurrency, retries with exponential backoff and full jitter, JSON-schema validation of
structured answers, and a usage/cost summary. A request that still fails after its retries comes
back with ``error`` set instead of raising, so one bad call never stops a long run.

    client = make_client("openai", cache_path="llm.sqlite", model="gpt-4o-mini")
    answers = client.complete_many([LLMRequest(system="...", prompt="...")])
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from regen_bench.plugins import PluginManager

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class SchemaViolation(ValueError):
    """An answer that is not JSON or does not follow the request's ``json_schema``."""


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

    ``complete`` answers one request or raises :class:`RetryableError` (rate limit, 5xx,
    timeout) / :class:`BackendError` (permanent); ``timeout_s`` bounds one attempt. A local
    backend may also define ``complete_batch(requests, *, timeout_s=None) -> list[LLMResponse]``
    and ``batch_size: int``; the client then sends it batches instead of parallel calls.
    ``price_per_mtok`` is (input, output) USD per million tokens, or None when unknown.
    """

    name: str
    model: str
    price_per_mtok: tuple[float, float] | None

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse: ...


# -- structured answers --------------------------------------------------------------------


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


# -- helpers for backends ------------------------------------------------------------------


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


# -- the client ----------------------------------------------------------------------------

#: ``check(request, text)`` raises ValueError (the reason) for an answer that is unusable.
AnswerCheck = Callable[[LLMRequest, str], None]


def reask_request(req: LLMRequest, attempt: int, reask_temperature: float = 0.7) -> LLMRequest:
    """The request sent as attempt ``attempt`` (0 = the request itself) of a malformed answer.

    A greedy request, or a sampled one with the same seed, gets the same answer every time, so
    asking it again is wasted. Re-ask ``k`` samples at ``max(temperature, reask_temperature)``
    under the seed sha256(seed, k): different from the first answer, yet reproducible, so a
    resumed run asks the same re-asks.
    """
    if attempt == 0:
        return req
    blob = f"regen-reask/{req.seed}/{attempt}".encode()
    seed = int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF
    return dataclasses.replace(
        req, temperature=max(float(req.temperature), reask_temperature), seed=seed
    )


@dataclass
class _Usage:
    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    retries: int = 0
    reasks: int = 0
    retry_wait_s: float = 0.0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0


class LLMClient:
    """A backend plus cache, bounded concurrency, retries, validation and usage accounting.

    ``concurrency`` bounds simultaneous backend calls of this client (all threads together).
    ``max_retries`` retries a :class:`RetryableError` after waiting ``uniform(0, min(max,
    base * 2**attempt))`` seconds (full jitter), or the server's ``Retry-After`` (capped at
    ``backoff_max_s``). ``timeout_s`` is handed to the backend for each attempt. An answer that
    breaks the request's ``json_schema`` (or an answer check given to :meth:`complete_many`)
    is asked again up to ``schema_retries`` times; a re-ask is never the identical request,
    which a greedy or seeded backend would answer identically: re-ask ``k`` samples at
    ``max(temperature, reask_temperature)`` under a seed derived from the request's seed and
    ``k`` (see :func:`reask_request`). The answer is cached under the original request.
    The cache is keyed by sha256(backend name, model, canonical request); it is bypassed for
    requests with ``temperature > 0`` and no seed. Failed calls are never cached.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cache_path: str | Path | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 120.0,
        schema_retries: int = 2,
        reask_temperature: float = 0.7,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0 or schema_retries < 0:
            raise ValueError("max_retries and schema_retries must be >= 0")
        if not (0 <= reask_temperature < math.inf):
            raise ValueError(f"reask_temperature must be a number >= 0, got {reask_temperature!r}")
        if backoff_base_s < 0 or backoff_max_s < 0 or timeout_s <= 0:
            raise ValueError("backoff_base_s, backoff_max_s must be >= 0 and timeout_s > 0")
        from regen_bench.llm_cache import ResponseCache

        self.backend = backend
        self.cache = ResponseCache(cache_path) if cache_path is not None else None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.schema_retries = schema_retries
        self.reask_temperature = float(reask_temperature)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._usage = _Usage()
        self._jitter = random.Random()  # only spreads retry waits; never touches answers

    # -- public ----------------------------------------------------------------------------
    def complete(self, request: LLMRequest) -> LLMResponse:
        """Answer one request (from the cache when possible)."""
        return self.complete_many([request], progress=False)[0]

    def complete_many(
        self,
        requests: Sequence[LLMRequest],
        progress: bool = True,
        *,
        check: AnswerCheck | None = None,
    ) -> list[LLMResponse]:
        """Answer ``requests``; the answers come back in input order.

        Identical cacheable requests are sent once. Each call is cached as soon as it
        finishes (by the worker that made it), so an interrupted run loses nothing finished.
        ``check(request, text)`` runs on each fresh schema-valid answer; a ``ValueError`` it
        raises (its message is the reason) makes the answer malformed: re-asked, then a failure.
        Answers from the cache are not checked again.
        """
        from tqdm.auto import tqdm

        start = time.perf_counter()
        results: list[LLMResponse | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}  # cache key (or a unique token) -> input positions
        for i, req in enumerate(requests):
            if not isinstance(req, LLMRequest):
                raise TypeError(f"request {i} is a {type(req).__name__}, not an LLMRequest")
            key = self._key(req) if req.cacheable else f"uncached:{i}"
            groups.setdefault(key, []).append(i)
        with self._lock:
            self._usage.requests += len(requests)
        bar = tqdm(
            total=len(requests),
            disable=not progress,
            desc=f"{self.backend.name}:{self.backend.model}",
            unit="req",
        )
        try:
            todo: list[tuple[str, list[int]]] = []
            for key, positions in groups.items():
                hit = self._cache_get(key) if not key.startswith("uncached:") else None
                if hit is None:
                    todo.append((key, positions))
                    continue
                for p in positions:
                    results[p] = hit
                with self._lock:
                    self._usage.cache_hits += len(positions)
                bar.update(len(positions))

            def deliver(key: str, positions: list[int], resp: LLMResponse) -> None:
                for p in positions:
                    results[p] = resp
                bar.update(len(positions))

            if todo and callable(getattr(self.backend, "complete_batch", None)):
                self._run_batched(requests, todo, deliver, check)
            elif todo:
                self._run_threaded(requests, todo, deliver, check)
        finally:
            bar.close()
            with self._lock:
                self._usage.wall_s += time.perf_counter() - start
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def usage(self) -> dict[str, Any]:
        """Counts and cost so far: requests, cache hits, backend calls, retries, failures,
        tokens (backend calls only, cache hits cost nothing), estimated USD, wall s, tokens/s."""
        with self._lock:
            u = dataclasses.replace(self._usage)
        price = getattr(self.backend, "price_per_mtok", None)
        cost = None
        if price is not None:
            cost = (u.prompt_tokens * price[0] + u.completion_tokens * price[1]) / 1e6
        return {
            "backend": self.backend.name,
            "model": self.backend.model,
            "requests": u.requests,
            "cache_hits": u.cache_hits,
            "calls": u.calls,
            "retries": u.retries,
            "reasks": u.reasks,
            "retry_wait_s": round(u.retry_wait_s, 4),
            "failures": u.failures,
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cost_usd": cost,
            "wall_s": round(u.wall_s, 4),
            "tokens_per_s": round(u.completion_tokens / u.wall_s, 2) if u.wall_s > 0 else 0.0,
        }

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _key(self, req: LLMRequest) -> str:
        blob = json.dumps(
            [self.backend.name, self.backend.model, getattr(self.backend, "cache_extra", "")],
            separators=(",", ":"),
        )
        return hashlib.sha256(f"{blob}\n{req.canonical()}".encode()).hexdigest()

    def _cache_get(self, key: str) -> LLMResponse | None:
        if self.cache is None:
            return None
        row = self.cache.get(key)
        return None if row is None else LLMResponse(cached=True, **row)

    def _record(self, key: str, req: LLMRequest, resp: LLMResponse) -> None:
        with self._lock:
            if resp.error is not None:
                self._usage.failures += 1
        if resp.error is None and self.cache is not None and not key.startswith("uncached:"):
            self.cache.put(
                key,
                backend=self.backend.name,
                model=self.backend.model,
                request=req.to_dict(),
                response=resp,
            )

    def _count(self, responses: Sequence[LLMResponse]) -> None:
        with self._lock:
            for r in responses:
                self._usage.prompt_tokens += int(r.prompt_tokens)
                self._usage.completion_tokens += int(r.completion_tokens)

    def _with_retries(self, call: Callable[[], T]) -> tuple[T | None, str | None]:
        """(result, None), or (None, reason) once retries are spent or the error is permanent."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                with self._slots:
                    with self._lock:
                        self._usage.calls += 1
                    return call(), None
            except RetryableError as exc:
                last = f"{type(exc).__name__}: {exc}"
                if attempt == self.max_retries:
                    break
                cap = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
                delay = self._jitter.uniform(0, cap)
                if exc.retry_after is not None:
                    delay = min(max(exc.retry_after, delay), self.backoff_max_s)
                with self._lock:
                    self._usage.retries += 1
                    self._usage.retry_wait_s += delay
                time.sleep(delay)
            except BackendError as exc:
                return None, f"BackendError: {exc}"
            except Exception as exc:  # a backend bug must not end a long run; it is recorded
                log.warning("llm backend %s raised %r", self.backend.name, exc)
                return None, f"{type(exc).__name__}: {exc}"
        return None, f"gave up after {self.max_retries + 1} attempts: {last}"

    def _validated(
        self, req: LLMRequest, resp: LLMResponse, check: AnswerCheck | None = None
    ) -> LLMResponse:
        if resp.error is not None or (req.json_schema is None and check is None):
            return resp
        try:
            text = resp.text
            if req.json_schema is not None:
                text = validate_json_answer(text, req.json_schema)
            if check is not None:
                check(req, text)
            return dataclasses.replace(resp, text=text)
        except ValueError as exc:  # SchemaViolation is a ValueError too
            return dataclasses.replace(resp, error=str(exc))

    def _complete_uncached(
        self, req: LLMRequest, check: AnswerCheck | None = None, first_attempt: int = 0
    ) -> LLMResponse:
        """Ask ``req`` (re-ask ``k`` as :func:`reask_request` says) until an answer is valid."""
        resp = LLMResponse(text="", model=self.backend.model, error="not attempted")
        for attempt in range(first_attempt, self.schema_retries + 1):
            asked = reask_request(req, attempt, self.reask_temperature)
            if attempt > 0:
                with self._lock:
                    self._usage.reasks += 1
            got, err = self._with_retries(
                partial(self.backend.complete, asked, timeout_s=self.timeout_s)
            )
            if got is None:
                return LLMResponse(text="", model=self.backend.model, error=err)
            self._count([got])
            resp = self._validated(req, dataclasses.replace(got, cached=False), check)
            if resp.error is None:
                break
        return resp

    def _complete_and_record(
        self, key: str, req: LLMRequest, check: AnswerCheck | None = None
    ) -> LLMResponse:
        resp = self._complete_uncached(req, check)
        self._record(key, req, resp)  # persisted in the worker, as soon as the call is done
        return resp

    def _run_threaded(
        self,
        requests: Sequence[LLMRequest],
        todo: list[tuple[str, list[int]]],
        deliver: Callable[[str, list[int], LLMResponse], None],
        check: AnswerCheck | None = None,
    ) -> None:
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm")
        pending: dict[Future[LLMResponse], tuple[str, list[int]]] = {}
        try:
            for key, positions in todo:
                fut = pool.submit(self._complete_and_record, key, requests[positions[0]], check)
                pending[fut] = (key, positions)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    key, positions = pending.pop(fut)
                    deliver(key, positions, fut.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_batched(
        self,
        requests: Sequence[LLMRequest],
        todo: list[tuple[str, list[int]]],
        deliver: Callable[[str, list[int], LLMResponse], None],
        check: AnswerCheck | None = None,
    ) -> None:
        batch_size = max(1, int(getattr(self.backend, "batch_size", 8)))
        complete_batch = self.backend.complete_batch  # type: ignore[attr-defined]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            reqs = [requests[positions[0]] for _, positions in chunk]

            def call(reqs: list[LLMRequest] = reqs) -> list[LLMResponse]:
                answers = list(complete_batch(reqs, timeout_s=self.timeout_s))
                if len(answers) != len(reqs):
                    raise BackendError(f"{len(answers)} answers for {len(reqs)} requests")
                return answers

            got, err = self._with_retries(call)
            for i, (key, positions) in enumerate(chunk):
                if got is None:
                    resp = LLMResponse(text="", model=self.backend.model, error=err)
                else:
                    self._count([got[i]])
                    resp = self._validated(
                        reqs[i], dataclasses.replace(got[i], cached=False), check
                    )
                    if resp.error is not None and self.schema_retries > 0:
                        # re-asks 1.. on their own (the batch was attempt 0)
                        resp = self._complete_uncached(reqs[i], check, first_attempt=1)
                self._record(key, reqs[i], resp)
                deliver(key, positions, resp)


def make_client(
    backend_name: str,
    *,
    cache_path: str | Path | None = None,
    concurrency: int = 4,
    max_retries: int = 5,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 60.0,
    timeout_s: float = 120.0,
    schema_retries: int = 2,
    reask_temperature: float = 0.7,
    plugin_manager: PluginManager | None = None,
    **backend_config: Any,
) -> LLMClient:
    """An :class:`LLMClient` for the ``llm_backend`` plugin ``backend_name``.

    ``backend_config`` goes to the backend's factory; unknown keys raise ValueError listing the
    backend's options. Unknown backend names raise UnknownNameError (with "did you mean").
    """
    from regen_bench.plugins import get_plugin_manager

    manager = plugin_manager or get_plugin_manager()
    entry = manager.get("llm_backend", backend_name)
    check_options(f"llm backend '{backend_name}'", entry.factory, backend_config)
    backend = entry.factory(**backend_config)
    return LLMClient(
        backend,
        cache_path=cache_path,
        concurrency=concurrency,
        max_retries=max_retries,
        backoff_base_s=backoff_base_s,
        backoff_max_s=backoff_max_s,
        timeout_s=timeout_s,
        schema_retries=schema_retries,
        reask_temperature=reask_temperature,
    )


__all__ = [
    "AnswerCheck",
    "Backend",
    "BackendError",
    "LLMClient",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "RetryableError",
    "SchemaViolation",
    "check_options",
    "extract_json",
    "make_client",
    "parse_price_per_mtok",
    "parse_retry_after",
    "reask_request",
    "schema_instruction",
    "validate_json_answer",
]
