"""Full-ranking evaluation cost against the bare matmul and naive top-k/sort baselines.

Random float32 embeddings at Office scale by default (89k users x 28k items, d=64). Every
method scores the same users with the same chunking. Methods are interleaved round by round
and each reports its best of --repeat rounds (the least noisy estimate on a shared machine).
Full argsort and torch-side counting are slow, so they run on --subset users and are
extrapolated linearly (labelled in the output).

    .venv/bin/python benchmarks/ranking_eval.py [--users 89000 --items 28000 --dim 64 --repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from regen_bench.metrics import mean_metrics, metrics_from_counts, score_and_count
from regen_bench.metrics.counting import compiled_available, numpy_counting
from regen_bench.metrics.scoring import _MIN_CHUNK_ROWS, DEFAULT_CHUNK_ELEMENTS, _run_workers


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(size, n - s)) for s in range(0, n, size)]


def bare_matmul(u: torch.Tensor, vt: torch.Tensor, size: int) -> None:
    """Lower bound, plain loop: one multithreaded matmul per chunk, result discarded."""
    buf = torch.empty((min(size, u.shape[0]), vt.shape[1]), dtype=u.dtype)
    for s, m in chunks(u.shape[0], size):
        torch.mm(u[s : s + m], vt, out=buf[:m])


def bare_matmul_workers(u: torch.Tensor, vt: torch.Tensor, size: int) -> None:
    """Lower bound in score_and_count's layout: per-thread single-threaded matmuls only."""
    n = u.shape[0]

    def do_chunk(s: int, buf: torch.Tensor) -> None:
        m = min(size, n - s)
        torch.mm(u[s : s + m], vt, out=buf[:m])

    starts = list(range(0, n, size))
    workers = min(torch.get_num_threads(), len(starts))
    _run_workers(workers, starts, lambda: torch.empty((size, vt.shape[1])), do_chunk)


def full_ranking(
    u: torch.Tensor, v: torch.Tensor, tgt: np.ndarray, size: int, n_threads: int | None = None
) -> dict[str, float]:
    """What the harness runs: exact counts per chunk, then every metric."""
    g, t = score_and_count(u, v, tgt, chunk_size=size, n_threads=n_threads)
    return mean_metrics(metrics_from_counts(g, t))


def full_ranking_numpy(u: torch.Tensor, v: torch.Tensor, tgt: np.ndarray, size: int) -> object:
    """(b) with the numpy counting fallback instead of the compiled single pass."""
    with numpy_counting():
        return full_ranking(u, v, tgt, size)


