"""Auto-raters: the majority/floor rule, narrative grouping, negative samples, and an end-to-end
rating through the openai backend against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import csv
import gzip
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import UserRecord
from regen_bench.llm import LLMClient, LLMRequest, LLMResponse
from regen_bench.plugins import get_plugin_manager
from regen_bench.rating import (
    aggregate,
    critique_subjects,
    make_rater,
    narrative_subjects,
    negative_samples,
    rate_subjects,
)
from tests.conftest import make_record

# -- the ensemble rule ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([6, 6, 6, 6, 5, 5, 5], 6),  # 4-3 split: 4 of 7 is more than half
        ([6, 6, 6, 5, 5, 5, 4], 5),  # 3-3-1: no majority, floor(37/7 = 5.29)
        ([7, 7, 7, 1, 1, 1, 1], 1),  # 4 of 7 say 1: the majority wins over the mean (3.57)
        ([7, 7, 7, 7, 7, 7, 7], 7),
        ([4, 4, 7, 7], 5),  # 2-2 tie: exactly half is not a majority, floor(5.5)
        ([2, 3], 2),  # tie of two runs, floor(2.5)
        ([5], 5),
        ([1, 2, 3, 4, 5, 6, 7], 4),  # all different: floor(28/7)
        ([6, 6, 7, 7, 7, 1, 1], 5),  # 3 of 7 is not more than half: floor(35/7)
    ],
)
def test_majority_else_floor_of_mean(scores: list[int], expected: int) -> None:
    assert aggregate(scores) == expected


def test_aggregate_needs_scores() -> None:
    with pytest.raises(ValueError, match="no scores"):
        aggregate([])


# -- subjects ------------------------------------------------------------------------------


def full_record(user_id: str, asins: list[str], critiques: dict[int, str]) -> UserRecord:
    return make_record(
        user_id,
        asins,
        critiques,
        purchase_reason=f"reason of {user_id}",
        purchase_explanation=f"explanation of {user_id}",
        product_endorsement=f"endorsement of {user_id}",
        user_summary=f"summary of {user_id}",
        user_summary_long=f"long summary of {user_id}",
        user_profile=f"profile of {user_id}",
    )


def test_narratives_are_rated_in_three_separate_groups() -> None:
    rec = full_record("u1", ["A1", "A2", "A3"], {})
    subjects = narrative_subjects(rec)
    assert [(s.group, [t for t, _ in s.texts]) for s in subjects] == [
        ("last_purchase", ["purchase_reason", "purchase_explanation"]),
        ("user", ["user_summary", "user_summary_long", "user_profile"]),
        ("endorsement", ["product_endorsement"]),
    ]
    for s in subjects:  # context: everything before the last purchase, and the last purchase
        assert [i.item_id for i, _ in s.history] == ["A1", "A2"]
        assert s.destination[0].item_id == "A3"
    rater = make_rater("narrative", get_plugin_manager())
    prompts = [rater.request(s, seed=0).prompt for s in subjects]
    # each call sees only its own group's narratives
    assert "reason of u1" in prompts[0] and "summary of u1" not in prompts[0]
    assert "long summary of u1" in prompts[1] and "endorsement of u1" not in prompts[1]
    assert "endorsement of u1" in prompts[2] and "reason of u1" not in prompts[2]
    assert "persuasiveness" in prompts[2] and "persuasiveness" not in prompts[0]
    assert "Accuracy and truthfulness of the purchase reason" in prompts[0]  # Table 3 wording
    assert rater.attributes(subjects[2]) == {
        "product_endorsement": ("veracity", "personalization", "persuasiveness")
    }
    # a user with only some narratives gets only the groups that have any
    partial = make_record("u2", ["A1", "A2"], user_summary="likes pens")
    assert [(s.group, s.texts) for s in narrative_subjects(partial)] == [
        ("user", (("user_summary", "likes pens"),))
    ]


def test_critique_subjects_hold_history_current_and_destination() -> None:
    rec = full_record("u1", ["A1", "A2", "A3", "A4"], {0: "ignored", 2: "In blue"})
    (s,) = critique_subjects(rec)  # position 0 has no preceding item
    assert s.position == 2 and dict(s.texts) == {"critique": "In blue"}
    assert [i.item_id for i, _ in s.history] == ["A1", "A2"]
    assert s.destination[0].item_id == "A3"
    prompt = make_rater("critique", get_plugin_manager()).request(s, seed=3).prompt
    assert "Current item: Item A2" in prompt and "Destination item: Item A3" in prompt


def pool() -> list[UserRecord]:
    return [
        full_record(f"u{k}", [f"B{k}{j}" for j in range(3 + k % 3)], {2: f"critique of u{k}"})
        for k in range(8)
    ]


def test_negative_samples_never_use_the_users_own_history_and_are_seeded() -> None:
    users = pool()
    real = [s for r in users for s in (*narrative_subjects(r), *critique_subjects(r))]
    neg = negative_samples(real, users, seed=1)
    assert len(neg) == 2 * len(real)
    by_id = {r.user_id: r for r in users}
    for s, (a, b) in zip(real, zip(neg[::2], neg[1::2], strict=True), strict=True):
        assert (a.variant, b.variant) == ("A", "B")
        assert a.source_user == b.source_user != s.user_id
        donor = {i.item_id for i in by_id[a.source_user].interactions}
        own = {i.item_id for i in by_id[s.user_id].interactions}
        assert {i.item_id for i, _ in a.history} <= donor and not donor & own
        assert a.texts == b.texts == s.texts  # the rated text is kept
        assert a.destination == s.destination  # A keeps the destination ...
        assert b.destination[0].item_id in donor  # ... B takes the other user's
        assert b.history == a.history
    assert negative_samples(real, users, seed=1) == neg
    other = negative_samples(real, users, seed=2)
    assert [n.source_user for n in other] != [n.source_user for n in neg]
    # a subject's negatives do not depend on which other subjects are rated with it
    assert negative_samples(real[3:4], users, seed=1) == neg[6:8]
    with pytest.raises(ValueError, match="at least one other user"):
        negative_samples(real[:1], users[:1], seed=0)


# -- the ensemble with a scripted backend ----------------------------------------------------


class ScriptedBackend:
    """Answers from ``answer(request)``; counts calls."""

    name = "scripted"
    model = "script-1"
    price_per_mtok = None

    def __init__(self, answer: Any):
        self.answer = answer
        self.calls = 0
        self.lock = threading.Lock()

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        with self.lock:
            self.calls += 1
        return LLMResponse(text=self.answer(request), model=self.model)


def test_rate_subjects_aggregates_runs_and_records_failures() -> None:
    rec = full_record("u1", ["A1", "A2", "A3"], {2: "Cheaper"})
    (subject,) = critique_subjects(rec)
    rater = make_rater("critique", get_plugin_manager())
    per_seed = {0: 6, 1: 6, 2: 6, 3: 6, 4: 5, 5: 5, 6: 5}  # a 4-3 split on quality

    def answer(req: LLMRequest) -> str:
        assert req.temperature > 0 and req.json_schema is not None
        if req.seed == 6:
            return '{"quality": 9, "specificity": 2, "relevance": 2}'  # out of range: a failure
        q = per_seed[req.seed or 0]
        return json.dumps({"quality": q, "specificity": 3 + (req.seed or 0) % 2, "relevance": 7})

    backend = ScriptedBackend(answer)
    (rating,) = rate_subjects(rater, [subject], LLMClient(backend, schema_retries=0), runs=7)
    assert backend.calls == 7  # seven seeds -> seven distinct requests
    assert rating.runs[("critique", "quality")] == [6, 6, 6, 6, 5, 5]
    assert rating.final[("critique", "quality")] == 6
    assert rating.runs[("critique", "specificity")] == [3, 4, 3, 4, 3, 4]
    assert rating.final[("critique", "specificity")] == 3  # 3-3 tie: floor(3.5)
    assert rating.final[("critique", "relevance")] == 7
    assert len(rating.failures) == 1 and "run 6" in rating.failures[0]


# -- end to end: CLI, openai backend, fake server --------------------------------------------


class FakeRater:
    """An OpenAI-compatible server that rates like a careful judge would: high when the
    critique or narrative matches the context (the prompt mentions the same user's marker),
    lower for another user's context."""

    def __init__(self) -> None:
        self.requests = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests += 1
                prompt = body["messages"][-1]["content"]
                keys = re.search(r"integer keys: (.*?)\.\n", prompt)
                assert keys is not None
                # the rated texts name their user ("of uK"); the items of uK are "BK*"
                owner = re.search(r"(?:critique|of) u(\d)", prompt)
                assert owner is not None
                hist = re.search(r"1\. Item B(\d)", prompt)
                dest = re.search(r"(?:Destination item|Last purchase): Item B(\d)", prompt)
                own_hist = hist is not None and hist.group(1) == owner.group(1)
                own_dest = dest is not None and dest.group(1) == owner.group(1)
                score = 7 if own_hist and own_dest else 5 if own_dest else 3
                jitter = body.get("seed", 0) % 2  # runs differ a little
                answer = {k.strip(): max(1, score - jitter) for k in keys.group(1).split(",")}
                text = json.dumps(answer)
                payload = json.dumps(
                    {
                        "id": "c",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def fake_rater(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRater]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    srv = FakeRater()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def rate_cli(data: Path, out: Path, url: str, rater: str, *extra: str) -> int:
    return main(
        [
            "rate",
            "--dataset",
            str(data),
            "--rater",
            rater,
            "--backend",
            "openai",
            "--set",
            "model=judge",
            "--set",
            f"base_url={url}",
            "--runs",
            "3",
            "--limit",
            "6",
            "--seed",
            "5",
            "--out",
            str(out),
            "-q",
            *extra,
        ]
    )


def test_rate_end_to_end_writes_scores_bias_and_figures(
    fake_rater: FakeRater, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(pool(), data)
    out = tmp_path / "rated.jsonl.gz"
    plots = tmp_path / "plots"
    assert rate_cli(data, out, fake_rater.url, "critique", "--plots", str(plots)) == 0
    printed = capsys.readouterr().out
    # 6 users x 1 critique x 3 variants x 3 runs
    assert fake_rater.requests == 54
    users = list(iter_records(out))
    assert len(users) == 8  # users past --limit are copied unchanged
    first = users[0].scores
    assert first["critiques"] == [None, None, {"quality": 7, "specificity": 7, "relevance": 7}]
    assert first["rating_runs"]["critiques[2].quality"] == [6, 7, 6] or first["rating_runs"][
        "critiques[2].quality"
    ] == [7, 6, 7]
    assert first["raters"]["critique"]["runs"] == 3
    assert "critiques" not in users[7].scores
    with gzip.open(out, "rt") as fh:  # the release layout is kept
        assert set(json.loads(fh.readline())) >= {"reviewer_id", "purchase_history", "metadata"}

    with open(f"{out}.scores.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 6 * 3 * 3  # users x variants x attributes
    assert {r["variant"] for r in table} == {"real", "A", "B"}
    summary = json.loads(Path(f"{out}.rating.json").read_text())
    bias = summary["bias"]
    for attr in ("quality", "specificity", "relevance"):
        assert bias[attr]["real"]["high"] == 1.0  # 7 or 6 for every real critique
        assert bias[attr]["A"]["high"] == 0.0  # 5 or 4 with another history
        assert bias[attr]["B"]["high"] == 0.0
        assert bias[attr]["real"]["n"] == 6
    assert "bias check" in printed and "100.0% (6)" in printed
    for name in ("critique-scores.png", "critique-bias.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (plots / "critique-report.md").read_text()
    assert "(critique-scores.png)" in report and "(critique-bias.png)" in report

    # a rerun answers everything from the cache next to the output
    assert Path(f"{out}.rate-cache.sqlite").exists()
    assert rate_cli(data, out, fake_rater.url, "critique") == 0
    assert fake_rater.requests == 54
    assert next(iter(iter_records(out))).scores["critiques"] == first["critiques"]


def test_rate_narratives_end_to_end(fake_rater: FakeRater, tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    write_records(pool(), data)
    out = tmp_path / "rated.jsonl"
    assert rate_cli(data, out, fake_rater.url, "narrative", "--no-bias-check") == 0
    assert fake_rater.requests == 6 * 3 * 3  # users x narrative groups x runs
    meta = next(iter(iter_records(out))).scores
    assert meta["last_purchase"]["reason"] == {"veracity": 7, "personalization": 7}
    assert meta["user"]["profile"] == {"veracity": 7, "personalization": 7}
    assert meta["last_purchase"]["endorsement"] == {
        "veracity": 7,
        "personalization": 7,
        "persuasiveness": 7,
    }
    assert (
        "bias" not in Path(f"{out}.rating.json").read_text()
        or json.loads(Path(f"{out}.rating.json").read_text())["bias"] is None
    )


def test_rate_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reviewer_id": "x"}\n')
    out = tmp_path / "o.jsonl"
    code = main(
        [
            "rate",
            "--dataset",
            str(bad),
            "--rater",
            "critique",
            "--backend",
            "openai",
            "--set",
            "model=m",
            "--set",
            "base_url=http://127.0.0.1:9/v1",
            "--out",
            str(out),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:1: field 'purchase_history': missing" in err
    assert not out.exists()
    code = main(
        [
            "rate",
            "--dataset",
            str(bad),
            "--rater",
            "critic",
            "--backend",
            "openai",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 2 and "Did you mean 'critique'" in capsys.readouterr().err
