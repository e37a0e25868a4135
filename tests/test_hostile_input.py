"""Hostile result, samples and dataset files, fed through the CLI as a hostile submitter would.

Each must be refused with one line on stderr naming the file (and line, for jsonl), a non-zero
exit status and no traceback; none may break the leaderboard for the other submissions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.synth import write_synthetic
from regen_bench.leaderboard import submit
from regen_bench.results import Result, signature
from regen_bench.runner import RunConfig, run

DEEP = 100_000  # nesting levels: about 200 KB, far past Python's recursion limit


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real result file of a small simulated store (popularity: no training)."""
    base = tmp_path_factory.mktemp("hostile")
    data = base / "kit.jsonl"
    write_synthetic(data, users=120, items=120, seed=0)
    config = RunConfig("popularity", "sequential", str(data), output=base / "run")
    return run(config, progress=False).result_path


@pytest.fixture
def result(made: Path, tmp_path: Path) -> Path:
    """A private copy of the result and its samples, free to tamper with."""
    raw = json.loads(made.read_text())
    dest = tmp_path / "mine"
    dest.mkdir()
    shutil.copy(made.parent / raw["samples_file"], dest / raw["samples_file"])
    return Path(shutil.copy(made, dest / made.name))


def _clean_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return [line for line in err.splitlines() if line.strip()]


def _one_clean_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = _clean_lines(capsys)
    assert len(lines) == 1, lines
    return lines[0]


