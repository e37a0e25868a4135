"""`leaderboard verify`: re-running a result's recorded command catches what validation cannot."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regen_bench.leaderboard.submissions import collect
from regen_bench.leaderboard.verify import (
    VerifyError,
    describe,
    load_record,
    recorded_command,
    verify,
    write_record,
)
from regen_bench.options import parse_options
from regen_bench.plugins import get_plugin_manager
from regen_bench.results import Result, load_result, recompute_metrics, signature, write_samples

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "submissions" / "mini" / "sequential" / "popularity.json"


def _true_ndcg() -> str:
    """The published result's NDCG@10 as the verify detail prints it (what a re-run gives)."""
    return f"ndcg@10 1.0000 -> {json.loads(PUBLISHED.read_text())['metrics']['ndcg@10']:.4f}"


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "popularity.json"
    shutil.copy(PUBLISHED, dest)
    shutil.copy(PUBLISHED.with_name("popularity.samples.jsonl"), tmp_path)
    return dest


def _forge(path: Path, edit_sample) -> None:
    """A consistent forgery: samples edited, metrics recomputed, hash and signature redone."""
    raw = json.loads(path.read_text())
    samples_path = path.parent / raw["samples_file"]
    samples = [json.loads(line) for line in samples_path.read_text().splitlines()]
    for s in samples:
        edit_sample(s)
    raw["samples_sha256"] = write_samples(samples_path, samples)
    raw["metrics"] = recompute_metrics(samples, raw["protocol"]["tie_policy"])
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))


def test_the_published_popularity_result_reproduces_exactly(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    v = verify(path)
    assert v.outcome == "identical", v.detail
    rec_path = write_record(v)
    rec = load_record(path)
    assert rec is not None and rec.outcome == "identical"
    assert describe(rec).startswith("yes (exact, v")
    assert json.loads(rec_path.read_text())["samples_sha256"] == v.samples_sha256


def test_a_consistent_forgery_passes_validation_but_not_verify(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    _forge(path, lambda s: s.update(greater=0, ties=0))
    forged = load_result(path)  # validation cannot tell: every number follows from the samples
    assert forged.metrics["ndcg@10"] == 1.0
    v = verify(path)
    assert v.outcome == "differs" and not v.reproduced
    assert _true_ndcg() in v.detail
    with pytest.raises(VerifyError, match="not reproduced"):
        write_record(v)


def test_forged_users_are_caught_even_with_equal_metrics(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    # Another target for every user, same rank counts: metrics stay, the pairs do not.
    _forge(path, lambda s: s.update(target=s["top_k"][-1]))
    v = verify(path)
    assert v.outcome == "differs"
    assert "other (user, target) pairs" in v.detail


def test_a_record_is_bound_to_the_exact_result_bytes(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    write_record(verify(path))
    assert load_record(path) is not None
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(raw, indent=1))  # same content, other bytes: a new file
    assert load_record(path) is None
    assert describe(load_record(path)) == "not yet"


def test_recorded_command_carries_every_option(tmp_path: Path) -> None:
    result = load_result(ROOT / "submissions" / "mini" / "sequential" / "sasrec.json")
    cmd = recorded_command(result, tmp_path)
    assert cmd[:6] == ["regen-bench", "run", "--model", "sasrec", "--task", "sequential"]
    sets = {cmd[i + 1].split("=")[0] for i, a in enumerate(cmd) if a == "--set"}
    assert sets == set(result.model.config)
    assert cmd[cmd.index("--threads") + 1] == str(result.environment.threads)


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (ROOT / "submissions").glob("*/*/*.json") if ".verified." not in p.name),
    ids=lambda p: str(p.relative_to(ROOT / "submissions")),
)
def test_every_published_command_gives_options_its_model_accepts(path: Path) -> None:
    """The leaderboard shows each row's recorded command; a key the model recorded as a fact
    (LUMEN's ``backbone_source``, ``prompt_version``) given as ``--set`` made the run refuse."""
    result = load_result(path)
    cmd = recorded_command(result, "OUT")
    given = dict(
        cmd[i + 1].split("=", 1)
        for i, a in enumerate(cmd)
        if a == "--set" and not cmd[i + 1].startswith("narrator.")
    )
    schema = get_plugin_manager().get("model", result.model.name).options
    if schema is None:
        assert not given
        return
    parse_options(schema, given, model=result.model.name)  # raises on an unknown option
    assert set(given) == set(result.model.config) & set(schema.model_fields)


def test_another_major_version_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    raw = json.loads(path.read_text())
    raw["harness_version"] = "9.0.0"
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))
    with pytest.raises(VerifyError, match="another major version"):
        verify(path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regen_bench", *args], capture_output=True, text=True
    )


def test_cli_verify_record_and_submit_verify_mark_the_row(tmp_path: Path) -> None:
    # As a new user would: verify a result, then submit it with --verify into a fresh folder.
    path = _copy(tmp_path)
    proc = _cli("leaderboard", "verify", str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"reproduced {path} (identical)")
    subs = tmp_path / "subs"
    proc = _cli("leaderboard", "submit", str(path), "--submissions", str(subs), "--verify")
    assert proc.returncode == 0, proc.stderr
    dest = subs / "mini" / "sequential" / "popularity.json"
    record = dest.with_name("popularity.verified.json")
    assert record.is_file() and "wrote " + str(record) in proc.stderr
    accepted, errors = collect(subs)
    assert errors == [] and [s.reproduction is not None for s in accepted] == [True]
    # A replaced result loses the reproduction of the one it replaced.
    proc = _cli("leaderboard", "submit", str(path), "--submissions", str(subs), "--replace")
    assert proc.returncode == 0 and not record.exists()


def test_cli_rejects_a_forgery_in_one_line(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    _forge(path, lambda s: s.update(greater=0, ties=0))
    proc = _cli("leaderboard", "verify", str(path), "--record")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()[-1:]
    assert "NOT reproduced (differs)" in line and _true_ndcg() in line
    assert not path.with_name("popularity.verified.json").exists()
    subs = tmp_path / "subs"
    proc = _cli("leaderboard", "submit", str(path), "--submissions", str(subs), "--verify")
    assert proc.returncode == 1 and "rejected:" in proc.stderr and not subs.exists()


def test_a_stray_or_broken_record_is_reported(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    shutil.copytree(ROOT / "submissions", subs)
    folder = subs / "mini" / "sequential"
    (folder / "ghost.verified.json").write_text("{}")
    (folder / "popularity.verified.json").write_text('{"outcome": "identical"}')
    _, errors = collect(subs)
    assert any(
        "ghost.verified.json: verification record without its result file" in e for e in errors
    )
    assert any("popularity.verified.json: field" in e for e in errors)


def test_a_result_on_other_weights_is_not_compared(tmp_path: Path) -> None:
    """Published with an encoder this installation does not load: verify compares nothing."""
    path = _copy(tmp_path)
    raw = json.loads(path.read_text())
    raw["weights"] = {"model.encoder": "minilm@sha256:" + "ab12" * 16}
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))
    assert load_result(path).signature.endswith("|weights:model.encoder=minilm@ab12ab12ab12")
    v = verify(path)
    assert v.outcome == "not_run" and not v.reproduced
    assert v.detail == (
        "weights differ, not compared: model.encoder minilm@sha256:ab12ab12ab12... here none"
    )
    with pytest.raises(VerifyError, match="not reproduced"):
        write_record(v)
