"""``regen-bench run`` (train, evaluate, write results) and ``regen-bench validate``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import regen_bench.cli._common as common

if TYPE_CHECKING:
    from regen_bench.results import Tuning

NONE = "none"


def _configure_run(parser: argparse.ArgumentParser) -> None:
    # Light copies of the defaults: --help imports no numpy (tests/test_help_speed.py).
    from regen_bench.runner.defaults import (
        DEFAULT_BERTSCORE_MODEL,
        DEFAULT_DATASET,
        DEFAULT_EMBEDDER,
        DEFAULT_EVAL_BATCH_SIZE,
        DEFAULT_OUTPUT,
        DEFAULT_SEED,
        DEFAULT_TIE_POLICY,
        TASK_DESCRIPTIONS,
        TIE_POLICIES,
    )

    parser.add_argument(
        "--model",
        default=None,
        help="model plugin name (see `regen-bench plugins`); required unless --config names it",
    )
    parser.add_argument(
        "--task",
        default=None,
        help="task: "
        + "; ".join(f"{name} ({text})" for name, text in TASK_DESCRIPTIONS.items())
        + "; required unless --config names it",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="model options from `regen-bench tune` (--set overrides them); the result "
        "records the search in its 'tuning' block",
    )
    common.add_dataset(parser, default=DEFAULT_DATASET)
    parser.add_argument(
        "--narrative", default=None, help="narrative type for the conversational task"
    )
    common.add_out(parser, "result folder", default=DEFAULT_OUTPUT)
    common.add_seed(parser, DEFAULT_SEED)
    common.add_set(
        parser,
        "model option, repeatable (e.g. --set epochs=20 --set loss=bce); "
        "narrator.KEY=VALUE configures the conversational task's narrator: narrator.backend "
        "(default hf), narrator.model, narrator.condition (target: the true next item, the "
        "paper's upper bound; top1: the model's first choice), narrator.max_tokens, "
        "narrator.temperature, narrator.cache; other narrator.* keys go to the LLM backend",
    )
    parser.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        help="embedder plugin for the semantic-similarity metric, or 'none' (default: %(default)s)",
    )
    parser.add_argument(
        "--bertscore-model",
        default=DEFAULT_BERTSCORE_MODEL,
        help="local model folder or hub id for BERTScore, or 'none' "
        "(default: %(default)s, shipped offline)",
    )
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=DEFAULT_EVAL_BATCH_SIZE,
        help="test examples scored at once; results do not depend on it",
    )
    parser.add_argument(
        "--tie-policy",
        default=DEFAULT_TIE_POLICY,
        choices=TIE_POLICIES,
        help="how items scoring exactly like the target count "
        "(default: %(default)s: ties rank above the target)",
    )
    parser.add_argument(
        "--exclude-history",
        action="store_true",
        help="remove the user's earlier purchases from the ranking (default: kept)",
    )
    common.add_limit(
        parser,
        "evaluate only the first N test users (quick checks; recorded in the signature, "
        "so the numbers never compare with full runs)",
    )
    common.add_threads(
        parser,
        "torch threads for training, scoring and local LLMs (default: torch's choice, one "
        "per core; use 1 on a shared machine, where more threads can be much slower)",
    )
    parser.add_argument(
        "--fit-cache",
        metavar="DIR",
        help="reuse a trained model: the run looks in DIR for a fit made with the same model, "
        "options, dataset, task inputs (history, critiques), seed and threads (and narrative "
        "type, for a model that writes text), and keeps its own fit there otherwise; the "
        "numbers are those of training anew and the result records the reuse (`reproduce` "
        "uses OUT/<dataset>/_fits)",
    )
    common.add_quiet(parser)


def _run(args: argparse.Namespace) -> int:
    from regen_bench.metrics.ranking import METRIC_NAMES
    from regen_bench.metrics.text import TEXT_METRIC_NAMES
    from regen_bench.runner import RunConfig, run

    model, task, options, tuning = _model_options(args)
    config = RunConfig(
        model=model,
        task=task,
        dataset=args.dataset,
        narrative=args.narrative,
        output=args.out,
        seed=args.seed,
        options=options,
        data_dir=args.data_dir,
        eval_batch_size=args.eval_batch_size,
        tie_policy=args.tie_policy,
        exclude_history=args.exclude_history,
        limit=args.limit,
        embedder=None if args.embedder == NONE else args.embedder,
        bertscore_model=None if args.bertscore_model == NONE else args.bertscore_model,
        threads=args.threads,
        tuning=tuning,
        fit_cache=args.fit_cache,
    )
    out = run(config, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    r = out.result
    print(
        f"{r.model.name} on {r.task.name} ({r.dataset.name}, "
        f"{r.protocol.test_examples} test users, full ranking over {r.dataset.items} items)"
    )
    width = max(len(m) for m in (*METRIC_NAMES, *TEXT_METRIC_NAMES))
    crit = any(k.startswith("critiqued/") for k in r.metrics)
    header = f"  {'metric':<{width}}  {'all':>8}" + (f"  {'critiqued':>9}" if crit else "")
    print(header)
    for name in METRIC_NAMES:
        line = f"  {name:<{width}}  {r.metrics[name]:>8.4f}"
        if crit:
            line += f"  {r.metrics['critiqued/' + name]:>9.4f}"
        print(line)
    if r.narration is not None:
        n = r.narration
        who = "the model" if n.backend is None else f"{n.backend} ({n.llm_model})"
        print(
            f"  narratives: {r.task.narrative_type} by {who}, about the {n.condition} item, "
            f"{n.scored} scored, {n.failed} failed"
            + (
                f", {n.excluded} left out (the narrator was fine-tuned on them)"
                if n.excluded
                else ""
            )
        )
        for name in TEXT_METRIC_NAMES:
            if name in r.metrics:
                print(f"  {name:<{width}}  {r.metrics[name]:>8.4f}")
    if r.tuning is not None:
        t = r.tuning
        print(
            f"  tuned: {t.trials} trials (study {t.study}), best validation NDCG@10 "
            f"{t.best_valid_ndcg:.5f}; this run's: {r.fit_log.get('best_valid_ndcg@10')}"
            + (f"; overridden by --set: {', '.join(t.overridden)}" if t.overridden else "")
        )
    print(f"  time: fit {r.timings['fit_s']:.1f}s, evaluate {r.timings['evaluate_s']:.1f}s")
    print(f"signature: {r.signature}")
    print(f"wrote {out.result_path} and {out.samples_path.name}")
    return 0


def _model_options(
    args: argparse.Namespace,
) -> tuple[str, str, dict[str, object], Tuning | None]:
    """Model, task, options and tuning block: from ``--config`` (if given) and ``--set``."""
    options = common.parse_set(args.set)
    if args.config is None:
        for flag in ("model", "task"):
            if getattr(args, flag) is None:
                raise common.CliError(
                    f"the following arguments are required: --{flag} (or --config FILE)"
                )
        return args.model, args.task, options, None
    from regen_bench.runner import NARRATOR_PREFIX
    from regen_bench.tuned_config import apply_tuned_config, load_tuned_config

    tuned = load_tuned_config(args.config)
    model = args.model or tuned.model
    task = args.task or tuned.task
    model_set = {k: v for k, v in options.items() if not k.startswith(NARRATOR_PREFIX)}
    merged, tuning = apply_tuned_config(tuned, model, task, model_set)
    return model, task, {**options, **merged}, tuning


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    from regen_bench.cli.leaderboard import add_text_models, add_validation_dataset

    parser.add_argument("files", nargs="+", metavar="FILE")
    add_validation_dataset(parser)
    add_text_models(parser)


def _validate(args: argparse.Namespace) -> int:
    # The same checks as `leaderboard validate`: the file, and its samples against the dataset.
    from regen_bench.cli.leaderboard import validate_files

    return validate_files(
        args.files,
        args.dataset,
        args.data_dir,
        signature=True,
        text_models=args.text_models,
        jobs=args.jobs,
    )


COMMANDS = (
    common.Command(
        "run",
        help="train a model, evaluate it on the test split, write results",
        description="Train MODEL on TASK (leave-one-out split), rank the whole "
        "catalog for every test user and write a result JSON plus a per-sample "
        "jsonl under OUT/<dataset>/<task>/.",
        configure=_configure_run,
        handler=_run,
    ),
    common.Command(
        "validate",
        help="check result files (schema, signature, per-sample data, and against their "
        "dataset where it is available)",
        configure=_configure_validate,
        handler=_validate,
    ),
)
