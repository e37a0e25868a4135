"""A hybrid result records how its fine-tuned narrator was made, and the leaderboard's command
and ``leaderboard verify`` start from that fine-tuning, wherever the folder was."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from regen_bench.cli import build_parser
from regen_bench.cli.narrator import finetune_command
from regen_bench.finetune_manifest import NARRATOR_PLACEHOLDER
from regen_bench.leaderboard import verify as verify_mod
from regen_bench.results import Result, load_result

ROOT = Path(__file__).resolve().parents[1]
HYBRID = ROOT / "submissions" / "mini" / "narrative" / "flare__purchase_reason.json"
GIVEN = (
    "narrator finetune --narrative purchase_reason --task narrative --out /tmp/somewhere "
    "--limit-users 112 --heldout-fraction 0.1 --lr 1e-4 --seed 3 --threads 1"
)


def _parse(words: list[str]) -> dict[str, object]:
    args = build_parser(words).parse_args(words)
    return {k: v for k, v in vars(args).items() if k not in ("out", "func", "quiet")}


def test_the_recorded_fine_tuning_command_means_what_was_given() -> None:
    words = shlex.split(GIVEN)
    cmd = finetune_command(build_parser(words).parse_args(words))
    assert cmd[:3] == ["regen-bench", "narrator", "finetune"]
    assert cmd[-2:] == ["--out", NARRATOR_PLACEHOLDER] and "/tmp/somewhere" not in cmd
    # Every setting spelt out, defaults included, and parsed back it is the same fine-tuning.
    for flag in ("--epochs", "--max-history", "--salt", "--valid-fraction", "--mixed-precision"):
        assert flag in cmd
    assert _parse(cmd[1:]) == _parse(words)


def _with_command(result: Result, given: str | None = GIVEN) -> Result:
    """``result`` whose narrator record holds the command of ``given`` (None: none, as in a
    record from before commands were recorded)."""
    assert result.narration is not None and result.narration.finetune is not None
    words = shlex.split(given) if given else []
    command = finetune_command(build_parser(words).parse_args(words)) if given else None
    ft = result.narration.finetune.model_copy(update={"command": command})
    narration = result.narration.model_copy(update={"finetune": ft})
    return result.model_copy(update={"narration": narration})


def test_the_command_of_a_hybrid_row_fine_tunes_its_narrator_first() -> None:
    result = _with_command(load_result(HYBRID))
    line = verify_mod.command_line(result)
    ft, run = line.split(" && ")
    assert ft.startswith("regen-bench narrator finetune ") and ft.endswith("--out NARRATOR")
    assert run.startswith("regen-bench run --model flare --task narrative ")
    assert "--set narrator.model=NARRATOR" in run and "/work/" not in line
    # Without the record (an older result) the run alone, naming the folder it used.
    older = verify_mod.command_line(_with_command(load_result(HYBRID), None))
    assert " && " not in older and "--set narrator.model=NARRATOR" not in older
    # The published cell records the command it was made with.
    published = verify_mod.command_line(load_result(HYBRID))
    assert published.startswith("regen-bench narrator finetune --dataset mini --task narrative")
    # Each narrator option is given once: no stale model label overridden later on the line.
    words = shlex.split(published.split(" && ")[1])
    given = [words[i + 1].split("=")[0] for i, w in enumerate(words) if w == "--set"]
    narrator = [key for key in given if key.startswith("narrator.")]
    assert len(narrator) == len(set(narrator)) and "narrator.backend" in narrator
    assert "--set narrator.model=NARRATOR" in published and "+ft." not in published


def test_verify_fine_tunes_the_narrator_then_runs_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _with_command(load_result(HYBRID))
    monkeypatch.setattr(verify_mod, "load_result", lambda _path: result)
    ran: list[list[str]] = []

    def fake_run(cmd: list[str], log: object) -> subprocess.CompletedProcess[str]:
        ran.append(cmd)
        failing = len(ran) == 2  # the run: stop there, the order is what is checked
        return subprocess.CompletedProcess(cmd, 3 if failing else 0, "", "boom\n")

    monkeypatch.setattr(verify_mod, "_run", fake_run)
    v = verify_mod.verify(HYBRID, workdir=tmp_path)
    assert [c[:3] for c in ran] == [
        ["regen-bench", "narrator", "finetune"],
        ["regen-bench", "run", "--model"],
    ]
    folder = ran[0][ran[0].index("--out") + 1]
    # Under the name it had (its weights pin names it), so the re-run pins the same weights.
    assert Path(folder).name == "purchase_reason" and folder.startswith(str(tmp_path))
    assert f"narrator.model={folder}" in ran[1]
    assert v.outcome == "not_run" and "the re-run failed (3): boom" in v.detail

    ran.clear()
    monkeypatch.setattr(
        verify_mod,
        "_run",
        lambda cmd, log: (ran.append(cmd), subprocess.CompletedProcess(cmd, 2, "", "no disk\n"))[1],
    )
    v = verify_mod.verify(HYBRID, workdir=tmp_path)
    assert len(ran) == 1 and "fine-tuning the narrator failed (2): no disk" in v.detail


def test_the_narrator_is_fine_tuned_anew_under_its_recorded_name() -> None:
    """A local folder is pinned by its name and content: the published narrator's name comes
    back; a pin without a plain file name falls back to ``narrator`` (no path tricks)."""
    result = load_result(HYBRID)
    assert verify_mod.narrator_folder_name(result) == "purchase_reason"
    for pin, name in (
        ("../../etc@sha256:00", "narrator"),
        ("a/b@sha256:00", "narrator"),
        ("", "narrator"),
        (".hidden@sha256:00", "narrator"),
        ("user_summary_long@sha256:00", "user_summary_long"),
    ):
        other = result.model_copy(update={"weights": {**(result.weights or {}), "narrator": pin}})
        assert verify_mod.narrator_folder_name(other) == name, pin
