"""``regen-bench`` command line: one module per command group, each with its parser and handler.

- :mod:`~regen_bench.cli.run`: ``run`` and ``validate``;
- :mod:`~regen_bench.cli.tune`: ``tune`` (hyperparameter search on the validation split);
- :mod:`~regen_bench.cli.trace`, :mod:`~regen_bench.cli.plugins`: ``trace``, ``plugins``;
- :mod:`~regen_bench.cli.data`: ``data synth | info | export | prepare``;
- :mod:`~regen_bench.cli.inpaint`, :mod:`~regen_bench.cli.rate`: the LLM dataset jobs;
- :mod:`~regen_bench.cli.leaderboard`: ``leaderboard build | check | submit``;
- :mod:`~regen_bench.cli.narrator`: ``narrator finetune``.

Shared options, the command tree and the failure kinds (one prefix and exit status each, the
``--help`` epilog) are in :mod:`~regen_bench.cli._common`. Handlers import their work lazily,
so ``regen-bench --help`` loads no numpy, pydantic, model, torch or LLM code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from regen_bench import __version__
from regen_bench.cli import data, inpaint, leaderboard, narrator, plugins, rate, run, trace, tune
from regen_bench.cli._common import (
    EXIT_INTERRUPTED,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    CliError,
    Command,
    HelpFormatter,
    add_commands,
    fail,
    output_settings,
    parse_set,
    report,
)

#: Every command, in the order ``regen-bench --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    *run.COMMANDS,
    *tune.COMMANDS,
    *trace.COMMANDS,
    *plugins.COMMANDS,
    *data.COMMANDS,
    *inpaint.COMMANDS,
    *leaderboard.COMMANDS,
    *rate.COMMANDS,
    *narrator.COMMANDS,
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``regen-bench`` parser; with ``argv``, only the invoked command's options are added."""
    parser = argparse.ArgumentParser(
        prog="regen-bench",
        description="Train, evaluate and compare models on the REGEN benchmark "
        "(recommendation with critiques and narratives).",
        epilog=EXIT_STATUS_HELP,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"regen-bench {__version__}")
    add_commands(parser, COMMANDS, argv, dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with output_settings(args):
            return int(args.func(args))
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "")
    except Exception as exc:
        # Bad input and missing extras are one line each (REGEN_BENCH_DEBUG=1 shows the
        # traceback when hunting a bug); anything else is a bug and keeps its traceback.
        status = None if os.environ.get("REGEN_BENCH_DEBUG") else report(exc)
        if status is None:
            raise
        return status


__all__ = ["COMMANDS", "EXIT_USAGE", "CliError", "build_parser", "main", "parse_set"]
