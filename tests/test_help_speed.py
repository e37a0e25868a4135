"""``regen-bench --help`` and ``run --help`` stay fast: they import no numpy, pydantic or torch
(the timing itself is a benchmark, benchmarks/cli_help_speed.py, never a test)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regen_bench.runner import defaults

HEAVY = ("numpy", "pydantic", "torch", "transformers", "regen_bench.runner.steps")
PROBE = (
    "import sys\n"
    "from regen_bench.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
)


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    assert "usage: regen-bench" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_import_regen_bench_is_light_and_its_names_still_resolve() -> None:
    code = (
        "import sys, regen_bench\n"
        "light = 'numpy' not in sys.modules and 'pydantic' not in sys.modules\n"
        "from regen_bench import TASKS, Model, hookimpl, lazy, Catalog\n"
        "print(light, sorted(TASKS), Model.__name__, callable(lazy), Catalog.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "True ['conversational', 'critique', 'narrative', 'sequential'] Model True Catalog"
    )


def test_the_help_defaults_are_those_of_the_modules_that_own_them() -> None:
    """``run --help`` reads light copies; they must not drift from their owners."""
    from regen_bench.embedding import DEFAULT_EMBEDDER
    from regen_bench.metrics.ranking import DEFAULT_TIE_POLICY, TIE_POLICIES
    from regen_bench.metrics.text import DEFAULT_BERTSCORE_MODEL
    from regen_bench.resolve import DEFAULT_DATASET
    from regen_bench.runner import RunConfig
    from regen_bench.tasks import TASKS

    assert defaults.DEFAULT_EMBEDDER == DEFAULT_EMBEDDER == RunConfig.embedder
    assert defaults.DEFAULT_TIE_POLICY == DEFAULT_TIE_POLICY == RunConfig.tie_policy
    assert defaults.TIE_POLICIES == TIE_POLICIES
    assert defaults.DEFAULT_BERTSCORE_MODEL == DEFAULT_BERTSCORE_MODEL == RunConfig.bertscore_model
    assert defaults.DEFAULT_DATASET == DEFAULT_DATASET == RunConfig.dataset
    assert {t.name: t.description for t in TASKS.values()} == defaults.TASK_DESCRIPTIONS
    assert RunConfig.seed == defaults.DEFAULT_SEED
    assert RunConfig.eval_batch_size == defaults.DEFAULT_EVAL_BATCH_SIZE
    assert RunConfig.output == defaults.DEFAULT_OUTPUT


def test_top_level_help_lists_every_subcommand_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from regen_bench.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "dataset tools (synth, info, export, prepare, import, merge)" in out
    assert "leaderboard" in out and "narrator tools (finetune)" in out
    for line in (
        "exit status (a failure prints one line on stderr, prefixed by its kind):",
        "  1    a check failed",
        '       "regen-bench: check failed: ..."',
        '       "regen-bench: error: ..."',
        '       "regen-bench: missing extra: ..."',
        "  130  interrupted (Ctrl-C)",
    ):
        assert any(x.startswith(line) for x in out.splitlines()), line
