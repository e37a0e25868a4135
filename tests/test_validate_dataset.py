"""Results checked against their dataset: forgeries that keep every number consistent.

Each forgery below rewrites the per-sample file, recomputes every metric from it, redoes the
hash and the signature, so the file passes every check that looks at it alone; only the
dataset can tell. Each must be refused by ``leaderboard validate`` (and ``submit``) with one
line naming the file, the sample line and the field, and exit status 1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.synth import write_synthetic
from regen_bench.leaderboard import SubmissionError, validate_result
from regen_bench.results import Result, load_result, recompute_metrics, signature

Samples = list[dict[str, Any]]


def _run(out: Path, dataset: str = "mini", *extra: str) -> Path:
    args = ["run", "--model", "popularity", "--task", "critique", "--dataset", dataset]
    assert main([*args, "--output", str(out), "--threads", "1", "-q", *extra]) == 0
    name = Path(dataset).name.split(".")[0]
    return out / name / "critique" / "popularity.json"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real results on the embedded mini store, as a new user would make them."""
    base = tmp_path_factory.mktemp("against-data")
    kit = base / "kit.jsonl"
    write_synthetic(kit, users=60, items=120, seed=0)
    return {
        "full": _run(base / "full"),
        "limit": _run(base / "limit", "mini", "--limit", "50"),
        "kit": _run(base / "kit", str(kit)),
        "kit_data": kit,
    }


def _copy(src: Path, dest: Path) -> Path:
    """A result and its per-sample file, copied into the folder ``dest``."""
    dest.mkdir(parents=True)
    raw = json.loads(src.read_text())
    shutil.copy(src.parent / raw["samples_file"], dest / raw["samples_file"])
    return Path(shutil.copy(src, dest / src.name))


