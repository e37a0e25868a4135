"""Local ``hf`` backend cost: GGUF conversion, cached load, and narrative-length generation.

Resolves an offline alias (converting the GGUF on first use, timed), loads the cached
checkpoint again (timed), then answers --n narrative prompts of about --max-tokens tokens with
greedy decoding through :class:`regen_bench.llm.LLMClient` (no cache) for each --batch-sizes
value, printing tokens/s and checking that the answers do not depend on the batch size.

    .venv/bin/python benchmarks/hf_llm.py [--model smollm2 --n 10 --max-tokens 60 \
        --batch-sizes 1,4 --device cpu --threads 1 --cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from regen_bench.llm import LLMClient, LLMRequest
from regen_bench_plugins.llm_backends.hf import HFBackend
from regen_bench_plugins.llm_backends.local_models import models_dir, resolve_local_model

SYSTEM = "You write short, concrete explanations of why a shopper bought a product."
HISTORIES = [
    ("a stapler, a box of staples and a desk organizer", "a heavy-duty hole punch"),
    ("gel pens in black, a spiral notebook and sticky notes", "a set of colored gel pens"),
    ("a printer, a ream of copy paper and an ink cartridge", "a high-yield toner cartridge"),
    ("a whiteboard, dry-erase markers and an eraser", "magnetic whiteboard clips"),
    ("a label maker and label tape", "a pack of color label tapes"),
    ("an ergonomic mouse and a mouse pad", "a wrist-rest keyboard"),
    ("file folders, hanging files and a filing cabinet", "a label holder set"),
    ("a desk lamp and LED bulbs", "a monitor light bar"),
    ("a paper shredder and shredder oil", "shredder bags"),
    ("a laminator and laminating pouches", "thick 10-mil laminating pouches"),
]


def prompts(n: int, max_tokens: int) -> list[LLMRequest]:
    out = []
    for i in range(n):
        history, target = HISTORIES[i % len(HISTORIES)]
        out.append(
            LLMRequest(
                system=SYSTEM,
                prompt=(
                    f"The customer bought {history}. Next they bought {target}. "
                    "In two sentences, explain why this purchase made sense for them."
                ),
                max_tokens=max_tokens,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=60)
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", default=None, help=f"default: {models_dir()}")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    print(f"load average {os.getloadavg()[0]:.1f} ({platform.machine()})")
    start = time.perf_counter()
    folder = resolve_local_model(args.model, cache_dir=args.cache_dir)
    print(f"resolve {args.model}: {time.perf_counter() - start:.1f}s -> {folder}")
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"checkpoint folder: {size:.0f} MiB")

    reference: list[str] | None = None
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        backend = HFBackend(
            args.model,
            device=args.device,
            batch_size=bs,
            cache_dir=args.cache_dir,
            num_threads=args.threads,
        )
        print(f"\nbatch_size={bs}: cached load {backend.load_s:.1f}s")
        client = LLMClient(backend, cache_path=None)
        answers = client.complete_many(prompts(args.n, args.max_tokens), progress=False)
        usage = client.usage()
        lens = [a.completion_tokens for a in answers]
        print(
            f"  {usage['requests']} answers, {usage['completion_tokens']} new tokens "
            f"(min {min(lens)}, max {max(lens)}), {usage['prompt_tokens']} prompt tokens, "
            f"{usage['wall_s']:.1f}s -> {usage['tokens_per_s']:.1f} new tokens/s, "
            f"{usage['wall_s'] / max(1, usage['requests']):.2f}s per answer"
        )
        texts = [a.text for a in answers]
        if reference is None:
            reference = texts
            for a in answers[:2]:
                print(f"  e.g. {a.text!r}")
        else:
            same = sum(x == y for x, y in zip(reference, texts, strict=True))
            print(
                f"  identical to batch_size={args.batch_sizes.split(',')[0]}: {same}/{len(texts)}"
            )
    print(f"\nREGEN_BENCH_CACHE_DIR={os.environ.get('REGEN_BENCH_CACHE_DIR', '(unset)')}")


if __name__ == "__main__":
    main()
