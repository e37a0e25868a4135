"""Time and peak memory of ``regen-bench data prepare`` on Office-scale raw files.

No Amazon files can be downloaded here, so the script first writes synthetic raw files shaped
like Office_Products_5 (default 800k reviews of ~101k users over ~28k items, review texts of
50-600 characters, a few repeated purchases and equal times, metadata with HTML fragments and
price strings, every fourth meta line a Python literal). It then runs ``data prepare`` in a
child process and reports wall time and the child's peak resident memory.

    .venv/bin/python benchmarks/amazon_prepare.py [--reviews 800000 --dir /tmp/amazon-bench]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

WORDS = [
    "pen",
    "paper",
    "ink",
    "stapler",
    "great",
    "works",
    "well",
    "cheap",
    "sturdy",
    "black",
    "blue",
    "fine",
    "point",
    "smooth",
    "office",
    "desk",
    "printer",
    "toner",
    "label",
    "folder",
    "binder",
    "would",
    "buy",
    "again",
    "arrived",
    "quickly",
]


def generate(folder: Path, reviews: int, items: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rev_path, meta_path = (
        folder / "Office_Products_5.json.gz",
        folder / "meta_Office_Products.json.gz",
    )
    if rev_path.exists() and meta_path.exists():
        return rev_path, meta_path
    weights = [1 / (i + 10) for i in range(items)]  # a popular head and a long tail
    lines: list[str] = []
    user = 0
    while len(lines) < reviews:
        n = 5 + min(int(rng.expovariate(1 / 3.0)), 200)
        start = 1_100_000_000 + rng.randrange(400_000_000)
        picks = rng.choices(range(items), weights, k=n)
        for k, item in enumerate(picks):
            day = start + 86_400 * (k // 2)  # pairs of equal times
            text = " ".join(rng.choices(WORDS, k=rng.randint(10, 100)))
            lines.append(
                json.dumps(
                    {
                        "overall": float(rng.randint(1, 5)),
                        "verified": True,
                        "reviewTime": "01 1, 2015",
                        "reviewerID": f"A{user:013d}",
                        "asin": f"B{item:09d}",
                        "reviewerName": "Shopper",
                        "reviewText": text,
                        "summary": " ".join(rng.choices(WORDS, k=4)),
                        "unixReviewTime": day,
                    }
                )
            )
        user += 1
    rng.shuffle(lines)  # the real files are ordered by item, not user
    with gzip.open(rev_path, "wt", compresslevel=1) as fh:
        fh.writelines(line + "\n" for line in lines[:reviews])
    with gzip.open(meta_path, "wt", compresslevel=1) as fh:
        for i in range(items + items // 10):  # extra items nobody reviewed
            obj = {
                "asin": f"B{i:09d}",
                "title": f"Gel Pens &amp; Markers <b>{i}</b>",
                "brand": "Acme",
                "price": rng.choice(["$12.99", "$5.99 - $12.99", ".a-box{color:#fff}", ""]),
                "category": ["Office Products", "Office &amp; School Supplies", "Writing"],
                "description": ["<p>" + " ".join(rng.choices(WORDS, k=60)) + "</p>"],
                "also_buy": [f"B{rng.randrange(items):09d}" for _ in range(20)],
                "main_cat": "Office Products",
            }
            fh.write((repr(obj) if i % 4 == 0 else json.dumps(obj)) + "\n")
    return rev_path, meta_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=800_000)
    parser.add_argument("--items", type=int, default=28_000)
    parser.add_argument("--dir", default="/tmp/amazon-bench")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rev, meta = generate(Path(args.dir), args.reviews, args.items, args.seed)
    print(
        f"inputs: {rev} ({rev.stat().st_size / 1e6:.1f} MB), {meta} "
        f"({meta.stat().st_size / 1e6:.1f} MB), ready in {time.perf_counter() - t0:.1f} s"
    )
    out = Path(args.dir) / "office-prepared.jsonl.gz"
    cmd = [
        sys.executable,
        "-m",
        "regen_bench.cli",
        "data",
        "prepare",
        "--reviews",
        str(rev),
        "--meta",
        str(meta),
        "--out",
        str(out),
        "-q",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    print(proc.stdout, end="")
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
        sys.exit(proc.returncode)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(
        f"data prepare: {wall:.1f} s wall, peak RSS {peak_kib / 1024:.0f} MiB, "
        f"output {out.stat().st_size / 1e6:.1f} MB, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