@pytest.fixture
def result(made: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the full mini result, free to forge."""
    return _copy(made["full"], tmp_path / "mine")


def _forge(
    path: Path,
    edit: Callable[[Samples], Samples],
    protocol: Callable[[dict[str, Any], Samples], None] = lambda raw, samples: None,
    *,
    passes_alone: bool = True,
) -> Path:
    """Edit the samples, then make the result consistent with them: test_examples and
    critiqued_examples counted, metrics recomputed, hash and signature redone. Returns the
    samples path."""
    raw = json.loads(path.read_text())
    samples_path = path.parent / raw["samples_file"]
    samples = edit([json.loads(line) for line in samples_path.read_text().splitlines()])
    data = "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples).encode()
    samples_path.write_bytes(data)
    raw["samples_sha256"] = hashlib.sha256(data).hexdigest()
    raw["protocol"]["test_examples"] = len(samples)
    raw["protocol"]["critiqued_examples"] = sum(bool(s["has_critique"]) for s in samples)
    protocol(raw, samples)
    raw["metrics"] = recompute_metrics(samples, raw["protocol"]["tie_policy"])
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))
    if passes_alone:
        load_result(path)  # the forgery passes every check of the file on its own
    return samples_path


def _refused(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """The one stderr line of a refused ``leaderboard validate`` (exit status 1)."""
    assert main(["leaderboard", "validate", str(path), *extra]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"regen-bench: check failed: {path}: ")
    return lines[0]


def _users(path: Path) -> list[str]:
    raw = json.loads(path.read_text())
    lines = (path.parent / raw["samples_file"]).read_text().splitlines()
    return [json.loads(line)["user_id"] for line in lines]


# -- accepted -------------------------------------------------------------------------------


def test_an_untouched_result_is_checked_against_mini_and_accepted(
    result: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    assert main(["leaderboard", "validate", str(result)]) == 0
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"ok {result}: popularity / critique / mini; ")
    assert "checked against dataset mini (fingerprint " in out
    # About half a second on a laptop (most of it building the split once); generous for CI.
    assert elapsed < 5, f"validating a mini result took {elapsed:.1f}s"
    subs = tmp_path / "submissions"
    assert main(["leaderboard", "submit", str(result), "--submissions", str(subs)]) == 0
    out, err = capsys.readouterr()
    assert "checked against dataset mini (fingerprint " in err and "accepted" in out
    lb = tmp_path / "lb"
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(lb)]) == 0
    capsys.readouterr()
    assert main(["leaderboard", "check", "--submissions", str(subs), "--out", str(lb)]) == 0
    out, _ = capsys.readouterr()
    assert "mini: checked against dataset mini (fingerprint " in out


def test_a_limit_run_is_checked_against_its_first_users(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(made["limit"], tmp_path / "limit")
    assert main(["leaderboard", "validate", str(path)]) == 0
    assert "checked against dataset mini" in capsys.readouterr().out
    # Another test user in place of one of the first 50: a subset, but not the recorded one.
    full_users = _users(made["full"])
    assert full_users[:50] == _users(path)
    other = json.loads(
        (made["full"].parent / "popularity.samples.jsonl").read_text().split("\n")[60]
    )

    def swap(samples: Samples) -> Samples:
        return [*samples[:-1], other]

    _forge(path, swap)
    line = _refused(path, capsys)
    assert (
        f"popularity.samples.jsonl line 50: field 'user_id' = '{full_users[60]}' is beyond the "
        "first 50 test users (--limit 50)" in line
    )


def test_a_dataset_file_is_checked_only_when_given(
    made: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(made["kit"], tmp_path / "kit")
    assert main(["leaderboard", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dataset not available ('kit' is not a registered dataset; give its file with " in out
    assert "checked the file only" in out
    assert main(["leaderboard", "validate", str(path), "--dataset", str(made["kit_data"])]) == 0
    assert "checked against dataset kit (fingerprint " in capsys.readouterr().out
    # The file given is not the result's dataset: said so, nothing else checked.
    line = _refused(made["kit"], capsys, "--dataset", "mini")
    line = line.removeprefix(f"regen-bench: check failed: {made['kit']}: ")
    assert line.startswith("--dataset mini: fingerprint ") and "not the result's dataset" in line
    # A forgery on that file is caught once the file is given.
    _forge(path, lambda s: s[:10])
    assert main(["leaderboard", "validate", str(path)]) == 0
    capsys.readouterr()
    line = _refused(path, capsys, "--dataset", str(made["kit_data"]))
    assert "test users of dataset 'kit' have no sample" in line


# -- refused --------------------------------------------------------------------------------


def test_ten_of_the_test_users_pass_for_a_full_split_no_more(
    result: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = _users(result)
    _forge(result, lambda s: s[:10])
    line = _refused(result, capsys)
    assert (
        f"{len(users) - 10} of the {len(users)} test users of dataset 'mini' have no sample in "
        f"popularity.samples.jsonl: '{users[10]}', '{users[11]}', '{users[12]}' and "
        f"{len(users) - 13} more" in line
    )
    # submit refuses it too, and writes nothing
    subs = tmp_path / "submissions"
    assert main(["leaderboard", "submit", str(result), "--submissions", str(subs)]) == 1
    assert "have no sample" in capsys.readouterr().err
    assert not subs.exists()


def test_flipped_critique_flags_are_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads(result.read_text())["metrics"]["critiqued/ndcg@10"]

    def best_ranked_are_critiqued(samples: Samples) -> Samples:
        for s in samples:
            s["has_critique"] = s["greater"] < 10
        return samples

    samples_path = _forge(result, best_ranked_are_critiqued)
    assert json.loads(result.read_text())["metrics"]["critiqued/ndcg@10"] > before
    first = next(
        (i, s)
        for i, s in enumerate(map(json.loads, samples_path.read_text().splitlines()), start=1)
        if s["has_critique"] != (s["critique"] is not None)
    )
    lineno, sample = first
    line = _refused(result, capsys)
    data_says = "carries no critique" if sample["has_critique"] else "carries a critique"
    assert (
        f"popularity.samples.jsonl line {lineno}: field 'has_critique' = "
        f"{json.dumps(sample['has_critique'])} but the target purchase of user "
        f"'{sample['user_id']}' {data_says}" in line
    )


def test_critiqued_examples_must_match_the_samples(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counted = json.loads(result.read_text())["protocol"]["critiqued_examples"]

    def off_by_one(raw: dict[str, Any], samples: Samples) -> None:
        raw["protocol"]["critiqued_examples"] += 1

    _forge(result, lambda s: s, off_by_one)
    line = _refused(result, capsys)
    assert (
        f"field 'protocol.critiqued_examples' = {counted + 1} but {counted} samples of "
        "popularity.samples.jsonl have has_critique true" in line
    )


def test_a_changed_target_is_refused_with_its_line(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth: dict[str, str] = {}

    def target_is_top1(samples: Samples) -> Samples:
        s = samples[4]
        truth.update(user=s["user_id"], target=s["target"])
        s["target"] = next(item for item in s["top_k"] if item != s["target"])
        s["greater"], s["ties"] = 0, 0
        return samples

    _forge(result, target_is_top1)
    line = _refused(result, capsys)
    assert "popularity.samples.jsonl line 5: field 'target' = " in line
    assert f"but the true next item of user '{truth['user']}' in dataset 'mini' is " in line
    assert f"'{truth['target']}'" in line


@pytest.mark.parametrize("claim_items", [False, True])
def test_counts_beyond_the_catalog_are_refused(
    result: Path, claim_items: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """greater = ties = 10**9 on an 800-item catalog; with ``claim_items`` the result also
    claims a catalog big enough for them (the file alone cannot tell)."""

    def huge(samples: Samples) -> Samples:
        samples[2]["greater"] = samples[2]["ties"] = 10**9
        return samples

    if not claim_items:  # caught by the file's own check, which knows the claimed size
        samples_path = _forge(result, huge, passes_alone=False)
        assert main(["leaderboard", "validate", str(result)]) == 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and len(err.splitlines()) == 1
        assert f"{samples_path}:3: greater + ties = {2 * 10**9}" in err
        return

    def claim(raw: dict[str, Any], samples: Samples) -> None:
        raw["dataset"]["items"] = 10**10

    _forge(result, huge, claim)
    line = _refused(result, capsys)
    assert "field 'dataset.items' = 10000000000 but dataset 'mini' has 2000" in line


def test_a_duplicated_user_is_refused(result: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = _users(result)

    def repeat(samples: Samples) -> Samples:
        samples[6] = dict(samples[1])
        return samples

    _forge(result, repeat)
    line = _refused(result, capsys)
    assert f"popularity.samples.jsonl line 7: field 'user_id' = '{users[1]}' repeats line 2" in line


def test_a_user_outside_the_test_split_is_refused(
    result: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def stranger(samples: Samples) -> Samples:
        samples[0]["user_id"] = "NOT-A-USER"
        return samples

    _forge(result, stranger)
    line = _refused(result, capsys)
    assert (
        "popularity.samples.jsonl line 1: field 'user_id' = 'NOT-A-USER' is not a test user "
        "of dataset 'mini'" in line
    )


def test_the_function_names_the_problem(result: Path) -> None:
    """The library call behind the command: SubmissionError, or the result and the outcome."""
    checked = validate_result(result)[1]
    assert checked.ran and checked.describe().startswith("checked against dataset mini")
    _forge(result, lambda s: s[1:])
    with pytest.raises(SubmissionError, match=r"1 of the 5000 test users .* have no sample"):
        validate_result(result)
