"""Training speed of the neural recommenders on a data set (default: the embedded ``mini``).

For each model, trains ``--epochs`` epochs without validation (so only training is timed) and
prints seconds per epoch and training sequences per second. FLARE's one-off text encoding
(the frozen encoder over every item and critique) is timed separately as "prepare".

    .venv/bin/python benchmarks/train_speed.py [--models sasrec,bert4rec,flare]
        [--task critique] [--epochs 3] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from regen_bench.plugins import get_plugin_manager
from regen_bench.resolve import resolve_dataset
from regen_bench.tasks import build_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mini")
    ap.add_argument("--task", default="critique", choices=("sequential", "critique"))
    ap.add_argument("--models", default="sasrec,bert4rec,flare")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # 1 on a shared machine: oversubscription is slow

    plugins = get_plugin_manager()
    data = build_task(resolve_dataset(args.dataset, plugins=plugins), args.task)
    n_seq = sum(len(u) >= 2 for u in data.train)
    print(
        f"dataset={args.dataset} task={args.task} items={len(data.catalog)} "
        f"train_sequences={n_seq} epochs={args.epochs} torch={torch.__version__} "
        f"threads={torch.get_num_threads()} cpus={os.cpu_count()} {platform.processor()}"
    )
    print(f"{'model':<10} {'prepare_s':>9} {'s/epoch':>8} {'seq/s':>8} {'params':>9}")
    for name in args.models.split(","):
        factory = plugins.get("model", name).factory
        model = factory(data.catalog, seed=args.seed, epochs=args.epochs, patience=args.epochs)
        start = time.perf_counter()
        log = model.fit(data.train, [])  # no validation: time training alone
        total = time.perf_counter() - start
        prepare = float(log.get("prepare_s", 0.0))
        per_epoch = (total - prepare) / max(int(log["epochs"]), 1)
        print(
            f"{name:<10} {prepare:>9.2f} {per_epoch:>8.2f} {n_seq / per_epoch:>8.0f} "
            f"{model.num_parameters():>9,}"
        )


if __name__ == "__main__":
    main()
