"""The torch recommenders' catalog scoring, torch's matmul against numpy's BLAS, side by side.

What ``Model.score`` costs per user for a batch of ``SCORE_BATCH`` users at a catalog of
``--items`` (default: REGEN Clothing's 376,847) and width ``--dim``, and the ranking that
follows in the runner (rank counts and top-10, the same in both):

- ``torch``: the models' former ``(states @ items.T) * scale + bias`` in torch, copied into
  the batch's score array as ``batched_scores`` did;
- ``blas``: :func:`~regen_bench_plugins.torchrec.scoring.item_scores` as the models call it
  now, whose array the runner takes without a copy.

Rounds alternate the two and each row reports its median; the ratio is the median of the
per-round ratios. The scores of both are compared bit for bit.

    .venv/bin/python benchmarks/model_scoring.py [--items 376847 --dim 64 --rounds 5 --threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from regen_bench.metrics import rank_counts
from regen_bench.runner.scoring import top_k
from regen_bench_plugins.torchrec.scoring import item_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=376_847, help="catalog size")
    parser.add_argument("--dim", type=int, default=64, help="embedding width")
    parser.add_argument("--batch", type=int, default=256, help="users per call (SCORE_BATCH)")
    parser.add_argument("--batches", type=int, default=4, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch (and BLAS) threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    items = torch.randn(args.items + 1, args.dim, generator=gen)[1:]
    bias = torch.randn(args.items, generator=gen) * 0.01
    scale = args.dim**-0.5
    states = [torch.randn(args.batch, args.dim, generator=gen) for _ in range(args.batches)]
    targets = np.random.default_rng(0).integers(0, args.items, size=args.batch)

    def torch_path(s: torch.Tensor) -> np.ndarray:
        out = np.empty((args.batch, args.items), dtype=np.float32)
        out[:] = ((s @ items.T) * scale + bias).numpy()
        return out

    def blas_path(s: torch.Tensor) -> np.ndarray:
        return item_scores(s, items, scale, bias).numpy()

    with torch.no_grad():
        same = all(np.array_equal(torch_path(s), blas_path(s)) for s in states[:2])
        times: dict[str, list[float]] = {"torch": [], "blas": [], "rank": []}
        for _ in range(args.rounds):
            for name, path in (("torch", torch_path), ("blas", blas_path)):
                t0 = time.perf_counter()
                for s in states:
                    scores = path(s)
                times[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in states:
                rank_counts(scores, targets)
                top_k(scores, 10)
            times["rank"].append(time.perf_counter() - t0)
    users = args.batch * args.batches
    ms = {k: statistics.median(v) / users * 1e3 for k, v in times.items()}
    ratio = statistics.median(t / b for t, b in zip(times["torch"], times["blas"], strict=True))
    print(
        f"catalog {args.items:,} items x d={args.dim}, {args.batch} users per call, "
        f"{args.threads} thread(s), median of {args.rounds} rounds of {users:,} users"
    )
    print(f"{'scores (torch matmul + copy)':<34} {ms['torch']:6.3f} ms/user")
    print(f"{'scores (item_scores, numpy BLAS)':<34} {ms['blas']:6.3f} ms/user")
    print(f"{'rank counts + top-10 (both)':<34} {ms['rank']:6.3f} ms/user")
    print(f"scores: torch / blas = {ratio:.2f}x; bit-identical: {same}")
    total_old, total_new = ms["torch"] + ms["rank"], ms["blas"] + ms["rank"]
    print(f"scores + ranking: {total_old:.3f} -> {total_new:.3f} ms/user")


if __name__ == "__main__":
    main()
