"""``regen-bench tune`` and ``run --config``: search spaces, validation only, resume, reproduce."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

import regen_bench.tuning as tuning
from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.options import (
    Choice,
    IntRange,
    LogUniform,
    ModelOptions,
    Uniform,
    check_search_space,
)
from regen_bench.plugins import get_plugin_manager
from regen_bench.results import load_result
from regen_bench.tasks import TaskData

pytest.importorskip("optuna")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
#: Tiny fixed options: every trial trains in a fraction of a second.
TINY = ["--set", "hidden=8", "--set", "epochs=2", "--set", "max_len=8", "--threads", "1"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from regen_bench.data.synth import synthesize

    path = tmp_path_factory.mktemp("tune") / "shop.jsonl"
    write_records(synthesize(120, 110, 0), path)
    return path


def _tune_args(
    data_file: Path, out: Path, trials: int, *extra: str, task: str = "sequential"
) -> list[str]:
    return [
        "tune",
        "--model",
        "sasrec",
        "--task",
        task,
        "--trials",
        str(trials),
        "--dataset",
        str(data_file),
        "--out",
        str(out),
        *TINY,
        *extra,
    ]


def _values(path: Path) -> list[tuple[int, str, float | None, dict[str, Any]]]:
    tuned = tuning.load_tuned_config(path)
    return [(t.number, t.state, t.value, t.params) for t in tuned.trials]


# -- search spaces ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["sasrec", "bert4rec", "flare"])
def test_first_party_torch_models_declare_a_valid_space(model: str) -> None:
    schema = get_plugin_manager().get("model", model).options
    assert schema is not None
    space = check_search_space(schema, model=model)
    assert {"lr", "hidden", "blocks", "dropout", "max_len", "weight_decay"} <= set(space)
    assert isinstance(space["lr"], LogUniform)


def test_a_bad_space_is_named() -> None:
    class Opts(ModelOptions):
        lr: float = Field(default=1e-3, gt=0)
        layers: int = Field(default=2, ge=1)

    Opts.SEARCH_SPACE = {"lr": LogUniform(1e-4, 1e-2), "layer": IntRange(1, 3)}
    with pytest.raises(ValueError, match="did you mean 'layers'"):
        check_search_space(Opts, model="m")
    Opts.SEARCH_SPACE = {"layers": IntRange(0, 3)}
    with pytest.raises(ValueError, match="option 'layers' must be an int >= 1"):
        check_search_space(Opts, model="m")
    Opts.SEARCH_SPACE = {"lr": Uniform(0.1, 0.01)}
    with pytest.raises(ValueError, match="low < high"):
        check_search_space(Opts, model="m")
    Opts.SEARCH_SPACE = {"layers": Choice(1, 2)}
    assert check_search_space(Opts, model="m") == {"layers": Choice(1, 2)}


def test_model_without_space_errors_in_one_line(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _tune_args(data_file, tmp_path / "p.json", 2)
    args[args.index("sasrec")] = "popularity"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "model 'popularity' declares no search space" in err and "sasrec" in err
    assert not (tmp_path / "p.json").exists()


def test_an_unwritable_out_fails_before_the_first_trial(
    data_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []
    monkeypatch.setattr(tuning, "_import_optuna", lambda: started.append(1) or pytest.fail())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(_tune_args(data_file, blocker / "best.json", 2)) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the dataset line
    assert last.startswith("regen-bench: error: ") and "exists and is not a folder" in last
    (tmp_path / "folder.json").mkdir()
    assert main(_tune_args(data_file, tmp_path / "folder.json", 2)) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not started  # no search began


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--trials", "--timeout", "--storage", "--out", "--seed", "--set", "-q"):
        assert flag in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--config FILE" in capsys.readouterr().out
    assert main(["run", "--task", "sequential"]) == 2
    assert "--model (or --config FILE)" in capsys.readouterr().err
    assert main(["plugins", "--options", "sasrec"]) == 0
    assert "search space (regen-bench tune --model sasrec):" in capsys.readouterr().out


# -- the epoch callback -------------------------------------------------------------------------


def test_epoch_callback_reports_and_stops_without_changing_training() -> None:
    from regen_bench.tasks import build_task
    from regen_bench.testing import tiny_dataset
    from regen_bench_plugins.sasrec.model import SASRec

    data = build_task(tiny_dataset(60, 110), "sequential")
    opts: dict[str, Any] = {"hidden": 8, "epochs": 3, "max_len": 8}
    plain = SASRec(data.catalog, seed=0, **opts).fit(data.train, data.valid)
    seen: list[tuple[int, float]] = []
    model = SASRec(data.catalog, seed=0, **opts)
    model.epoch_callback = lambda e, v: seen.append((e, v)) is not None  # never stops
    watched = model.fit(data.train, data.valid)
    assert "stopped_by_callback" not in plain and "stopped_by_callback" not in watched
    assert watched["valid_ndcg@10"] == plain["valid_ndcg@10"]
    assert watched["train_loss"] == plain["train_loss"]
    assert [e for e, _ in seen] == [1, 2, 3]
    model = SASRec(data.catalog, seed=0, **opts)
    model.epoch_callback = lambda e, v: e == 1
    stopped = model.fit(data.train, data.valid)
    assert stopped["epochs"] == 1 and stopped["stopped_by_callback"] == 1


# -- validation only ----------------------------------------------------------------------------


def test_withheld_test_split_raises_on_any_access() -> None:
    withheld = tuning.WithheldTest()
    for touch in (len, list, bool, lambda w: w[0], lambda w: w[:1], lambda w: None in w):
        with pytest.raises(tuning.TestSplitWithheld):
            touch(withheld)


def test_tuner_never_reads_test_targets(
    data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test targets poisoned, or the test split rigged to raise on access: same trials."""
    assert main(_tune_args(data_file, tmp_path / "clean.json", 2, "-q")) == 0
    real_build = tuning.build_task

    def poisoned(*args: Any, **kwargs: Any) -> TaskData:
        data = real_build(*args, **kwargs)
        n = len(data.catalog)
        data.test = [replace(ex, target=(ex.target + 1) % n) for ex in data.test]
        return data

    monkeypatch.setattr(tuning, "build_task", poisoned)
    assert main(_tune_args(data_file, tmp_path / "poisoned.json", 2, "-q")) == 0

    def tripwired(*args: Any, **kwargs: Any) -> TaskData:
        data = real_build(*args, **kwargs)
        data.test = tuning.WithheldTest()
        return data

    monkeypatch.setattr(tuning, "build_task", tripwired)
    assert main(_tune_args(data_file, tmp_path / "tripwired.json", 2, "-q")) == 0
    clean = _values(tmp_path / "clean.json")
    assert clean == _values(tmp_path / "poisoned.json") == _values(tmp_path / "tripwired.json")
    assert all(state == "complete" for _, state, _, _ in clean)


