"""Clothing-scale data: synthesise a REGEN file with the scale engine, then time cold and
warm loads.

    .venv/bin/python benchmarks/data_scale.py                          # REGEN Clothing's size
    .venv/bin/python benchmarks/data_scale.py --users 73046 --items 23553  # 1/16 of it
    .venv/bin/python benchmarks/data_scale.py --data clothing.jsonl.gz   # an existing file

The file is ``regen-bench data synth --engine scale`` (``regen_bench.data.synth.scale``:
users in blocks with numpy, 2 worker processes, gzip level 1), by default at REGEN Clothing's
1,168,735 users and 376,847 items (``--preset clothing``). Each step runs in a fresh
subprocess and prints its wall time and peak RSS (``resource.getrusage`` of that child and of
the synth step's workers, the larger). The cold load builds the columnar cache beside the
file (it is removed first); the warm load memory-maps it. Targets on a 2-core machine at full
scale: synth < 10 min and peak RSS of a few GB; cold load < 10 min and peak RSS < 8 GB; warm
load < 1 min.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from regen_bench.data.synth.scale import CLOTHING_ITEMS, CLOTHING_USERS

SYNTH = """
from regen_bench.data.synth.scale import write_scale
st = write_scale({path!r}, users={users}, items={items}, seed={seed}, progress=True)
print("\\n".join(st.lines()), file=sys.stderr)
"""
LOAD = """
from regen_bench.data.dataset import Dataset
ds = Dataset.from_file({path!r}, progress=True)
lengths = ds.lengths()
out = {{"users": len(ds.users), "items": len(ds.catalog), "interactions": int(lengths.sum()),
       "critique_coverage": round(ds.critique_coverage(), 4),
       "last_user_items": len(ds.users[-1]), "last_item": ds.catalog[len(ds.catalog) - 1].asin}}
print(json.dumps(out), file=sys.stderr)
"""
CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
{body}
peak = max(resource.getrusage(who).ru_maxrss for who in
           (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print("RESULT " + json.dumps({{"wall_s": time.perf_counter() - t0, "peak_rss_mb": peak / 1024}}))
"""


def step(name: str, body: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(body=body)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.rsplit("RESULT ", 1)[1])
    print(f"{name:<6} wall {result['wall_s']:8.1f} s   peak RSS {result['peak_rss_mb']:8.0f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=CLOTHING_USERS)
    parser.add_argument("--items", type=int, default=CLOTHING_ITEMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="load this file instead of synthesising one")
    parser.add_argument("--workdir", type=Path, help="where the synthetic file goes (kept)")
    args = parser.parse_args()
    tmp = None
    if args.data is None:
        workdir = args.workdir or Path(tmp := tempfile.mkdtemp(prefix="regen-scale-"))
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"synth-{args.users}u-{args.items}i-s{args.seed}.jsonl.gz"
        if not path.exists():
            step("synth", SYNTH.format(path=str(path), **vars(args)))
    else:
        path = args.data
    size = path.stat().st_size
    print(f"file   {path} ({size / 1e9:.2f} GB)")
    shutil.rmtree(f"{path}.regen-cache", ignore_errors=True)
    step("cold", LOAD.format(path=str(path)))
    step("warm", LOAD.format(path=str(path)))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
