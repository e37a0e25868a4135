"""``regen-bench plugins``: what is installed, from where, what each plugin registers, and
whether each can load here (``ready``) or which extra it needs."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from regen_bench.cli._common import Command

if TYPE_CHECKING:
    from regen_bench.readiness import Readiness


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


def _status(r: Readiness) -> str:
    """``ready``, or what to install: ``needs [torch,text]`` (extras of regen-bench)."""
    from regen_bench.readiness import DIST

    if r.ready:
        return "ready"
    extras = ",".join(r.extras)
    wanted = [f"[{extras}]" if r.dist == DIST else f"{r.dist}[{extras}]"] if extras else []
    return "needs " + " ".join([*wanted, *r.packages])


def _plugins(args: argparse.Namespace) -> int:
    from regen_bench.plugins import get_plugin_manager
    from regen_bench.readiness import DIST, install_hint, readiness

    if args.options:
        return _model_options(args.options, args.json)

    manager = get_plugin_manager()
    ready: dict[tuple[str, str], Readiness] = {
        (kind, name): readiness(
            manager.get(kind, name).factory, kind=kind, dist=info.distribution or DIST
        )
        for info in manager.infos
        for kind, name in info.registered
    }
    rows: list[dict[str, object]] = [
        {
            "name": p.name,
            "module": p.module,
            "source": p.source,
            "first_party": p.first_party,
            "distribution": p.distribution,
            "version": p.version,
            "registers": [f"{kind}:{name}" for kind, name in p.registered],
            "readiness": [
                {
                    "kind": kind,
                    "name": name,
                    "ready": ready[kind, name].ready,
                    "missing": list(ready[kind, name].missing),
                    "extras": list(ready[kind, name].extras),
                }
                for kind, name in p.registered
            ],
            "error": p.error,
        }
        for p in manager.infos
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    kinds = [kind for kind, _ in ready] or [""]
    names = [name for _, name in ready] or [""]
    statuses = [_status(r) for r in ready.values()] or [""]
    plugin_w = max(len(info.name) for info in manager.infos) if manager.infos else 0
    kind_w, name_w = max(map(len, kinds)), max(map(len, names))
    status_w = max(map(len, statuses))
    for info in manager.infos:
        origin = f"{info.source} ({info.distribution} {info.version})".rstrip()
        print(f"{info.name:<{plugin_w}}  {origin}")
        if info.error:
            print(f"  FAILED: {info.error}")
        for kind, name in info.registered:
            entry = manager.get(kind, name)
            tasks = entry.meta.get("tasks")
            extra = f" [tasks: {', '.join(tasks)}]" if tasks else ""
            status = _status(ready[kind, name])
            print(
                f"  {kind:<{kind_w}}  {name:<{name_w}}  {status:<{status_w}}  "
                f"{entry.meta.get('summary', '')}{extra}".rstrip()
            )
    lacking = sorted({e for r in ready.values() if r.dist == DIST for e in r.extras})
    if lacking:
        print(
            "\nto make a plugin marked 'needs [EXTRA]' ready: "
            + install_hint({DIST: ["EXTRA"]}).replace("EXTRA", "EXTRA,...")
        )
    return 0


COMMANDS = (
    Command(
        "plugins",
        help="list plugins, their versions, what they register and if ready",
        configure=_configure,
        handler=_plugins,
    ),
)
