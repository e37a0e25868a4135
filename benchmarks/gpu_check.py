"""One short GPU check at Clothing scale: exact ranking, LUMEN training, SASRec and FLARE epochs.

    bash benchmarks/gpu_check.sh [--out gpu-check.json]       # one GPU, under 8 minutes
    bash benchmarks/gpu_check.sh --small --threads 1          # scaled down, on CPU, < 1 minute

Parts (each timed, each bounded by its own time cap, each guarded: a failing part prints one
error line and the others still run; the table at the end lists every part):

(a) ranking: exact full-ranking evaluation of 1,168,735 users x 376,847 items (REGEN's
    Clothing, Table 1), d=64, random float32 embeddings (fixed seed), one random target per
    user. Rank counts come from the harness's own chunked scorer,
    :func:`regen_bench.metrics.score_and_count`, which scores and counts on the tensors' device
    (4,096-user chunks on a GPU: a 6 GB float32 score block); the top-10 is a second chunked
    pass with ``torch.topk``, because the runner's ``top_k`` is numpy-only. Precision: float32
    with TF32 off, as the harness ranks float32 scores on CPU; TF32's 10-bit mantissa would
    move scores by ~1e-3 relative and reorder near-ties, so counts would no longer be those of
    a float32 run. The first 256 users' scores, computed as ``score_and_count`` computes them,
    are also copied to the CPU, counted by :func:`regen_bench.metrics.rank_counts` and ranked
    by the runner's ``top_k``; the table says on how many rows both sides agree exactly.
(b) lumen: LUMEN training (:class:`regen_bench_plugins.lumen.net.LumenNet`: backbone + item
    table + item head over the Clothing catalog) on a random-init Gemma-2B-shaped backbone
    (hidden 2048, 18 layers, 8 heads of 256, 1 KV head, MLP 16384, vocab 256,000; about 2.5 B
    parameters, plus 2 x 0.77 B for the item table and head), bf16 autocast over float32
    master weights (what ``accelerate``'s ``mixed_precision=bf16`` does in LUMEN's training),
    AdamW at the paper's rates, micro-batches of 8 rows x 384 tokens (~300 tokens per prefix
    with the paper's prompt block plus up to 96 narrative tokens; every row here carries 96
    narrative label tokens, an upper bound on the text-head cost), accumulated 64 times (the
    paper's batch of 512). MFU = model FLOPs / s / peak dense bf16 FLOPs of the detected GPU,
    model FLOPs per micro-batch = 6 x decoder parameters x tokens + 12 x layers x heads x
    head_dim x seq x tokens (PaLM's attention term) + 6 x hidden x vocab x narrative tokens
    + 6 x hidden x items x rows (item head). Memory: ~4 B float32 parameters with AdamW
    states is ~65 GB: an H200 (or 80 GB card with ``--lumen-items`` lowered).
(c) sasrec, flare: a fixed number of training steps of the project's own networks
    (:class:`~regen_bench_plugins.sasrec.net.SASRecNet`, :class:`~regen_bench_plugins.flare.
    net.FlareNet`) over a 376,847-item vocabulary, each model's default options (batch 128 /
    256, max_len 50, full-softmax cross-entropy; FLARE recomputes every item's vector through
    the resampler each step, plus its InfoNCE term), on training sequences with the synthetic
    world's length profile (5 + Exp(5) purchases, at most 20, minus the two held out). The
    step replays the model's ``_batch_loss`` with the networks' own helpers (left padding,
    masking, losses), so it is the epoch loop's step minus the Python data plumbing. FLARE's
    text side: random encoder states (384-dim, 48 tokens, 16-48 valid) PCA-projected once by
    the network's own ``fit_projection``/``project`` into a float32 (items, 48, 64) tensor
    (4.6 GB at Clothing scale), as the model caches it; critique vectors are left out (the
    ``sequential`` task; in ``critique`` they add a resampler pass over the batch's critiques,
    a few percent of the catalog pass). The catalog pass is one attention batch of 377k
    items; on CUDA the resampler's attention runs it in slices of 32,768 rows, as the
    memory-efficient kernel refuses more than 65,535 batch rows when it draws dropout. Epoch
    time = steps per epoch (training windows / batch; every user is one window, as no profile
    sequence exceeds max_len) / measured steps per s.

Expected seconds on one H200 (caps in brackets; a part that reaches its cap stops, says so,
and extrapolates from the users/steps done): startup ~15; (a) 4.4e11 scores = 2.8e13 FLOPs,
~0.5 s of float32 matmul, the rest memory-bound (~10 TB of score traffic for counting, about
as much for top-10): ~10-20 s [90]; (b) building 4 B parameters on the GPU ~10 s, ~4e13 FLOPs
per micro-batch, ~0.1 s each at 40% MFU: 2 warm-up micro-batches + 3 optimizer steps of 64,
~20-30 s [120]; (c) SASRec ~10 ms/step x 300 [45]; FLARE's catalog pass ~0.1-0.3 s/step x 30
[75]. Expected total ~2 minutes; the caps keep it under 6.5; the wrapper stops it at 7.5.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CLOTHING_USERS = 1_168_735
CLOTHING_ITEMS = 376_847
#: Peak dense bf16 tensor FLOPs (TFLOP/s) of common GPUs, from the vendors' data sheets; the
#: first name fragment contained in ``torch.cuda.get_device_name()`` wins (order matters).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
PARTS = ("ranking", "lumen", "sasrec", "flare")
ROOT = Path(__file__).resolve().parents[1]


class TimeUp(BaseException):
    """Raised by the SIGTERM handler (the wrapper's timeout): stop and print what is done."""


def peak_tflops(device_name: str) -> float | None:
    """Peak dense bf16 TFLOP/s of a GPU named ``device_name``, or None when unknown."""
    for fragment, tflops in PEAK_BF16_TFLOPS:
        if fragment.lower() in device_name.lower():
            return tflops
    return None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


@dataclass
class Settings:
    """Sizes of every part; :func:`small` scales them down for a CPU."""

    users: int = CLOTHING_USERS
    items: int = CLOTHING_ITEMS
    dim: int = 64
    rank_chunk: int = 4096
    check_rows: int = 256
    rank_cap_s: float = 90.0
    # Gemma 2B (google/gemma-2b config.json).
    lm: dict[str, Any] = field(
        default_factory=lambda: {
            "vocab_size": 256_000,
            "hidden_size": 2048,
            "intermediate_size": 16_384,
            "num_hidden_layers": 18,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
        }
    )
    lumen_items: int = CLOTHING_ITEMS
    lumen_micro: int = 8
    lumen_seq: int = 384
    lumen_text_tokens: int = 96
    lumen_slots: int = 11  # max_history=10 purchases + the target's ID slot
    lumen_accum: int = 64
    lumen_steps: int = 3
    lumen_warmup_micro: int = 2
    lumen_cap_s: float = 120.0
    rec_items: int = CLOTHING_ITEMS
    epoch_users: int = CLOTHING_USERS
    sasrec_steps: int = 300
    flare_steps: int = 30
    warmup_steps: int = 3
    sasrec_cap_s: float = 45.0
    flare_cap_s: float = 75.0
    flare_tokens: int = 48

    @classmethod
    def small(cls) -> Settings:
        return cls(
            users=20_000,
            items=5_000,
            rank_chunk=1024,
            check_rows=64,
            rank_cap_s=20.0,
            lm={
                "vocab_size": 1024,
                "hidden_size": 64,
                "intermediate_size": 256,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 1,
                "head_dim": 16,
            },
            lumen_items=5_000,
            lumen_micro=2,
            lumen_seq=64,
            lumen_text_tokens=16,
            lumen_slots=4,
            lumen_accum=2,
            lumen_steps=2,
            lumen_warmup_micro=1,
            lumen_cap_s=20.0,
            rec_items=5_000,
            epoch_users=20_000,
            sasrec_steps=20,
            flare_steps=8,
            warmup_steps=2,
            sasrec_cap_s=15.0,
            flare_cap_s=20.0,
            flare_tokens=16,
        )


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def free(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def peak_memory_gb(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)


def log(part: str, text: str) -> None:
    print(f"[{part}] {text}", flush=True)


# -- (a) exact full ranking ---------------------------------------------------------------------


def part_ranking(s: Settings, dev: torch.device) -> dict[str, Any]:
    """Rank counts (the harness's scorer) and top-10 of every user, time-capped."""
    from regen_bench.metrics import rank_counts, score_and_count
    from regen_bench.runner.scoring import top_k

    # Exact float32 ranking, as on the CPU (see the module docstring): no TF32 in matmuls.
    torch.set_float32_matmul_precision("highest")
    gen = torch.Generator(device=dev).manual_seed(0)
    u = torch.randn(s.users, s.dim, generator=gen, device=dev)
    v = torch.randn(s.items, s.dim, generator=gen, device=dev)
    tgt = torch.randint(s.items, (s.users,), generator=gen, device=dev).cpu().numpy()
    # On a GPU, 4096-user chunks (the scorer's CPU default is ~3M scores per chunk, i.e. 8 rows
    # at 377k items: far too small a matmul for a GPU). On CPU its own default and workers.
    chunk = s.rank_chunk if dev.type == "cuda" else None
    step = (chunk or s.rank_chunk) * 16  # users per call: the cap is checked between calls
    greater = np.empty(s.users, dtype=np.int64)
    ties = np.empty(s.users, dtype=np.int64)
    warm = min(s.rank_chunk, s.users)  # kernels and allocator warmed before timing
    score_and_count(u[:warm], v, tgt[:warm], chunk_size=chunk)
    sync(dev)
    t0 = time.perf_counter()
    counted = 0
    while counted < s.users and time.perf_counter() - t0 < s.rank_cap_s / 2:
        hi = min(counted + step, s.users)
        g, t = score_and_count(u[counted:hi], v, tgt[counted:hi], chunk_size=chunk)
        greater[counted:hi], ties[counted:hi] = g, t
        counted = hi
    count_s = time.perf_counter() - t0

    # Top-10: the same chunked matmul, then torch.topk on the device.
    vt = v.T.contiguous()
    rows = s.rank_chunk
    top = torch.empty((s.users, 10), dtype=torch.int64, device=dev)
    buf = torch.empty((min(rows, s.users), s.items), dtype=torch.float32, device=dev)
    torch.topk(torch.mm(u[:warm], vt, out=buf[:warm]), 10, dim=1)
    sync(dev)
    t1 = time.perf_counter()
    ranked = 0
    while ranked < s.users and time.perf_counter() - t1 < s.rank_cap_s / 2:
        m = min(rows, s.users - ranked)
        torch.mm(u[ranked : ranked + m], vt, out=buf[:m])
        top[ranked : ranked + m] = torch.topk(buf[:m], 10, dim=1).indices
        ranked += m
    sync(dev)
    top_s = time.perf_counter() - t1

    # Exactness: the scores of score_and_count's single chunk for the first c users (the same
    # matmul call: one c-row buffer, same operands) counted and ranked by the harness's CPU code.
    c = min(s.check_rows, s.users)
    scores = torch.mm(u[:c], vt, out=torch.empty((c, s.items), device=dev))
    g_dev, t_dev = score_and_count(u[:c], v, tgt[:c], chunk_size=c)
    cpu = scores.cpu().numpy()
    g_ref, t_ref = rank_counts(cpu, tgt[:c])
    top_ref = top_k(cpu, 10)
    top_dev = torch.topk(scores, 10, dim=1).indices.cpu().numpy()
    agree = (g_dev == g_ref) & (t_dev == t_ref) & (top_dev == top_ref).all(axis=1)

    count_rate = counted / count_s
    top_rate = ranked / top_s
    full_s = s.users / count_rate + s.users / top_rate
    extrapolated = counted < s.users or ranked < s.users
    return {
        "users": s.users,
        "items": s.items,
        "dim": s.dim,
        "precision": "float32 (TF32 off)" if dev.type == "cuda" else "float32",
        "chunk_users": chunk or "harness default",
        "users_counted": counted,
        "users_top10": ranked,
        "count_s": round(count_s, 3),
        "top10_s": round(top_s, 3),
        "count_users_per_s": round(count_rate, 1),
        "top10_users_per_s": round(top_rate, 1),
        "users_per_s": round(s.users / full_s, 1),
        "total_s": round(full_s, 2),
        "extrapolated": extrapolated,
        "check_rows": c,
        "check_rows_matching": int(agree.sum()),
        "mean_rank": round(float((greater[:counted] + ties[:counted]).mean()), 1),
        "peak_gpu_gb": peak_memory_gb(dev),
        "summary": (
            f"{s.users:,} x {s.items:,} in {full_s:.2f} s"
            f"{' (extrapolated)' if extrapolated else ''}"
            f" = counts {s.users / count_rate:.2f} s + top-10 {s.users / top_rate:.2f} s, "
            f"{s.users / full_s:,.0f} users/s; "
            f"exact on {int(agree.sum())}/{c} checked rows"
        ),
    }


# -- (b) LUMEN training -------------------------------------------------------------------------


def gemma_config(lm: dict[str, Any]) -> Any:
    """A GemmaConfig of the given shape (the class defaults are Gemma 7B's)."""
    from transformers import GemmaConfig

    return GemmaConfig(**lm)


def lumen_flops(cfg: Any, dense_params: int, n_items: int, rows: int, seq: int, text: int) -> float:
    """Model FLOPs of one training micro-batch (forward + backward), as in the docstring."""
    tokens = rows * seq
    layers, heads, head_dim = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.head_dim
    hidden, vocab = cfg.hidden_size, cfg.vocab_size
    return (
        6.0 * dense_params * tokens
        + 12.0 * layers * heads * head_dim * seq * tokens
        + 6.0 * hidden * vocab * text * rows
        + 6.0 * hidden * n_items * rows
    )


def lumen_batch(
    s: Settings, vocab: int, gen: torch.Generator, dev: torch.device
) -> dict[str, torch.Tensor]:
    """One micro-batch shaped as :func:`regen_bench_plugins.lumen.train.collate` makes them:
    item slots spread over the prompt, the target slot last, narrative labels at the end."""
    b, t, text = s.lumen_micro, s.lumen_seq, s.lumen_text_tokens
    ids = torch.randint(3, vocab, (b, t), generator=gen, device=dev)
    prompt = t - text
    pos = torch.linspace(1, prompt - 1, s.lumen_slots, device=dev).long()
    slot = torch.zeros((b, t), dtype=torch.bool, device=dev)
    slot[:, pos] = True
    items = torch.randint(s.lumen_items, (b, s.lumen_slots), generator=gen, device=dev)
    labels = torch.full((b, t), -100, dtype=torch.long, device=dev)
    labels[:, prompt:] = ids[:, prompt:]
    return {
        "ids": ids,
        "attention_mask": torch.ones((b, t), dtype=torch.long, device=dev),
        "slot_mask": slot,
        "slot_items": items.reshape(-1),
        "labels": labels,
        "item_pos": pos[-1].expand(b).contiguous(),
        "item_target": items[:, -1].contiguous(),
    }


def part_lumen(s: Settings, dev: torch.device, peak: float | None) -> dict[str, Any]:
    """Warm-up, then optimizer steps of ``lumen_accum`` micro-batches until steps or cap."""
    from transformers import AutoModelForCausalLM

    from regen_bench_plugins.lumen.net import LumenNet

    cfg = gemma_config(s.lm)
    torch.manual_seed(0)
    t_build = time.perf_counter()
    with torch.device(dev):  # random init directly on the device (CPU init of 4 B is slow)
        backbone = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
        net = LumenNet(backbone, s.lumen_items)
    net.freeze(train_layers=-1, train_item_emb=True)  # the paper's full fine-tuning
    net.train()
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    optim = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if n.startswith("backbone.")], "lr": 1e-5},
            {"params": [p for n, p in named if not n.startswith("backbone.")], "lr": 1e-3},
        ],
        weight_decay=0.0,
        # Fused on a GPU: LUMEN's default (foreach) AdamW would add ~16 GB of temporaries
        # over 4 B parameters; the update is 1 of every 64 micro-batches either way.
        fused=dev.type == "cuda",
    )
    sync(dev)
    build_s = time.perf_counter() - t_build
    layers = backbone.get_decoder().layers
    dense = sum(p.numel() for p in layers.parameters())
    total = sum(p.numel() for _, p in named)
    bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    gen = torch.Generator(device=dev).manual_seed(0)
    per_micro = lumen_flops(
        cfg, dense, s.lumen_items, s.lumen_micro, s.lumen_seq, s.lumen_text_tokens
    )

    def micro(scale: float) -> None:
        batch = lumen_batch(s, cfg.vocab_size, gen, dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(**batch)
        (out["loss"] * scale).backward()

    def opt_step() -> None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # LUMEN's grad_clip
        optim.step()
        optim.zero_grad(set_to_none=True)

    # Warm-up: kernels, allocator, and AdamW's states (allocated on the first step).
    for _ in range(s.lumen_warmup_micro):
        micro(1.0 / s.lumen_accum)
    opt_step()
    sync(dev)
    t0 = time.perf_counter()
    n_micro, steps, capped = 0, 0, False
    while steps < s.lumen_steps and not capped:
        for _ in range(s.lumen_accum):
            micro(1.0 / s.lumen_accum)
            n_micro += 1
            if time.perf_counter() - t0 >= s.lumen_cap_s:
                capped = True
                break
        if not capped:
            opt_step()
            steps += 1
    sync(dev)
    elapsed = time.perf_counter() - t0
    tokens = n_micro * s.lumen_micro * s.lumen_seq
    flops_s = n_micro * per_micro / elapsed
    mfu = flops_s / (peak * 1e12) if peak else None
    mfu_text = f"MFU {100 * mfu:.1f}%" if mfu is not None else "MFU n/a without --peak-tflops"
    return {
        "backbone": {**s.lm, "layers_params": dense},
        "trainable_params": total,
        "items": s.lumen_items,
        "precision": "bf16 autocast, float32 weights" if bf16 else "float32",
        "micro_batch": s.lumen_micro,
        "seq_len": s.lumen_seq,
        "accumulation": s.lumen_accum,
        "build_s": round(build_s, 2),
        "micro_batches": n_micro,
        "optimizer_steps": steps,
        "capped": capped,
        "seconds": round(elapsed, 2),
        "tokens_per_s": round(tokens / elapsed, 1),
        "model_tflops_per_s": round(flops_s / 1e12, 3),
        "peak_tflops": peak,
        "mfu": round(mfu, 4) if mfu is not None else None,
        "peak_gpu_gb": peak_memory_gb(dev),
        "summary": (
            f"{tokens / elapsed:,.0f} tokens/s, {mfu_text} ({flops_s / 1e12:.3g} TFLOP/s; "
            f"{total / 1e6:,.1f} M params; {n_micro} micro-batches, {steps} optimizer steps "
            f"of {s.lumen_accum}"
            f"{', capped' if capped else ''})"
        ),
    }


# -- (c) SASRec and FLARE epochs -------------------------------------------------------------


def training_sequences(n: int, n_items: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Training sequences (purchases minus the two held out) with the synthetic world's length
    profile (:mod:`regen_bench.data.synth.world`: 5 + Exp(5) purchases, at most 20)."""
    lengths = 5 + np.floor(rng.exponential(5.0, size=4 * n)).astype(np.int64)
    lengths = lengths[lengths <= 20][:n]
    return [rng.integers(0, n_items, size=int(k) - 2) for k in lengths]


def time_steps(
    step: Callable[[int], float], warmup: int, steps: int, cap_s: float, dev: torch.device
) -> tuple[int, float]:
    """Run ``warmup`` then up to ``steps`` training steps (stopping at ``cap_s``); returns
    (timed steps, seconds). Each step reads its loss back, as the epoch loop does."""
    for i in range(warmup):
        step(i)
    sync(dev)
    t0 = time.perf_counter()
    done = 0
    while done < steps and (done == 0 or time.perf_counter() - t0 < cap_s):
        step(warmup + done)
        done += 1
    sync(dev)
    return done, time.perf_counter() - t0


def epoch_result(
    s: Settings, batch: int, done: int, seconds: float, planned: int, extra: dict[str, Any]
) -> dict[str, Any]:
    per_epoch = math.ceil(s.epoch_users / batch)
    rate = done / seconds
    epoch_s = per_epoch / rate
    return {
        "items": s.rec_items,
        "batch": batch,
        "steps_timed": done,
        "capped": done < planned,
        "seconds": round(seconds, 3),
        "steps_per_s": round(rate, 3),
        "steps_per_epoch": per_epoch,
        "epoch_s": round(epoch_s, 1),
        **extra,
        "summary": (
            f"epoch ~{epoch_s:,.0f} s = {per_epoch:,} steps / {rate:.2f} steps/s "
            f"({done} steps timed{', capped' if done < planned else ''})"
        ),
    }


def part_sasrec(s: Settings, dev: torch.device) -> dict[str, Any]:
    from regen_bench_plugins.sasrec.net import SASRecNet
    from regen_bench_plugins.sasrec.options import SASRecOptions
    from regen_bench_plugins.torchrec.sequences import filled_width, left_pad

    o = SASRecOptions()
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = SASRecNet(s.rec_items, o.hidden, o.blocks, o.heads, o.dropout, o.max_len).to(dev)
    optim = torch.optim.Adam(net.parameters(), lr=o.lr, betas=(0.9, 0.98))  # SASRec.BETAS
    seqs = training_sequences((s.warmup_steps + s.sasrec_steps) * o.batch_size, s.rec_items, rng)
    # SASRec._training_data: inputs seq[:-1], targets seq[1:], left-padded, ids shifted by 1.
    inputs = left_pad([q[:-1] for q in seqs], o.max_len)
    targets = left_pad([q[1:] for q in seqs], o.max_len)
    net.train()

    def step(i: int) -> float:
        # SASRec._batch_loss with loss="ce", then the epoch loop's update.
        rows = slice(i * o.batch_size, (i + 1) * o.batch_size)
        width = filled_width(inputs[rows])
        inp = torch.from_numpy(inputs[rows][:, -width:]).to(dev)
        tgt = torch.from_numpy(targets[rows][:, -width:]).to(dev)
        states = net(inp)
        mask = tgt > 0
        loss = torch.nn.functional.cross_entropy(net.logits(states[mask]), tgt[mask] - 1)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    done, seconds = time_steps(step, s.warmup_steps, s.sasrec_steps, s.sasrec_cap_s, dev)
    extra = {"max_len": o.max_len, "hidden": o.hidden, "peak_gpu_gb": peak_memory_gb(dev)}
    return epoch_result(s, o.batch_size, done, seconds, s.sasrec_steps, extra)


def flare_text_states(
    net: Any, n_items: int, tokens: int, text_dim: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Projected item token states (items, tokens, hidden) and their validity, as FLARE's
    ``_ensure_items`` caches them, from random encoder states projected chunk by chunk."""
    gen = torch.Generator(device=dev).manual_seed(1)
    t0 = time.perf_counter()
    lengths = torch.randint(16, tokens + 1, (n_items,), generator=gen, device=dev)
    valid = torch.arange(tokens, device=dev) < lengths[:, None]
    with torch.no_grad():
        sample = min(n_items, 4096)
        raw = torch.randn(sample, tokens, text_dim, generator=gen, device=dev)
        net.fit_projection(raw, valid[:sample])
        states = torch.empty((n_items, tokens, net.hidden), device=dev)
        for lo in range(0, n_items, 8192):
            hi = min(lo + 8192, n_items)
            raw = torch.randn(hi - lo, tokens, text_dim, generator=gen, device=dev)
            states[lo:hi] = net.project(raw)
    sync(dev)
    return states, valid, time.perf_counter() - t0


def part_flare(s: Settings, dev: torch.device) -> dict[str, Any]:
    from regen_bench_plugins.bert4rec.net import mask_items, masked_ce
    from regen_bench_plugins.flare.net import FlareNet, info_nce
    from regen_bench_plugins.flare.options import FLAREOptions
    from regen_bench_plugins.torchrec.sequences import filled_width, left_pad

    o = FLAREOptions()
    text_dim = 384  # all-MiniLM-L6-v2, FLARE's default encoder
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    net = FlareNet.from_options(s.rec_items, text_dim, o).to(dev)
    states, valid, prep_s = flare_text_states(net, s.rec_items, s.flare_tokens, text_dim, dev)
    optim = torch.optim.Adam(net.parameters(), lr=o.lr)  # BERT4Rec's betas: torch's default
    seqs = training_sequences((s.warmup_steps + s.flare_steps) * o.batch_size, s.rec_items, rng)
    items = left_pad(seqs, o.max_len)  # BERT4Rec._training_data
    mask_id = s.rec_items + 1
    all_items = torch.arange(s.rec_items, device=dev)
    net.train()

    def step(i: int) -> float:
        # BERT4Rec._batch_loss with FLARE._train_logits (no critiques), then the update.
        rows = slice(i * o.batch_size, (i + 1) * o.batch_size)
        width = filled_width(items[rows])
        inp, lab, _ = mask_items(rng, items[rows][:, -width:], o.mask_prob, o.last_prob, mask_id)
        lab_t = torch.from_numpy(lab).to(dev)
        vectors = net.item_vectors(all_items, states, valid)
        hidden = net(torch.from_numpy(inp).to(dev), vectors, None)
        loss = masked_ce(net.logits(hidden[lab_t > 0], vectors), lab_t[lab_t > 0])
        idx = torch.unique(lab_t[lab_t > 0]) - 1
        if o.align_weight > 0 and len(idx) > 1:
            text = net.text_vectors(states[idx], valid[idx])
            loss = loss + o.align_weight * info_nce(net.id_emb(idx), text, o.align_temp)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    done, seconds = time_steps(step, s.warmup_steps, s.flare_steps, s.flare_cap_s, dev)
    extra = {
        "max_len": o.max_len,
        "hidden": o.hidden,
        "item_tokens": s.flare_tokens,
        "text_prepare_s": round(prep_s, 2),
        "peak_gpu_gb": peak_memory_gb(dev),
    }
    return epoch_result(s, o.batch_size, done, seconds, s.flare_steps, extra)


# -- driver -------------------------------------------------------------------------------------


def device_info(dev: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(name=props.name, memory_gb=round(props.total_memory / 2**30, 1))
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="gpu_check.py", description=(__doc__ or "").split("\n\n", 1)[0]
    )
    p.add_argument("--small", action="store_true", help="scaled-down sizes (CPU test)")
    p.add_argument("--device", default="auto", help="torch device (auto: cuda when available)")
    p.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    p.add_argument("--peak-tflops", type=positive_float, help="peak bf16 TFLOP/s for MFU")
    p.add_argument("--lumen-items", type=positive_int, help="LUMEN's item vocabulary size")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    unknown = [x for x in args.parts.split(",") if x not in PARTS]
    if unknown:
        p.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return args


def resolve(device: str) -> torch.device:
    """The torch device of ``--device``; a one-line exit when it cannot be used."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)  # an unusable device fails here, not in the middle of a part
    except (RuntimeError, AssertionError) as exc:
        first = (str(exc).strip().splitlines() or ["unusable"])[0]
        raise SystemExit(f"gpu_check.py: error: --device {device}: {first}") from None
    return dev


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'part':<8} {'status':<8} {'wall s':>8}  result", "-" * 100]
    for name, r in results.items():
        text = r.get("summary") or r.get("error", "")
        lines.append(f"{name:<8} {r['status']:<8} {r['wall_s']:>8.1f}  {text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    s = Settings.small() if args.small else Settings()
    if args.lumen_items:
        s.lumen_items = args.lumen_items
    dev = resolve(args.device)
    if dev.type == "cpu" and args.device == "auto" and not args.small:
        # Clothing-scale sizes on a CPU would run for hours, not minutes.
        raise SystemExit(
            f"gpu_check.py: error: no CUDA device visible (torch {torch.__version__}); "
            "--small runs the CPU check, --device cpu forces the full sizes"
        )
    info = device_info(dev)
    peak = args.peak_tflops or (peak_tflops(info["name"]) if dev.type == "cuda" else None)
    info["peak_bf16_tflops"] = peak
    print(
        f"gpu_check ({'small' if args.small else 'Clothing scale'}): {info['name']} ({dev}), "
        f"torch {info['torch']}, peak bf16 {peak or 'unknown'} TFLOP/s",
        flush=True,
    )

    def on_term(signum: int, frame: object) -> None:
        raise TimeUp

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return run_parts(args, s, dev, info, peak)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_parts(
    args: argparse.Namespace, s: Settings, dev: torch.device, info: dict[str, Any], peak: Any
) -> int:
    """Run the chosen parts in order, each guarded; print the table, write the JSON."""
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "ranking": lambda: part_ranking(s, dev),
        "lumen": lambda: part_lumen(s, dev, peak),
        "sasrec": lambda: part_sasrec(s, dev),
        "flare": lambda: part_flare(s, dev),
    }
    results: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    timed_out = False
    for name in [p for p in PARTS if p in args.parts.split(",")]:
        t0 = time.perf_counter()
        if timed_out:
            results[name] = {"status": "skipped", "wall_s": 0.0, "error": "after the timeout"}
            continue
        log(name, "start")
        free(dev)  # each part's peak_gpu_gb is its own, not the largest part's before it
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            r = runs[name]()
            r["status"] = "ok"
            log(name, r["summary"])
        except TimeUp:
            timed_out = True
            r = {"status": "timeout", "error": "killed by the wrapper's timeout"}
        except Exception as exc:  # one failing part must not stop the others
            frames = traceback.extract_tb(exc.__traceback__)
            # The deepest frame of this repository (not torch's internals) says what failed.
            ours = [f for f in frames if f.filename.startswith(str(ROOT))]
            where = (ours or frames)[-1]
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            r = {
                "status": "error",
                "error": f"{type(exc).__name__}: {first} "
                f"({Path(where.filename).name}:{where.lineno})",
            }
            log(name, f"error: {r['error']}")
        r["wall_s"] = round(time.perf_counter() - t0, 2)
        results[name] = r
        free(dev)
    total = time.perf_counter() - start
    print(f"\n{table(results)}\ntotal {total:.1f} s", flush=True)
    if args.out:
        payload = {"small": args.small, "device": info, "total_s": round(total, 2), **results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    if timed_out:
        return 124
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