# -- reproduce through run --config ---------------------------------------------------------------


def test_best_config_reproduces_its_validation_score(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = tmp_path / "best.json"
    assert main(_tune_args(data_file, best, 3)) == 0
    out, err = capsys.readouterr()
    assert "trial 0 [1/3]" in err and "trial 2 [3/3]" in err and "best validation" in out
    tuned = tuning.load_tuned_config(best)
    assert tuned.tuning.trials == 3 and tuned.options["hidden"] == 8
    assert (tmp_path / "best.optuna.db").exists()

    results = tmp_path / "results"
    args = ["run", "--config", str(best), "--dataset", str(data_file), "--out", str(results)]
    assert main([*args, "-q", "--threads", "1"]) == 0
    path = results / "shop" / "sequential" / "sasrec.json"
    result = load_result(path)
    assert result.tuning is not None
    assert result.fit_log["best_valid_ndcg@10"] == tuned.tuning.best_valid_ndcg
    assert result.tuning.best_valid_ndcg == tuned.tuning.best_valid_ndcg
    assert result.tuning.search_space == tuned.tuning.search_space
    assert result.tuning.overridden == []
    assert result.model.config["lr"] == tuned.options["lr"]

    # --set overrides a tuned option, and the result says so.
    assert main([*args, "-q", "--threads", "1", "--set", "epochs=1"]) == 0
    again = load_result(path)
    assert again.tuning is not None and again.tuning.overridden == ["epochs"]
    assert again.model.config["epochs"] == 1

    # A config tuned for sasrec does not run another model, nor on another dataset.
    capsys.readouterr()
    assert main([*args, "--model", "bert4rec"]) == 2
    assert "tuned for model 'sasrec'" in capsys.readouterr().err
    assert main(["run", "--config", str(best), "--out", str(results), "-q"]) == 2
    assert "searched on another dataset" in capsys.readouterr().err


def test_untuned_results_write_no_tuning_key(data_file: Path, tmp_path: Path) -> None:
    args = ["run", "--model", "popularity", "--task", "sequential", "--dataset", str(data_file)]
    assert main([*args, "--out", str(tmp_path), "-q"]) == 0
    raw = json.loads((tmp_path / "shop" / "sequential" / "popularity.json").read_text())
    assert "tuning" not in raw


# -- resume after SIGKILL -----------------------------------------------------------------------


def _finished(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            row = con.execute(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
            ).fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0])


