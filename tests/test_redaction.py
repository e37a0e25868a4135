"""No key on disk: a provider error that echoes the API key is redacted before the narration
samples, the inpaint failures file and the rating summary store it (and before it is logged)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.hookspecs import hookimpl
from regen_bench.inpaint import inpaint
from regen_bench.inpaint.pipeline import FAILURES_SUFFIX
from regen_bench.llm import BackendError, LLMRequest, LLMResponse, make_client
from regen_bench.llm.redact import MARK, redact, register_secret
from regen_bench.plugins import get_plugin_manager
from regen_bench.rating.pipeline import rate_file
from tests.conftest import make_record
from tests.test_inpaint import PENS, _user
from tests.test_rating import pool

# Fake keys, never real ones: one shaped like an OpenAI project key, one shaped like nothing.
SHAPED_KEY = "sk-proj-Zx81Qv0LmT4rNa2bWc9YdE3fGh7JkU5p"
PLAIN_KEY = "gateway-7c1e9a40d2b6"


class LeakyBackend:
    """Test double: every call fails with an error that quotes the key from the environment,
    as real providers do; ``crash`` raises a non-backend exception (the client's other path)."""

    name = "leaky"

    def __init__(self, model: str = "leaky-1", env: str = "OPENAI_API_KEY", crash: bool = False):
        self.model = model
        self.env = env
        self.crash = crash

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        message = f"Error code: 401 - Incorrect API key provided: {os.environ[self.env]}."
        if self.crash:
            raise RuntimeError(message)
        raise BackendError(message)


class _Plugin:
    @hookimpl
    def register_llm_backends(self, register: Any) -> None:
        register("leaky", LeakyBackend, summary="test double")


@pytest.fixture
def leaky() -> Iterator[None]:
    get_plugin_manager(refresh=True).register_plugin(_Plugin(), name="leaky-test")
    yield
    get_plugin_manager(refresh=True)


#: (environment variable, key, backend options): a key-shaped OpenAI key through a backend
#: error, and a key of no known shape (only its exact value can find it) through a crash.
LEAKS = [
    ("OPENAI_API_KEY", SHAPED_KEY, {}),
    ("GEMINI_API_KEY", PLAIN_KEY, {"env": "GEMINI_API_KEY", "crash": True}),
]


@pytest.fixture(params=LEAKS, ids=["shaped-key", "plain-env-key"])
def leak(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, leaky: None
) -> tuple[str, dict[str, Any]]:
    env, key, options = request.param
    monkeypatch.setenv(env, key)
    return key, dict(options)


def _files_under(root: Path) -> dict[Path, str]:
    return {
        p: p.read_bytes().decode("utf-8", "replace")
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(".sqlite")
    }


def _assert_no_key(root: Path, key: str) -> None:
    files = _files_under(root)
    assert files
    leaked = [p.name for p, text in files.items() if key in text]
    assert leaked == [], f"key written to {leaked}"


def test_narration_error_in_samples_is_redacted(
    leak: tuple[str, dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, options = leak
    records = [
        make_record(
            f"U{u:02d}",
            [f"B{(u + k * 3) % 9:02d}" for k in range(4)],
            purchase_reason="I bought it because it suits my desk.",
        )
        for u in range(6)
    ]
    data = tmp_path / "toy.jsonl"
    write_records(records, data)
    out = tmp_path / "out"
    sets = [x for k, v in options.items() for x in ("--set", f"narrator.{k}={v}")]
    with caplog.at_level(logging.WARNING):
        code = main(
            [
                "run",
                "--model",
                "popularity",
                "--task",
                "conversational",
                "--narrative",
                "purchase_reason",
                "--dataset",
                str(data),
                "--output",
                str(out),
                "-q",
                "--threads",
                "1",
                "--set",
                "narrator.backend=leaky",
                "--set",
                "narrator.cache=",
                *sets,
                "--embedder",
                "none",
                "--bertscore-model",
                "none",
            ]
        )
    assert code == 0
    (samples_file,) = out.rglob("*.samples.jsonl")
    samples = [json.loads(x) for x in samples_file.read_text().splitlines()]
    assert len(samples) == 6
    for s in samples:
        assert "Incorrect API key provided: " + MARK in s["narration_error"]
    _assert_no_key(out, key)
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err + caplog.text


def test_inpaint_failures_are_redacted(
    leak: tuple[str, dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key, options = leak
    data = tmp_path / "in.jsonl"
    write_records([_user("u1", [(*PENS, "Gel"), (*PENS, "Gel"), (*PENS, "Pens")])], data)
    out = tmp_path / "out" / "inpainted.jsonl"
    out.parent.mkdir()
    with caplog.at_level(logging.WARNING):
        report = inpaint(
            data, out, "leaky", backend_config=options, progress=False, log=lambda _m: None
        )
    assert report is not None and sum(report.failures.values()) == report.calls > 0
    rows = [json.loads(x) for x in Path(f"{out}{FAILURES_SUFFIX}").read_text().splitlines()]
    assert len(rows) == report.calls
    assert all(f"Incorrect API key provided: {MARK}" in r["reason"] for r in rows)
    _assert_no_key(out.parent, key)
    assert key not in caplog.text


def test_rating_summary_is_redacted(
    leak: tuple[str, dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key, options = leak
    data = tmp_path / "in.jsonl"
    write_records(pool(), data)
    out = tmp_path / "out" / "rated.jsonl"
    out.parent.mkdir()
    with caplog.at_level(logging.WARNING):
        rate_file(
            str(data),
            out,
            rater="critique",
            backend="leaky",
            backend_options=options,
            runs=1,
            limit=2,
            bias_check=False,
            progress=False,
        )
    summary = json.loads(Path(f"{out}.rating.json").read_text())
    assert summary["failed_runs"] > 0 and summary["failure_samples"]
    assert all(MARK in f for f in summary["failure_samples"])
    _assert_no_key(out.parent, key)
    assert key not in caplog.text


# -- the real openai backend: the server answers 401 quoting the bearer token ----------------


class EchoingAuthServer:
    """An OpenAI-compatible endpoint that rejects every request as OpenAI does for a bad key,
    quoting the ``Authorization`` header's token in the error body."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                err = {
                    "error": {
                        "message": f"Incorrect API key provided: {token}. Sent: Bearer {token}",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                }
                payload = json.dumps(err).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_openai_401_quoting_the_key_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", SHAPED_KEY)
    srv = EchoingAuthServer()
    try:
        client = make_client("openai", model="gpt-x", base_url=srv.url, max_retries=0)
        answer = client.complete(LLMRequest(system="Be brief.", prompt="hello"))
        client.close()
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
    assert answer.error is not None and "401" in answer.error
    assert SHAPED_KEY not in answer.error
    assert f"Incorrect API key provided: {MARK}" in answer.error


# -- the function ------------------------------------------------------------------------------


def test_exact_environment_values_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", PLAIN_KEY)
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "tok-plain-value-99")
    text = f"bad key {PLAIN_KEY}; token=tok-plain-value-99."
    assert redact(text) == f"bad key {MARK}; token={MARK}."
    # Short values and variables that do not name a secret are never matched by value.
    monkeypatch.setenv("OPENAI_API_KEY", "abc")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-positive-check")
    assert redact("abc false-positive-check") == "abc false-positive-check"


def test_registered_option_value_is_redacted() -> None:
    register_secret("opt-secret-5a1f0c77e3")
    assert redact("rejected opt-secret-5a1f0c77e3!") == f"rejected {MARK}!"


@pytest.mark.parametrize(
    "key",
    [
        "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4",  # legacy OpenAI, 48 chars
        "sk-proj-" + "Zx81Qv0LmT4rNa2bWc9YdE3fGh7JkU5p_wq-Mn4",  # OpenAI project key
        "sk-ant-api03-" + "Q8w1E2r3T4y5U6i7O8p9A0s1D2f3G4h5",  # Anthropic
        "AIza" + "SyD3x9Kq2Lm7Np4Rs8Tu1Vw6Xy0Za5Bc-_E",  # Google, 39 characters
        "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",  # Hugging Face
    ],
)
def test_key_shapes_are_redacted(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # found by shape alone
    assert redact(f"Incorrect API key provided: {key}.") == f"Incorrect API key provided: {MARK}."
    assert redact(f'{{"key": "{key}"}}') == f'{{"key": "{MARK}"}}'


def test_bearer_token_is_redacted() -> None:
    text = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln was refused"
    assert redact(text) == f"Authorization: Bearer {MARK} was refused"


@pytest.mark.parametrize(
    "text",
    [
        "A5 sketch-pad, 120 sheets, acid-free",
        "sk-ii-facial-treatment-essence-230ml-limited-edition",
        "task-runner risk-assessment-framework-v2 desk-organizer",
        "Bearer bonds and the bearer of good news, 2024 edition",
        "AIzawa Hiroshi: collected essays (hardcover)",
        "I bought the Pilot G2 gel pens because they write smoothly.",
        "Error code: 429 - Rate limit reached for gpt-4o-mini in organization org-x.",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_a_one_line_cli_error_never_prints_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every command reports failures through one printer; a key inside the message (here a
    # key-shaped dataset name, as a provider's echo would carry it) comes out redacted.
    key = "sk-proj-" + "Q7rT2xWv9Lm4Kp8Zb3Nc6Yd1Hf5Gj0Aa"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    status = main(["data", "info", "--dataset", f"/nonexistent/{key}.jsonl"])
    err = capsys.readouterr().err
    assert status != 0 and key not in err and MARK in err
