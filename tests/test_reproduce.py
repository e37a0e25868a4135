"""``regen-bench reproduce``: the grid, its order and shards, resuming a killed grid, failures."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from regen_bench.cli import main
from regen_bench.reproduce import (
    GRIDS,
    PAPER_NARRATIVES,
    Cell,
    GridModel,
    Settings,
    expand,
    run_cells,
    shard,
    summary,
)
from regen_bench.results import load_result

#: A small grid of fast models (as a new user would try first).
SMALL = ["--models", "popularity,markov", "--tasks", "sequential,critique", "--threads", "1"]
SMALL_CELLS = {
    "sequential/popularity",
    "sequential/markov",
    "critique/popularity",
    "critique/markov",
}
CELL_LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+)(?:  after: (\S+(?:, \S+)*))?")


def _folders(tmp: Path) -> list[str]:
    return ["--out", str(tmp / "res"), "--submissions", str(tmp / "subs"),
            "--leaderboards", str(tmp / "lb")]  # fmt: skip


def _dry_run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[tuple], str]:
    """(index, id, dependencies, command) of each cell of a dry run, and the whole output."""
    assert main(["reproduce", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    cells = []
    for n, line in enumerate(lines):
        m = CELL_LINE.match(line)
        if m:
            deps = tuple(m[4].split(", ")) if m[4] else ()
            cells.append((int(m[1]), m[3], deps, lines[n + 1].strip()))
    return cells, out


def _reproduce(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regen_bench", "reproduce", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _summary(stdout: str) -> dict[str, set[str]]:
    """Cell ids per outcome, from the summary's lines (``  ran     sequential/markov (3.1s)``)."""
    found: dict[str, set[str]] = {"ran": set(), "skipped": set(), "failed": set(), "blocked": set()}
    for line in stdout.split("summary: ", 1)[1].splitlines()[1:]:
        m = re.match(r"^  (ran|skipped|failed|blocked) +(\S+)", line)
        if m:
            found[m[1]].add(m[2])
    return found


def _results(root: Path) -> dict[str, Path]:
    return {
        f"{p.parent.name}/{p.stem}": p
        for p in sorted((root / "mini").glob("*/*.json"))
        if not p.parent.name.startswith("_")
    }


# -- the grid -----------------------------------------------------------------------------------


def test_dry_run_lists_cells_and_commands_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cells, out = _dry_run([*SMALL, *_folders(tmp_path), "--limit", "50", "--seed", "3"], capsys)
    assert {c[1] for c in cells} == SMALL_CELLS
    assert [c[0] for c in cells] == [1, 2, 3, 4]
    for _i, cell_id, deps, command in cells:
        task, model = cell_id.split("/")
        assert deps == ()
        assert f"-m regen_bench run --model {model} --task {task} --dataset mini" in command
        assert command.startswith(sys.executable)
        for option in ("--threads 1", "--limit 50", "--seed 3", f"--out {tmp_path / 'res'}"):
            assert option in command
    assert "4 cells (0 narrator fine-tunes, 4 runs)" in out
    assert "dry run: nothing was run" in out
    assert list(tmp_path.iterdir()) == []


def test_default_mini_grid_fine_tunes_each_narrator_before_its_hybrid_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cells, _ = _dry_run(["--dataset", "mini", *_folders(tmp_path)], capsys)
    position = {cell_id: i for i, cell_id, _deps, _cmd in cells}
    grid = GRIDS["mini"]
    for model in grid.ranking_models:
        assert {f"sequential/{model}", f"critique/{model}"} <= set(position)
    narrating = ("narrative", "conversational")
    for narrative in PAPER_NARRATIVES:
        # Two narrators per type, one per narrating task: each before its hybrid cell.
        assert {i for i in position if i.startswith("narrator/") and i.endswith(narrative)} == {
            f"narrator/{task}/{narrative}" for task in narrating
        }
        for task in narrating:
            assert position[f"narrator/{task}/{narrative}"] < position[f"{task}/flare__{narrative}"]
            assert f"{task}/lumen__{narrative}" in position
    commands = {cell_id: command for _i, cell_id, _deps, command in cells}
    for i, cell_id, deps, command in cells:
        for dep in deps:
            assert position[dep] < i, f"{cell_id} runs before {dep}"
        task = cell_id.split("/")[0]
        if "/flare__" in cell_id and task in narrating:
            narrative = cell_id.split("__")[1]
            # The narrative task's FLARE needs the narrator fine-tuned without critiques.
            assert deps == (f"narrator/{task}/{narrative}",)
            folder = tmp_path / "res" / "mini" / "_narrators" / task / narrative
            assert f"--set narrator.model={folder}" in command
            assert f"--task {task} --narrative {narrative}" in commands[deps[0]]
            assert f"--out {folder} " in commands[deps[0]]
        if cell_id.startswith("narrator/"):
            assert "narrator finetune" in command and f"--out {tmp_path}" in command
            assert cell_id.split("/")[1] in narrating
    assert sum(i.startswith("narrator/") for i in position) == 2 * len(PAPER_NARRATIVES)
    assert list(tmp_path.iterdir()) == []


