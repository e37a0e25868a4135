"""What every command module shares: the command tree, option helpers and ``--set`` parsing.

Options that several commands take are added here, so they are spelled, described and
defaulted the same way everywhere (``--dataset``, ``--data-dir``, ``--out``/``--output``,
``--seed``, ``--limit``, ``--concurrency``, ``--threads``, ``--set``, ``-q``).
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from regen_bench.threads import set_torch_threads

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """Reported as one line on stderr with exit status 2."""


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
    parser.add_argument("-q", "--quiet", action="store_true", help=what)


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's threads when ``--threads`` was given (before anything loads a model)."""
    if args.threads is not None:
        set_torch_threads(args.threads)
