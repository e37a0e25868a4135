"""``gemini`` LLM backend: Google's Gemini API through the ``google-genai`` SDK.

The API key comes from the environment only: ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``).
The SDK's own retries are off (one attempt per call); :class:`regen_bench.llm.LLMClient` retries.
Error mapping: 429, 408 and 5xx, timeouts and connection errors -> RetryableError (with the
server's Retry-After when it sends one); other 4xx -> BackendError; an answer without text
(blocked by a safety filter, for example) -> BackendError naming the finish reason.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from regen_bench import Register, hookimpl
from regen_bench.llm import BackendError, LLMRequest, LLMResponse, parse_price_per_mtok
from regen_bench_plugins.llm_backends import _api

if TYPE_CHECKING:
    from google.genai.types import GenerateContentConfig

ENV_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def _transient_transport_errors() -> tuple[type[BaseException], ...]:
    """httpx/httpx2 timeout and connection errors (the SDK may use either library)."""
    found: list[type[BaseException]] = []
    for module in ("httpx", "httpx2"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        found += [mod.TimeoutException, mod.TransportError]
    return tuple(found)


class GeminiBackend:
    """``generate_content`` through ``google.genai.Client``.

    Options: ``model`` (default ``gemini-2.5-flash``), ``price_per_mtok`` (``"in,out"`` USD per
    million tokens), ``thinking_budget`` (tokens a thinking model may spend; 0 turns thinking
    off where the model allows it), ``base_url`` (a proxy or test server).
    """

    name = "gemini"

    def __init__(
        self,
        model: str = "gemini-2.5-flash",
        *,
        price_per_mtok: _api.PriceOption = None,
        thinking_budget: int | None = None,
        base_url: str | None = None,
    ):
        from google import genai  # lazy: only when this backend is used
        from google.genai import errors, types

        key = next((os.environ[k] for k in ENV_KEYS if os.environ.get(k)), None)
        if not key:
            raise BackendError(
                f"gemini backend: set the {' or '.join(ENV_KEYS)} environment variable"
            )
        self.model = model
        self.price_per_mtok = parse_price_per_mtok(price_per_mtok)
        self.thinking_budget = thinking_budget
        self.cache_extra = base_url or ""
        self._types = types
        self._errors = errors
        self._transport_errors = _transient_transport_errors()
        options = types.HttpOptions(
            base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1)
        )
        self._client = genai.Client(api_key=key, http_options=options)

    def _config(self, request: LLMRequest, timeout_s: float | None) -> GenerateContentConfig:
        types = self._types
        config: dict[str, Any] = {
            "temperature": request.temperature,
            "max_output_tokens": request.max_tokens,
            # Same single-attempt policy per call; the SDK takes the timeout in milliseconds.
            "http_options": types.HttpOptions(
                timeout=int(timeout_s * 1000) if timeout_s else None,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        }
        if request.system:
            config["system_instruction"] = request.system
        config.update(_api.sampling_fields(request, stop_key="stop_sequences"))
        if request.json_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = request.json_schema
        if self.thinking_budget is not None:
            config["thinking_config"] = types.ThinkingConfig(thinking_budget=self.thinking_budget)
        return types.GenerateContentConfig(**config)

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        errors = self._errors
        start = time.perf_counter()
        try:
            out = self._client.models.generate_content(
                model=self.model, contents=request.prompt, config=self._config(request, timeout_s)
            )
        except errors.APIError as exc:
            code = int(exc.code or 0)
            raise _api.status_error(
                f"HTTP {code} {exc.status or ''}: {exc.message or exc}".strip(),
                retryable=code in (408, 429) or code >= 500 or code == 0,
                headers=getattr(getattr(exc, "response", None), "headers", None),
            ) from exc
        except self._transport_errors as exc:
            raise _api.transport_error(exc) from exc
        except ValueError as exc:  # a body that is not JSON
            raise _api.malformed_body(exc) from exc
        latency = time.perf_counter() - start
        text = out.text
        if text is None:
            candidates = out.candidates or []
            reason = candidates[0].finish_reason if candidates else None
            feedback = getattr(out, "prompt_feedback", None)
            raise BackendError(f"no text in the answer (finish reason {reason}, {feedback})")
        return _api.response(
            text,
            out.usage_metadata,
            ("prompt_token_count", "candidates_token_count"),
            latency_s=latency,
            model=str(getattr(out, "model_version", None) or self.model),
        )


@hookimpl
def register_llm_backends(register: Register) -> None:
    register("gemini", GeminiBackend, summary="Google Gemini API (google-genai SDK)")
