"""``regen-bench reproduce``: run the paper's grid (the grid is :mod:`regen_bench.reproduce`)."""

from __future__ import annotations

import argparse
import sys

import regen_bench.cli._common as common


def _configure(parser: argparse.ArgumentParser) -> None:
    from regen_bench.leaderboard import DEFAULT_OUT, DEFAULT_SUBMISSIONS
    from regen_bench.reproduce import DEFAULT_JOBS, DEFAULT_THREADS
    from regen_bench.runner.defaults import DEFAULT_DATASET, DEFAULT_OUTPUT, DEFAULT_SEED

    common.add_dataset(parser, default=DEFAULT_DATASET)
    for flag, what in (
        ("--models", "models (default: the grid's; a model outside the grid joins it)"),
        ("--tasks", "tasks (default: every registered task some model of the grid supports)"),
        ("--narratives", "narrative types of the narrative tasks (default: the grid's)"),
    ):
        parser.add_argument(flag, default=None, metavar="A,B,...", help="only these " + what)
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help="cells run at once, as subprocesses (default: %(default)s)",
    )
    parser.add_argument(
        "--shard",
        default="1/1",
        metavar="I/N",
        help="run only shard I of N: the run cells, grouped by the narrator they need, dealt "
        "round-robin, and those narrators' fine-tunings (default: %(default)s, the whole grid)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the cells in run order, their dependencies and exact commands; run nothing",
    )
    common.add_out(parser, "result folder of the cells", default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--submissions",
        default=DEFAULT_SUBMISSIONS,
        help="submissions folder the results go to; a cell whose valid result (made with the "
        "cell's settings) is already there is skipped, so a grid resumes on any machine that "
        "has the published results (default: %(default)s)",
    )
    parser.add_argument(
        "--leaderboards",
        default=DEFAULT_OUT,
        help="folder of the built leaderboards (default: %(default)s)",
    )
    parser.add_argument(
        "--no-submit",
        action="store_true",
        help="only run the cells: no submission, no leaderboard build",
    )
    common.add_seed(parser, DEFAULT_SEED)
    common.add_limit(
        parser,
        "every run evaluates only the first N test users (quick grids; recorded as a subset, "
        "so these numbers never share a table with full runs)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        metavar="N",
        help="torch threads of each cell (default: %(default)s, so parallel cells do not "
        "fight over cores)",
    )


def _names(text: str | None, flag: str) -> list[str] | None:
    from regen_bench.reproduce import split_names

    try:
        return split_names(text)
    except ValueError:
        raise common.CliError(f"{flag} expects comma-separated names, got '{text}'") from None


def _say(line: str) -> None:
    print(line, flush=True)


def _reproduce(args: argparse.Namespace) -> int:
    from regen_bench.reproduce import (
        describe,
        parse_shard,
        plan,
        run_cells,
        submit_and_build,
        summary,
    )

    shard_of = parse_shard(args.shard)
    if args.jobs < 1:
        raise common.CliError("--jobs must be at least 1")
    p = plan(
        args.dataset,
        out=args.out,
        data_dir=args.data_dir,
        seed=args.seed,
        threads=args.threads,
        limit=args.limit,
        models=_names(args.models, "--models"),
        tasks=_names(args.tasks, "--tasks"),
        narratives=_names(args.narratives, "--narratives"),
        shard_of=shard_of,
        published=args.submissions,
    )
    for warning in p.warnings:
        print(f"regen-bench: {warning}", file=sys.stderr)
    if not p.grid_cells:
        raise common.CliError(
            f"no cell: no model of grid '{p.grid_name}' supports the tasks chosen "
            "(see --models, --tasks, --narratives)"
        )
    narrators = sum(c.kind == "narrator" for c in p.cells)
    part = f"; shard {shard_of[0]}/{shard_of[1]} of {len(p.grid_cells)} cells" * (shard_of[1] > 1)
    _say(
        f"grid '{p.grid_name}' on dataset {p.settings.dataset_name}: {len(p.cells)} cells "
        f"({narrators} narrator fine-tunes, {len(p.cells) - narrators} runs){part}"
    )
    if args.dry_run:
        for line in describe(p.cells, p.settings, p.grid):
            _say(line)
        _say("dry run: nothing was run")
        return 0
    outcomes = run_cells(p.cells, p.settings, p.grid, jobs=args.jobs, say=_say)
    for line in summary(outcomes):
        _say(line)
    problems = (
        []
        if args.no_submit
        else submit_and_build(outcomes, p.settings, args.submissions, args.leaderboards, say=_say)
    )
    bad = sum(o.status in ("failed", "blocked") for o in outcomes)
    for problem in problems:
        common.fail(common.EXIT_CHECK_FAILED, problem)
    if bad:
        common.fail(
            common.EXIT_CHECK_FAILED,
            f"{bad} of {len(outcomes)} cells failed or were blocked (see the summary above); "
            "run the same command again to retry them, finished cells are skipped",
        )
    return common.EXIT_CHECK_FAILED if bad or problems else 0


COMMANDS = (
    common.Command(
        "reproduce",
        help="run the paper's grid (tasks x models x narrative types), resumable and "
        "shardable, then submit and build the leaderboard",
        description="Expand the dataset's grid into cells (each one `regen-bench run` or "
        "`narrator finetune` command), run them in dependency order as subprocesses, skip "
        "every cell whose valid result is already in OUT or in the submissions folder (so a "
        "killed grid resumes, also on another machine), then "
        "submit the results (replacing) and build the leaderboards. Exit status 1 when a cell "
        "failed; the others still run. See docs/reproduce.md.",
        configure=_configure,
        handler=_reproduce,
    ),
)