def test_a_new_task_joins_the_grid_from_the_registry_without_code_changes() -> None:
    """The tasks come from the registry and what each model supports, not from the grid."""
    settings = Settings("mini", "mini", "0" * 64, Path("res"))
    models = {
        name: GridModel({"tasks": ("sequential", "critique"), "generates_text": name == "lumen"})
        for grid in GRIDS.values()
        for name in (*grid.ranking_models, *grid.narrated_models, *grid.text_models)
    }
    tasks = {"sequential": False, "narrate_plain": True}  # a fourth task, writing narratives
    cells = expand(settings, GRIDS["mini"], models, tasks, lambda meta, task: True)
    ids = {c.id for c in cells}
    assert "narrate_plain/flare__user_summary" in ids and "narrate_plain/lumen__user_summary" in ids
    assert "sequential/sasrec" in ids and not any(i.startswith("critique/") for i in ids)
    # A model that does not declare the task gets no cell for it.
    only_sequential = expand(
        settings, GRIDS["mini"], models, tasks, lambda meta, task: task == "sequential"
    )
    assert {c.id.split("/")[0] for c in only_sequential} == {"sequential"}
    # With two narrative tasks, each has its own narrator (fine-tuned with --task on that
    # task's prompts), in the shard of the hybrid cell it serves.
    tasks = {"sequential": False, "conversational": True, "narrate_plain": True}
    cells = expand(settings, GRIDS["mini"], models, tasks, lambda meta, task: True)
    by_id = {c.id: c for c in cells}
    parts = [{c.id for c in shard(cells, i, 3)} for i in (1, 2, 3)]
    for narrative in PAPER_NARRATIVES:
        for task in ("conversational", "narrate_plain"):
            narrator = by_id[f"narrator/{task}/{narrative}"]
            assert narrator.task == task and narrator.narrative == narrative
            assert ("--task", task) == narrator.args[4:6]
            assert by_id[f"{task}/flare__{narrative}"].depends_on == (narrator.id,)
            holders = [p for p in parts if narrator.id in p]
            assert len(holders) == 1 and f"{task}/flare__{narrative}" in holders[0]
    assert sorted(i for p in parts for i in p if "/" in i and not i.startswith("narrator/")) == (
        sorted(c.id for c in cells if c.kind == "run")
    )


