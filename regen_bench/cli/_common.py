"""What every command module shares: the command tree, option helpers, ``--set`` parsing,
and how failures are reported (one line, one prefix and one exit status per kind).

Options that several commands take are added here, so they are spelled, described and
defaulted the same way everywhere (``--dataset``, ``--data-dir``, ``--out``/``--output``,
``--seed``, ``--limit``, ``--concurrency``, ``--threads``, ``--set``, ``-q``/``-v``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from regen_bench.threads import set_torch_threads

EXIT_OK = 0
#: A check found problems: invalid result files, rejected submissions, stale tables.
EXIT_CHECK_FAILED = 1
#: Bad usage or bad input: unknown name or option, malformed file, unwritable output.
EXIT_USAGE = 2
#: An optional dependency is not installed (the message gives the install command).
EXIT_MISSING_EXTRA = 3
EXIT_INTERRUPTED = 130

#: The failure kinds: (exit status, the prefix of the one line on stderr).
PREFIX = {
    EXIT_CHECK_FAILED: "regen-bench: check failed: ",
    EXIT_USAGE: "regen-bench: error: ",
    EXIT_MISSING_EXTRA: "regen-bench: missing extra: ",
    EXIT_INTERRUPTED: "regen-bench: interrupted",
}

#: The top-level ``--help`` epilog (also the README's table of exit statuses).
EXIT_STATUS_HELP = f"""\
exit status (a failure prints one line on stderr, prefixed by its kind):
  {EXIT_OK}    success
  {EXIT_CHECK_FAILED}    a check failed (invalid result or submission, stale leaderboard):
       "{PREFIX[EXIT_CHECK_FAILED]}..."
  {EXIT_USAGE}    bad usage or bad input (unknown name or option, malformed file):
       "{PREFIX[EXIT_USAGE]}..."
  {EXIT_MISSING_EXTRA}    an optional dependency is missing; the line names it and the
       install command, for a clone and for an installed package:
       "{PREFIX[EXIT_MISSING_EXTRA]}..."
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
REGEN_BENCH_DEBUG=1 shows the traceback behind an error line."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that a text with line breaks (the epilog's table) is
    printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """Reported as one line on stderr with exit status 2."""


def fail(status: int, message: str) -> int:
    """Print ``message`` with the prefix of its kind on stderr; return the exit status.

    Secrets are redacted first: an error can carry a provider's echo of the key.
    """
    from regen_bench.llm.redact import redact

    print(f"{PREFIX[status]}{redact(message)}", file=sys.stderr)
    return status


def missing_module(exc: BaseException) -> str | None:
    """The uninstalled module behind ``exc``: an ``ImportError`` of a module that cannot be
    found, as ``exc`` itself or in its cause/context chain (a hint wrapping the import)."""
    from regen_bench.readiness import missing

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ImportError) and cur.name and missing([cur.name]):
            return cur.name
        cur = cur.__cause__ or cur.__context__
    return None


def missing_extra_message(exc: BaseException) -> str | None:
    """The one-line message for a missing optional dependency (None if ``exc`` is not one):
    what is missing, and the install command spelled for a clone and for an installed
    package (``pip install -e '.[X]' (in a clone) or pip install 'regen-bench[X]'``)."""
    from regen_bench.readiness import DIST, MissingExtraError, install_hint, module_extras

    if isinstance(exc, MissingExtraError):
        return str(exc)
    name = missing_module(exc)
    if name is None:
        return None
    extras, packages = module_extras(name)
    raw = isinstance(exc, ImportError) and exc.name == name  # "No module named ..."
    # A message's own install hint is replaced by the one spelled both ways.
    what = "" if raw else re.sub(r"[\s:;,(]*pip install .*$", "", str(exc)).strip()
    what = what or f"{name.split('.')[0].replace('_', '-')} is not installed"
    return f"{what}: {install_hint({DIST: extras} if extras else {}, packages)}"


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An exception class of ``module`` if it is imported (else nothing can raise it)."""
    mod = sys.modules.get(module)
    found = getattr(mod, name, None) if mod is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _bad_input(exc: BaseException) -> bool:
    """Errors that mean bad usage or input (a bug is anything else, and keeps its traceback)."""
    kinds: list[type[BaseException]] = [
        CliError,
        ValueError,
        LookupError,  # UnknownNameError, with its "did you mean"
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    ]
    for module, name in (
        ("regen_bench.plugins", "PluginError"),
        ("regen_bench.embedding", "MissingAPIKeyError"),
    ):
        found = _loaded(module, name)
        if found is not None:
            kinds.append(found)
    return isinstance(exc, tuple(kinds)) and not isinstance(exc, (KeyError, IndexError))


def report(exc: BaseException) -> int | None:
    """Report a failure as one line of its kind; its exit status, or None for a bug."""
    message = missing_extra_message(exc)
    if message is not None:
        return fail(EXIT_MISSING_EXTRA, message)
    if _bad_input(exc):
        return fail(EXIT_USAGE, str(exc))
    return None


@dataclass(frozen=True)
class Command:
    """A ``regen-bench`` command: a leaf (``configure`` + ``handler``) or a group (``commands``).

    ``configure`` adds the command's arguments; it runs only for the command being invoked, so
    it may import the modules that own the defaults without slowing down every other command.
    """

    name: str
    help: str
    description: str | None = None
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    handler: Handler | None = None
    commands: tuple[Command, ...] = ()


def group(name: str, text: str, commands: tuple[Command, ...]) -> Command:
    """A command group whose one-line help lists its subcommands: ``text (a, b, c)``."""
    return Command(name, help=f"{text} ({', '.join(c.name for c in commands)})", commands=commands)


def print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _invoked(argv: Sequence[str], names: Sequence[str]) -> int | None:
    """Index in ``argv`` of the command word: the first argument that is not an option."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return i if arg in names else None
    return None


