"""Scoring the test examples: full-catalog scores per batch -> one per-sample record each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from regen_bench.metrics.ranking import rank_counts
from regen_bench.model import Model
from regen_bench.progress import Progress
from regen_bench.runner.config import RunError
from regen_bench.tasks import Example, TaskData

#: Items recorded per sample (the per-sample file's ``top_k``).
TOP_K = 10


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k indices per row, best first; equal scores in catalog order (deterministic)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def score_examples(
    model: Model,
    data: TaskData,
    *,
    batch_size: int = 256,
    exclude_history: bool = False,
    has_critique: Sequence[bool] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score the test examples in batches; return one record per example with its counts."""
    samples: list[dict[str, Any]] = []
    catalog = data.catalog
    bar = Progress("evaluate", len(data.test), unit="ex", enabled=progress)
    for batch in _batches(data.test, batch_size):
        scores = np.asarray(model.score(batch), dtype=np.float32)
        if scores.shape != (len(batch), len(catalog)):
            raise RunError(
                f"model returned scores of shape {scores.shape}, expected "
                f"({len(batch)}, {len(catalog)})"
            )
        targets = np.array([ex.target for ex in batch], dtype=np.int64)
        exclude = (
            [np.setdiff1d(ex.history, [ex.target]) for ex in batch] if exclude_history else None
        )
        greater, ties = rank_counts(scores, targets, exclude)
        if exclude is not None:
            for row, ex_items in zip(scores, exclude, strict=True):
                row[ex_items] = -np.inf
        top = top_k(scores, TOP_K)
        for i, ex in enumerate(batch):
            n = len(samples)
            samples.append(
                {
                    "user_id": ex.user_id,
                    "target": catalog[ex.target].asin,
                    "top_k": catalog.ids(top[i]),
                    "greater": int(greater[i]),
                    "ties": int(ties[i]),
                    "critique": ex.critique,
                    "has_critique": bool(has_critique[n]) if has_critique is not None else False,
                }
            )
        bar.update(len(batch))
    bar.close()
    return samples


__all__ = ["TOP_K", "score_examples", "top_k"]
