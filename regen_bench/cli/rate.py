"""``regen-bench rate``: score narratives or critiques with an LLM auto-rater ensemble."""

from __future__ import annotations

import argparse

import regen_bench.cli._common as common


def _configure(parser: argparse.ArgumentParser) -> None:
    from regen_bench.rating import rate_file

    defaults = common.signature_defaults(rate_file)
    parser.add_argument("--dataset", required=True, help=common.DATASET_HELP)
    parser.add_argument("--rater", required=True, help="rater plugin (narrative, critique)")
    parser.add_argument(
        "--backend", required=True, help="llm_backend plugin (openai, gemini, hf...)"
    )
    common.add_backend_model(parser)
    common.add_set(
        parser, "backend option, repeatable (e.g. --set base_url=http://localhost:8000/v1)"
    )
    parser.add_argument(
        "--rater-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="rater option, repeatable (temperature, max_history, max_field_chars, max_tokens)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=defaults["runs"],
        help="ratings per output (default: %(default)s)",
    )
    common.add_limit(parser, "first N users only")
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="rate and write only shard I of N of the users (a stable hash of the user id); "
        "merge the N outputs with `regen-bench data merge` (docs/scaling.md)",
    )
    common.add_seed(parser, defaults["seed"], "seed of runs and negatives")
    common.add_concurrency(parser, defaults["concurrency"])
    common.add_out(parser, "output REGEN-format file (.jsonl or .gz)")
    parser.add_argument("--plots", default=None, metavar="DIR", help="write PNG figures + report")
    parser.add_argument(
        "--no-bias-check",
        action="store_true",
        help="skip the negative samples A (other history) and B (other history and item)",
    )
    common.add_threads(parser)
    common.add_quiet(parser, "no progress bar")


def _rate(args: argparse.Namespace) -> int:
    from regen_bench.rating import rate_file
    from regen_bench.shards import Shard

    common.apply_threads(args)
    shard = Shard.parse(args.shard) if args.shard is not None else None
    outcome = rate_file(
        args.dataset,
        args.out,
        rater=args.rater,
        backend=args.backend,
        backend_options=common.backend_options(args),
        rater_options=common.parse_set(args.rater_set),
        runs=args.runs,
        limit=args.limit,
        shard=shard,
        seed=args.seed,
        concurrency=args.concurrency,
        plots=args.plots,
        bias_check=not args.no_bias_check,
        progress=not args.quiet,
    )
    for line in outcome.lines():
        print(line)
    return 0


COMMANDS = (
    common.Command(
        "rate",
        help="score narratives or critiques with an LLM auto-rater ensemble (resumable)",
        description="Rate every output RUNS times (majority of runs, else floor of the mean), "
        "write the scores into the metadata of OUT (a REGEN-format file), OUT.scores.csv and "
        "OUT.rating.json (with the negative-sampling bias check). Finished calls are kept in "
        "OUT.rate-cache.sqlite: rerun the same command to resume.",
        configure=_configure,
        handler=_rate,
    ),
)
