"""Wall time of ``regen-bench --help`` and ``regen-bench run --help`` (median of N fresh runs).

Each command runs in a new process, as a user types it; the median of ``--repeat`` runs
(default 5) is printed with the minimum and maximum, and whether the process imported numpy,
pydantic or torch (the help should need none of them). The goal is under 0.25 s.

    python benchmarks/cli_help_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("run", "--help"))
HEAVY = ("numpy", "pydantic", "torch")
#: Runs the command line in-process, then lists the heavy modules it imported.
PROBE = (
    "import sys\n"
    "from regen_bench.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def command_line() -> list[str]:
    """The ``regen-bench`` script next to this interpreter, else ``python -m regen_bench``."""
    script = Path(sys.executable).with_name("regen-bench")
    if script.exists():
        return [str(script)]
    found = shutil.which("regen-bench")
    return [found] if found else [sys.executable, "-m", "regen_bench"]


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def heavy_imports(args: tuple[str, ...]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (default: 5)")
    args = parser.parse_args()
    base = command_line()
    time_once([*base, "--help"])  # warm the file cache once
    print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8}  heavy imports")
    for cmd in COMMANDS:
        times = [time_once([*base, *cmd]) for _ in range(args.repeat)]
        label = "regen-bench " + " ".join(cmd)
        print(
            f"{label:<28} {statistics.median(times):>7.3f}s {min(times):>7.3f}s "
            f"{max(times):>7.3f}s  {heavy_imports(cmd) or 'none'}"
        )


if __name__ == "__main__":
    main()
