"""``regen-bench tune``: hyperparameter search on the validation split (the work:
:mod:`regen_bench.tuning`)."""

from __future__ import annotations

import argparse
import sys

import regen_bench.cli._common as common


def _configure(parser: argparse.ArgumentParser) -> None:
    from regen_bench.resolve import DEFAULT_DATASET
    from regen_bench.tasks import TASKS

    parser.add_argument(
        "--model", required=True, help="model plugin with a search space (e.g. sasrec)"
    )
    parser.add_argument(
        "--task",
        required=True,
        help="task whose validation split is searched: "
        + ", ".join(t.name for t in TASKS.values() if not t.generates)
        + " (a config tuned on critique also runs on conversational, one tuned on sequential "
        "on narrative)",
    )
    parser.add_argument(
        "--trials",
        type=int,
        required=True,
        metavar="N",
        help="finished trials in all (complete or pruned); a resumed search runs the rest",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="MIN",
        help="start no new trial after MIN minutes (a running trial finishes)",
    )
    common.add_dataset(parser, default=DEFAULT_DATASET)
    common.add_seed(parser, 0, "seed of the model and of the TPE sampler")
    common.add_set(
        parser,
        "hold a model option fixed, out of the search, repeatable (e.g. --set epochs=50)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="PATH",
        help="sqlite file of the study, kept so that rerunning the command resumes the search "
        "(default: next to --out, <out stem>.optuna.db)",
    )
    parser.add_argument(
        "--out",
        "--output",
        dest="out",
        default=None,
        metavar="FILE",
        help="the best config, for `regen-bench run --config FILE` "
        "(default: tuned/<dataset>/<task>/<model>.json)",
    )
    common.add_threads(parser)
    common.add_quiet(parser, "no per-trial progress")


def _tune(args: argparse.Namespace) -> int:
    from regen_bench.tuning import TuneConfig, tune

    common.apply_threads(args)
    config = TuneConfig(
        model=args.model,
        task=args.task,
        trials=args.trials,
        dataset=args.dataset,
        data_dir=args.data_dir,
        seed=args.seed,
        timeout_min=args.timeout,
        fixed=common.parse_set(args.set),
        out=args.out,
        storage=args.storage,
        threads=args.threads,
    )

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    out = tune(config, log=log)
    t = out.tuned.tuning
    print(
        f"{out.tuned.model} on {out.tuned.task}: best validation NDCG@10 {t.best_valid_ndcg:.5f} "
        f"(trial {t.best_trial}; {t.trials} finished trials, {t.pruned_trials} pruned, "
        f"{out.new_trials} run now)"
    )
    print(f"wrote {out.path} (study {t.study} in {out.storage})")
    print(f"run it: regen-bench run --config {out.path}")
    return 0


COMMANDS = (
    common.Command(
        "tune",
        help="search a model's hyperparameters on the validation split (Optuna)",
        description="Search MODEL's declared hyperparameter space on TASK's validation split "
        "(the test split is never read): seeded TPE, median pruning on per-epoch validation "
        "NDCG@10, a sqlite study that a rerun of the same command resumes. Writes the best "
        "config, which `regen-bench run --config FILE` takes and records in the result.",
        configure=_configure,
        handler=_tune,
    ),
)
