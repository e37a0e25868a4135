"""The rating ensemble: every subject is rated ``runs`` times with a per-run seed, then the
scores of each (text, attribute) are aggregated with the paper's majority/floor rule.

A rater (an ``rater`` plugin's factory returns one) only writes prompts and reads answers; the
ensemble, seeding, caching and aggregation live here so every rater gets them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from regen_bench.llm import LLMClient, LLMRequest
from regen_bench.rating.aggregate import SCALE, aggregate
from regen_bench.rating.subjects import Subject

#: Scores of one subject: text name -> attribute -> score.
Scores = dict[str, dict[str, int]]


@runtime_checkable
class Rater(Protocol):
    """What a ``rater`` plugin's factory returns.

    ``kind`` says which subjects it rates (``narrative`` or ``critique``). ``attributes`` names
    the attributes scored for each text of a subject; ``request`` writes the prompt of one run
    (``seed`` differs per run: use it, and a temperature > 0, so runs differ but are cacheable);
    ``parse`` turns the answer's JSON value into scores, raising ValueError if it cannot.
    """

    name: str
    kind: str

    def attributes(self, subject: Subject) -> dict[str, tuple[str, ...]]: ...

    def request(self, subject: Subject, *, seed: int) -> LLMRequest: ...

    def parse(self, subject: Subject, answer: Any) -> Scores: ...


@dataclass
class SubjectRating:
    """All runs of one subject: per-run scores, final scores, and why runs failed."""

    subject: Subject
    #: (text, attribute) -> the scores of the runs that answered (in run order).
    runs: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: (text, attribute) -> aggregated score; None when no run answered.
    final: dict[tuple[str, str], int | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run_seed(seed: int, run: int) -> int:
    """The seed of run ``run`` (0-based) of a rating with base seed ``seed``."""
    return seed * 1000 + run


def check_scores(rater: Rater, subject: Subject, scores: Scores) -> Scores:
    """``scores`` if it holds an integer 1-7 for every expected (text, attribute)."""
    low, high = SCALE
    for text, attrs in rater.attributes(subject).items():
        for attr in attrs:
            value = scores.get(text, {}).get(attr)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{text}.{attr}: expected an integer {low}-{high}, got {value!r}")
    return scores


def rate_subjects(
    rater: Rater,
    subjects: Sequence[Subject],
    client: LLMClient,
    *,
    runs: int = 7,
    seed: int = 0,
    progress: bool = True,
) -> list[SubjectRating]:
    """Rate every subject ``runs`` times and aggregate; failed runs are recorded, not raised."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    requests = [
        rater.request(subject, seed=run_seed(seed, run))
        for subject in subjects
        for run in range(runs)
    ]
    answers = client.complete_many(requests, progress=progress)
    out = []
    for s, subject in enumerate(subjects):
        rating = SubjectRating(subject)
        expected = [(t, a) for t, attrs in rater.attributes(subject).items() for a in attrs]
        for key in expected:
            rating.runs[key] = []
        for run in range(runs):
            resp = answers[s * runs + run]
            try:
                if resp.error is not None:
                    raise ValueError(resp.error)
                scores = check_scores(rater, subject, rater.parse(subject, resp.json()))
            except ValueError as exc:  # SchemaViolation is a ValueError too
                rating.failures.append(f"run {run}: {exc}")
                continue
            for text, attr in expected:
                rating.runs[(text, attr)].append(scores[text][attr])
        for key, values in rating.runs.items():
            rating.final[key] = aggregate(values) if values else None
        out.append(rating)
    return out


__all__ = ["Rater", "Scores", "SubjectRating", "check_scores", "rate_subjects", "run_seed"]
