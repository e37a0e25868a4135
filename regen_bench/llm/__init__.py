"""LLM backends: request/response types, the backend protocol, and :class:`LLMClient`.

A backend plugin answers one :class:`LLMRequest` at a time (``complete``), optionally a batch
(``complete_batch``, for local models). The client adds what every long job needs: a sqlite
request cache (each call is committed as soon as it finishes, so jobs resume), bounded
concurrency, retries with exponential backoff and full jitter, JSON-schema validation of
structured answers, and a usage/cost summary. A request that still fails after its retries comes
back with ``error`` set instead of raising, so one bad call never stops a long run.

    client = make_client("openai", cache_path="llm.sqlite", model="gpt-4o-mini")
    answers = client.complete_many([LLMRequest(system="...", prompt="...")])

Modules: :mod:`~regen_bench.llm.types` (requests, responses, errors, the backend protocol),
:mod:`~regen_bench.llm.schema` (structured answers), :mod:`~regen_bench.llm.client` (the
client), :mod:`~regen_bench.llm.cache` (the sqlite cache), :mod:`~regen_bench.llm.helpers`
(for backends and plugin factories).
"""

from regen_bench.llm.cache import CacheError, ResponseCache
from regen_bench.llm.client import LLMClient, make_client, reask_request
from regen_bench.llm.helpers import check_options, parse_price_per_mtok, parse_retry_after
from regen_bench.llm.schema import (
    SchemaViolation,
    extract_json,
    schema_instruction,
    validate_json_answer,
)
from regen_bench.llm.types import (
    AnswerCheck,
    Backend,
    BackendError,
    LLMError,
    LLMRequest,
    LLMResponse,
    RetryableError,
)

__all__ = [
    "AnswerCheck",
    "Backend",
    "BackendError",
    "CacheError",
    "LLMClient",
    "LLMError",
    "LLMRequest",
    "LLMResponse",
    "ResponseCache",
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