def test_resume_after_sigkill_repeats_no_finished_trial(data_file: Path, tmp_path: Path) -> None:
    out, db = tmp_path / "kill.json", tmp_path / "kill.optuna.db"
    # Slower trials (more epochs), so that the kill lands after some trials, before all 50.
    slow = _tune_args(data_file, out, 50, "-q", "--set", "epochs=6")
    cmd = [sys.executable, "-m", "regen_bench", *slow]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _finished(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _finished(db)
    assert 2 <= before < 50
    assert not out.exists()  # killed before the end: no best config yet

    # The same command with --trials before+2 resumes: it runs exactly 2 more finished trials.
    slow[slow.index("--trials") + 1] = str(before + 2)
    rerun = subprocess.run(
        [sys.executable, "-m", "regen_bench", *slow],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    tuned = tuning.load_tuned_config(out)
    assert tuned.tuning.trials == before + 2
    numbers = [t.number for t in tuned.trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in tuned.trials if t.state in ("complete", "pruned")]
    assert len(finished) == before + 2
    # No finished trial was run again: the resumed ones have new numbers and new parameters.
    failed = [t.number for t in tuned.trials if t.state == "fail"]
    last_before = finished[before - 1].number
    assert all(t.number > last_before for t in finished[before:])
    params = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(params) == len(set(params))
    assert all(n < finished[before].number for n in failed)  # the killed one, if any


def test_apply_tuned_config_checks_model_and_task(data_file: Path, tmp_path: Path) -> None:
    best = tmp_path / "crit.json"
    assert main(_tune_args(data_file, best, 1, "-q", task="critique")) == 0
    tuned = tuning.load_tuned_config(best)
    options, block = tuning.apply_tuned_config(tuned, "sasrec", "conversational", {"lr": 0.5})
    assert options["lr"] == 0.5 and block.overridden == ["lr"]
    with pytest.raises(tuning.TuneError, match="tuned on task 'critique', not 'sequential'"):
        tuning.apply_tuned_config(tuned, "sasrec", "sequential", {})
    (tmp_path / "bad.json").write_text('{"kind": "something else"}')
    with pytest.raises(tuning.TuneError, match="not a tuned config"):
        tuning.load_tuned_config(tmp_path / "bad.json")


def test_a_trial_left_running_by_a_dead_process_is_marked_failed(tmp_path: Path) -> None:
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.tell(study.ask(), 0.1)
    study.ask()  # left RUNNING, as by a process killed mid-trial
    said: list[str] = []
    tuning._fail_stale(optuna, storage, study, said.append)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    assert said == ["marked 1 unfinished trial(s) of an earlier process as failed"]


def test_a_new_study_tries_the_defaults_first(data_file: Path, tmp_path: Path) -> None:
    """Trial 0 is the model's defaults on the searched options, so the best found is never
    below them on validation; options outside the space (or off its grid) are left to TPE."""
    assert main(_tune_args(data_file, tmp_path / "t.json", 2, "-q")) == 0
    (first, _, _, params), (_, _, _, second) = _values(tmp_path / "t.json")
    schema = get_plugin_manager().get("model", "sasrec").options
    assert first == 0 and schema is not None
    defaults = {k: schema.model_fields[k].default for k in params}
    assert params == defaults  # every searched sasrec default lies inside its space
    assert second != defaults  # later trials are TPE's draws

    class Opts(ModelOptions):
        a: float = Field(default=5.0)
        b: int = Field(default=3)
        c: int = Field(default=4)
        d: str = Field(default="x")

    space = {
        "a": Uniform(0.0, 1.0),  # default outside: not pinned
        "b": IntRange(1, 5, step=2),  # 3 on the grid 1, 3, 5
        "c": IntRange(1, 5, step=2),  # 4 off the grid
        "d": Choice("x", "y"),
    }
    assert tuning.default_trial(Opts, space) == {"b": 3, "d": "x"}
