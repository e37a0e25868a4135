"""``regen-bench`` command line: one module per command group, each with its parser and handler.

- :mod:`~regen_bench.cli.run`: ``run`` and ``validate``;
- :mod:`~regen_bench.cli.tune`: ``tune`` (hyperparameter search on the validation split);
- :mod:`~regen_bench.cli.trace`, :mod:`~regen_bench.cli.plugins`: ``trace``, ``plugins``;
- :mod:`~regen_bench.cli.data`: ``data synth | info | export | prepare``;
- :mod:`~regen_bench.cli.inpaint`, :mod:`~regen_bench.cli.rate`: the LLM dataset jobs;
- :mod:`~regen_bench.cli.leaderboard`: ``leaderboard build | check | submit``;
- :mod:`~regen_bench.cli.narrator`: ``narrator finetune``;
- :mod:`~regen_bench.cli.reproduce`: ``reproduce`` (the paper's grid).

Shared options, the command tree and the failure kinds (one prefix and exit status each, the
``--help`` epilog) are in :mod:`~regen_bench.cli._common`. Handlers import their work lazily,
so ``regen-bench --help`` loads no numpy, pydantic, model, torch or LLM code.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time


def _stop(_signum: int, _frame: object) -> None:
    """Ctrl-C while the command line loads or exits: nothing is being written then, so stop at
    once with the one line of an interruption (no ``KeyboardInterrupt`` traceback)."""
    os.write(2, b"regen-bench: interrupted\n")  # PREFIX[EXIT_INTERRUPTED]; _common not loaded yet
    os._exit(130)


_PREVIOUS_HOOK = sys.unraisablehook


def _redeliver(unraisable: sys.UnraisableHookArgs) -> None:
    """``sys.unraisablehook`` of the command: a Ctrl-C that landed in code whose exceptions
    Python only prints (a weakref callback, such as the import system's module locks, or a
    ``__del__``) would be lost and the command would run on; deliver it again instead, so it
    stops the command like any other Ctrl-C. Everything else goes to the previous hook."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        # From another thread, a moment later: raised now, it would land in this hook, whose
        # exceptions Python drops too (so does a threading.Timer's start, which waits). Should
        # it land in such code again, this hook runs again.
        _thread.start_new_thread(_interrupt_soon, ())
        return
    _PREVIOUS_HOOK(unraisable)


def _interrupt_soon() -> None:
    time.sleep(0.01)
    _thread.interrupt_main()


def _is_program() -> bool:
    """Whether this process is the ``regen-bench`` command (the script or ``python -m``), not a
    program that imports the command line (a test, a notebook), whose Ctrl-C is its own."""
    if os.path.basename(sys.argv[0]).removesuffix(".exe") == "regen-bench":
        return True
    argv = [*getattr(sys, "orig_argv", []), ""]  # the interpreter's own, "-m" among its options
    return "-m" in argv and argv[argv.index("-m") + 1] in ("regen_bench", "regen_bench.cli")


#: Installed first, before the imports below: Ctrl-C in the first instants of a command too.
_PROGRAM = (
    _is_program()
    and threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _PROGRAM:
    signal.signal(signal.SIGINT, _stop)
    sys.unraisablehook = _redeliver

import argparse  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from regen_bench import __version__  # noqa: E402
from regen_bench.cli import (  # noqa: E402
    data,
    inpaint,
    leaderboard,
    narrator,
    plugins,
    rate,
    reproduce,
    run,
    trace,
    tune,
)
from regen_bench.cli._common import (  # noqa: E402
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
    *reproduce.COMMANDS,
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
    """Run one command; its exit status. Ctrl-C anywhere gives one line and status 130."""
    if _PROGRAM:  # the command's own work: Ctrl-C raises KeyboardInterrupt, which cleans up
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        if _PROGRAM:  # a second Ctrl-C while this line is printed
            signal.signal(signal.SIGINT, _stop)
        return fail(EXIT_INTERRUPTED, "")
    finally:
        if _PROGRAM:  # what is left: the interpreter exiting, with everything written
            signal.signal(signal.SIGINT, _stop)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        with output_settings(args):
            return int(args.func(args))
    except Exception as exc:  # KeyboardInterrupt is not one: main() reports it
        # Bad input and missing extras are one line each (REGEN_BENCH_DEBUG=1 shows the
        # traceback when hunting a bug); anything else is a bug and keeps its traceback.
        status = None if os.environ.get("REGEN_BENCH_DEBUG") else report(exc)
        if status is None:
            raise
        return status


__all__ = ["COMMANDS", "EXIT_USAGE", "CliError", "build_parser", "main", "parse_set"]
