"""The LLM client: a backend plus request cache, bounded concurrency, retries with backoff,
re-asks of malformed answers, and usage accounting."""

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
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from regen_bench.llm.cache import ResponseCache
from regen_bench.llm.helpers import check_options
from regen_bench.llm.redact import is_secret_name, redact, register_secret
from regen_bench.llm.schema import validate_json_answer
from regen_bench.llm.types import (
    AnswerCheck,
    Backend,
    BackendError,
    LLMRequest,
    LLMResponse,
    RequestTimeout,
    RetryableError,
)

if TYPE_CHECKING:
    from regen_bench.plugins import PluginManager

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Uncached work of one :meth:`LLMClient.complete_many` call: (cache key, request, the input
#: positions that asked it), and where an answer goes (to those positions).
_Todo = tuple[str, LLMRequest, list[int]]
_Deliver = Callable[[list[int], LLMResponse], None]


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


#: Characters per prompt token assumed when a request's timeout is sized (no tokenizer here).
_CHARS_PER_TOKEN = 4
#: A prompt token costs this fraction of a generated token (prefill runs them all at once).
_PROMPT_TOKEN_WEIGHT = 0.1


class _AdaptiveLimit:
    """A concurrency bound that a timeout halves and successes raise again (AIMD).

    A timeout means the server could not keep up: sending as many calls again only lengthens
    its queue. ``limit`` halves (at least 1) on each timeout and grows by one after ``limit``
    successes in a row, up to ``ceiling``. Calls in flight are never interrupted; new calls
    wait until fewer than ``limit`` are running.
    """

    def __init__(self, ceiling: int):
        self.ceiling = ceiling
        self.limit = ceiling
        self.active = 0
        self._streak = 0
        self._cond = threading.Condition()

    def __enter__(self) -> _AdaptiveLimit:
        with self._cond:
            self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify_all()

    def success(self) -> None:
        with self._cond:
            self._streak += 1
            if self.limit < self.ceiling and self._streak >= self.limit:
                self.limit += 1
                self._streak = 0
                self._cond.notify_all()

    def timed_out(self) -> int:
        """Halve the limit; returns the new one."""
        with self._cond:
            self.limit = max(1, self.limit // 2)
            self._streak = 0
            return self.limit


@dataclass
class _Usage:
    requests: int = 0
    cache_hits: int = 0
    calls: int = 0
    retries: int = 0
    timeouts: int = 0
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
    ``backoff_max_s``). Each attempt's timeout is sized to the request (:meth:`timeout_for`):
    ``timeout_s`` (the floor: connection, queueing, prompt) plus ``timeout_per_token_s`` per
    token it may cost. A :class:`RequestTimeout` is never retried, since the server may still
    be generating the abandoned answer and a re-send would double its work (a retry storm
    under load); the call fails with a message saying so, and the concurrency is halved
    (see :class:`_AdaptiveLimit`) so that the calls after it stop piling up. An answer that
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
        timeout_per_token_s: float = 0.25,
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
        if not (0 <= timeout_per_token_s < math.inf):
            raise ValueError(f"timeout_per_token_s must be >= 0, got {timeout_per_token_s!r}")
        self.backend = backend
        self.cache = ResponseCache(cache_path) if cache_path is not None else None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.timeout_per_token_s = float(timeout_per_token_s)
        self.schema_retries = schema_retries
        self.reask_temperature = float(reask_temperature)
        self._slots = _AdaptiveLimit(concurrency)
        self._lock = threading.Lock()
        self._usage = _Usage()
        self._jitter = random.Random()  # only spreads retry waits; never touches answers

    # -- public ----------------------------------------------------------------------------
    def timeout_for(self, request: LLMRequest) -> float:
        """Seconds one attempt of ``request`` may take: ``timeout_s + timeout_per_token_s *
        (max_tokens + prompt_tokens / 10)``, the prompt counted as characters / 4 and at a
        tenth of a generated token (a server reads the prompt in one pass)."""
        chars = len(request.system) + len(request.prompt_with_schema())
        tokens = request.max_tokens + _PROMPT_TOKEN_WEIGHT * chars / _CHARS_PER_TOKEN
        return self.timeout_s + self.timeout_per_token_s * tokens

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
            todo: list[_Todo] = []
            for key, positions in groups.items():
                hit = self._cache_get(key) if not key.startswith("uncached:") else None
                if hit is None:
                    todo.append((key, requests[positions[0]], positions))
                    continue
                for p in positions:
                    results[p] = hit
                with self._lock:
                    self._usage.cache_hits += len(positions)
                bar.update(len(positions))

            def deliver(positions: list[int], resp: LLMResponse) -> None:
                for p in positions:
                    results[p] = resp
                bar.update(len(positions))

            if todo and callable(getattr(self.backend, "complete_batch", None)):
                self._run_batched(todo, deliver, check)
            elif todo:
                self._run_threaded(todo, deliver, check)
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
            "timeouts": u.timeouts,
            "concurrency_now": self._slots.limit,
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
        return None if self.cache is None else self.cache.get(key)

    def _failed(self, reason: str | None) -> LLMResponse:
        # Every error leaves the client through here or _accepted: the one place keys echoed
        # by a provider's error body are redacted before anything stores or prints them.
        error = None if reason is None else redact(reason)
        return LLMResponse(text="", model=self.backend.model, error=error)

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

    def _with_retries(self, call: Callable[[], T], timeout_s: float) -> tuple[T | None, str | None]:
        """(result, None), or (None, reason) once retries are spent, the error is permanent,
        or the attempt timed out (``timeout_s`` is only quoted in that message)."""
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                with self._slots:
                    with self._lock:
                        self._usage.calls += 1
                    result = call()
                self._slots.success()
                return result, None
            except RequestTimeout:
                return None, self._timed_out(timeout_s)
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
                log.warning("llm backend %s raised %s", self.backend.name, redact(repr(exc)))
                return None, f"{type(exc).__name__}: {exc}"
        return None, f"gave up after {self.max_retries + 1} attempts: {last}"

    def _timed_out(self, timeout_s: float) -> str:
        """Lower the concurrency after a timeout; the failure's one-line reason."""
        limit = self._slots.timed_out()
        with self._lock:
            self._usage.timeouts += 1
            first = self._usage.timeouts == 1
        reason = (
            f"server too slow: no answer within {round(timeout_s, 1):g} s (timeout_s "
            f"{self.timeout_s:g} + timeout_per_token_s {self.timeout_per_token_s:g} per token); "
            "not sent again, as the server may still be generating it; concurrency lowered to "
            f"{limit}. Raise timeout_s or timeout_per_token_s, lower --concurrency, or stream "
            "(openai: stream=true); rerun to resume"
        )
        if first:
            log.warning("llm backend %s: %s", self.backend.name, reason)
        return f"RequestTimeout: {reason}"

    def _accepted(
        self, req: LLMRequest, got: LLMResponse, check: AnswerCheck | None = None
    ) -> LLMResponse:
        """A fresh answer, its tokens counted, or with ``error`` set when it is malformed."""
        with self._lock:
            self._usage.prompt_tokens += int(got.prompt_tokens)
            self._usage.completion_tokens += int(got.completion_tokens)
        resp = dataclasses.replace(got, cached=False)
        if resp.error is not None:  # a backend's own failed answer (batched backends)
            return dataclasses.replace(resp, error=redact(resp.error))
        if req.json_schema is None and check is None:
            return resp
        try:
            text = resp.text
            if req.json_schema is not None:
                text = validate_json_answer(text, req.json_schema)
            if check is not None:
                check(req, text)
            return dataclasses.replace(resp, text=text)
        except ValueError as exc:  # SchemaViolation is a ValueError too
            return dataclasses.replace(resp, error=redact(str(exc)))

    def _complete_uncached(
        self, req: LLMRequest, check: AnswerCheck | None = None, first_attempt: int = 0
    ) -> LLMResponse:
        """Ask ``req`` (re-ask ``k`` as :func:`reask_request` says) until an answer is valid."""
        resp = self._failed("not attempted")
        for attempt in range(first_attempt, self.schema_retries + 1):
            asked = reask_request(req, attempt, self.reask_temperature)
            if attempt > 0:
                with self._lock:
                    self._usage.reasks += 1
            timeout = self.timeout_for(asked)
            got, err = self._with_retries(
                partial(self.backend.complete, asked, timeout_s=timeout), timeout
            )
            if got is None:
                return self._failed(err)
            resp = self._accepted(req, got, check)
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
        self, todo: list[_Todo], deliver: _Deliver, check: AnswerCheck | None
    ) -> None:
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm")
        pending: dict[Future[LLMResponse], list[int]] = {}
        try:
            for key, req, positions in todo:
                pending[pool.submit(self._complete_and_record, key, req, check)] = positions
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    deliver(pending.pop(fut), fut.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _run_batched(self, todo: list[_Todo], deliver: _Deliver, check: AnswerCheck | None) -> None:
        batch_size = max(1, int(getattr(self.backend, "batch_size", 8)))
        complete_batch = self.backend.complete_batch  # type: ignore[attr-defined]
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            reqs = [req for _, req, _ in chunk]
            timeout = max(self.timeout_for(r) for r in reqs)

            def call(reqs: list[LLMRequest] = reqs, timeout: float = timeout) -> list[LLMResponse]:
                answers = list(complete_batch(reqs, timeout_s=timeout))
                if len(answers) != len(reqs):
                    raise BackendError(f"{len(answers)} answers for {len(reqs)} requests")
                return answers

            got, err = self._with_retries(call, timeout)
            for i, (key, _, positions) in enumerate(chunk):
                if got is None:
                    resp = self._failed(err)
                else:
                    resp = self._accepted(reqs[i], got[i], check)
                    if resp.error is not None and self.schema_retries > 0:
                        # re-asks 1.. on their own (the batch was attempt 0)
                        resp = self._complete_uncached(reqs[i], check, first_attempt=1)
                self._record(key, reqs[i], resp)
                deliver(positions, resp)


#: The keyword options of :class:`LLMClient`, read off its signature so that they are declared
#: (with their defaults) in one place.
_CLIENT_OPTIONS = frozenset(inspect.signature(LLMClient).parameters) - {"backend"}


def make_client(
    backend_name: str, *, plugin_manager: PluginManager | None = None, **options: Any
) -> LLMClient:
    """An :class:`LLMClient` for the ``llm_backend`` plugin ``backend_name``.

    ``options`` named like a keyword of :class:`LLMClient` (``cache_path``, ``concurrency``,
    ``max_retries``, ``backoff_base_s``, ``backoff_max_s``, ``timeout_s``,
    ``timeout_per_token_s``, ``schema_retries``,
    ``reask_temperature``) configure the client, with its defaults; the rest go to the backend's
    factory, and unknown ones raise ValueError listing the backend's options. Unknown backend
    names raise UnknownNameError (with "did you mean").
    """
    # Deferred: the plugin manager's module may itself import this package.
    from regen_bench.plugins import get_plugin_manager

    client_options = {k: v for k, v in options.items() if k in _CLIENT_OPTIONS}
    backend_config = {k: v for k, v in options.items() if k not in _CLIENT_OPTIONS}
    for name, value in backend_config.items():
        if is_secret_name(name):  # a key given as an option is redacted like one in the env
            register_secret(value)
    manager = plugin_manager or get_plugin_manager()
    entry = manager.get("llm_backend", backend_name)
    check_options(f"llm backend '{backend_name}'", entry.factory, backend_config)
    return LLMClient(entry.factory(**backend_config), **client_options)
