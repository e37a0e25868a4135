"""Hit@10 per model grouped by the simulator's last move (diagnostic)."""
import json, sys
from collections import defaultdict
from regen_bench.data.synth import HABITS, simulate
name, users = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2000
knobs = dict(a.split("=") for a in sys.argv[3:])
h = HABITS["calibrated"].with_values(**knobs) if knobs else HABITS["calibrated"]
if name in ("base", "legacy"): h = HABITS["legacy"]
specs, people = simulate(users, 800, 0, h)
move = {u.user_id: u.moves[-1] for u in people}
import glob, os
rows = defaultdict(dict)
for f in glob.glob(f"candidates/results/{name}/*/sequential/*.samples.jsonl"):
    m = os.path.basename(f).split(".")[0]
    hits = defaultdict(list)
    for line in open(f):
        d = json.loads(line)
        hits[move[d["user_id"]]].append(d["greater"] < 10)
    for mv, v in hits.items():
        rows[mv][m] = (sum(v) / len(v), len(v))
models = sorted({m for r in rows.values() for m in r})
print("move".ljust(12), "n".rjust(5), *[m.rjust(10) for m in models])
for mv, r in sorted(rows.items()):
    n = next(iter(r.values()))[1]
    print(mv.ljust(12), str(n).rjust(5), *[f"{r[m][0]:10.3f}" for m in models])
