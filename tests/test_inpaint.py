"""Inpainting: prompts, critique eligibility, seeded choice, validation and re-asking, resuming
after SIGKILL through the openai backend against a local fake server, and synth --bare."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import Interaction, Item, UserRecord
from regen_bench.data.synth import write_synthetic
from regen_bench.hookspecs import hookimpl
from regen_bench.inpaint import PROMPT_VERSION, InpaintConfig, choose, inpaint, plan_calls
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.pipeline import CACHE_SUFFIX, FAILURES_SUFFIX, MANIFEST_SUFFIX
from regen_bench.llm import LLMRequest, LLMResponse
from regen_bench.plugins import get_plugin_manager
from tests.test_llm import FakeChatServer

ROOT = Path(__file__).resolve().parents[1]
PENS = ("Office Products", "Office & School Supplies", "Writing", "Pens")


def _item(asin: str, path: tuple[str, ...]) -> Item:
    return Item(asin, f"Title {asin}", path, f"Description of {asin}", 4.5, "Acme")


def _user(user_id: str, paths: list[tuple[str, ...]]) -> UserRecord:
    asins = [f"{user_id}-I{k}" for k in range(len(paths))]
    items = {a: _item(a, p) for a, p in zip(asins, paths, strict=True)}
    inters = [
        Interaction(a, 1_500_000_000 + 86400 * k, 4.0, f"summary {a}", f"review text of {a}")
        for k, a in enumerate(asins)
    ]
    return UserRecord(user_id, inters, items)


@pytest.fixture
def users() -> list[UserRecord]:
    # u1: pairs (0,1) share 5 levels, (1,2) share 4, (2,3) share 3, (3,4) share 0.
    return [
        _user(
            "u1",
            [
                (*PENS, "Gel"),
                (*PENS, "Gel"),
                (*PENS, "Ballpoint"),
                (*PENS[:3], "Pencils"),
                ("Clothing", "Shoes"),
            ],
        ),
        _user("u2", [(*PENS, "Gel"), ("Office Products", "Paper"), (*PENS[:2], "X", "Y")]),
    ]


class ScriptedBackend:
    """Test double: answers by call kind; ``bad`` maps prompt markers to bad answers first."""

    name = "scripted-inpaint"
    price_per_mtok = (1.0, 2.0)
    requests: list[LLMRequest] = []  # noqa: RUF012 - shared on purpose: the test reads it
    bad: dict[tuple[str, ...], list[str]] = {}  # noqa: RUF012

    def __init__(self, model: str = "script-1"):
        self.model = model

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        ScriptedBackend.requests.append(request)
        for markers, answers in ScriptedBackend.bad.items():
            if all(m in request.prompt for m in markers) and answers:
                return LLMResponse(text=answers.pop(0), model=self.model)
        props = (request.json_schema or {}).get("properties", {})
        if "critiques" in props:
            value: dict[str, Any] = {
                "critiques": ["In black, please.", "Bigger pack.", "Cheaper ones."]
            }
        else:
            # Padded with spaces to the schema's minLength; the pipeline normalises whitespace.
            value = {name: f"{name} text".ljust(P.FIELD_MIN_CHARS[name]) for name in props}
        return LLMResponse(text=json.dumps(value), prompt_tokens=10, completion_tokens=5)


class _Plugin:
    @hookimpl
    def register_llm_backends(self, register: Any) -> None:
        register("scripted-inpaint", ScriptedBackend, summary="test double")


@pytest.fixture
def scripted() -> Iterator[type[ScriptedBackend]]:
    ScriptedBackend.requests = []
    ScriptedBackend.bad = {}
    get_plugin_manager(refresh=True).register_plugin(_Plugin(), name="scripted-inpaint-test")
    yield ScriptedBackend
    get_plugin_manager(refresh=True)


def test_critique_calls_only_for_pairs_sharing_enough_levels(users: list[UserRecord]) -> None:
    calls = plan_calls(users, InpaintConfig())
    crit = [(users[c.user].user_id, c.position) for c in calls if c.kind == "critique"]
    assert crit == [("u1", 1), ("u1", 2)]  # 5 and 4 shared levels; 3, 0, 1, 1 are not enough
    assert sum(c.kind != "critique" for c in calls) == 3 * len(users)
    strict = plan_calls(users, InpaintConfig(min_shared_levels=5))
    assert [(c.user, c.position) for c in strict if c.kind == "critique"] == [(0, 1)]
    first = next(c for c in calls if c.kind == "critique")
    # The critique prompt holds both item descriptions, the current one first, and examples.
    prompt = first.request.prompt
    assert prompt.index("Description of u1-I0") < prompt.index("Description of u1-I1")
    assert "Example 1" in prompt and "review text" not in prompt
    assert '"critiques"' in json.dumps(first.request.json_schema)


def test_endorsement_prompt_withholds_the_last_review(users: list[UserRecord]) -> None:
    calls = {(c.user, c.kind): c.request for c in plan_calls(users, InpaintConfig())}
    end = calls[0, "endorsement"].prompt
    assert "Title u1-I4" in end and "Description of u1-I4" in end  # the item is described
    assert "review text of u1-I4" not in end and "summary u1-I4" not in end
    assert "review text of u1-I3" in end  # earlier reviews stay
    for kind in ("purchase_reason", "user"):  # the other narratives read the whole history
        assert "review text of u1-I4" in calls[0, kind].prompt
    # Every request carries a seed (sampled ones stay cacheable), distinct between calls.
    seeds = [r.seed for r in calls.values()]
    assert None not in seeds and len(set(seeds)) == len(seeds)


def test_choice_is_seeded_per_user_and_pair() -> None:
    cands = ["a", "b", "c"]
    picks = {choose(cands, seed, "u1", 3) for seed in range(40)}
    assert picks == {"a", "b", "c"}  # the seed matters...
    assert choose(cands, 7, "u1", 3) == choose(cands, 7, "u1", 3)  # ...and decides alone
    assert len({choose(cands, 0, f"u{i}", 1) for i in range(40)}) == 3


def test_inpaint_fills_fields_and_resumes_from_cache(
    tmp_path: Path, users: list[UserRecord], scripted: type[ScriptedBackend]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users, data)
    out = tmp_path / "out.jsonl"
    report = inpaint(data, out, "scripted-inpaint", config=InpaintConfig(seed=5), progress=False)
    assert report is not None and report.calls == 8 and report.fresh_calls == 8
    assert report.critiques == 2 and report.pairs == 6 and report.coverage == pytest.approx(1 / 3)
    got = list(iter_records(out))
    assert [r.user_id for r in got] == ["u1", "u2"]
    cands = ["In black, please.", "Bigger pack.", "Cheaper ones."]
    assert [i.critique for i in got[0].interactions] == [
        None,
        choose(cands, 5, "u1", 1),
        choose(cands, 5, "u1", 2),
        None,
        None,
    ]
    assert all(i.critique is None for i in got[1].interactions)
    n = got[1].narratives
    assert n.purchase_reason == "reason text" and n.purchase_explanation == "explanation text"
    assert n.product_endorsement == "endorsement text" and n.user_profile == "profile text"
    assert n.user_summary == "brief_summary text" and n.user_summary_long == "long_summary text"
    manifest = json.loads(Path(f"{out}{MANIFEST_SUFFIX}").read_text())
    assert manifest["prompt_version"] == PROMPT_VERSION and len(manifest["prompt_sha256"]) == 64
    assert manifest["critique_coverage"] == pytest.approx(1 / 3, abs=1e-6)
    assert manifest["usage"]["cost_usd"] == pytest.approx((8 * 10 * 1 + 8 * 5 * 2) / 1e6)
    assert Path(f"{out}{FAILURES_SUFFIX}").read_text() == ""
    # A rerun answers everything from the cache: the backend is not called again.
    before = out.read_bytes()
    scripted.requests = []
    again = inpaint(data, out, "scripted-inpaint", config=InpaintConfig(seed=5), progress=False)
    assert again is not None and again.cached_calls == 8 and scripted.requests == []
    assert out.read_bytes() == before


def test_malformed_answers_are_reasked_then_recorded(
    tmp_path: Path, users: list[UserRecord], scripted: type[ScriptedBackend]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users, data)
    out = tmp_path / "out.jsonl"
    # u1's user-summary call: never valid (prose, wrong type, missing field);
    # u2's endorsement: wrong once, then valid.
    scripted.bad = {
        ("describe the customer", "Title u1-I4"): [
            "Sure! Here is the summary.",
            '{"brief_summary": 3, "long_summary": "x", "profile": "y"}',
            '{"brief_summary": "x"}',
        ],
        ("NEW ITEM\nTitle: Title u2-I2",): ["not json"],
    }
    report = inpaint(data, out, "scripted-inpaint", progress=False, schema_retries=2, concurrency=1)
    assert report is not None
    # Bounded re-asking: 3 attempts for the hopeless call, 2 for the one that recovered.
    user_calls = [
        r for r in scripted.requests if "describe the customer" in r.prompt and "u1-I4" in r.prompt
    ]
    assert len(user_calls) == 3
    assert sum("NEW ITEM\nTitle: Title u2-I2" in r.prompt for r in scripted.requests) == 2
    assert dict(report.failures) == {"user": 1}
    rows = [json.loads(x) for x in Path(f"{out}{FAILURES_SUFFIX}").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["user_id"] == "u1" and rows[0]["kind"] == "user"
    # The reason of the last attempt is kept.
    assert (
        "json_schema" in rows[0]["reason"] and "'long_summary' is a required" in rows[0]["reason"]
    )
    got = {r.user_id: r for r in iter_records(out)}
    assert got["u1"].narratives.user_summary is None and got["u1"].narratives.user_profile is None
    assert got["u1"].narratives.purchase_reason == "reason text"
    assert got["u2"].narratives.product_endorsement == "endorsement text"


def test_empty_placeholder_answers_are_failures(
    tmp_path: Path, users: list[UserRecord], scripted: type[ScriptedBackend]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users[:1], data)
    out = tmp_path / "out.jsonl"
    # Two critique calls, each asked three times (schema_retries=2): placeholders every time.
    scripted.bad = {("Now the real pair",): ['{"critiques": ["...", "          "]}'] * 6}
    report = inpaint(data, out, "scripted-inpaint", progress=False)
    assert report is not None and dict(report.failures) == {"critique": 2}
    assert report.critiques == 0
    assert all(i.critique is None for i in next(iter_records(out)).interactions)


def test_copied_few_shot_examples_are_failures(
    tmp_path: Path, users: list[UserRecord], scripted: type[ScriptedBackend]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users[1:], data)
    out = tmp_path / "out.jsonl"
    # As a weak model does: the example answer of the template, word for word.
    copied = (
        '{"reason": "The customer wanted black refills for the gel pens they already liked.",'
        ' "explanation": "A fine explanation, long enough for the schema of the answer."}'
    )
    scripted.bad = {("Explain why the customer bought",): [copied]}
    report = inpaint(data, out, "scripted-inpaint", progress=False, schema_retries=0)
    assert report is not None and dict(report.failures) == {"purchase_reason": 1}
    rows = [json.loads(x) for x in Path(f"{out}{FAILURES_SUFFIX}").read_text().splitlines()]
    assert rows[0]["reason"] == "field 'reason' copies the few-shot example"
    got = next(iter_records(out)).narratives
    assert got.purchase_reason is None and got.user_profile == "profile text"


def test_dry_run_calls_nothing(
    tmp_path: Path,
    users: list[UserRecord],
    scripted: type[ScriptedBackend],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users, data)
    out = tmp_path / "out.jsonl"
    assert inpaint(data, out, "scripted-inpaint", dry_run=True, limit=1) is None
    text = capsys.readouterr().out
    assert "5 calls for 1 users (critique 2, purchase_reason 1, endorsement 1, user 1)" in text
    assert "===== endorsement prompt" in text and scripted.requests == []
    assert not out.exists() and not Path(f"{out}{CACHE_SUFFIX}").exists()


def test_synth_bare_keeps_reviews_and_drops_generated_text(tmp_path: Path) -> None:
    full, bare = tmp_path / "full.jsonl", tmp_path / "bare.jsonl"
    write_synthetic(full, users=40, items=120, seed=3)
    stats = write_synthetic(bare, users=40, items=120, seed=3, bare=True)
    assert stats.critique_coverage == 0.0
    a, b = list(iter_records(full)), list(iter_records(bare))
    assert any(i.critique for r in a for i in r.interactions)
    for ra, rb in zip(a, b, strict=True):
        assert [(i.item_id, i.text, i.summary, i.rating) for i in ra.interactions] == [
            (i.item_id, i.text, i.summary, i.rating) for i in rb.interactions
        ]
        assert all(i.critique is None for i in rb.interactions)
        assert set(rb.narratives.as_dict().values()) == {None}
        assert ra.narratives.user_summary


def test_cli_bad_input_is_one_line(
    tmp_path: Path, users: list[UserRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    from regen_bench.cli import main

    data = tmp_path / "in.jsonl"
    write_records(users, data)
    base = ["inpaint", "--dataset", str(data), "--out", str(tmp_path / "o.jsonl")]
    assert main([*base, "--backend", "opneai"]) == 2
    assert "Did you mean 'openai'" in capsys.readouterr().err
    assert main([*base, "--backend", "openai", "--limit", "0"]) == 2
    assert capsys.readouterr().err.strip() == "regen-bench: error: --limit must be >= 1, got 0"
    missing = ["inpaint", "--dataset", str(tmp_path / "nope.jsonl"), "--backend", "openai"]
    assert main([*missing, "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


# -- end to end: the CLI through the openai backend, killed with SIGKILL and resumed ----------


class JsonChatServer(FakeChatServer):
    """The fake OpenAI server answering every request with JSON that follows its schema."""

    def __init__(self) -> None:
        super().__init__()
        handler = self.httpd.RequestHandlerClass
        act = handler._act  # type: ignore[attr-defined]

        def _act(h: Any, body: dict[str, Any], action: tuple[Any, ...]) -> None:
            schema = body["response_format"]["json_schema"]["schema"]
            props = schema["properties"]
            if "critiques" in props:
                value: Any = {"critiques": ["Darker colour.", "Larger pack.", "Other brand."]}
            else:
                n = len(body["messages"][-1]["content"])
                value = {k: f"{k} of {n}".ljust(P.FIELD_MIN_CHARS[k]) for k in props}
            act(h, body, ("json", json.dumps(value)))

        handler._act = _act  # type: ignore[attr-defined]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "regen_bench.cli", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_cli_inpaint_survives_sigkill_and_resumes(tmp_path: Path) -> None:
    data, out = tmp_path / "bare.jsonl", tmp_path / "out.jsonl"
    write_synthetic(data, users=30, items=120, seed=1, bare=True)
    srv = JsonChatServer()
    srv.delay_s = 0.05
    cmd = _cli(
        "inpaint",
        "--dataset",
        str(data),
        "--backend",
        "openai",
        "--model",
        "fake-model",
        "--set",
        f"base_url={srv.url}",
        "--out",
        str(out),
        "--concurrency",
        "2",
        "-q",
    )
    try:
        proc = subprocess.Popen(
            cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
        )
        deadline = time.monotonic() + 120
        while srv.hits < 40 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.communicate()[1]!r}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()  # the output is only written at the end
        with sqlite3.connect(tmp_path / f"out.jsonl{CACHE_SUFFIX}") as db:
            stored = [json.loads(r[0]) for r in db.execute("SELECT request FROM responses")]
        finished = {(r["prompt"], r["seed"]) for r in stored}
        assert 30 <= len(finished) <= srv.hits
        first_hits = srv.hits
        done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        rerun = srv.bodies[first_hits:]
    finally:
        srv.close()
    manifest = json.loads((tmp_path / f"out.jsonl{MANIFEST_SUFFIX}").read_text())
    asked = [(b["messages"][-1]["content"], b["seed"]) for b in rerun]
    assert not finished & set(asked)  # no finished call was sent again
    assert len(asked) == len(set(asked)) == manifest["calls"] - len(finished)
    assert manifest["cached_calls"] == len(finished) and manifest["failures"] == {}
    assert f"calls:            {manifest['calls']} ({len(finished)} from the cache" in done.stdout
    assert f"critiques:        {manifest['critiques']} (" in done.stdout
    # Every user exactly once, in input order, with every field.
    inputs = [r.user_id for r in iter_records(data)]
    got = list(iter_records(out))
    assert [r.user_id for r in got] == inputs
    assert all(None not in r.narratives.as_dict().values() for r in got)
    assert manifest["critiques"] == manifest["eligible_pairs"] > 0
    assert sum(i.critique is not None for r in got for i in r.interactions) == manifest["critiques"]
    # The result loads with the REGEN loader and runs through the critique task.
    run = subprocess.run(
        _cli(
            "run",
            "--model",
            "popularity",
            "--task",
            "critique",
            "--dataset",
            str(out),
            "--output",
            str(tmp_path / "results"),
            "-q",
        ),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "popularity on critique" in run.stdout
