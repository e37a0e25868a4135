"""``regen-bench inpaint``: fill critiques and narratives of a REGEN-format file with an LLM."""

from __future__ import annotations

import argparse
import sys

import regen_bench.cli._common as common


def _configure(parser: argparse.ArgumentParser) -> None:
    from regen_bench.inpaint import InpaintConfig, inpaint

    defaults = common.signature_defaults(inpaint)
    parser.add_argument(
        "--dataset", required=True, help="REGEN-format file (e.g. from data prepare)"
    )
    parser.add_argument(
        "--backend", required=True, help="llm_backend plugin (openai, gemini, hf...)"
    )
    common.add_backend_model(parser)
    common.add_set(
        parser, "backend option, repeatable (e.g. --set base_url=http://localhost:8000/v1)"
    )
    common.add_out(parser, "output REGEN-format file (.jsonl or .gz)")
    common.add_limit(parser, "first N users only")
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="inpaint only shard I of N of the users (a stable hash of the user id); merge "
        "the N outputs with `regen-bench data merge` (docs/scaling.md)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print a few prompts and the call count; no calls"
    )
    common.add_numbers(
        parser,
        [
            (
                "--min-shared-levels",
                int,
                InpaintConfig.min_shared_levels,
                "critiques for pairs sharing at least this many category levels "
                "(default: %(default)s)",
            ),
            (
                "--candidates",
                int,
                InpaintConfig.candidates,
                "critiques asked per pair, one kept (default: %(default)s)",
            ),
            (
                "--temperature",
                float,
                InpaintConfig.temperature,
                "sampling temperature (default: %(default)g, greedy)",
            ),
            (
                "--max-field-chars",
                int,
                InpaintConfig.max_field_chars,
                "characters kept of each title, description and review in prompts "
                "(default: %(default)s)",
            ),
            (
                "--schema-retries",
                int,
                defaults["schema_retries"],
                "times a malformed answer is asked again before it is a failure "
                "(default: %(default)s)",
            ),
            (
                "--reask-temperature",
                float,
                defaults["reask_temperature"],
                "re-asks sample at least this hot under a new seed, so they differ "
                "(default: %(default)s)",
            ),
        ],
    )
    common.add_seed(parser, InpaintConfig.seed, "seed of choices and requests")
    common.add_concurrency(parser, defaults["concurrency"])
    common.add_threads(parser)
    common.add_quiet(parser, "no progress bar")


def _inpaint(args: argparse.Namespace) -> int:
    from regen_bench.inpaint import InpaintConfig, inpaint
    from regen_bench.shards import Shard

    common.apply_threads(args)
    shard = Shard.parse(args.shard) if args.shard is not None else None
    config = InpaintConfig(
        min_shared_levels=args.min_shared_levels,
        candidates=args.candidates,
        seed=args.seed,
        temperature=args.temperature,
        max_field_chars=args.max_field_chars,
    )
    report = inpaint(
        args.dataset,
        args.out,
        args.backend,
        backend_config=common.backend_options(args),
        config=config,
        limit=args.limit,
        shard=shard,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        schema_retries=args.schema_retries,
        reask_temperature=args.reask_temperature,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
    )
    if report is not None:
        for line in report.lines():
            print(line)
        print(f"wrote {args.out} (+ .inpaint.json manifest, .inpaint-failures.jsonl)")
    return 0


COMMANDS = (
    common.Command(
        "inpaint",
        help="fill critiques and narratives of a REGEN-format file with an LLM (resumable)",
        description="Generate critiques for similar adjacent purchases and six narratives per "
        "user with an LLM backend, as REGEN was made. Every finished call is kept in "
        "OUT.inpaint-cache.sqlite: rerun the same command to resume after a crash.",
        configure=_configure,
        handler=_inpaint,
    ),
)
