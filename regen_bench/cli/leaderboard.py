"""``regen-bench leaderboard``: submit result files, build and check the published tables."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import regen_bench.cli._common as common

if TYPE_CHECKING:
    from regen_bench.results import Result


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


_TEXT_MODELS_HELP = (
    "also score each narrating result's per-sample texts again with the models it pins "
    "(semantic similarity, BERTScore) and fail where a figure differs or cannot be rechecked "
    "here (validation alone recomputes BLEU, ROUGE and the ranking metrics; this takes about "
    "half a minute per 500 narratives on one core)"
)


def add_text_models(parser: argparse.ArgumentParser) -> None:
    from regen_bench.threads import usable_cpus

    parser.add_argument("--text-models", action="store_true", help=_TEXT_MODELS_HELP)
    parser.add_argument(
        "--jobs",
        type=int,
        default=usable_cpus(),
        metavar="N",
        help="with --text-models: result files rescored at once, each in its own process "
        "with the thread count it records, so the figures do not depend on N (default: the "
        "CPU cores this process may use, here %(default)s)",
    )


def _recheck_text(items: list[tuple[str | Path, Result]], jobs: int) -> list[str]:
    """Recheck the model-based text metrics of (path, result) pairs; one line each."""
    from regen_bench.leaderboard.text_models import problems, recheck_all

    if jobs < 1:
        raise common.CliError("--jobs must be at least 1")
    narrating = [(path, result) for path, result in items if result.narration is not None]
    rechecks = []
    for done in recheck_all(narrating, jobs=jobs):
        print(f"text models {done.path}: {done.describe()}", flush=True)
        rechecks.append(done)
    return problems(rechecks)


def _configure_check(parser: argparse.ArgumentParser) -> None:
    _configure_tables(parser)
    add_text_models(parser)


def _check(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import check, collect

    problems = check(args.submissions, args.out)
    _print_dataset_checks(args.submissions)
    if args.text_models:
        problems += _recheck_text(
            [(s.path, s.result) for s in collect(args.submissions)[0]], args.jobs
        )
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


def add_validation_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default=None, metavar="NAME|PATH", help=_DATASET_HELP)
    common.add_data_dir(parser)


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="result files")
    add_validation_dataset(parser)
    add_text_models(parser)


def validate_files(
    paths: list[str],
    dataset: str | None,
    data_dir: str | None,
    *,
    signature: bool = False,
    text_models: bool = False,
    jobs: int = 1,
) -> int:
    """Validate result files (against their dataset where available), one line each; shared by
    ``leaderboard validate`` and the top-level ``validate``. Returns the exit status."""
    from regen_bench.leaderboard import SubmissionError, validate_result

    bad = 0
    valid: list[tuple[str | Path, Result]] = []
    for path in paths:
        try:
            result, checked = validate_result(path, dataset=dataset, data_dir=data_dir)
        except SubmissionError as exc:
            if common.missing_module(exc):
                raise
            common.fail(common.EXIT_CHECK_FAILED, str(exc))
            bad += 1
        else:
            sig = f" ({result.signature})" if signature else ""
            print(
                f"ok {path}: {result.model.name} / {result.task.name} / "
                f"{result.dataset.name}{sig}; {checked.describe()}"
            )
            valid.append((path, result))
    if text_models:
        for problem in _recheck_text(valid, jobs):
            common.fail(common.EXIT_CHECK_FAILED, problem)
            bad += 1
    return common.EXIT_CHECK_FAILED if bad else 0


def _validate(args: argparse.Namespace) -> int:
    return validate_files(
        args.results, args.dataset, args.data_dir, text_models=args.text_models, jobs=args.jobs
    )


def _add_tolerance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        metavar="T",
        help="largest metric difference accepted when the re-run's per-sample file is not "
        "byte-identical (float kernels differ between CPUs); default %(default)s: exact only",
    )


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULT.json", help="result files")
    _add_tolerance(parser)
    parser.add_argument(
        "--record",
        action="store_true",
        help="write <stem>.verified.json next to each reproduced result (the leaderboard "
        "shows the row as reproduced)",
    )


def _verify(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard.verify import VerifyError, verify, write_record

    bad = 0
    for path in args.results:
        try:
            v = verify(path, tolerance=args.tolerance, log=lambda m: print(m, file=sys.stderr))
        except VerifyError as exc:
            common.fail(common.EXIT_CHECK_FAILED, f"cannot verify {path}: {exc}")
            bad += 1
            continue
        if not v.reproduced:
            common.fail(
                common.EXIT_CHECK_FAILED, f"{path}: NOT reproduced ({v.outcome}): {v.detail}"
            )
            bad += 1
            continue
        print(f"reproduced {path} ({v.outcome}): {v.detail}")
        if args.record:
            print(f"wrote {write_record(v)}")
    return common.EXIT_CHECK_FAILED if bad else 0


def _configure_submit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", metavar="RESULT.json", help="a result file written by `run`")
    _add_submissions(parser)
    parser.add_argument("--replace", action="store_true", help="overwrite an accepted result")
    add_validation_dataset(parser)
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-run the result's recorded command first (`leaderboard verify`); accept only "
        "a reproduced result, and record the reproduction beside it",
    )
    _add_tolerance(parser)


def _submit(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, submit
    from regen_bench.leaderboard.verify import Verification, VerifyError, verify, write_record

    checked: Verification | None = None
    if args.verify:
        try:
            checked = verify(
                args.result, tolerance=args.tolerance, log=lambda m: print(m, file=sys.stderr)
            )
        except VerifyError as exc:
            return common.fail(common.EXIT_CHECK_FAILED, f"rejected: cannot verify: {exc}")
        if not checked.reproduced:
            return common.fail(
                common.EXIT_CHECK_FAILED,
                f"rejected: {args.result} is not reproduced ({checked.outcome}): {checked.detail}",
            )
        print(f"reproduced ({checked.outcome}): {checked.detail}", file=sys.stderr)
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
    if checked is not None:
        checked.path = dest  # the record is bound to the accepted copy's bytes
        print(f"wrote {write_record(checked)}", file=sys.stderr)
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
        configure=_configure_check,
        handler=_check,
    ),
    common.Command(
        "validate",
        help="check result files as submit does (and against their dataset where available)",
        configure=_configure_validate,
        handler=_validate,
    ),
    common.Command(
        "verify",
        help="re-run the command each result records and compare its per-sample file "
        "(catches what validation cannot: numbers no run of the model gives)",
        configure=_configure_verify,
        handler=_verify,
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
