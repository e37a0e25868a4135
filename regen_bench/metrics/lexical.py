"""BLEU and ROUGE: exactly the numbers of sacreBLEU and rouge-score, computed faster.

- BLEU: sacreBLEU corpus BLEU, 0-100, one reference per hypothesis, tokenizer ``13a``, ``exp``
  smoothing, mixed case (sacreBLEU's defaults; its signature string is recorded).
- ROUGE: ``rouge-score`` F1 x100 for rouge1, rouge2, rougeL, rougeLsum, Porter stemming on,
  mean over pairs; ``rougeLsum`` splits sentences on newlines only (rouge-score's default).

Large inputs are scored in worker processes, with exactly the numbers of a direct
single-process ``sacrebleu.corpus_bleu`` / ``RougeScorer.score`` loop: BLEU sums the per-chunk
integer n-gram statistics and scores them with sacreBLEU's own code, and ROUGE means are exactly
rounded sums (:func:`math.fsum`) of the per-pair F1 values, so neither depends on chunking.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np

from regen_bench.threads import usable_cpus

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
HEADLINE_ROUGE = "rougeL"
BLEU_TOKENIZE = "13a"
BLEU_SMOOTH = "exp"
ROUGE_USE_STEMMER = True
# Below this many pairs, starting worker processes costs more than it saves.
PARALLEL_MIN_PAIRS = 2000
_MIN_CHUNK, _MAX_CHUNK = 250, 4000


@dataclass(frozen=True)
class TextMetrics:
    """Corpus-level text metrics, what produced them, and the per-pair scores behind them.

    ``metrics``: names from :data:`TEXT_METRIC_NAMES` (only those computed). ``config``: string
    settings for the result file (:func:`text_signature` condenses them). ``per_sample``: one
    value per pair on the metric's scale (every metric except corpus-level BLEU).
    ``counts``: ``pairs`` and ``empty_hypotheses``.
    """

    metrics: dict[str, float]
    config: dict[str, str]
    per_sample: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def package_version(dist: str) -> str:
    """Installed version of a distribution, recorded next to the numbers it produced."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def prepare_pairs(
    references: Sequence[str], hypotheses: Sequence[str | None]
) -> tuple[list[str], list[str]]:
    """Validated copies: ``None`` hypotheses become ``""``; anything else not a str is an error."""
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses; they must pair up"
        )
    if not references:
        raise ValueError("no reference/hypothesis pairs to score")
    refs = list(references)
    for i, ref in enumerate(refs):
        if not isinstance(ref, str):
            raise TypeError(f"reference {i} is {type(ref).__name__}, expected str")
    hyps: list[str] = []
    for i, hyp in enumerate(hypotheses):
        if hyp is None:
            hyps.append("")
        elif isinstance(hyp, str):
            hyps.append(hyp)
        else:
            raise TypeError(f"hypothesis {i} is {type(hyp).__name__}, expected str or None")
    return refs, hyps


@lru_cache(maxsize=1)
def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    # force=True only silences sacreBLEU's per-call "tokenized period" warning, which would
    # fire once per chunk; lexical_metrics warns once for the corpus instead. The statistics
    # and the signature do not depend on it.
    return BLEU(tokenize=BLEU_TOKENIZE, smooth_method=BLEU_SMOOTH, force=True)


class _CachedStemmer:
    """rouge-score's Porter stemmer with a memo: the same stems, computed once per word.

    Stemming is about two thirds of rouge-score's time on narrative text and words repeat
    heavily (Zipf), so a cache is the cheapest exact speed-up.
    """

    def __init__(self) -> None:
        from nltk.stem import porter

        # rouge_score.tokenizers.DefaultTokenizer builds exactly this stemmer.
        self.stem = lru_cache(maxsize=1 << 18)(porter.PorterStemmer().stem)


