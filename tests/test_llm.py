"""LLM client and backends: cache, retries, concurrency, usage; openai against a local server;
hf with a tiny random model. No network: the server runs on 127.0.0.1 inside the test."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from regen_bench.llm import (
    BackendError,
    CacheError,
    LLMClient,
    LLMRequest,
    LLMResponse,
    RetryableError,
    extract_json,
    make_client,
    parse_retry_after,
)
from regen_bench.plugins import UnknownNameError
from tests.tiny_lm import chat_tokenizer, save_tiny_llama

FAST = {"backoff_base_s": 0.001, "backoff_max_s": 1.0}


class FakeChatServer:
    """A scripted OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``script`` holds one action per request, consumed in order; when empty, requests succeed.
    Actions: ("ok",), ("json", text), ("status", code, headers), ("sleep", s), ("malformed",).
    The answer is ``echo: <user message>``; usage counts words (prompt) and 3 (completion).
    """

    def __init__(self) -> None:
        self.script: list[tuple[Any, ...]] = []
        self.bodies: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    action = server.script.pop(0) if server.script else ("ok",)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    self._act(body, action)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _act(self, body: dict[str, Any], action: tuple[Any, ...]) -> None:
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    kind = "ok"
                if kind == "status":
                    err = {"error": {"message": f"scripted {action[1]}", "type": "x"}}
                    self._send(action[1], json.dumps(err).encode(), action[2])
                    return
                if kind == "malformed":
                    self._send(200, b"<html>upstream hiccup", {})
                    return
                if ":generateContent" in self.path:  # the Gemini REST API
                    self._gemini(body, action)
                    return
                user = body["messages"][-1]["content"]
                text = action[1] if kind == "json" else f"echo: {user}"
                words = sum(len(m["content"].split()) for m in body["messages"])
                answer = {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"] + "-served",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": words,
                        "completion_tokens": 3,
                        "total_tokens": words + 3,
                    },
                }
                # After a client timeout the socket is gone; nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(200, json.dumps(answer).encode(), {})

            def _gemini(self, body: dict[str, Any], action: tuple[Any, ...]) -> None:
                user = body["contents"][0]["parts"][0]["text"]
                text = action[1] if action[0] == "json" else f"echo: {user}"
                answer = {
                    "candidates": [
                        {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
                    ],
                    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
                    "modelVersion": "gemini-test-001",
                }
                self._send(200, json.dumps(answer).encode(), {})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> int:
        return len(self.bodies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChatServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    srv = FakeChatServer()
    yield srv
    srv.close()


def client_for(srv: FakeChatServer, **kw: Any) -> LLMClient:
    options = {**FAST, **kw}
    price = options.pop("price_per_mtok", None)
    return make_client(
        "openai", model="test-model", base_url=srv.url, price_per_mtok=price, **options
    )


REQ = LLMRequest(system="You are terse.", prompt="hello there", seed=7, stop=("\n\n",))


# -- openai backend against the local server ----------------------------------------------


def test_openai_roundtrip_sends_the_request_fields(server: FakeChatServer) -> None:
    resp = client_for(server).complete(REQ)
    assert resp == LLMResponse(
        text="echo: hello there",
        prompt_tokens=5,
        completion_tokens=3,
        latency_s=resp.latency_s,
        cached=False,
        model="test-model-served",
    )
    body = server.bodies[0]
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello there"},
    ]
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 256, 7)
    assert body["stop"] == ["\n\n"] and "response_format" not in body


def test_429_is_retried_honouring_retry_after(server: FakeChatServer) -> None:
    server.script = [("status", 429, {"retry-after-ms": "150"})]
    client = client_for(server)
    resp = client.complete(REQ)
    assert resp.ok and resp.text == "echo: hello there"
    assert server.hits == 2
    usage = client.usage()
    assert usage["retries"] == 1 and usage["calls"] == 2
    # Backoff alone would wait at most 1 ms here; the server asked for 150 ms.
    assert 0.15 <= usage["retry_wait_s"] < 0.2
    assert usage["wall_s"] >= 0.15


def test_500_is_retried_then_reported_not_raised(server: FakeChatServer) -> None:
    server.script = [("status", 500, {})] * 3
    client = client_for(server, max_retries=2)
    resp = client.complete(REQ)
    assert server.hits == 3
    assert resp.text == "" and resp.error is not None
    assert "gave up after 3 attempts" in resp.error and "Error code: 500" in resp.error
    assert client.usage()["failures"] == 1
    # The failure was not cached: the next call reaches the server and succeeds.
    assert client.complete(REQ).ok and server.hits == 4


def test_timeout_is_not_sent_again(server: FakeChatServer) -> None:
    # The server still works on an abandoned request: sending it again doubles its work.
    server.script = [("sleep", 3.0)]
    client = client_for(server, timeout_s=0.2, timeout_per_token_s=0)
    start = time.perf_counter()
    resp = client.complete(REQ)
    assert time.perf_counter() - start < 2.5  # the slow answer was not waited for
    assert server.hits == 1 and resp.error is not None
    assert resp.error.startswith("RequestTimeout: server too slow: no answer within 0.2 s")
    assert client.usage()["timeouts"] == 1 and client.usage()["retries"] == 0


def test_malformed_body_is_retried(server: FakeChatServer) -> None:
    server.script = [("malformed",)]
    resp = client_for(server).complete(REQ)
    assert resp.ok and server.hits == 2
    server.script = [("malformed",)] * 2
    bad = client_for(server, max_retries=1).complete(LLMRequest(system="", prompt="x"))
    assert bad.error is not None and "malformed" in bad.error


def test_4xx_is_permanent(server: FakeChatServer) -> None:
    server.script = [("status", 400, {})]
    resp = client_for(server).complete(REQ)
    assert server.hits == 1
    assert resp.error == "BackendError: Error code: 400 - scripted 400"


def test_cache_second_call_makes_no_request_and_survives_restart(
    server: FakeChatServer, tmp_path: Path
) -> None:
    db = tmp_path / "llm.sqlite"
    client = client_for(server, cache_path=db)
    first = client.complete(REQ)
    second = client.complete(REQ)
    assert server.hits == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text and second.prompt_tokens == first.prompt_tokens
    # A new process-like client on the same file resumes: still no request.
    again = client_for(server, cache_path=db).complete(REQ)
    assert again.cached and server.hits == 1
    # Another model name is another key.
    other = make_client("openai", model="m2", base_url=server.url, cache_path=db, **FAST)
    assert not other.complete(REQ).cached and server.hits == 2
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2


def test_sampling_without_seed_bypasses_the_cache(server: FakeChatServer, tmp_path: Path) -> None:
    client = client_for(server, cache_path=tmp_path / "c.sqlite")
    hot = LLMRequest(system="", prompt="tell me", temperature=0.8)
    assert [client.complete(hot).cached for _ in range(2)] == [False, False]
    assert server.hits == 2
    seeded = LLMRequest(system="", prompt="tell me", temperature=0.8, seed=3)
    assert [client.complete(seeded).cached for _ in range(2)] == [False, True]
    assert server.hits == 3
    # Within one batch, identical unseeded sampled requests are each sent.
    client.complete_many([hot, hot, hot], progress=False)
    assert server.hits == 6


def test_concurrency_bound_and_input_order(server: FakeChatServer) -> None:
    server.delay_s = 0.15
    client = client_for(server, concurrency=3)
    reqs = [LLMRequest(system="", prompt=f"p{i}") for i in range(9)]
    out = client.complete_many(reqs, progress=False)
    assert [r.text for r in out] == [f"echo: p{i}" for i in range(9)]
    assert server.max_in_flight == 3  # parallel, and never more than the bound


def test_duplicates_in_one_batch_are_sent_once(server: FakeChatServer, tmp_path: Path) -> None:
    client = client_for(server, cache_path=tmp_path / "c.sqlite")
    a, b = LLMRequest(system="", prompt="a"), LLMRequest(system="", prompt="b")
    out = client.complete_many([a, b, a, a], progress=False)
    assert [r.text for r in out] == ["echo: a", "echo: b", "echo: a", "echo: a"]
    assert server.hits == 2


def test_usage_summary_numbers(server: FakeChatServer, tmp_path: Path) -> None:
    client = client_for(server, cache_path=tmp_path / "c.sqlite", price_per_mtok="2,10")
    reqs = [LLMRequest(system="sys", prompt="one two"), LLMRequest(system="", prompt="three")]
    client.complete_many(reqs, progress=False)
    client.complete_many(reqs, progress=False)  # all cache hits
    server.script = [("status", 400, {})]
    client.complete(LLMRequest(system="", prompt="fails"))
    u = client.usage()
    # prompt tokens = words of system + user: 3 and 1; completion 3 each; cache hits are free.
    assert {k: u[k] for k in ("requests", "cache_hits", "calls", "failures", "retries")} == {
        "requests": 5,
        "cache_hits": 2,
        "calls": 3,
        "failures": 1,
        "retries": 0,
    }
    assert (u["prompt_tokens"], u["completion_tokens"]) == (4, 6)
    assert u["cost_usd"] == pytest.approx((4 * 2 + 6 * 10) / 1e6)
    assert u["backend"] == "openai" and u["model"] == "test-model"
    assert u["tokens_per_s"] == pytest.approx(6 / u["wall_s"], rel=0.01)


def test_json_schema_is_sent_and_validated(server: FakeChatServer) -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["score"],
    }
    req = LLMRequest(system="", prompt="rate it", json_schema=schema)
    server.script = [("json", '```json\n{"score": 5}\n```')]
    client = client_for(server, schema_retries=1)
    resp = client.complete(req)
    assert resp.ok and resp.text == '{"score": 5}' and resp.json() == {"score": 5}
    fmt = server.bodies[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema
    # A wrong answer is asked again (schema_retries=1), then reported with the reason.
    server.script = [("json", '{"score": 9}'), ("json", "no json here")]
    bad = client.complete(LLMRequest(system="", prompt="rate again", json_schema=schema))
    assert server.hits == 3
    assert bad.error is not None and bad.error.startswith("answer is not JSON")
    server.script = [("json", '{"score": 9}')] * 2
    bad = client.complete(LLMRequest(system="", prompt="rate 3", json_schema=schema))
    assert (
        bad.error
        == "answer does not follow json_schema at score: 9 is greater than the maximum of 7"
    )


# -- client and registry details -------------------------------------------------------


def test_make_client_rejects_unknown_options_and_names(server: FakeChatServer) -> None:
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) for llm backend 'openai': tmperature"
    ):
        make_client("openai", model="m", base_url=server.url, tmperature=0.3)
    with pytest.raises(ValueError, match="missing option"):
        make_client("openai", base_url=server.url)
    with pytest.raises(UnknownNameError, match="Did you mean 'openai'"):
        make_client("opneai", model="m")


def test_openai_needs_a_key_for_a_remote_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        make_client("openai", model="gpt-4o-mini")


def test_gemini_against_a_local_server(
    server: FakeChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    base = server.url.removesuffix("/v1")
    client = make_client("gemini", model="gemini-test", base_url=base, **FAST)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    server.script = [("status", 429, {"Retry-After": "0.1"}), ("json", '{"a": 1}')]
    resp = client.complete(
        LLMRequest(system="be brief", prompt="hi", seed=1, stop=("x",), json_schema=schema)
    )
    assert resp.ok and resp.json() == {"a": 1}
    assert (resp.prompt_tokens, resp.completion_tokens, resp.model) == (4, 2, "gemini-test-001")
    assert server.hits == 2 and client.usage()["retry_wait_s"] >= 0.1
    body = server.bodies[-1]
    assert body["systemInstruction"]["parts"][0]["text"] == "be brief"
    config = body["generationConfig"]
    assert config["responseJsonSchema"] == schema and config["seed"] == 1
    assert config["stopSequences"] == ["x"] and config["maxOutputTokens"] == 256
    server.script = [("status", 500, {})] * 2 + [("status", 403, {})]
    failed = make_client("gemini", model="gemini-test", base_url=base, max_retries=1, **FAST)
    assert "gave up after 2 attempts" in (failed.complete(REQ).error or "")
    denied = failed.complete(LLMRequest(system="", prompt="other"))
    assert server.hits == 5 and (denied.error or "").startswith("BackendError: HTTP 403")


def test_gemini_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(BackendError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_client("gemini")


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="temperature"):
        LLMRequest(system="", prompt="x", temperature=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        LLMRequest(system="", prompt="x", max_tokens=0)
    assert LLMRequest(system="", prompt="x", stop=["a"]).stop == ("a",)  # type: ignore[arg-type]
    a = LLMRequest(system="", prompt="x", json_schema={"type": "object"})
    assert hash(a) == hash(LLMRequest(system="", prompt="x", json_schema={"type": "object"}))


def test_parse_retry_after_and_extract_json() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    assert extract_json('Sure! {"a": [1, 2]} hope this helps') == ({"a": [1, 2]}, '{"a": [1, 2]}')


def test_cache_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "cache.sqlite"
    bad.write_text("not a database, just text " * 100)
    with pytest.raises(CacheError, match=r"cache\.sqlite: not a regen-bench LLM cache"):
        LLMClient(ScriptedBackend([]), cache_path=bad)


class ScriptedBackend:
    """A minimal in-test backend: raises the scripted errors, then answers."""

    name = "scripted"
    model = "s1"
    price_per_mtok = None

    def __init__(self, script: list[Exception]):
        self.script = list(script)
        self.calls = 0

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return LLMResponse(text=request.prompt.upper(), prompt_tokens=1, completion_tokens=1)


def test_backend_bug_is_recorded_not_raised() -> None:
    backend = ScriptedBackend([KeyError("oops"), RetryableError("busy", retry_after=0.0)])
    client = LLMClient(backend, **FAST)
    first = client.complete(LLMRequest(system="", prompt="a"))
    assert first.error == "KeyError: 'oops'" and backend.calls == 1
    second = client.complete(LLMRequest(system="", prompt="b"))
    assert second.text == "B" and backend.calls == 3


# -- hf backend with a tiny random model ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a word-level tokenizer and a chat template, built offline."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    text = "the a customer bought pens paper stapler because needed more office desk likes "
    words = (text + "blue black ink notebook and for work school home cheap sturdy gift").split()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.add_special_tokens(specials)  # matched whole, before the whitespace split
    # Like real Llama tokenizers: BOS is added on encode (unless add_special_tokens=False).
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    tok = chat_tokenizer(
        raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    return save_tiny_llama(
        tmp_path_factory.mktemp("tiny-llama"), tok, len(vocab), max_positions=128
    )


PROMPTS = [
    "the customer bought pens",
    "likes blue ink and a notebook for school",
    "stapler",
    "cheap sturdy desk for home work because the customer needed more office paper",
    "gift",
]


def hf_answers(model_dir: Path, batch_size: int, **kw: Any) -> list[LLMResponse]:
    client = make_client("hf", model=str(model_dir), device="cpu", batch_size=batch_size, **kw)
    reqs = [LLMRequest(system="be brief", prompt=p, max_tokens=12) for p in PROMPTS]
    return client.complete_many(reqs, progress=False)


def test_hf_generates_deterministically_whatever_the_batch_size(tiny_model_dir: Path) -> None:
    one = hf_answers(tiny_model_dir, batch_size=1)
    assert all(r.ok and r.model == str(tiny_model_dir) for r in one)
    assert sum(r.completion_tokens for r in one) > 10 and any(r.text for r in one)
    assert all(1 <= r.completion_tokens <= 12 for r in one)
    # prompt tokens: "<|system|> be brief <|user|> stapler <|assistant|>" (template, no BOS)
    assert one[2].prompt_tokens == 6
    again = hf_answers(tiny_model_dir, batch_size=1)
    batched = hf_answers(tiny_model_dir, batch_size=4)
    assert [r.text for r in again] == [r.text for r in one]
    assert [r.text for r in batched] == [r.text for r in one]
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in one]


def test_hf_options(tiny_model_dir: Path) -> None:
    plain = hf_answers(tiny_model_dir, batch_size=2, chat_template=False, max_new_tokens=3)
    # Without the template: BOS + "be brief" + words of the prompt ("stapler" -> 4 tokens).
    assert plain[2].prompt_tokens == 4
    assert all(r.completion_tokens <= 3 for r in plain)
    with pytest.raises(ValueError, match="dtype must be one of"):
        make_client("hf", model=str(tiny_model_dir), dtype="float8")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        make_client("hf", model=str(tiny_model_dir.parent))


def test_hf_sampling_is_reproducible_with_a_seed(tiny_model_dir: Path) -> None:
    client = make_client("hf", model=str(tiny_model_dir), device="cpu")
    reqs = [
        LLMRequest(system="", prompt="gift", temperature=1.5, seed=s, max_tokens=10)
        for s in (1, 1, 2)
    ]
    a = client.complete_many(reqs, progress=False)
    b = make_client("hf", model=str(tiny_model_dir), device="cpu").complete_many(
        reqs, progress=False
    )
    assert [r.text for r in a] == [r.text for r in b]
    assert a[0].text == a[1].text and a[0].text != a[2].text


@pytest.mark.slow
def test_smollm2_alias_writes_a_sentence() -> None:
    """Converts (first time) and loads the packaged SmolLM2 through its offline alias."""
    client = make_client("hf", model="smollm2", device="cpu")
    resp = client.complete(
        LLMRequest(
            system="You are a helpful shop assistant.",
            prompt="In one sentence, why would someone buy a stapler?",
            max_tokens=40,
        )
    )
    assert resp.ok and resp.completion_tokens > 5
    assert len(resp.text.split()) >= 5 and "stapl" in resp.text.lower()


def test_resolve_local_model_errors(tmp_path: Path) -> None:
    from regen_bench_plugins.llm_backends.local_models import (
        is_local_model_ref,
        resolve_local_model,
    )

    with pytest.raises(FileNotFoundError, match=r"'nope' is not an offline alias \(smollm2, "):
        resolve_local_model("nope", cache_dir=tmp_path)
    assert is_local_model_ref("smollm2") and is_local_model_ref(tmp_path)
    assert not is_local_model_ref("HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    assert resolve_local_model(tmp_path / "ckpt") == tmp_path / "ckpt"


# -- slow servers: timeouts sized to the request, no re-send, streaming --------------------


class SlowChatServer:
    """An OpenAI-compatible server that, like a real one, keeps working on a request whose
    client gave up (non-streamed), and stops a streamed one when the client disconnects.

    A plain request is answered after ``delay_s``; a streamed one sends ``pieces`` one every
    ``gap_s`` seconds (after ``delay_s``), then the usage chunk. ``duplicates`` counts
    requests that arrived while an identical one (same messages) was still being worked on.
    """

    def __init__(self, delay_s: float = 0.0, gap_s: float = 0.0, pieces: int = 5) -> None:
        self.delay_s, self.gap_s, self.pieces = delay_s, gap_s, pieces
        self.hits = 0
        self.duplicates = 0
        self.abandoned_streams = 0
        self.running: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = json.dumps(body["messages"], sort_keys=True)
                with server.lock:
                    server.hits += 1
                    server.duplicates += server.running.get(key, 0) > 0
                    server.running[key] = server.running.get(key, 0) + 1
                try:
                    time.sleep(server.delay_s)
                    if body.get("stream"):
                        self._stream(body)
                    else:
                        self._answer(body)
                finally:
                    with server.lock:
                        server.running[key] -= 1

            def _chunk(self, body: dict[str, Any], **fields: Any) -> dict[str, Any]:
                return {
                    "id": "s1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"] + "-served",
                    **fields,
                }

            def _answer(self, body: dict[str, Any]) -> None:
                text = " ".join(f"w{i}" for i in range(server.pieces))
                answer = {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"] + "-served",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 4, "completion_tokens": server.pieces},
                }
                payload = json.dumps(answer).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                usage = {"prompt_tokens": 4, "completion_tokens": server.pieces}
                events = [self._chunk(body, choices=[{"index": 0, "delta": {"role": "assistant"}}])]
                for i in range(server.pieces):
                    piece = f"w{i}" if i == 0 else f" w{i}"
                    events.append(
                        self._chunk(body, choices=[{"index": 0, "delta": {"content": piece}}])
                    )
                events.append(self._chunk(body, choices=[], usage=usage))
                try:
                    for i, event in enumerate(events):
                        if 0 < i <= server.pieces:
                            time.sleep(server.gap_s)
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with server.lock:  # the client hung up: stop generating, as servers do
                        server.abandoned_streams += 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def idle(self) -> bool:
        with self.lock:
            return not any(self.running.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slow_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowChatServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    srv = SlowChatServer()
    yield srv
    srv.close()


def slow_client(srv: SlowChatServer, **kw: Any) -> LLMClient:
    return make_client("openai", model="m", base_url=srv.url, **{**FAST, **kw})


def wait_until(cond: Any, limit_s: float = 5.0) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_timeouts_lower_concurrency_and_never_resend_a_running_request(
    slow_server: SlowChatServer,
) -> None:
    slow_server.delay_s = 1.0  # every answer outlives the client's 0.2 s timeout
    client = slow_client(
        slow_server, timeout_s=0.2, timeout_per_token_s=0, concurrency=4, max_retries=5
    )
    requests = [LLMRequest(system="", prompt=f"user {i}") for i in range(6)]
    answers = client.complete_many(requests, progress=False)
    assert wait_until(slow_server.idle)
    # Each request reached the server exactly once, and none while its twin was running.
    assert slow_server.hits == 6 and slow_server.duplicates == 0
    for a in answers:
        assert a.error is not None and "server too slow: no answer within 0.2 s" in a.error
        assert "not sent again" in a.error and "Raise timeout_s" in a.error
    usage = client.usage()
    assert usage["timeouts"] == 6 and usage["retries"] == 0 and usage["calls"] == 6
    assert usage["concurrency_now"] == 1  # halved on every timeout: 4 -> 2 -> 1


def test_timeout_is_sized_to_the_request(slow_server: SlowChatServer) -> None:
    client = slow_client(slow_server, timeout_s=0.2, timeout_per_token_s=0.004)
    long_prompt = LLMRequest(system="", prompt="x" * 4000, max_tokens=100)
    # floor + allowance x (max_tokens + a tenth of the prompt's chars / 4)
    assert client.timeout_for(long_prompt) == pytest.approx(0.2 + 0.004 * (100 + 100))
    slow_server.delay_s = 0.5
    # 256 tokens may take 0.2 + 1.02 s: the 0.5 s answer arrives in time ...
    assert client.complete(LLMRequest(system="", prompt="long", max_tokens=256)).ok
    # ... 8 tokens may take 0.23 s: the same server is too slow for that budget.
    short = client.complete(LLMRequest(system="", prompt="short", max_tokens=8))
    assert short.error is not None and "no answer within 0.2 s" in short.error
    assert wait_until(slow_server.idle)
    assert slow_server.hits == 2 and slow_server.duplicates == 0
    with pytest.raises(ValueError, match="timeout_per_token_s"):
        slow_client(slow_server, timeout_per_token_s=-1)


def test_concurrency_recovers_after_successes() -> None:
    from regen_bench.llm.client import _AdaptiveLimit

    limit = _AdaptiveLimit(4)
    assert [limit.timed_out(), limit.timed_out(), limit.timed_out()] == [2, 1, 1]
    grown = []
    for _ in range(10):
        limit.success()
        grown.append(limit.limit)
    # one more slot after as many successes in a row as there are slots, up to the ceiling
    assert grown == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4]


def test_stream_keeps_a_slow_but_progressing_answer(slow_server: SlowChatServer) -> None:
    slow_server.gap_s, slow_server.pieces = 0.1, 6  # 0.6 s in all, never 0.3 s silent
    streamed = slow_client(slow_server, timeout_s=0.3, timeout_per_token_s=0, stream=True)
    resp = streamed.complete(LLMRequest(system="", prompt="tell me", max_tokens=8))
    assert resp.ok and resp.text == "w0 w1 w2 w3 w4 w5"
    assert (resp.prompt_tokens, resp.completion_tokens, resp.model) == (4, 6, "m-served")
    slow_server.delay_s = 0.6  # the same answer as one body comes too late
    plain = slow_client(slow_server, timeout_s=0.3, timeout_per_token_s=0)
    late = plain.complete(LLMRequest(system="", prompt="tell me", max_tokens=8))
    assert late.error is not None and "server too slow" in late.error
    assert wait_until(slow_server.idle)
    assert slow_server.hits == 2 and slow_server.duplicates == 0


def test_a_stalled_stream_is_closed_not_resent(slow_server: SlowChatServer) -> None:
    slow_server.gap_s, slow_server.pieces = 0.5, 8  # silent for longer than the timeout
    client = slow_client(slow_server, timeout_s=0.2, timeout_per_token_s=0, stream=True)
    resp = client.complete(LLMRequest(system="", prompt="stall", max_tokens=8))
    assert resp.error is not None and "server too slow" in resp.error
    # The client hung up, so the server stopped generating; nothing was sent again.
    assert wait_until(lambda: slow_server.abandoned_streams == 1)
    assert slow_server.hits == 1 and slow_server.duplicates == 0


def test_stream_option_must_be_a_boolean(slow_server: SlowChatServer) -> None:
    with pytest.raises(ValueError, match="stream must be true or false"):
        slow_client(slow_server, stream="yes")
