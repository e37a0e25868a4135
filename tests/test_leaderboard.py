"""Leaderboards: strict submission validation, deterministic build, stale-table check."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.synth import write_synthetic
from regen_bench.leaderboard import (
    SubmissionError,
    build,
    check,
    collect,
    comparability_key,
    group_results,
    submit,
    validate_submission,
)
from regen_bench.results import Result, load_result, signature
from regen_bench.runner import RunConfig, run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real result files of a small simulated store (popularity: fast, no training)."""
    base = tmp_path_factory.mktemp("runs")
    data = base / "kit.jsonl"
    write_synthetic(data, users=150, items=120, seed=0)
    other = base / "other" / "kit.jsonl"  # same name, different content
    other.parent.mkdir()
    write_synthetic(other, users=150, items=120, seed=1)
    out: dict[str, Path] = {}
    for key, dataset, task, kwargs in (
        ("seq", data, "sequential", {}),
        ("crit", data, "critique", {}),
        ("optimistic", data, "sequential", {"tie_policy": "optimistic"}),
        ("other_data", other, "sequential", {}),
        ("subset", data, "sequential", {"limit": 20}),
    ):
        config = RunConfig("popularity", task, str(dataset), output=base / key, **kwargs)
        res = run(config, progress=False)
        out[key] = res.result_path
    return out


@pytest.fixture
def subs(tmp_path: Path, runs: dict[str, Path]) -> Path:
    root = tmp_path / "submissions"
    submit(runs["seq"], root)
    return root