def torch_counting(
    u: torch.Tensor, vt: torch.Tensor, tgt: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Alternative kernel: count with 2-D torch comparisons instead of numpy rows."""
    buf = torch.empty((min(size, u.shape[0]), vt.shape[1]), dtype=u.dtype)
    tg = torch.from_numpy(tgt)
    greater = np.empty(len(tgt), dtype=np.int64)
    ties = np.empty(len(tgt), dtype=np.int64)
    for s, m in chunks(u.shape[0], size):
        c = buf[:m]
        torch.mm(u[s : s + m], vt, out=c)
        tv = c.gather(1, tg[s : s + m, None])
        gt = (c > tv).sum(1)
        ge = (c >= tv).sum(1)
        greater[s : s + m] = gt.numpy()
        ties[s : s + m] = (ge - gt - 1).numpy()
    return greater, ties


def topk_baseline(u: torch.Tensor, vt: torch.Tensor, tgt: np.ndarray, size: int) -> np.ndarray:
    """Naive approach it replaces: top-10 per chunk, then look for the target in it.

    Gives recall/NDCG up to 10 only; ranks beyond 10 (and MRR) are unknown.
    """
    buf = torch.empty((min(size, u.shape[0]), vt.shape[1]), dtype=u.dtype)
    tg = torch.from_numpy(tgt)
    pos = np.full(len(tgt), -1, dtype=np.int64)
    for s, m in chunks(u.shape[0], size):
        torch.mm(u[s : s + m], vt, out=buf[:m])
        idx = torch.topk(buf[:m], 10, dim=1).indices
        hit = idx == tg[s : s + m, None]
        pos[s : s + m] = torch.where(hit.any(1), hit.int().argmax(1), -1).numpy()
    return pos


def argsort_baseline(u: torch.Tensor, vt: torch.Tensor, tgt: np.ndarray, size: int) -> np.ndarray:
    """Naive full ranking: sort every row, then find the target's position."""
    buf = torch.empty((min(size, u.shape[0]), vt.shape[1]), dtype=u.dtype)
    tg = torch.from_numpy(tgt)
    rank = np.empty(len(tgt), dtype=np.int64)
    for s, m in chunks(u.shape[0], size):
        torch.mm(u[s : s + m], vt, out=buf[:m])
        order = torch.argsort(buf[:m], dim=1, descending=True)
        rank[s : s + m] = (order == tg[s : s + m, None]).int().argmax(1).numpy()
    return rank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=89_000)
    ap.add_argument("--items", type=int, default=28_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=None, help="rows per chunk")
    ap.add_argument(
        "--big-chunk", type=int, default=150, help="rows per chunk of the large-chunk bare matmul"
    )
    ap.add_argument("--subset", type=int, default=4_000, help="users for the slow baselines")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    size = args.chunk_size or max(_MIN_CHUNK_ROWS, DEFAULT_CHUNK_ELEMENTS // args.items)
    gen = torch.Generator().manual_seed(args.seed)
    u = torch.randn(args.users, args.dim, generator=gen)
    v = torch.randn(args.items, args.dim, generator=gen)
    vt = v.T.contiguous()  # the layout score_and_count uses; baselines get it too
    tgt = np.random.default_rng(args.seed).integers(0, args.items, size=args.users)
    sub = min(args.subset, args.users)
    n = args.users

    print(
        f"users={n} items={args.items} dim={args.dim} chunk={size} rows "
        f"repeat={args.repeat} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"cpus={os.cpu_count()} ({platform.processor() or platform.machine()}) "
        f"load={os.getloadavg()} compiled-counting={compiled_available()}"
    )
    # name, callable, users it scores, is it a bare-matmul lower bound. Methods are interleaved
    # round by round so that load from other processes hits them alike; best round reported.
    methods: list[tuple[str, Callable[[], object], int, bool]] = [
        ("(a) bare matmul, same chunks, plain loop", lambda: bare_matmul(u, vt, size), n, True),
        (
            "(a') bare matmul, same chunks, worker layout",
            lambda: bare_matmul_workers(u, vt, size),
            n,
            True,
        ),
        (
            f"(a'') bare matmul, {args.big_chunk}-row chunks",
            lambda: bare_matmul(u, vt, args.big_chunk),
            n,
            True,
        ),
        (
            "(b) full ranking: score_and_count+metrics",
            lambda: full_ranking(u, v, tgt, size),
            n,
            False,
        ),
        (
            "(b') same, matmul then count on 1 thread",
            lambda: full_ranking(u, v, tgt, size, n_threads=1),
            n,
            False,
        ),
        (
            "(b'') same, numpy counting (no numba)",
            lambda: full_ranking_numpy(u, v, tgt, size),
            n,
            False,
        ),
        ("(c) naive torch.topk(10) per chunk", lambda: topk_baseline(u, vt, tgt, size), n, False),
        (
            "(c') naive full argsort per chunk",
            lambda: argsort_baseline(u[:sub], vt, tgt[:sub], size),
            sub,
            False,
        ),
        (
            "(d) counting with torch 2-D ops",
            lambda: torch_counting(u[:sub], vt, tgt[:sub], size),
            sub,
            False,
        ),
    ]
    best = [float("inf")] * len(methods)
    outputs: list[object] = [None] * len(methods)
    for _ in range(args.repeat):
        for i, (_, fn, _, _) in enumerate(methods):
            t0 = time.perf_counter()
            outputs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    full = [secs * n / m[2] for m, secs in zip(methods, best, strict=True)]
    # Ratios are to the fastest bare matmul of any layout, the strictest lower bound measured.
    t_bare = min(t for t, m in zip(full, methods, strict=True) if m[3])
    t_eval = full[3]
    res, res_np = outputs[3], outputs[5]
    pos, rank, tc = outputs[6], outputs[7], outputs[8]

    print(f"\n{'method':46s} {'seconds':>9s} {'users/s':>11s} {'x bare':>7s}")
    for (name, _, m, _), secs in zip(methods, full, strict=True):
        mark = f"  (timed on {m} users, extrapolated)" if m < n else ""
        print(f"{name:46s} {secs:9.3f} {n / secs:11,.0f} {secs / t_bare:7.2f}{mark}")

    # Sanity: the baselines agree with the exact counts where they overlap.
    assert isinstance(pos, np.ndarray) and isinstance(rank, np.ndarray)
    assert isinstance(res, dict) and isinstance(tc, tuple)
    assert res == res_np, "compiled and numpy counting disagree"
    g, t = score_and_count(u[:sub], v, tgt[:sub], chunk_size=size)
    topk_recall = float((pos >= 0).mean())
    print(
        f"\nrecall@10 full-ranking={res['recall@10']:.6f} topk={topk_recall:.6f}; "
        f"argsort rank == greater on {int((rank == g).sum())}/{sub} users "
        f"({int((t > 0).sum())} with ties); torch counting agrees: "
        f"{bool(np.array_equal(tc[0], g) and np.array_equal(tc[1], t))}"
    )
    print(
        f"target: (b) within 1.5x of the fastest bare matmul: "
        f"{'yes' if t_eval <= 1.5 * t_bare else 'NO'} ({t_eval / t_bare:.2f}x)"
    )
    print(f"load average at end (other processes share these CPUs): {os.getloadavg()}")


if __name__ == "__main__":
    main()
