"""``openai`` LLM backend: the OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp).

The API key comes from the environment variable ``OPENAI_API_KEY`` only (never from config,
so it cannot leak into result files). A server on localhost needs no key; if it checks one,
export the key it expects as ``OPENAI_API_KEY``.

Error mapping (the client's own retries are off: :class:`regen_bench.llm.LLMClient` retries):
a timeout -> RequestTimeout (not re-sent: the server may still be generating the answer);
429, 408, 409, 5xx and connection errors -> RetryableError (429 carries Retry-After);
other 4xx -> BackendError. A 200 whose body is not a chat completion (not JSON, no choices) is
RetryableError: overloaded proxies and servers send truncated or HTML bodies now and then, and
the retry bound stops a server that always does it.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlparse

from regen_bench import Register, hookimpl
from regen_bench.llm import BackendError, LLMRequest, LLMResponse, parse_price_per_mtok
from regen_bench.llm.types import RequestTimeout
from regen_bench_plugins.llm_backends import _api

ENV_KEY = "OPENAI_API_KEY"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


class OpenAIBackend:
    """Chat completions through the ``openai`` client.

    Options: ``model`` (required), ``base_url`` (an OpenAI-compatible server, e.g.
    ``http://localhost:8000/v1``), ``price_per_mtok`` (``"in,out"`` USD per million tokens, for
    the cost estimate), ``token_limit_field`` (``max_tokens`` or ``max_completion_tokens``: newer
    OpenAI models accept only the latter), ``strict_schema`` (OpenAI strict structured output;
    needs ``additionalProperties: false`` everywhere), ``organization``, ``stream`` (ask for
    the answer as server-sent events: the timeout then bounds the wait for each next piece, so
    a slow but progressing answer is never abandoned, and closing the stream makes
    ``transformers serve`` stop generating, which an abandoned non-streamed request does not).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        price_per_mtok: _api.PriceOption = None,
        token_limit_field: str = "max_tokens",
        strict_schema: bool = False,
        organization: str | None = None,
        stream: bool = False,
    ):
        import openai  # lazy: only when this backend is used

        if not model:
            raise ValueError("openai backend: model must be a non-empty string")
        if token_limit_field not in _TOKEN_FIELDS:
            raise ValueError(f"openai backend: token_limit_field must be one of {_TOKEN_FIELDS}")
        self.model = model
        self.base_url = base_url
        self.price_per_mtok = parse_price_per_mtok(price_per_mtok)
        self.token_limit_field = token_limit_field
        self.strict_schema = bool(strict_schema)
        if not isinstance(stream, bool):
            raise ValueError(f"openai backend: stream must be true or false, got {stream!r}")
        self.stream = stream
        # Answers depend on the server as much as on the model name: keep caches apart.
        self.cache_extra = base_url or ""
        key = os.environ.get(ENV_KEY)
        if not key:
            host = urlparse(base_url).hostname if base_url else None
            if host not in _LOCAL_HOSTS:
                raise BackendError(
                    f"openai backend: set the {ENV_KEY} environment variable "
                    "(or point base_url at a local server)"
                )
            key = "not-needed-for-a-local-server"
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url, organization=organization, max_retries=0
        )

    def _params(self, request: LLMRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [
                *([{"role": "system", "content": request.system}] if request.system else []),
                {"role": "user", "content": request.prompt},
            ],
            "temperature": request.temperature,
            self.token_limit_field: request.max_tokens,
            **_api.sampling_fields(request, stop_key="stop"),
        }
        if self.stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        if request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": request.json_schema,
                    "strict": self.strict_schema,
                },
            }
        return params

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        oa = self._openai
        start = time.perf_counter()
        try:
            out = self._client.chat.completions.create(**self._params(request), timeout=timeout_s)
            if self.stream:
                return self._read_stream(out, start)
        except oa.APITimeoutError as exc:
            raise RequestTimeout(f"{type(exc).__name__}: {exc}") from exc
        except oa.APIConnectionError as exc:
            raise _api.transport_error(exc) from exc
        except oa.APIStatusError as exc:
            status = exc.status_code
            raise _api.status_error(
                str(exc.message),  # "Error code: 429 - <server message>"
                retryable=status in (408, 409, 429) or status >= 500,
                headers=exc.response.headers,
            ) from exc
        except (oa.APIResponseValidationError, ValueError) as exc:  # body is not JSON
            raise _api.malformed_body(exc) from exc
        latency = time.perf_counter() - start
        try:
            choice = out.choices[0]
            text = choice.message.content
        except (AttributeError, IndexError, TypeError) as exc:
            raise _api.malformed_body(f"no choices ({out!r:.120})") from exc
        if text is None:
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                raise BackendError(f"the model refused: {refusal}")
            raise _api.malformed_body("message has no content")
        return _api.response(
            text,
            getattr(out, "usage", None),
            ("prompt_tokens", "completion_tokens"),
            latency_s=latency,
            model=str(getattr(out, "model", None) or self.model),
        )

    def _read_stream(self, stream: Any, start: float) -> LLMResponse:
        """The answer of a streamed completion: its text pieces joined, the usage of the last
        chunk (``stream_options.include_usage``). The stream is closed on any error, which
        tells the server to stop."""
        parts: list[str] = []
        usage = None
        model = None
        refusal = ""
        with stream:
            for chunk in stream:
                model = model or getattr(chunk, "model", None)
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or ():
                    delta = getattr(choice, "delta", None)
                    parts.append(getattr(delta, "content", None) or "")
                    refusal += getattr(delta, "refusal", None) or ""
        if refusal and not any(parts):
            raise BackendError(f"the model refused: {refusal}")
        if model is None:
            raise _api.malformed_body("the stream held no chunk")
        return _api.response(
            "".join(parts),
            usage,
            ("prompt_tokens", "completion_tokens"),
            latency_s=time.perf_counter() - start,
            model=str(model or self.model),
        )


@hookimpl
def register_llm_backends(register: Register) -> None:
    register(
        "openai",
        OpenAIBackend,
        summary="OpenAI API or any OpenAI-compatible server (vLLM, llama.cpp) via base_url",
    )
