"""The model-based text metrics again, from a result's per-sample file.

Validation recomputes every ranking metric, BLEU and ROUGE from the per-sample file; semantic
similarity and BERTScore need their models, so it takes them on trust. :func:`recheck` scores
the per-sample texts again with the models the result names, through the runner's own entry
point (:func:`~regen_bench.metrics.text.compute_text_metrics`), and compares: a number no
scoring of those texts gives is caught, and so is a metric whose value depends on the process
(BERTScore once did, through bert-score's set order). The weights must be the ones the result
pins; others would measure something else, so the metric is not compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regen_bench.results import Result, is_scored

#: The metrics rechecked here (the others are recomputed by validation itself).
MODEL_METRICS = ("semantic_similarity", "bertscore_f1")
#: Largest difference accepted: the same texts, models and code give the same bits.
TOLERANCE = 1e-9


@dataclass
class Recheck:
    """What :func:`recheck` found for one result file."""

    path: Path
    #: metric -> (published, scored again)
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Why a metric was not rechecked (model unavailable, other weights), one line each.
    skipped: list[str] = field(default_factory=list)

    @property
    def differing(self) -> dict[str, tuple[float, float]]:
        return {k: v for k, v in self.values.items() if abs(v[0] - v[1]) > TOLERANCE}

    def describe(self) -> str:
        parts = [f"{k} {a:.6f} -> {b:.6f}" for k, (a, b) in self.values.items()]
        return "; ".join(parts + self.skipped) or "no model-based text metric"


def _scored_pairs(path: Path, result: Result) -> tuple[list[str], list[str | None]]:
    """References and generations of the scored samples, in file order (as the run scored);
    the file is read as validated (its hash checked again)."""
    from regen_bench.leaderboard.dataset_check import read_samples

    scored = [s for s in read_samples(path, result) if is_scored(s)]
    return [s["reference"] for s in scored], [s.get("generated") for s in scored]


def recheck(path: str | Path, result: Result, *, progress: bool = False) -> Recheck:
    """Score ``result``'s per-sample texts again with its models (``path``: its result file,
    already validated) and pair each published model-based metric with the new value."""
    from regen_bench.embedding import get_embedder
    from regen_bench.metrics.text import compute_text_metrics, text_metric_weights
    from regen_bench.threads import set_torch_threads, torch_threads
    from regen_bench.weights import WeightsError

    path = Path(path)
    out = Recheck(path)
    if result.narration is None:
        return out
    config = result.narration.text_config
    pins = result.weights or {}

    def same_weights(role: str, here: dict[str, str]) -> None:
        if here.get(role) != pins.get(role):
            raise WeightsError(f"weights here {here.get(role)}, result pins {pins.get(role)}")

    loading = (WeightsError, ValueError, OSError, ImportError)
    embedder = None
    if "semantic_similarity" in result.metrics and config.get("embedder"):
        try:
            embedder = get_embedder(config["embedder"], progress=progress)
            same_weights("embedder", text_metric_weights(embedder, None))
        except loading as exc:
            out.skipped.append(f"semantic_similarity not rechecked ({exc})")
            embedder = None
    bertscore_model = config.get("bertscore_model") if "bertscore_f1" in result.metrics else None
    if bertscore_model:
        try:
            same_weights("bertscore", text_metric_weights(None, bertscore_model))
        except loading as exc:
            out.skipped.append(f"bertscore_f1 not rechecked ({exc})")
            bertscore_model = None
    if embedder is None and bertscore_model is None:
        return out
    refs, hyps = _scored_pairs(path, result)
    layer = config.get("bertscore_layer")
    # The run's torch thread count (a float reduction may split differently on more threads).
    threads = result.environment.threads
    before = torch_threads()
    if threads is not None:
        set_torch_threads(threads)
    try:
        again = compute_text_metrics(
            refs,
            hyps,
            embedder=embedder,
            bertscore_model=bertscore_model,
            bertscore_layers=int(layer) if layer else None,
            n_jobs=1,
            progress=progress,
        )
    finally:
        if before is not None:
            set_torch_threads(before)
    for name in MODEL_METRICS:
        if name in again.metrics and name in result.metrics:
            out.values[name] = (result.metrics[name], again.metrics[name])
    return out


def _recheck_item(item: tuple[str, Result]) -> Recheck:
    return recheck(*item)


def recheck_all(items: Sequence[tuple[str | Path, Result]], *, jobs: int = 1) -> Iterator[Recheck]:
    """:func:`recheck` of each (path, result), yielded in the order given; ``jobs`` > 1 scores
    that many files at once, each in its own worker process.

    A file's figures do not depend on ``jobs``: each is scored by one process with the thread
    count its result records, as it would be alone."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    work = [(str(path), result) for path, result in items]
    if jobs == 1 or len(work) < 2:
        for item in work:
            yield _recheck_item(item)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A fresh interpreter per worker: a forked child of a process whose torch thread pools
    # have started can hang in them.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(work)), mp_context=context) as pool:
        yield from pool.map(_recheck_item, work)


def problems(rechecks: list[Recheck]) -> list[str]:
    """One message per metric that differs or could not be rechecked."""
    found = []
    for r in rechecks:
        for name, (published, again) in r.differing.items():
            found.append(
                f"{r.path}: {name} = {published!r} but its per-sample texts score {again!r}"
            )
        found += [f"{r.path}: {why}" for why in r.skipped]
    return found