def _line_naming(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line about ``path`` (build and check also list other problems)."""
    lines = [line for line in _clean_lines(capsys) if str(path) in line]
    assert len(lines) == 1, lines
    return lines[0]


def _drop_metric(path: Path, metric: str) -> None:
    """Remove one metric; the signature stays valid (metrics are not part of it)."""
    raw = json.loads(path.read_text())
    assert raw["signature"] == signature(Result.model_validate(raw))
    del raw["metrics"][metric]
    path.write_text(json.dumps(raw))


def _rewrite_samples(path: Path, edit: Callable[[list[dict[str, Any]]], list[str]]) -> Path:
    """Replace the samples file's lines and redo its sha256 in the result; the samples path."""
    raw = json.loads(path.read_text())
    samples_path = path.parent / raw["samples_file"]
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    data = "".join(line + "\n" for line in edit(samples)).encode()
    samples_path.write_bytes(data)
    raw["samples_sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(raw))
    return samples_path


# -- 1. JSON nested very deep ---------------------------------------------------------------


def test_deeply_nested_result_is_refused_by_validate_and_submit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "deep.json"
    bad.write_text("[" * DEEP + "]" * DEEP)
    assert main(["validate", str(bad)]) == 1
    line = _one_clean_line(capsys)
    assert str(bad) in line and "nested too deeply" in line
    subs = tmp_path / "submissions"
    assert main(["leaderboard", "submit", str(bad), "--submissions", str(subs)]) == 1
    line = _one_clean_line(capsys)
    assert str(bad) in line and "nested too deeply" in line


def test_deeply_nested_file_in_submissions_fails_check_and_build_cleanly(
    made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "submissions"
    accepted = submit(made, subs)
    accepted.write_text("[" * DEEP + "]" * DEEP)
    out = tmp_path / "lb"
    for command in ("check", "build"):
        code = main(["leaderboard", command, "--submissions", str(subs), "--out", str(out)])
        assert code == 1
        assert "nested too deeply" in _line_naming(accepted, capsys)
    assert not out.exists()


def test_deeply_nested_samples_line_names_file_and_line(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _rewrite_samples(
        result, lambda s: [json.dumps(s[0]), "[" * DEEP + "]" * DEEP, *map(json.dumps, s[2:])]
    )
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert f"{samples}:2: bad sample (JSON nested too deeply)" in line


def test_deeply_nested_dataset_line_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "kit.jsonl"
    write_synthetic(data, users=30, items=120, seed=0)
    lines = data.read_text().splitlines()
    lines[2] = "[" * DEEP + "]" * DEEP
    data.write_text("\n".join(lines) + "\n")
    code = main(["data", "info", str(data)])
    assert code == 2
    line = _one_clean_line(capsys)
    assert f"{data}:3" in line and "nested too deeply" in line
    code = main(
        [
            "run",
            "--model",
            "popularity",
            "--task",
            "sequential",
            "--dataset",
            str(data),
            "--threads",
            "1",
        ]
    )
    assert code == 2
    line = _one_clean_line(capsys)
    assert f"{data}:3" in line and "nested too deeply" in line


# -- 2. metrics the leaderboard reads -------------------------------------------------------


@pytest.mark.parametrize("metric", ["ndcg@10", "mrr", "recall@10"])
def test_result_without_a_ranking_metric_is_refused(
    result: Path, tmp_path: Path, metric: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _drop_metric(result, metric)
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert str(result) in line and f"field 'metrics': Value error, lacks '{metric}'" in line
    subs = tmp_path / "submissions"
    assert main(["leaderboard", "submit", str(result), "--submissions", str(subs)]) == 1
    assert f"lacks '{metric}'" in _one_clean_line(capsys)


def test_result_without_ndcg_placed_in_submissions_does_not_crash_the_leaderboard(
    made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = tmp_path / "submissions"
    accepted = submit(made, subs)
    _drop_metric(accepted, "ndcg@10")
    out = tmp_path / "lb"
    for command in ("build", "check"):
        code = main(["leaderboard", command, "--submissions", str(subs), "--out", str(out)])
        assert code == 1
        assert "field 'metrics': Value error, lacks 'ndcg@10'" in _line_naming(accepted, capsys)
    assert not out.exists()


# -- 3. the narration block ------------------------------------------------------------------


def _narrated(raw: dict[str, Any], text_config: dict[str, str]) -> None:
    raw["task"]["narrative_type"] = "purchase_reason"
    raw["narration"] = {
        "generator": "narrator",
        "condition": "target",
        "text_config": text_config,
        "scored": 1,
        "failed": 0,
    }


def test_empty_text_config_is_refused_with_a_clear_line(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(result.read_text())
    _narrated(raw, {})
    result.write_text(json.dumps(raw))
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert str(result) in line
    assert "field 'narration.text_config'" in line and "lacks 'bleu'" in line


def test_embedder_without_its_model_is_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(result.read_text())
    config = {"bleu": "x", "rouge_headline": "rougeL", "rouge_stemmer": "porter"}
    _narrated(raw, {**config, "rouge_version": "1", "embedder": "minilm"})
    result.write_text(json.dumps(raw))
    assert main(["validate", str(result)]) == 1
    assert "lacks 'embedder_model'" in _one_clean_line(capsys)


def test_narrated_result_without_text_metrics_is_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(result.read_text())
    config = {"bleu": "x", "rouge_headline": "rougeL", "rouge_stemmer": "porter"}
    _narrated(raw, {**config, "rouge_version": "1"})
    result.write_text(json.dumps(raw))
    assert main(["validate", str(result)]) == 1
    assert "metrics lack 'bleu'" in _one_clean_line(capsys)


# -- 4. per-sample counts -------------------------------------------------------------------


def _set_first(key: str, value: Any) -> Callable[[list[dict[str, Any]]], list[str]]:
    def edit(samples: list[dict[str, Any]]) -> list[str]:
        samples[0][key] = value
        return [json.dumps(s) for s in samples]

    return edit


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("greater", -1, "field 'greater' = -1 is not a non-negative integer"),
        ("ties", 2.5, "field 'ties' = 2.5 is not a non-negative integer"),
        ("greater", "3", "field 'greater' = '3' is not a non-negative integer"),
        ("ties", True, "field 'ties' = True is not a non-negative integer"),
        ("greater", 10**9, "greater + ties = "),
    ],
)
def test_bad_counts_name_file_and_line(
    result: Path, key: str, value: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _rewrite_samples(result, _set_first(key, value))
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert f"{samples}:1: {message}" in line


def test_counts_beyond_the_catalog_are_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = json.loads(result.read_text())["dataset"]["items"]

    def edit(samples: list[dict[str, Any]]) -> list[str]:
        samples[0]["greater"], samples[0]["ties"] = items - 1, 1  # one too many
        return [json.dumps(s) for s in samples]

    samples = _rewrite_samples(result, edit)
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert f"{samples}:1: greater + ties = {items} but the catalog has {items} items" in line


def test_counts_at_the_catalog_bound_reach_the_metric_check(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """items - 1 is a legal count (target ranked last); only the edited metric is then wrong."""
    items = json.loads(result.read_text())["dataset"]["items"]
    samples = _rewrite_samples(result, _set_first("greater", items - 1))
    raw = json.loads(samples.read_text().splitlines()[0])
    raw_ties = raw["ties"]
    if raw_ties:  # keep the pair within the bound
        _rewrite_samples(result, _set_first("ties", 0))
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert "per-sample file gives" in line


def test_a_sample_that_is_not_an_object_is_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = _rewrite_samples(result, lambda s: [json.dumps(x) for x in s[:-1]] + ["[1, 2]"])
    assert main(["validate", str(result)]) == 1
    line = _one_clean_line(capsys)
    assert f"{samples}:{len(samples.read_text().splitlines())}: bad sample" in line