def add_commands(
    parser: argparse.ArgumentParser,
    commands: Sequence[Command],
    argv: Sequence[str] | None,
    *,
    dest: str,
    metavar: str,
) -> None:
    """Add ``commands`` as subcommands of ``parser``.

    Every subcommand is listed; only the one ``argv`` invokes is filled in (all of them when
    ``argv`` is None), so ``--help`` and each command import only what they need.
    """
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    at = None if argv is None else _invoked(argv, [c.name for c in commands])
    for cmd in commands:
        child = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description)
        if argv is not None and (at is None or argv[at] != cmd.name):
            continue
        rest = None if argv is None or at is None else argv[at + 1 :]
        if cmd.commands:
            child.set_defaults(func=lambda _args, p=child: print_help(p))
            add_commands(
                child,
                cmd.commands,
                rest,
                dest=f"{cmd.name}_command",
                metavar=f"{cmd.name.upper()}_COMMAND",
            )
        else:
            assert cmd.configure is not None and cmd.handler is not None, cmd.name
            cmd.configure(child)
            child.set_defaults(func=cmd.handler)


def signature_defaults(func: Callable[..., object]) -> dict[str, Any]:
    """The keyword defaults of ``func``: command defaults taken from the function they feed."""
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.default is not p.empty
    }


def parse_set(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, bools), else str."""
    config: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--set expects key=value, got '{pair}'")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


# -- shared options -----------------------------------------------------------------------------

DATASET_HELP = "registered dataset name or path of a REGEN-format file"


def add_dataset(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """``--dataset`` (required when there is no default) and ``--data-dir``."""
    if default is None:
        parser.add_argument("--dataset", required=True, help=DATASET_HELP)
    else:
        parser.add_argument(
            "--dataset", default=default, help=f"{DATASET_HELP} (default: %(default)s)"
        )
    add_data_dir(parser)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="where dataset plugins look for files")


def add_positional_or_option(
    parser: argparse.ArgumentParser, name: str, help: str, *aliases: str
) -> None:
    """``NAME`` as a positional argument, or ``--NAME`` (and ``aliases``) as other commands
    spell it; read with :func:`positional_or_option`."""
    metavar = name.upper()
    parser.add_argument(name, nargs="?", metavar=metavar, help=f"{help} (or --{name})")
    parser.add_argument(
        f"--{name}", *aliases, dest=f"{name}_option", metavar=metavar, help=argparse.SUPPRESS
    )


def positional_or_option(args: argparse.Namespace, name: str) -> str:
    """The value of an argument added with :func:`add_positional_or_option` (exactly one)."""
    given = [v for v in (getattr(args, name), getattr(args, f"{name}_option")) if v is not None]
    if len(given) != 1:
        raise CliError(
            f"give {name.upper()} once, as an argument or as --{name}"
            if given
            else f"the following arguments are required: {name.upper()} (or --{name})"
        )
    return str(given[0])


def add_out(parser: argparse.ArgumentParser, help: str, *, default: str | None = None) -> None:
    """``--out`` (also spelled ``--output``): required when there is no default."""
    if default is None:
        parser.add_argument("--out", "--output", dest="out", required=True, help=help)
    else:
        parser.add_argument(
            "--out", "--output", dest="out", default=default, help=f"{help} (default: %(default)s)"
        )


#: A numeric option: (flag, type, default, help); the help may show ``%(default)s``.
NumberOption = tuple[str, type[int] | type[float], int | float | None, str]


def add_numbers(parser: argparse.ArgumentParser, options: Sequence[NumberOption]) -> None:
    """Numeric options, declared as a table (their defaults come from the modules owning them)."""
    for flag, kind, default, text in options:
        parser.add_argument(flag, type=kind, default=default, help=text)


def add_seed(parser: argparse.ArgumentParser, default: int, what: str = "random seed") -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"{what} (default: %(default)s)")


def add_limit(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N", help=help)


def add_concurrency(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--concurrency",
        type=int,
        default=default,
        help="parallel backend calls (default: %(default)s)",
    )


def add_threads(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help=help or "torch CPU threads for local models (default: torch's choice; 1 if shared)",
    )


def add_set(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_backend_model(parser: argparse.ArgumentParser) -> None:
    """``--model`` of an LLM backend: the same as ``--set model=M``, which it overrides."""
    parser.add_argument("--model", default=None, help="backend model (else the backend's default)")


def backend_options(args: argparse.Namespace) -> dict[str, object]:
    """``--set`` options of an LLM backend, with ``--model`` when given."""
    options = parse_set(args.set)
    if args.model is not None:
        options["model"] = args.model
    return options


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """``-q`` (our progress off) and ``-v`` (third-party libraries' own output on)."""
    parser.add_argument("-q", "--quiet", action="store_true", help=what)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show what libraries print (their progress bars, logs and warnings)",
    )


def output_settings(args: argparse.Namespace) -> AbstractContextManager[None]:
    """``-q``/``-v`` for the command (trainers read them from :mod:`regen_bench.progress`);
    third-party output is silenced unless ``-v``. Commands without the flags get the default:
    our progress shown, third-party output silenced."""
    from regen_bench import progress

    return progress.output(
        quiet=bool(getattr(args, "quiet", False)), verbose=bool(getattr(args, "verbose", False))
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's threads when ``--threads`` was given (before anything loads a model)."""
    if args.threads is not None:
        set_torch_threads(args.threads)
