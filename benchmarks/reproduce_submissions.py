"""Re-run every accepted submission from what its result file records; compare bit for bit.

For each ``submissions/<dataset>/<task>/<model>.json`` this rebuilds the ``regen-bench run``
command from the file (model, task, dataset, narrative type, seed, torch threads, subset, tie and
history policy, every model option as ``--set``), runs it into a scratch folder and compares the
new per-sample file's sha256 with the recorded ``samples_sha256``, and every metric. It is how a
refactoring shows that no published number moved:

    .venv/bin/python benchmarks/reproduce_submissions.py [--submissions submissions]
        [--only sasrec,popularity] [--keep DIR] [--baseline-exe ../old/.venv/bin/regen-bench]

A trained model's per-sample file is bit-identical only on the same kind of CPU (float kernels
differ between instruction sets, even with one thread). ``--baseline-exe`` therefore also runs
each recorded command with another installation (e.g. the previous revision) on this machine:
a file that reproduces against that baseline shows that the code change moved no number, even
where the published file came from another CPU.

Exit status 1 when any file reproduces neither its recorded hash nor the baseline's run.
Narrated results (conversational task) need their narrator weights and are reported as not
checked here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from regen_bench.leaderboard import verify
from regen_bench.results import Result


def recorded_command(result: dict[str, Any], output: Path) -> list[str]:
    """The ``regen-bench run`` argument list that the result file records."""
    return verify.recorded_command(Result.model_validate(result), output)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rerun(result: dict[str, Any], scratch: Path, exe: Path) -> tuple[dict[str, Any], str]:
    """Run the recorded command with the ``regen-bench`` executable ``exe``: (result, sha256)."""
    cmd = recorded_command(result, scratch)
    proc = subprocess.run([str(exe), *cmd[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{exe} run failed ({proc.returncode}): {last[0]}")
    folder = scratch / result["dataset"]["name"] / result["task"]["name"]
    new = json.loads((folder / f"{result['model']['name']}.json").read_text())
    return new, sha256(folder / new["samples_file"])


def check(path: Path, scratch: Path, baseline_exe: Path | None = None) -> tuple[bool, str]:
    """Re-run one submission; (reproduced, one-line detail)."""
    result = json.loads(path.read_text())
    if result.get("narration"):
        return False, "not checked: narrated result (needs its narrator weights)"
    try:
        this_exe = Path(sys.executable).with_name("regen-bench")
        new, new_sha = rerun(result, scratch / "this", this_exe)
        if new_sha == result["samples_sha256"]:
            if new["metrics"] != result["metrics"]:
                return False, "samples identical but metrics differ"
            return True, f"samples {new_sha[:12]} identical to the published file"
        detail = f"samples {new_sha[:12]} != published {result['samples_sha256'][:12]}"
        if baseline_exe is None:
            return False, detail
        base, base_sha = rerun(result, scratch / "baseline", baseline_exe)
    except RuntimeError as exc:
        return False, str(exc)
    if base_sha == new_sha and base["metrics"] == new["metrics"]:
        return True, f"{detail}; identical to the baseline's run on this machine"
    return False, f"{detail}; baseline's run gives {base_sha[:12]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--submissions", default="submissions", help="folder of accepted results")
    ap.add_argument("--only", default="", help="comma-separated model names to check")
    ap.add_argument("--keep", default=None, help="keep the re-run results in this folder")
    ap.add_argument(
        "--baseline-exe",
        default=None,
        help="another installation's regen-bench executable to run the same commands with",
    )
    args = ap.parse_args()
    only = {m for m in args.only.split(",") if m}
    files = sorted(
        p
        for p in Path(args.submissions).glob("*/*/*.json")
        if not p.name.endswith(verify.VERIFIED_SUFFIX) and (not only or p.stem in only)
    )
    if not files:
        print(f"no result files under {args.submissions}/<dataset>/<task>/", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        scratch = Path(tempfile.mkdtemp(prefix="regen-repro-"))
        start = time.perf_counter()
        baseline = Path(args.baseline_exe) if args.baseline_exe else None
        ok, detail = check(path, scratch, baseline)
        print(f"{'OK  ' if ok else 'FAIL'} {path}  ({time.perf_counter() - start:.1f}s)  {detail}")
        print("     " + shlex.join(recorded_command(json.loads(path.read_text()), Path("DIR"))))
        failed += not ok
        if args.keep:
            shutil.copytree(scratch, Path(args.keep) / path.parent.name, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{len(files) - failed} of {len(files)} submission(s) reproduced bit for bit")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
