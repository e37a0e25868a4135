"""``regen-bench leaderboard``: submit result files, build and check the published tables."""

from __future__ import annotations

import argparse
import sys

import regen_bench.cli._common as common


def _add_submissions(parser: argparse.ArgumentParser) -> None:
    from regen_bench.leaderboard import DEFAULT_SUBMISSIONS

    parser.add_argument(
        "--submissions",
        default=DEFAULT_SUBMISSIONS,
        help="submissions folder (default: %(default)s)",
    )


def _configure_tables(parser: argparse.ArgumentParser) -> None:
    from regen_bench.leaderboard import DEFAULT_OUT

    _add_submissions(parser)
    common.add_out(parser, "output folder", default=DEFAULT_OUT)


def _build(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, build

    try:
        written = build(args.submissions, args.out)
    except SubmissionError as exc:
        if common.missing_module(exc):
            raise  # a missing extra, reported as such by main
        return common.fail(common.EXIT_CHECK_FAILED, str(exc))
    for path in written:
        print(f"wrote {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import check

    problems = check(args.submissions, args.out)
    for problem in problems:
        common.fail(common.EXIT_CHECK_FAILED, problem)
    if problems:
        return common.EXIT_CHECK_FAILED
    print(f"ok: {args.out} is up to date with {args.submissions}")
    return 0


def _configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", metavar="RESULT.json", help="a result file written by `run`")
    _add_submissions(parser)
    parser.add_argument("--replace", action="store_true", help="overwrite an accepted result")


def _submit(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, submit

    try:
        dest = submit(
            args.result,
            args.submissions,
            replace=args.replace,
            log=lambda m: print(m, file=sys.stderr),
        )
    except SubmissionError as exc:
        if common.missing_module(exc):
            raise
        return common.fail(common.EXIT_CHECK_FAILED, f"rejected: {exc}")
    print(f"accepted {dest}; now run `regen-bench leaderboard build`")
    return 0


SUBCOMMANDS = (
    common.Command(
        "build",
        help="write OUT/<dataset>.md and OUT/index.html",
        configure=_configure_tables,
        handler=_build,
    ),
    common.Command(
        "check",
        help="exit 1 if a submission is invalid or the published tables are out of date",
        configure=_configure_tables,
        handler=_check,
    ),
    common.Command(
        "submit",
        help="validate a result file and copy it (with its per-sample file) into SUBMISSIONS",
        configure=_configure_submit,
        handler=_submit,
    ),
)

COMMANDS = (
    common.Command(
        "leaderboard",
        help="validate submissions, build and check the published leaderboards",
        description="Submissions live in SUBMISSIONS/<dataset>/<task>/<model>[__<narrative>].json "
        "(+ .samples.jsonl); tables go to OUT/<dataset>.md and OUT/index.html.",
        commands=SUBCOMMANDS,
    ),
)