@lru_cache(maxsize=1)
def _rouge_tools() -> tuple[Any, Any, Any]:
    """(tokenizer with the cached stemmer, rouge_scorer module, rougeLsum scorer)."""
    from rouge_score import rouge_scorer, tokenize, tokenizers

    stemmer = _CachedStemmer() if ROUGE_USE_STEMMER else None

    class Tokenizer(tokenizers.Tokenizer):
        # rouge_score.tokenizers.DefaultTokenizer.tokenize with the memoised stemmer.
        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, stemmer)

    tok = Tokenizer()
    return tok, rouge_scorer, rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=tok)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel.

    rouge-score fills a len(a) x len(b) table in pure Python for rougeL, which is most of its
    run time on narrative-length text. This is the standard bit-vector recurrence (Hyyrö 2004,
    "Bit-parallel LCS-length computation revisited"): one integer per token of ``a``, so the
    same integer result comes ~50x faster. Checked against rouge-score's table in the tests.
    """
    masks: dict[str, int] = {}
    for j, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _score_chunk(refs: list[str], hyps: list[str]) -> tuple[list[int], list[list[float]]]:
    """Summed BLEU statistics and per-pair ROUGE F1 (x100, in ROUGE_TYPES order) of a chunk.

    ROUGE follows ``RougeScorer.score`` step by step (same tokens, same n-gram counting
    functions, same float operations), with two exact shortcuts: the LCS length comes from
    :func:`lcs_length`, and rougeLsum reuses rougeL when neither text has a newline (each
    side is then one "sentence", and summary-level LCS reduces to plain LCS: same hits, same
    lengths). tests/test_text_metrics.py asserts equality with rouge-score itself.
    """
    from sacrebleu.utils import sum_of_lists

    stats = sum_of_lists(_bleu()._extract_corpus_statistics(hyps, [refs]))
    tok, rs, lsum = _rouge_tools()
    zero = rs.scoring.Score(precision=0, recall=0, fmeasure=0)
    f1: list[list[float]] = [[], [], [], []]
    for ref, hyp in zip(refs, hyps, strict=True):
        target, prediction = tok.tokenize(ref), tok.tokenize(hyp)
        for k in (0, 1):
            score = rs._score_ngrams(
                rs._create_ngrams(target, k + 1), rs._create_ngrams(prediction, k + 1)
            )
            f1[k].append(100 * score.fmeasure)
        # rouge_scorer._score_lcs with the LCS length computed by lcs_length.
        if not target or not prediction:
            lcs_score = zero
        else:
            lcs = lcs_length(target, prediction)
            precision, recall = lcs / len(prediction), lcs / len(target)
            lcs_score = rs.scoring.Score(
                precision=precision,
                recall=recall,
                fmeasure=rs.scoring.fmeasure(precision, recall),
            )
        f1[2].append(100 * lcs_score.fmeasure)
        if "\n" in ref or "\n" in hyp:
            f1[3].append(100 * lsum.score(ref, hyp)["rougeLsum"].fmeasure)
        else:
            f1[3].append(f1[2][-1])
    return [int(x) for x in stats], f1


def _other_threads() -> list[threading.Thread]:
    """Python threads besides this one, not counting tqdm's monitor.

    The monitor only takes tqdm's own lock, which the workers never touch, and once any bar
    has been shown it lives as long as the process, so counting it would rule fork out.
    """
    # Without tqdm imported there is no monitor to skip.
    monitor = getattr(sys.modules.get("tqdm._monitor"), "TMonitor", None)
    me = threading.current_thread()
    return [
        t
        for t in threading.enumerate()
        if t is not me and not (monitor is not None and isinstance(t, monitor))
    ]


def _mp_context() -> Any:
    """``fork`` when no other Python thread runs, else ``forkserver`` (``spawn`` elsewhere).

    Fork starts workers in milliseconds and needs no ``__main__`` guard. Another Python thread
    may hold a lock at fork time and deadlock the child, so then a clean interpreter starts the
    workers instead; like every such start method it re-imports the main script, which needs
    the usual ``if __name__ == "__main__":`` guard. Native thread pools (OpenBLAS, OpenMP) do
    not matter: the workers run pure Python and never enter them.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and not _other_threads():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _score_in_workers(
    chunks: list[tuple[list[str], list[str]]], jobs: int, show: bool
) -> list[tuple[list[int], list[list[float]]]]:
    from tqdm.auto import tqdm

    results = []
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_mp_context()) as pool:
            futures = [pool.submit(_score_chunk, r, h) for r, h in chunks]
            # The bar (and tqdm's monitor thread) starts only once the workers exist.
            total = sum(len(r) for r, _ in chunks)
            with tqdm(total=total, desc="BLEU/ROUGE", unit="pair", disable=not show) as bar:
                # Collected in submission order, so results stay in pair order.
                for (r, _), future in zip(chunks, futures, strict=True):
                    results.append(future.result())
                    bar.update(len(r))
    except BrokenProcessPool as exc:
        raise RuntimeError(
            "BLEU/ROUGE worker processes died; a script that calls this must do so under "
            "`if __name__ == '__main__':` (or pass n_jobs=1)"
        ) from exc
    return results


