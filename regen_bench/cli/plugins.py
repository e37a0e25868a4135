"""``regen-bench plugins``: what is installed, from where, and what each plugin registers."""

from __future__ import annotations

import argparse
import json

from regen_bench.cli._common import Command


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--options",
        metavar="MODEL",
        default=None,
        help="list the options MODEL takes with `run --set` (type, default, range, meaning)",
    )


def _model_options(name: str, as_json: bool) -> int:
    from dataclasses import asdict

    from regen_bench.options import describe_options, format_options
    from regen_bench.plugins import get_plugin_manager

    entry = get_plugin_manager().get("model", name)
    if entry.options is None:
        print(f"model '{name}' declares no option schema (see its documentation)")
        return 0
    if as_json:
        print(json.dumps([asdict(o) for o in describe_options(entry.options)], indent=2))
        return 0
    print(f"options of model '{name}' (regen-bench run --model {name} --set NAME=VALUE):")
    for line in format_options(entry.options):
        print(f"  {line}")
    if entry.options.SEARCH_SPACE:
        print(f"search space (regen-bench tune --model {name}):")
        for key, dim in entry.options.SEARCH_SPACE.items():
            spec = dim.as_dict()
            kind = spec.pop("type")
            print(f"  {key}: {kind}, " + ", ".join(f"{k} {v}" for k, v in spec.items()))
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from regen_bench.plugins import get_plugin_manager

    if args.options:
        return _model_options(args.options, args.json)

    manager = get_plugin_manager()
    rows: list[dict[str, object]] = [
        {
            "name": p.name,
            "module": p.module,
            "source": p.source,
            "distribution": p.distribution,
            "version": p.version,
            "registers": [f"{kind}:{name}" for kind, name in p.registered],
            "error": p.error,
        }
        for p in manager.infos
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for info in manager.infos:
        origin = f"{info.source} ({info.distribution} {info.version})".rstrip()
        print(f"{info.name:<14} {origin}")
        if info.error:
            print(f"    FAILED: {info.error}")
        for kind, name in info.registered:
            entry = manager.get(kind, name)
            tasks = entry.meta.get("tasks")
            extra = f" [tasks: {', '.join(tasks)}]" if tasks else ""
            print(f"    {kind:<11} {name:<12} {entry.meta.get('summary', '')}{extra}")
    return 0


COMMANDS = (
    Command(
        "plugins",
        help="list plugins, their versions and what they register",
        configure=_configure,
        handler=_plugins,
    ),
)
