"""A narrator fine-tuned per narrating task: ``narrator finetune --task``, the manifest's task,
and the run that refuses a narrator fine-tuned on the other task's prompts.

No model is trained here: a test double registered as a ``narrator_trainer`` keeps what it is
given (the training pairs) and writes a valid manifest, as the ``hf`` trainer does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.dataset import Dataset
from regen_bench.data.regen import write_records
from regen_bench.finetune import (
    MANIFEST_FILE,
    FinetuneSpec,
    UserPartition,
    build_pairs,
    read_manifest,
)
from regen_bench.hookspecs import hookimpl
from regen_bench.narrator import NarratorConfig, build_prompt
from regen_bench.plugins import get_plugin_manager
from tests.conftest import make_record
from tests.test_conversational import ScriptedBackend, scripted  # noqa: F401 - fixture

NARR = "product_endorsement"
#: Critiques at several purchases of every user, the last one's included.
CRITIQUES = {2: "Something in blue please", 3: "A cheaper one please", 4: "Smaller please"}
PROMPT = {"max_history": 2, "max_field_chars": 40}
PROMPT_OPTS = ["--max-history", "2", "--max-field-chars", "40"]


class Capture:
    """Test double of a narrator trainer: keeps each spec, writes the folder's manifest."""

    specs: list[FinetuneSpec] = []  # noqa: RUF012 - shared on purpose: the test reads it

    @staticmethod
    def train(spec: FinetuneSpec, *, log: Any, progress: bool) -> dict[str, Any]:
        Capture.specs.append(spec)
        manifest = {
            **spec.manifest,
            "created": "2026-01-01T00:00:00+00:00",
            "base_source": spec.base_model,
            "prompt": {**spec.manifest["prompt"], "chat_template": False},
            "hyperparameters": {},
            "versions": {},
            "environment": {},
            "pairs": {"train": len(spec.train), "valid": len(spec.valid)},
            "curve": [
                {"step": 0, "epoch": 0.0, "train_loss": None, "valid_loss": 1.0, "elapsed_s": 0}
            ],
            "best_step": 0,
            "best_valid_loss": 1.0,
            "stopped": "test double",
            "train_s": 0.0,
        }
        spec.out_dir.mkdir(parents=True)
        (spec.out_dir / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
        return manifest


class _Plugin:
    @hookimpl
    def register_narrator_trainers(self, register: Any) -> None:
        register("capture", Capture.train, summary="test double")


@pytest.fixture
def capture(scripted: type[ScriptedBackend]) -> Iterator[type[Capture]]:  # noqa: F811
    """The capturing trainer, beside the scripted LLM backend (whose fixture refreshes the
    plugin manager first and last)."""
    Capture.specs = []
    get_plugin_manager().register_plugin(_Plugin(), name="capture-test")
    yield Capture


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    records = [
        make_record(
            f"U{u:02d}",
            [f"B{(u + k * 3) % 9:02d}" for k in range(5)],
            CRITIQUES,
            product_endorsement=f"meet the item {u} made for your desk",
        )
        for u in range(40)
    ]
    path = tmp_path / "toy.jsonl"
    write_records(records, path)
    return path


def _has_critique(prompt: str) -> bool:
    return "Critique" in prompt or any(c in prompt for c in CRITIQUES.values())


def _finetune(toy: Path, out: Path, *extra: str) -> int:
    return main(
        ["narrator", "finetune", "--dataset", str(toy), "--narrative", NARR, "--model", "base",
         "--trainer", "capture", "--out", str(out), "--heldout-fraction", "0.5",
         "--valid-fraction", "0.2", "-q", *PROMPT_OPTS, *extra]
    )  # fmt: skip


def _run(toy: Path, out: Path, task: str, *options: str) -> int:
    args = ["run", "--model", "popularity", "--task", task, "--narrative", NARR]
    args += ["--dataset", str(toy), "--output", str(out), "-q", "--threads", "1"]
    args += ["--embedder", "none", "--bertscore-model", "none"]
    args += ["--set", "narrator.backend=scripted", "--set", "narrator.cache="]
    for kv in options:
        args += ["--set", kv]
    return main(args)


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("regen-bench: error:") and "\n" not in err, err
    assert all(n in err for n in needles), err


# -- the training prompts ---------------------------------------------------------------------


def test_pairs_are_the_prompts_each_task_sends_its_narrator(
    toy: Path,
    tmp_path: Path,
    scripted: type[ScriptedBackend],  # noqa: F811 - fixture
) -> None:
    ds = Dataset.from_file(toy)
    rule = UserPartition("regen-narrator-v1", 0.5, 0.2)
    cfg = NarratorConfig(**PROMPT)  # type: ignore[arg-type]
    pairs = {
        task: [p for part in build_pairs(ds, NARR, rule, cfg, task=task)[:2] for p in part]
        for task in ("narrative", "conversational")
    }
    # Without critiques anywhere on `narrative`; with them (history and last) on
    # `conversational`: the check can fail.
    assert pairs["narrative"] and not any(_has_critique(p.prompt) for p in pairs["narrative"])
    assert all(all(c in p.prompt for c in CRITIQUES.values()) for p in pairs["conversational"])
    assert [p.user_id for p in pairs["narrative"]] == [p.user_id for p in pairs["conversational"]]
    # The default is today's pairs, byte for byte.
    default = build_pairs(ds, NARR, rule, cfg)
    assert [p for part in default[:2] for p in part] == pairs["conversational"]
    by_id = {u.user_id: u for u in ds.users}
    for pair in pairs["conversational"]:
        user = by_id[pair.user_id]
        n = len(user) - 1
        assert pair.prompt == build_prompt(
            ds.catalog, user, n, int(user.items[n]), user.critiques[n], NARR, cfg
        )
    # Train and test prompts match: each pair's prompt is what a run of the task sends the
    # narrator about the same user's last purchase.
    options = [f"narrator.{k}={v}" for k, v in PROMPT.items()]
    for task, made in pairs.items():
        scripted.prompts.clear()
        assert _run(toy, tmp_path / task, task, *options) == 0
        assert {p.prompt for p in made} <= set(scripted.prompts), task
    with pytest.raises(ValueError, match="--task must be a task that writes narratives"):
        build_pairs(ds, NARR, rule, cfg, task="critique")


def test_cli_trains_on_the_task_prompts_and_records_the_task(
    toy: Path,
    tmp_path: Path,
    capture: type[Capture],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _finetune(toy, tmp_path / "plain", "--task", "narrative") == 0
    assert _finetune(toy, tmp_path / "conv") == 0  # the default: conversational
    plain, conv = capture.specs
    assert plain.train and plain.valid
    assert not any(_has_critique(p.prompt) for p in plain.train + plain.valid)
    assert not _has_critique(plain.system)
    assert all(CRITIQUES[4] in p.prompt for p in conv.train + conv.valid)
    for folder, task in ((tmp_path / "plain", "narrative"), (tmp_path / "conv", "conversational")):
        manifest = read_manifest(folder)
        assert manifest is not None and manifest.task == task
        assert manifest.critiques == (task == "conversational")
    assert "narrator in" in capsys.readouterr().out
    # Only a task that writes narratives has a narrator.
    assert _finetune(toy, tmp_path / "seq", "--task", "sequential") == 2
    _one_line_error(capsys, "--task must be a task that writes narratives", "got 'sequential'")
    assert not (tmp_path / "seq").exists()


# -- the run ------------------------------------------------------------------------------------


def test_a_run_refuses_a_narrator_of_the_other_task_before_loading_data(
    toy: Path,
    tmp_path: Path,
    capture: type[Capture],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, conv = tmp_path / "ft-plain", tmp_path / "ft-conv"
    assert _finetune(toy, plain, "--task", "narrative") == 0
    assert _finetune(toy, conv, "--task", "conversational") == 0
    capsys.readouterr()
    import regen_bench.runner.steps as steps

    loaded: list[str] = []
    real = steps.resolve_dataset

    def resolve(*args: Any) -> Dataset:
        loaded.append(args[0])
        return real(*args)

    monkeypatch.setattr(steps, "resolve_dataset", resolve)
    out = tmp_path / "res"
    assert _run(toy, out, "narrative", f"narrator.model={conv}") == 2
    _one_line_error(
        capsys, f"fine-tuned narrator {conv}", "with critiques (--task conversational)",
        "task 'narrative'", "fine-tune it with --task narrative",
    )  # fmt: skip
    assert _run(toy, out, "conversational", f"narrator.model={plain}") == 2
    _one_line_error(
        capsys, "without critiques (--task narrative)", "fine-tune it with --task conversational"
    )
    # A manifest from before the task was recorded: its narrator learnt critiques.
    old = json.loads((conv / MANIFEST_FILE).read_text())
    del old["task"]
    (conv / MANIFEST_FILE).write_text(json.dumps(old))
    manifest = read_manifest(conv)
    assert manifest is not None and manifest.task == "conversational"
    assert _run(toy, out, "narrative", f"narrator.model={conv}") == 2
    _one_line_error(capsys, "fine-tune it with --task narrative")
    old["task"] = "critique"
    (conv / MANIFEST_FILE).write_text(json.dumps(old))
    assert _run(toy, out, "narrative", f"narrator.model={conv}") == 2
    _one_line_error(capsys, MANIFEST_FILE, "task", "must be a narrating task")
    assert loaded == [] and not out.exists()  # refused before any data was loaded
    # The matching narrator narrates its held-out users, with no critique in sight.
    ScriptedBackend.prompts.clear()
    assert _run(toy, out, "narrative", f"narrator.model={plain}", "narrator.max_history=2") == 0
    assert loaded == [str(toy)]
    result = json.loads((out / "toy" / "narrative" / f"popularity__{NARR}.json").read_text())
    assert result["narration"]["finetune"] is not None
    assert result["narration"]["excluded"] > 0
    assert ScriptedBackend.prompts
    assert not any(_has_critique(p) for p in ScriptedBackend.prompts)
