"""Every ranking model end to end at REGEN Clothing's scale: phase times, peak RSS, growth.

    .venv/bin/python benchmarks/clothing_scale.py                    # 1/16, 1/4 and full scale
    .venv/bin/python benchmarks/clothing_scale.py --scales 16 --models popularity,sasrec
    .venv/bin/python benchmarks/clothing_scale.py --table            # print what is measured

For each scale (1/16, 1/4 and all of Clothing's 1,168,735 users and 376,847 items) it writes a
synthetic world with ``regen-bench data synth --engine scale`` (``--full-data FILE`` uses an
existing full-size file instead), builds its columnar cache (the "cold load"), then runs each
model through ``regen-bench run`` as its own process: training, exact full-ranking evaluation
of every test user, result files. Each step's wall time comes from the result file's timings
and the fit log, its peak RSS from the operating system (``os.wait4`` of that process).

Training at this scale is cut to a fixed budget: ``--max-steps`` optimiser steps
(``--set max_steps``, reproducible, not a time limit) and validation on ``--valid-users``
users; the fit log's ``epoch_s_projected`` is the time one whole epoch would take at the
measured pace, which the table shows. Every finished step is saved under ``--work`` (one JSON
per cell), so a killed benchmark resumes where it stopped; ``--table`` prints the table of
what is saved, including how each phase grows from one scale to the next.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from regen_bench.data.synth.scale import CLOTHING_ITEMS, CLOTHING_USERS

#: The scales the README's table shows (divisors of Clothing's size); --scales takes any.
DEFAULT_SCALES = (16, 4, 1)
#: The task each model is measured on (FLARE's point is reading the critique).
TASKS = {"popularity": "sequential", "sasrec": "sequential", "bert4rec": "sequential"}
TORCH_MODELS = {"sasrec", "bert4rec", "flare"}
LOAD = """
import json, sys, time
from regen_bench.data.dataset import Dataset
t0 = time.perf_counter()
ds = Dataset.from_file(sys.argv[1], progress=True)
n = ds.lengths()
print("RESULT " + json.dumps({"users": len(n), "items": len(ds.catalog),
      "interactions": int(n.sum()), "load_s": round(time.perf_counter() - t0, 3)}))
