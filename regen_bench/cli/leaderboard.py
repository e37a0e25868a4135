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


def _print_dataset_checks(submissions: str) -> None:
    """One line per leaderboard: whether its submissions were checked against the dataset."""
    from regen_bench.leaderboard import submissions_datasets

    for name, outcome in submissions_datasets(submissions).items():
        print(f"{name}: {outcome.describe()}")


def _check(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import check

    problems = check(args.submissions, args.out)
    _print_dataset_checks(args.submissions)
    for problem in problems:
        common.fail(common.EXIT_CHECK_FAILED, problem)
    if problems:
        return common.EXIT_CHECK_FAILED
    print(f"ok: {args.out} is up to date with {args.submissions}")
    return 0


#: ``--dataset`` of validate and submit: the result's dataset is found by name otherwise.
_DATASET_HELP = (
    "check against this dataset (registered name or REGEN-format file; default: the "
    "registered dataset the result names, when it is available here)"
)


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, metavar="NAME|PATH", help=_DATASET_HELP)
    common.add_data_dir(parser)


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="result files")
    _add_dataset(parser)


def _validate(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, validate_result

    bad = 0
    for path in args.results:
        try:
            result, checked = validate_result(path, dataset=args.dataset, data_dir=args.data_dir)
        except SubmissionError as exc:
            if common.missing_module(exc):
                raise
            common.fail(common.EXIT_CHECK_FAILED, str(exc))
            bad += 1
        else:
            print(
                f"ok {path}: {result.model.name} / {result.task.name} / "
                f"{result.dataset.name}; {checked.describe()}"
            )
    return common.EXIT_CHECK_FAILED if bad else 0


def _configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", metavar="RESULT.json", help="a result file written by `run`")
    _add_submissions(parser)
    parser.add_argument("--replace", action="store_true", help="overwrite an accepted result")
    _add_dataset(parser)


def _submit(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, submit

    try:
        dest = submit(
            args.result,
            args.submissions,
            replace=args.replace,
            log=lambda m: print(m, file=sys.stderr),
            dataset=args.dataset,
            data_dir=args.data_dir,
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
        "validate",
        help="check result files as submit does (and against their dataset where available)",
        configure=_configure_validate,
        handler=_validate,
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