def _copy(src: Path, dest_dir: Path) -> Path:
    """A result file and its per-sample file, copied into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    raw = json.loads(src.read_text())
    shutil.copy(src.parent / raw["samples_file"], dest_dir / raw["samples_file"])
    return Path(shutil.copy(src, dest_dir / src.name))


def _tamper(path: Path, change: Any, resign: bool = True) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))  # NaN is written as NaN, as a careless tool would
    if resign:
        try:
            result = Result.model_validate(raw)
        except ValueError:
            return  # the schema rejects the change anyway
        raw["signature"] = signature(result)
        path.write_text(json.dumps(raw))


def test_submit_build_check_round_trip(
    subs: Path, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = json.loads((subs / "kit" / "leaderboard.json").read_text())
    assert spec["tie_policy"] == "pessimistic" and spec["max_result_bytes"] == 5_000_000
    assert sorted(p.name for p in (subs / "kit" / "sequential").iterdir()) == [
        "popularity.json",
        "popularity.samples.jsonl",
    ]
    out = tmp_path / "lb"
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(out)]) == 1
    assert "kit.md is missing" in capsys.readouterr().err
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "kit.md"]
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(out)]) == 0
    # a new accepted submission makes the published tables stale
    assert main(["leaderboard", "submit", str(runs["crit"]), "--submissions", str(subs)]) == 0
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "kit.md is out of date; run `regen-bench leaderboard build`" in err
    assert "index.html is out of date" in err
    # resubmitting needs --replace
    assert main(["leaderboard", "submit", str(runs["crit"]), "--submissions", str(subs)]) == 1
    assert "already exists (use --replace" in capsys.readouterr().err


def test_build_is_deterministic(subs: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    submit(runs["crit"], subs)
    a, b = tmp_path / "a", tmp_path / "b"
    build(subs, a)
    # the same submissions copied elsewhere, in another order, give the same bytes
    other = tmp_path / "copy" / "submissions"
    shutil.copytree(subs, other)
    build(other, b)
    build(other, b)
    for name in ("kit.md", "index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    md = (a / "kit.md").read_text()
    # Table 4 layout: rows task x metric, columns narrative x model; a ranking per task
    assert "| Task " in md and "ranking only · popularity" in md
    assert "sequential (Hist. → ID)" in md and "critique (Hist. + Critique → ID)" in md
    seq = load_result(runs["seq"])
    assert f"{seq.metrics['recall@10']:.4f}" in md
    assert "### Ranking: sequential" in md and "### Ranking: critique" in md
    assert "created" not in md and seq.created not in (a / "index.html").read_text()


def test_html_is_self_contained_sortable_and_escaped(subs: Path, tmp_path: Path) -> None:
    path = subs / "kit" / "sequential" / "popularity.json"
    _tamper(path, lambda r: r["model"].update(plugin="<script>alert(1)</script>"))
    build(subs, tmp_path / "lb")
    page = (tmp_path / "lb" / "index.html").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert page.count("<script>") == 1  # the sorting code, inline
    assert "<svg" in page and 'class="dataframe sortable"' in page and "<style>" in page
    for external in ("src=", "<link", "@import", "https://"):
        assert external not in page


@pytest.mark.parametrize(
    ("change", "resign", "message"),
    [
        (lambda r: r.pop("metrics"), False, "field 'metrics': Field required"),
        (lambda r: r["metrics"].update({"recall@10": math.nan}), True, "not a finite value"),
        (lambda r: r["metrics"].update({"recall@10": 1.5}), True, "not a finite value in [0, 1]"),
        (lambda r: r["metrics"].update({"accuracy": 0.5}), True, "unknown metric 'accuracy'"),
        (lambda r: r["metrics"].update({"recall@10": 0.99}), True, "per-sample file gives"),
        (lambda r: r["task"].update(version=2), True, "version 2, this harness defines version 1"),
        (lambda r: r["dataset"].update(fingerprint="0" * 64), True, "dataset fingerprint"),
        (lambda r: r["protocol"].update(tie_policy="expected"), True, "tie policy 'expected'"),
        (lambda r: r.update(signature=r["signature"] + "|x"), False, "does not match its fields"),
        (lambda r: r["model"].update(name="../../evil"), True, "model name '../../evil'"),
        (lambda r: r.update(samples_file="../x.samples.jsonl"), True, "samples_file is"),
    ],
)
def test_invalid_submissions_are_rejected(
    subs: Path, change: Any, resign: bool, message: str
) -> None:
    path = subs / "kit" / "sequential" / "popularity.json"
    _tamper(path, change, resign)
    with pytest.raises(SubmissionError) as info:
        validate_submission(path, subs)
    assert message in str(info.value)
    assert str(path) in str(info.value) or "samples" in str(info.value)
    _, errors = collect(subs)
    assert len(errors) == 1 and message in errors[0]


def test_build_refuses_invalid_submissions_and_writes_nothing(
    subs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = subs / "kit" / "sequential" / "popularity.json"
    _tamper(path, lambda r: r["metrics"].update({"mrr": -0.1}))
    out = tmp_path / "lb"
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(out)]) == 1
    assert "1 invalid submission(s), nothing written" in capsys.readouterr().err
    assert not out.exists()
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(out)]) == 1
    assert "metric 'mrr' = -0.1" in capsys.readouterr().err


def test_protocol_and_dataset_mismatches_are_rejected(subs: Path, runs: dict[str, Path]) -> None:
    with pytest.raises(SubmissionError, match="tie policy 'optimistic' differs"):
        submit(runs["optimistic"], subs)
    with pytest.raises(SubmissionError, match=r"dataset fingerprint '[0-9a-f]+' differs"):
        submit(runs["other_data"], subs)
    with pytest.raises(SubmissionError, match="a --limit 20 subset run"):
        submit(runs["subset"], subs)
    assert sorted(p.name for p in (subs / "kit").iterdir()) == ["leaderboard.json", "sequential"]


def test_path_tricks_are_rejected(subs: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    seq = subs / "kit" / "sequential"
    # a file whose name does not match its own fields
    renamed = _copy(seq / "popularity.json", tmp_path / "x")
    bad = seq / "sasrec.json"
    shutil.copy(renamed, bad)
    with pytest.raises(
        SubmissionError, match=re.escape("put it at kit/sequential/popularity.json")
    ):
        validate_submission(bad, subs)
    bad.unlink()
    # in the wrong task folder
    wrong = _copy(seq / "popularity.json", subs / "kit" / "critique")
    with pytest.raises(SubmissionError, match=re.escape("not kit/critique/popularity.json")):
        validate_submission(wrong, subs)
    shutil.rmtree(subs / "kit" / "critique")
    # dot-dot and outside paths
    with pytest.raises(SubmissionError, match=re.escape("path part '..' is not allowed")):
        validate_submission(subs / "kit" / ".." / "kit" / "popularity.json", subs)
    with pytest.raises(SubmissionError, match="not inside the submissions folder"):
        validate_submission(runs["seq"], subs)
    # symlinks, to a file or to a folder
    link = seq / "linked.json"
    link.symlink_to(runs["seq"])
    with pytest.raises(SubmissionError, match="is a symlink"):
        validate_submission(link, subs)
    link.unlink()
    (subs / "kit" / "critique").symlink_to(seq, target_is_directory=True)
    _, errors = collect(subs)
    assert any("unexpected entry" in e for e in errors)
    (subs / "kit" / "critique").unlink()
    # stray files
    (seq / "notes.txt").write_text("hi")
    (seq / "ghost.samples.jsonl").write_text("")
    _, errors = collect(subs)
    assert any("notes.txt: unexpected file" in e for e in errors)
    assert any("ghost.samples.jsonl: per-sample file without its result file" in e for e in errors)


def test_oversized_files_are_rejected_before_reading(subs: Path) -> None:
    spec_path = subs / "kit" / "leaderboard.json"
    spec = json.loads(spec_path.read_text())
    path = subs / "kit" / "sequential" / "popularity.json"
    spec_path.write_text(json.dumps({**spec, "max_result_bytes": 100}))
    with pytest.raises(SubmissionError, match=r"result file is \d+ bytes, over the limit of 100"):
        validate_submission(path, subs)
    spec_path.write_text(json.dumps({**spec, "max_samples_bytes": 1000}))
    with pytest.raises(SubmissionError, match=r"per-sample file is .* over the limit of 1000"):
        validate_submission(path, subs)
    spec_path.write_text(json.dumps({**spec, "max_samples_bytes": "big"}))
    with pytest.raises(SubmissionError, match="field 'max_samples_bytes'"):
        validate_submission(path, subs)


def test_results_with_different_keys_are_never_mixed(runs: dict[str, Path]) -> None:
    seq, subset = load_result(runs["seq"]), load_result(runs["subset"])
    optimistic = load_result(runs["optimistic"])
    assert comparability_key(seq) != comparability_key(subset)
    assert comparability_key(seq) != comparability_key(optimistic)
    assert comparability_key(seq) == comparability_key(load_result(runs["crit"]))
    groups = group_results([seq, subset, optimistic])
    assert [len(g.results) for g in groups] == [1, 1, 1]
    assert {g.protocol.split("|")[-1] for g in groups} == {
        "hist:kept",
        "subset:first20",
    }


def test_published_leaderboards_are_up_to_date() -> None:
    """The repository's own submissions and tables (what `.ci/run` checks as well)."""
    repo = Path(__file__).resolve().parents[1]
    problems = check(repo / "submissions", repo / "leaderboards")
    assert problems == []