def lexical_metrics(
    references: Sequence[str],
    hypotheses: Sequence[str | None],
    *,
    n_jobs: int | None = None,
    progress: bool = True,
) -> TextMetrics:
    """BLEU and the four ROUGE F1 means (x100), optionally across ``n_jobs`` processes."""
    from sacrebleu.utils import sum_of_lists
    from tqdm.auto import tqdm

    refs, hyps = prepare_pairs(references, hypotheses)
    n = len(refs)
    jobs = usable_cpus() if n_jobs is None else int(n_jobs)
    if jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 (or None for all cores), got {n_jobs}")
    if n < PARALLEL_MIN_PAIRS:
        jobs = 1
    # Built here first: fork-started workers inherit them, and a broken install fails early.
    _bleu()
    _rouge_tools()
    size = min(_MAX_CHUNK, max(_MIN_CHUNK, math.ceil(n / (jobs * 8))))
    chunks = [(refs[s : s + size], hyps[s : s + size]) for s in range(0, n, size)]
    show = progress and len(chunks) >= 8
    if jobs == 1:
        results = []
        with tqdm(total=n, desc="BLEU/ROUGE", unit="pair", disable=not show) as bar:
            for r, h in chunks:
                results.append(_score_chunk(r, h))
                bar.update(len(r))
    else:
        results = _score_in_workers(chunks, jobs, show)

    bleu = _bleu()
    bleu.num_refs = 1  # what corpus_score would have set; the signature reports it
    score = bleu._compute_score_from_stats(sum_of_lists([r[0] for r in results]))
    per_sample = {
        name: np.fromiter((v for r in results for v in r[1][k]), dtype=np.float64, count=n)
        for k, name in enumerate(ROUGE_TYPES)
    }
    metrics = {"bleu": float(score.score)}
    for name in ROUGE_TYPES:
        metrics[name] = math.fsum(per_sample[name].tolist()) / n
    config = {
        "bleu": bleu.get_signature().format(),
        "rouge_types": ",".join(ROUGE_TYPES),
        "rouge_headline": HEADLINE_ROUGE,
        "rouge_stemmer": "porter" if ROUGE_USE_STEMMER else "none",
        "rouge_lsum_split": "newline",
        "rouge_version": package_version("rouge-score"),
    }
    if sum(h.endswith(" .") for h in hyps) >= 100:  # sacreBLEU's own rule and wording
        logging.getLogger("sacrebleu").warning(
            "That's 100 lines that end in a tokenized period ('.'): it looks like you forgot "
            "to detokenize your test data, which may hurt your score."
        )
    counts = {"pairs": n, "empty_hypotheses": sum(not h.strip() for h in hyps)}
    return TextMetrics(metrics, config, per_sample, counts)


__all__ = [
    "BLEU_SMOOTH",
    "BLEU_TOKENIZE",
    "HEADLINE_ROUGE",
    "PARALLEL_MIN_PAIRS",
    "ROUGE_TYPES",
    "ROUGE_USE_STEMMER",
    "TextMetrics",
    "lcs_length",
    "lexical_metrics",
    "package_version",
    "prepare_pairs",
]
