"""Training and ranking speed of this checkout against another one, side by side in one run.

Runs ``benchmarks/train_speed.py`` and ``benchmarks/ranking_eval.py`` of both checkouts in
turn (baseline, this, baseline, this ...), each with its own interpreter, parses the figures
they print and reports, per figure, the median seconds of each and the median of the pairwise
ratios (this / baseline; below 1 is faster). Pairing run by run keeps the comparison fair when
a shared machine's speed drifts.

    .venv/bin/python benchmarks/compare_revisions.py --baseline-root ../old \\
        --baseline-python ../old/.venv/bin/python [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
#: The ranking_eval.py rows compared (the harness's own path and its numpy fallback).
RANKING_ROWS = (
    "(b) full ranking: score_and_count+metrics",
    "(b'') same, numpy counting (no numba)",
)


def _run(python: str, root: Path, script: str, args: list[str]) -> str:
    proc = subprocess.run(
        [python, str(root / "benchmarks" / script), *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{root}/benchmarks/{script} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def train_figures(out: str) -> dict[str, float]:
    """``model -> seconds per epoch`` from train_speed.py's table."""
    figures = {}
    for line in out.splitlines():
        m = re.match(r"^(\w+)\s+[\d.]+\s+([\d.]+)\s+\d+\s+[\d,]+$", line.strip())
        if m:
            figures[f"train {m.group(1)} s/epoch"] = float(m.group(2))
    return figures


def ranking_figures(out: str) -> dict[str, float]:
    """``method -> seconds`` for the harness's rows of ranking_eval.py's table."""
    figures = {}
    for line in out.splitlines():
        for row in RANKING_ROWS:
            if line.startswith(row):
                figures[f"rank: {row}"] = float(line[len(row) :].split()[0])
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-root", required=True, help="the other checkout's root folder")
    ap.add_argument("--baseline-python", required=True, help="its interpreter (with its venv)")
    ap.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs per model")
    args = ap.parse_args()
    sides = {
        "baseline": (args.baseline_python, Path(args.baseline_root).resolve()),
        "this": (sys.executable, HERE),
    }
    train_args = ["--epochs", str(args.epochs), "--threads", str(args.threads)]
    samples: dict[str, dict[str, list[float]]] = {"baseline": {}, "this": {}}
    for rnd in range(args.rounds):
        for side, (python, root) in sides.items():
            figures = train_figures(_run(python, root, "train_speed.py", train_args))
            figures |= ranking_figures(_run(python, root, "ranking_eval.py", ["--repeat", "1"]))
            for key, value in figures.items():
                samples[side].setdefault(key, []).append(value)
            print(f"round {rnd + 1}/{args.rounds} {side}: {len(figures)} figures", flush=True)
    print(f"\n{'figure':<52} {'baseline':>9} {'this':>9} {'this/base':>10}")
    for key in samples["baseline"]:
        base, this = samples["baseline"][key], samples["this"].get(key, [])
        if len(this) != len(base):
            print(f"{key:<52} missing in this checkout")
            continue
        ratio = statistics.median(t / b for t, b in zip(this, base, strict=True))
        print(
            f"{key:<52} {statistics.median(base):9.3f} {statistics.median(this):9.3f} {ratio:10.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