@pytest.mark.parametrize("count", [2, 3])
def test_shards_cover_the_grid_exactly_once(
    count: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, _ = _dry_run(["--dataset", "mini", *_folders(tmp_path)], capsys)
    runs = {c[1] for c in full if not c[1].startswith("narrator/")}
    seen: list[str] = []
    narrators: list[str] = []
    for index in range(1, count + 1):
        part, out = _dry_run(
            ["--dataset", "mini", *_folders(tmp_path), "--shard", f"{index}/{count}"], capsys
        )
        assert f"shard {index}/{count} of {len(full)} cells" in out
        ids = [c[1] for c in part]
        needed = {d for c in part for d in c[2]}
        # A shard fine-tunes exactly the narrators its hybrid cells need, before them.
        assert {i for i in ids if i.startswith("narrator/")} == needed
        for i, _cell_id, deps, _cmd in part:
            assert all(ids.index(d) + 1 < i for d in deps)
        seen += [i for i in ids if not i.startswith("narrator/")]
        narrators += [i for i in ids if i.startswith("narrator/")]
    assert sorted(seen) == sorted(runs)  # every run cell once, none twice
    # Every narrator is fine-tuned in one shard only (its hybrid cells are all there).
    assert sorted(narrators) == sorted(c[1] for c in full if c[1].startswith("narrator/"))


def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in (
        (["--shard", "3/2"], "--shard expects i/n with 1 <= i <= n"),
        (["--shard", "x"], "--shard expects i/n"),
        (["--tasks", "sequentail"], "unknown task 'sequentail'. Did you mean 'sequential'?"),
        (["--narratives", "poem"], "unknown narrative type 'poem'"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--models", ","], "--models expects comma-separated names"),
    ):
        assert main(["reproduce", *_folders(tmp_path), *args, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("regen-bench: error: ") and message in err, err
        assert "\n" not in err
    assert list(tmp_path.iterdir()) == []


# -- running ------------------------------------------------------------------------------------


def test_a_killed_grid_resumes_without_redoing_finished_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*SMALL, "--out", "res", "--submissions", "subs", "--leaderboards", "lb"]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        [sys.executable, "-m", "regen_bench", "reproduce", *args],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its cells too: the whole grid is killed
    )
    deadline = time.monotonic() + 300
    while not _results(tmp_path / "res") and time.monotonic() < deadline:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    log.close()
    finished = _results(tmp_path / "res")
    assert finished and len(finished) < len(SMALL_CELLS)
    mtimes = {cell: p.stat().st_mtime_ns for cell, p in finished.items()}

    second = _reproduce(tmp_path, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    outcome = _summary(second.stdout)
    assert outcome["skipped"] == set(finished)
    assert outcome["ran"] == SMALL_CELLS - set(finished)
    assert not outcome["failed"] and not outcome["blocked"]
    results = _results(tmp_path / "res")
    assert set(results) == SMALL_CELLS
    for cell, path in finished.items():
        assert path.stat().st_mtime_ns == mtimes[cell], f"{cell} was run again"
    for path in results.values():
        load_result(path)
    # Submitted and built.
    assert set(_results(tmp_path / "subs")) == SMALL_CELLS
    board = (tmp_path / "lb" / "mini.md").read_text()
    assert "popularity" in board and "markov" in board
    # Per-cell progress: the cell's place, name and time.
    for cell in outcome["ran"]:
        assert re.search(rf"\[\d/4\] done {cell} in \d+\.\ds: valid result", second.stdout)

    # A broken leftover (a result whose per-sample file is gone, a truncated result) runs again.
    broken = sorted(results)[:2]
    (results[broken[0]].with_suffix("").with_suffix(".samples.jsonl")).unlink()
    results[broken[1]].write_text('{"schema_version": 1')
    kept = {c: results[c].stat().st_mtime_ns for c in SMALL_CELLS - set(broken)}
    # (Another submissions folder: those in subs/ would count as done, see the next test.)
    third = _reproduce(tmp_path, *args, "--no-submit", "--submissions", "elsewhere")
    assert third.returncode == 0, third.stdout + third.stderr
    outcome = _summary(third.stdout)
    assert outcome["ran"] == set(broken) and outcome["skipped"] == SMALL_CELLS - set(broken)
    assert "invalid result, run again" in third.stdout
    for cell, mtime in kept.items():
        assert results[cell].stat().st_mtime_ns == mtime
    for path in _results(tmp_path / "res").values():
        load_result(path)

    # A result made with other settings is not taken as done.
    monkeypatch.chdir(tmp_path)
    _, same = _dry_run(args, capsys)
    _, other = _dry_run([*args, "--limit", "7"], capsys)
    assert same.count("(done: would be skipped)") == 4
    assert "(done: would be skipped)" not in other


def test_a_failing_cell_is_reported_and_the_others_complete(tmp_path: Path) -> None:
    done = _reproduce(
        tmp_path,
        "--models", "nosuch,popularity", "--tasks", "sequential", "--threads", "1", "--jobs", "2",
        "--out", "res", "--submissions", "subs", "--leaderboards", "lb",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    outcome = _summary(done.stdout)
    assert outcome["failed"] == {"sequential/nosuch"}
    assert outcome["ran"] == {"sequential/popularity"}
    assert re.search(r"failed  sequential/nosuch .*unknown model 'nosuch'", done.stdout)
    assert "1 of 2 cells failed or were blocked" in done.stderr
    # --jobs 2: both cells started before either ended.
    events = re.findall(r"^\[\d/2\] (start|done|FAILED) ", done.stdout, re.M)
    assert events[:2] == ["start", "start"], done.stdout
    load_result(tmp_path / "res" / "mini" / "sequential" / "popularity.json")
    assert set(_results(tmp_path / "subs")) == {"sequential/popularity"}
    assert (tmp_path / "lb" / "mini.md").is_file()
    log = tmp_path / "res" / "mini" / "_logs" / "sequential" / "nosuch.log"
    assert "-m regen_bench run --model nosuch" in log.read_text()


def test_a_failed_dependency_blocks_its_cells_and_a_foreign_folder_is_not_overwritten(
    tmp_path: Path,
) -> None:
    """Driven directly: a narrator cell that fails (a bad option) blocks the runs needing it;
    a narrator folder that holds something else fails its cell, naming it, untouched."""
    settings = Settings("mini", "mini", "0" * 64, tmp_path / "res")
    grid = GRIDS["mini"]
    bad = Cell("narrator/a", "narrator", ("--no-such-option",), tmp_path / "ft-a", narrative="a")
    foreign = tmp_path / "ft-b"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    taken = Cell("narrator/b", "narrator", ("--version",), foreign, narrative="b")
    runs = [
        Cell(f"conversational/x__{n}", "run", ("--version",), tmp_path / f"{n}.json",
             depends_on=(f"narrator/{n}",), model="x", task="conversational", narrative=n)
        for n in ("a", "b")
    ]  # fmt: skip
    lines: list[str] = []
    outcomes = run_cells([bad, taken, *runs], settings, grid, say=lines.append)
    status = {o.cell.id: o.status for o in outcomes}
    assert status == {
        "narrator/a": "failed",
        "narrator/b": "failed",
        "conversational/x__a": "blocked",
        "conversational/x__b": "blocked",
    }
    assert (foreign / "notes.txt").read_text() == "mine"
    text = "\n".join([*lines, *summary(outcomes)])
    assert "exit status 2" in text and "unrecognized arguments: --no-such-option" in text
    assert f"{foreign} exists but holds no fine-tuned narrator; remove it" in text
    assert "blocked conversational/x__a: needs narrator/a" in text.replace("BLOCKED", "blocked")
    assert "summary: 4 cells: 0 ran, 0 skipped (already done), 2 failed, 2 blocked" in text


def test_a_grid_resumes_on_another_machine_from_the_published_results(tmp_path: Path) -> None:
    """As a new user would spread a grid over machines through a shared repository: the
    second machine (an empty OUT) skips every cell already in the submissions folder, does not
    resubmit it, and a stale leftover in OUT never replaces the published result."""
    one = [*SMALL[:2], "--tasks", "sequential", "--threads", "1"]
    first = _reproduce(tmp_path, *one, "--out", "res1", "--submissions", "subs",
                       "--leaderboards", "lb")  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    published = _results(tmp_path / "subs")
    assert set(published) == {"sequential/popularity", "sequential/markov"}
    before = {c: p.read_bytes() for c, p in published.items()}
    # The second machine: nothing in OUT but a truncated leftover of one cell.
    stale = tmp_path / "res2" / "mini" / "sequential" / "markov.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"schema_version": 1')
    second = _reproduce(tmp_path, *one, "--out", "res2", "--submissions", "subs",
                        "--leaderboards", "lb2")  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    outcome = _summary(second.stdout)
    assert outcome["skipped"] == set(published) and not outcome["ran"]
    assert second.stdout.count("already published: ") >= 2
    assert "submitted 0 result(s)" in second.stdout
    assert {c: p.read_bytes() for c, p in _results(tmp_path / "subs").items()} == before
    assert (tmp_path / "lb2" / "mini.md").is_file()
    assert not (tmp_path / "res2" / "mini" / "sequential" / "popularity.json").exists()
    # Another seed is another cell: the published results do not count for it.
    third = _reproduce(tmp_path, *one, "--out", "res2", "--submissions", "subs", "--seed", "3",
                       "--no-submit")  # fmt: skip
    assert third.returncode == 0, third.stdout + third.stderr
    assert _summary(third.stdout)["ran"] == set(published)


def test_a_narrator_whose_cells_are_all_done_is_not_fine_tuned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven directly: on a machine without the narrator, a hybrid cell already published
    needs no fine-tuning; one still to run does."""
    import regen_bench.reproduce as rp

    settings = Settings("mini", "mini", "0" * 64, tmp_path / "res")
    narrators = [
        Cell(f"narrator/{n}", "narrator", ("--version",), tmp_path / f"ft-{n}", narrative=n)
        for n in ("a", "b")
    ]
    runs = [
        Cell(f"conversational/x__{n}", "run", ("--version",), tmp_path / f"{n}.json",
             depends_on=(f"narrator/{n}",), model="x", task="conversational", narrative=n)
        for n in ("a", "b")
    ]  # fmt: skip

    def published_a(cell: Cell, s: Settings, by_id: object) -> tuple[str, str]:
        done = cell.id == "conversational/x__a" or cell.output.exists()
        return ("published", "already published: subs") if done else ("todo", "no result yet")

    monkeypatch.setattr(rp, "_run_state", published_a)
    lines: list[str] = []
    outcomes = run_cells([*narrators, *runs], settings, GRIDS["mini"], say=lines.append)
    status = {o.cell.id: (o.status, o.detail) for o in outcomes}
    assert status["narrator/a"] == ("skipped", "not needed: every cell that uses it is done")
    assert status["conversational/x__a"][0] == "skipped"
    # narrator/b is needed: it runs (`--version` leaves no narrator, so it fails, and blocks).
    assert status["narrator/b"][0] == "failed"
    assert status["conversational/x__b"][0] == "blocked"


def test_a_narrator_folder_counts_only_with_the_grids_settings(tmp_path: Path) -> None:
    """A fine-tuned narrator in place is done only if its manifest matches the cell: task,
    narrative, dataset, base model, seed, and the grid's held-out share of users."""
    import json as _json

    from regen_bench.finetune_manifest import MANIFEST_FILE, FinetuneManifest
    from regen_bench.reproduce import MINI_HELDOUT, plan, state

    p = plan("mini", out=tmp_path / "res", tasks=["narrative"], narratives=["purchase_reason"])
    cell = next(c for c in p.cells if c.kind == "narrator")
    by_id = {c.id: c for c in p.cells}
    assert state(cell, p.settings, p.grid, by_id) == ("todo", "not fine-tuned yet")

    def write(heldout: float, seed: int = 0) -> None:
        m = FinetuneManifest(
            created="2026-12-04T00:00:00Z", trainer="test", base_model="smollm2",
            base_source="test", narrative_type="purchase_reason", task="narrative",
            dataset={"fingerprint": p.settings.fingerprint},
            partition={"method": "sha256", "salt": "regen-narrator-v1",
                       "heldout_fraction": heldout, "valid_fraction": 0.05,
                       "users": {}, "used": {}},
            prompt={"version": 1, "system": "", "max_history": 2, "max_field_chars": 40,
                    "chat_template": True},
            hyperparameters={}, seed=seed, versions={}, environment={}, pairs={}, curve=[],
            best_step=0, best_valid_loss=0.0, stopped="epochs", train_s=0.0,
        )  # fmt: skip
        cell.output.mkdir(parents=True, exist_ok=True)
        (cell.output / MANIFEST_FILE).write_text(_json.dumps(m.model_dump()))

    write(MINI_HELDOUT)
    assert state(cell, p.settings, p.grid, by_id) == ("done", f"valid narrator {cell.output}")
    write(0.5)
    status, why = state(cell, p.settings, p.grid, by_id)
    assert status == "conflict" and f"held-out fraction 0.5, not {MINI_HELDOUT}" in why
    write(MINI_HELDOUT, seed=7)
    assert "seed 7, not 0" in state(cell, p.settings, p.grid, by_id)[1]


def test_lumen_writes_the_narrators_length_where_its_preset_would_cut_the_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CPU preset's 32 tokens hold the short narrative types; on the three long ones the
    grid gives LUMEN the narrator's budget (96), so both text columns write up to one length."""
    cells, _ = _dry_run(["--dataset", "mini", "--models", "lumen", *_folders(tmp_path)], capsys)
    commands = {cell_id: command for _i, cell_id, _deps, command in cells}
    long = ("product_endorsement", "purchase_explanation", "user_summary_long")
    for task in ("narrative", "conversational"):
        for narrative in PAPER_NARRATIVES:
            command = commands[f"{task}/lumen__{narrative}"]
            assert "--set preset=cpu-hour" in command
            budget = "--set max_target_tokens=96 --set max_new_tokens=96"
            assert (budget in command) == (narrative in long), command


def test_a_published_cell_made_with_other_options_is_named_stale_and_runs_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a new user would after the grid's settings change: the dry run says which published
    cell runs again and which option differs; an unchanged one is still skipped."""
    repo = Path(__file__).resolve().parents[1] / "submissions" / "mini" / "narrative"
    subs = tmp_path / "subs" / "mini" / "narrative"
    subs.mkdir(parents=True)
    for narrative in ("purchase_reason", "user_summary"):
        for name in (f"lumen__{narrative}.json", f"lumen__{narrative}.samples.jsonl"):
            shutil.copy(repo / name, subs / name)
    changed = subs / "lumen__user_summary.json"
    result = json.loads(changed.read_text(encoding="utf-8"))
    result["model"]["config"]["max_steps"] = 60
    changed.write_text(json.dumps(result), encoding="utf-8")
    args = ["--dataset", "mini", "--models", "lumen", "--tasks", "narrative",
            "--narratives", "purchase_reason,user_summary", *_folders(tmp_path)]  # fmt: skip
    _cells, out = _dry_run(args, capsys)
    assert "[1/2] narrative/lumen__purchase_reason  (done: would be skipped)" in out
    assert "[2/2] narrative/lumen__user_summary\n" in out
    assert (
        f"    (the published result is stale, run again: {changed}: option max_steps=60 "
        "(the grid asks '120'))"
    ) in out