"""


def measured(cmd: list[str]) -> tuple[int, float, float, str]:
    """Run ``cmd``; (exit code, wall s, peak RSS GiB of that process, its stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 2**20, out


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def world(args: argparse.Namespace, div: int) -> Path:
    """The synthetic file of 1/div of Clothing (written once)."""
    if div == 1 and args.full_data:
        return Path(args.full_data)
    users, items = round(CLOTHING_USERS / div), round(CLOTHING_ITEMS / div)
    path = args.work / f"clothing-{users}u-{items}i.jsonl.gz"
    cell = args.work / "cells" / f"{div}-synth.json"
    if not path.exists():
        cmd = [sys.executable, "-m", "regen_bench", "data", "synth", "--engine", "scale"]
        cmd += ["--users", str(users), "--items", str(items), "--out", str(path), "-q"]
        print(f"[1/{div}] synth: {shlex.join(cmd)}", file=sys.stderr)
        rc, wall, rss, _ = measured(cmd)
        if rc:
            sys.exit(f"synth failed (exit {rc})")
        save(cell, {"wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2)})
    return path


def cold_load(args: argparse.Namespace, div: int, path: Path) -> None:
    cell = args.work / "cells" / f"{div}-load.json"
    if cell.exists():
        return
    print(f"[1/{div}] cold load (builds the columnar cache) of {path}", file=sys.stderr)
    rc, wall, rss, out = measured([sys.executable, "-c", LOAD, str(path)])
    if rc:
        sys.exit(f"loading {path} failed (exit {rc})")
    stats = json.loads(out.rsplit("RESULT ", 1)[1])
    save(cell, {**stats, "wall_s": round(wall, 1), "peak_rss_gib": round(rss, 2)})


def run_model(args: argparse.Namespace, div: int, path: Path, model: str) -> None:
    cell = args.work / "cells" / f"{div}-{model}.json"
    if cell.exists():
        return
    task = TASKS.get(model, "critique")
    cmd = [sys.executable, "-m", "regen_bench", "run", "--model", model, "--task", task]
    cmd += ["--dataset", str(path), "--out", str(args.work / "results"), "--seed", "0"]
    cmd += ["--threads", str(args.threads), "--exclude-history", "-q"]
    if model in TORCH_MODELS:
        cmd += ["--set", "epochs=1", "--set", f"max_steps={args.max_steps}"]
        cmd += ["--set", f"valid_users={args.valid_users}"]
    if model == "flare":
        cmd += ["--set", f"text_slots={args.text_slots}"]
        cmd += ["--set", f"text_cache={args.work / 'text-cache'}"]
    print(f"[1/{div}] {model}: {shlex.join(cmd)}", file=sys.stderr)
    rc, wall, rss, _ = measured(cmd)
    if rc:
        sys.exit(f"{model} at 1/{div} failed (exit {rc}); nothing saved for it")
    name = path.name.split(".")[0]
    result = json.loads((args.work / "results" / name / task / f"{model}.json").read_text())
    save(
        cell,
        {
            "command": shlex.join(cmd),
            "task": task,
            "wall_s": round(wall, 1),
            "peak_rss_gib": round(rss, 2),
            "timings": result["timings"],
            "fit_log": result.get("fit_log", {}),
            "ndcg@10": result["metrics"]["ndcg@10"],
            "test_examples": result["protocol"]["test_examples"],
        },
    )


def _named(model: str, cell: dict[str, Any]) -> str:
    """The model's row name; a run with more than one torch thread says how many."""
    words = shlex.split(cell.get("command", ""))
    threads = words[words.index("--threads") + 1] if "--threads" in words else "1"
    return model if threads == "1" else f"{model} ({threads} threads)"


def label(div: int) -> str:
    return "full" if div == 1 else f"1/{div}"


def _cells(work: Path) -> dict[tuple[int, str], dict[str, Any]]:
    out = {}
    for f in sorted((work / "cells").glob("*.json")):
        div, name = f.stem.split("-", 1)
        out[(int(div), name)] = json.loads(f.read_text())
    return out


def _phases(cell: dict[str, Any]) -> dict[str, float]:
    """load / prepare / train steps / validation / evaluate seconds of one model cell."""
    t, log = cell["timings"], cell["fit_log"]
    prepare = float(log.get("prepare_s", 0.0))
    if "train_s_per_epoch" in log:
        train = float(log["train_s_per_epoch"]) * int(log.get("epochs", 0) or 0)
    else:  # counting models: their whole fit is one pass over the data
        train = float(t.get("fit_s", 0.0))
    return {
        "load": float(t.get("load_s", 0.0)),
        "prepare": prepare,
        "train": train,
        "valid": max(float(t.get("fit_s", 0.0)) - prepare - train, 0.0),
        "evaluate": float(t.get("evaluate_s", 0.0)),
        "epoch": float(log.get("epoch_s_projected", log.get("train_s_per_epoch", 0.0))),
    }


def table(work: Path) -> str:
    """The measured cells as markdown: one row per (scale, model), then the growth factors."""
    cells = _cells(work)
    scales = sorted({div for div, _ in cells}, reverse=True)
    lines = [
        "| scale | model | users | items | load s | prepare s | train s (steps) | "
        "one epoch s (projected) | validate s | evaluate s | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for div in scales:
        load = cells.get((div, "load"))
        if load is None:
            continue
        synth = cells.get((div, "synth"))
        lines.append(
            f"| {label(div)} | (data: synth {synth['wall_s'] if synth else '-'} s, cold load "
            f"{load['wall_s']} s) | {load['users']:,} | {load['items']:,} | | | | | | | "
            f"{max(load['peak_rss_gib'], synth['peak_rss_gib'] if synth else 0):.2f} |"
        )
        for model in ("popularity", "sasrec", "bert4rec", "flare"):
            cell = cells.get((div, model))
            if cell is None:
                continue
            p, log = _phases(cell), cell["fit_log"]
            n_steps = f" ({log['steps']})" if "steps" in log else ""
            epoch = f"{p['epoch']:,.0f}" if "steps" in log else "-"
            lines.append(
                f"| {label(div)} | {_named(model, cell)} | | | {p['load']:.1f} | "
                f"{p['prepare']:.1f} | "
                f"{p['train']:.1f}{n_steps} | {epoch} | {p['valid']:.1f} | {p['evaluate']:,.0f} | "
                f"{cell['peak_rss_gib']:.2f} |"
            )
    steps = list(itertools.pairwise(scales))
    growth = [
        "",
        "| model | phase | " + " | ".join(f"{label(a)} -> {label(b)}" for a, b in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for model in ("popularity", "sasrec", "bert4rec", "flare"):
        phases = {div: _phases(c) for div in scales if (c := cells.get((div, model)))}
        if len(phases) < 2:
            continue
        for phase in ("train", "epoch", "prepare", "evaluate"):
            ratios = []
            for a, b in steps:
                pa, pb = phases.get(a), phases.get(b)
                ok = pa is not None and pb is not None and pa[phase] > 0 and pb[phase] > 0
                ratios.append(f"x{pb[phase] / pa[phase]:.1f}" if ok else "-")  # type: ignore[index]
            if any(r != "-" for r in ratios):
                growth.append(f"| {model} | {phase} | " + " | ".join(ratios) + " |")
    return "\n".join(lines + (growth if len(growth) > 3 else []))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("clothing-scale"), help="kept files")
    parser.add_argument(
        "--scales",
        default=",".join(map(str, DEFAULT_SCALES)),
        help="divisors of Clothing's size, largest first (default: 16,4,1 = 1/16, 1/4, full)",
    )
    parser.add_argument("--models", default="popularity,sasrec,bert4rec,flare")
    parser.add_argument("--full-data", help="an existing full-size REGEN file to use at 1/1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--max-steps", type=int, default=20, help="training steps per model")
    parser.add_argument("--valid-users", type=int, default=2000, help="users validated")
    parser.add_argument("--text-slots", type=int, default=4, help="flare's pooled text slots")
    parser.add_argument("--table", action="store_true", help="only print the saved figures")
    args = parser.parse_args()
    if not args.table:
        try:
            divs = [int(s) for s in args.scales.split(",")]
        except ValueError:
            parser.error(f"--scales: expected comma-separated integers, got {args.scales!r}")
        if any(d < 1 for d in divs):
            parser.error("--scales: every divisor must be at least 1")
        for div in divs:
            path = world(args, div)
            cold_load(args, div, path)
            for model in args.models.split(","):
                run_model(args, div, path, model)
    print(table(args.work))


if __name__ == "__main__":
    main()
