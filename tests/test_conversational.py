"""The conversational task end to end: ranking model + narrator (scripted LLM) + text metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sacrebleu

from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.hookspecs import hookimpl
from regen_bench.llm import LLMRequest, LLMResponse
from regen_bench.plugins import get_plugin_manager
from tests.conftest import make_record

LAST = re.compile(r"The last item purchase is: (\S+) Title: (.+?) Category:")


class ScriptedBackend:
    """Test double: answers from the prompt, records every prompt it was sent."""

    name = "scripted"
    price_per_mtok = (1.0, 2.0)
    prompts: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads it

    def __init__(self, model: str = "script-1", fail_on: str | None = None):
        self.model = model
        self.fail_on = fail_on

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        from regen_bench.llm import BackendError

        ScriptedBackend.prompts.append(request.prompt)
        asin, title = LAST.search(request.prompt).groups()  # type: ignore[union-attr]
        if self.fail_on and asin == self.fail_on:
            raise BackendError("scripted refusal")
        return LLMResponse(
            text=f"  I bought {title} because it suits my desk.  ",
            prompt_tokens=len(request.prompt.split()),
            completion_tokens=8,
            model=self.model,
        )


class _Plugin:
    @hookimpl
    def register_llm_backends(self, register: Any) -> None:
        register("scripted", ScriptedBackend, summary="test double")


@pytest.fixture
def scripted() -> Iterator[type[ScriptedBackend]]:
    ScriptedBackend.prompts = []
    get_plugin_manager(refresh=True).register_plugin(_Plugin(), name="scripted-test")
    yield ScriptedBackend
    get_plugin_manager(refresh=True)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    records = []
    for u in range(12):
        asins = [f"B{(u + k * 3) % 9:02d}" for k in range(4)]
        records.append(
            make_record(
                f"U{u:02d}",
                asins,
                {3: "Something cheaper, please"} if u % 2 else None,
                purchase_reason=f"I bought Item {asins[-1]} because it suits my desk.",
            )
        )
    path = tmp_path / "toy.jsonl"
    write_records(records, path)
    return path


def _args(toy: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--model",
        "popularity",
        "--task",
        "conversational",
        "--narrative",
        "purchase_reason",
        "--dataset",
        str(toy),
        "--output",
        str(out),
        "-q",
        "--set",
        "narrator.backend=scripted",
        "--embedder",
        "none",
        "--bertscore-model",
        "none",
        *extra,
    ]


def _load(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    base = out / "toy" / "conversational" / "popularity__purchase_reason"
    result = json.loads(base.with_suffix(".json").read_text())
    samples = [json.loads(x) for x in Path(f"{base}.samples.jsonl").read_text().splitlines()]
    return result, samples


def test_narrator_on_the_true_item_writes_scored_narratives(
    toy: Path, tmp_path: Path, scripted: type[ScriptedBackend], capsys
) -> None:
    assert main(_args(toy, tmp_path)) == 0
    assert "bleu" in capsys.readouterr().out
    result, samples = _load(tmp_path)
    narr = result["narration"]
    assert narr["generator"] == "narrator" and narr["condition"] == "target"
    assert narr["backend"] == "scripted" and narr["llm_model"] == "script-1"
    assert narr["scored"] == 12 and narr["failed"] == 0
    assert narr["usage"]["calls"] == 12 and narr["usage"]["cost_usd"] > 0
    assert "|gen:scripted/script-1|cond:target|prompt:v1|bleu:" in result["signature"]
    # The scripted narrative matches the reference exactly when it is about the true item.
    assert all(s["narrated"] == s["target"] for s in samples)
    assert all(s["generated"] == s["reference"] for s in samples)
    assert result["metrics"]["bleu"] == pytest.approx(100.0)
    assert result["metrics"]["rougeL"] == pytest.approx(100.0)
    # The prompt is the paper's, shows the history and never the held-out purchase's review.
    prompt = scripted.prompts[0]
    assert prompt.startswith("This is the summary of a user's purchase history.")
    assert "First item purchase is START ID: B00 Title: Item B00" in prompt
    assert prompt.count("START ID:") == 3 and "User Review: s0. t0" in prompt
    assert "s3" not in prompt and "t3" not in prompt
    assert prompt.endswith("Predict the purchase reason for the last purchased item.")
    # U01 (odd) was led to its last item B01 by a critique: the task reveals it.
    odd = next(p for p in scripted.prompts if LAST.search(p).group(1) == "B01")  # type: ignore[union-attr]
    assert odd.endswith("User Critique: Something cheaper, please\n" + prompt.splitlines()[-1])
    even = next(p for p in scripted.prompts if LAST.search(p).group(1) == "B00")  # type: ignore[union-attr]
    assert "User Critique: none\nPredict" in even
    assert (
        main(["validate", str(tmp_path / "toy/conversational/popularity__purchase_reason.json")])
        == 0
    )


def test_top1_condition_and_failures_are_recorded(
    toy: Path, tmp_path: Path, scripted: type[ScriptedBackend]
) -> None:
    top1 = ["--set", "narrator.condition=top1", "--set", "narrator.cache="]
    assert main(_args(toy, tmp_path / "a", *top1)) == 0
    _, first = _load(tmp_path / "a")
    refuse = first[0]["top_k"][0]
    assert main(_args(toy, tmp_path, *top1, "--set", f"narrator.fail_on={refuse}")) == 0
    result, samples = _load(tmp_path)
    assert result["narration"]["condition"] == "top1"
    assert "|cond:top1|" in result["signature"]
    assert all(s["narrated"] == s["top_k"][0] for s in samples)
    failed = [s for s in samples if s["narrated"] == refuse]
    assert failed
    assert all(s["generated"] == "" and "scripted refusal" in s["narration_error"] for s in failed)
    assert result["narration"]["failed"] == len(failed)
    assert all("narration_error" not in s for s in samples if s["narrated"] != refuse)
    # BLEU is sacreBLEU's corpus BLEU over exactly the recorded texts.
    direct = sacrebleu.corpus_bleu(
        [s["generated"] for s in samples], [[s["reference"] for s in samples]]
    ).score
    assert result["metrics"]["bleu"] == pytest.approx(direct, abs=1e-12)


def test_cache_makes_a_rerun_free_and_tampering_is_caught(
    toy: Path, tmp_path: Path, scripted: type[ScriptedBackend], capsys
) -> None:
    assert main(_args(toy, tmp_path)) == 0
    assert len(scripted.prompts) == 12
    assert main(_args(toy, tmp_path)) == 0
    assert len(scripted.prompts) == 12  # every answer came from the request cache
    result, _ = _load(tmp_path)
    assert result["narration"]["usage"]["cache_hits"] == 12
    samples_path = tmp_path / "toy/conversational/popularity__purchase_reason.samples.jsonl"
    lines = samples_path.read_text().splitlines()
    first = json.loads(lines[0])
    first["generated"] = "something else entirely"
    lines[0] = json.dumps(first, sort_keys=True, ensure_ascii=False)
    samples_path.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["validate", str(samples_path.with_name("popularity__purchase_reason.json"))]) == 1
    assert "sha256" in capsys.readouterr().err


def test_bad_narrator_options_exit_2(toy: Path, tmp_path: Path, scripted, capsys) -> None:
    for extra, needle in (
        (["--set", "narrator.condition=best"], "narrator.condition must be one of target, top1"),
        (["--set", "narrator.backend=nope"], "unknown llm backend 'nope'"),
        (["--set", "narrator.colour=red"], "colour"),
    ):
        assert main(_args(toy, tmp_path, *extra)) == 2
        assert needle in capsys.readouterr().err
    seq = [
        "run",
        "--model",
        "popularity",
        "--task",
        "sequential",
        "--dataset",
        str(toy),
        "--output",
        str(tmp_path),
        "-q",
        "--set",
        "narrator.backend=scripted",
    ]
    assert main(seq) == 2
    assert "conversational task only" in capsys.readouterr().err
