"""How often a cell's generated narratives fall into a loop, beside the same rate of its references.

    python scripts/text_repetition.py [RESULT.json ...]   (default: submissions/mini/*/*__*.json)

Reads each result's samples file (the texts that were scored, i.e. the held-out users) and
prints, for the generated texts and for their references: how many there are, the mean length
in words, the mean distinct-2 (distinct word 2-grams / word 2-grams, per text) and the share
of *looping* texts: a word 2-gram occurring 4 or more times, or fewer than 30% of the words
distinct. Words are whitespace-separated and case is kept, so the figures can be recomputed
by hand from a ``.samples.jsonl``. The references are the control: long narratives repeat a
little on their own, a decoder in a loop repeats far more than its references.

Written here rather than taken from a library because what it counts is a few lines of
``collections.Counter``; no metric package reports "a text in a loop".
"""

from __future__ import annotations

import glob
import sys
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from regen_bench.leaderboard.dataset_check import read_samples
from regen_bench.leaderboard.submissions import SubmissionError
from regen_bench.results import ResultError, load_result

#: A text loops when one word 2-gram occurs this often ...
REPEATED_BIGRAM = 4
#: ... or when fewer than this share of its words are distinct.
MIN_DISTINCT_WORDS = 0.3
DEFAULT_GLOB = "submissions/mini/*/*__*.json"


def is_looping(text: str) -> bool:
    """Whether ``text`` repeats a word 2-gram 4+ times or has < 30% distinct words."""
    words = text.split()
    if not words:
        return True
    bigrams = Counter(pairwise(words))
    if bigrams and max(bigrams.values()) >= REPEATED_BIGRAM:
        return True
    return len(set(words)) / len(words) < MIN_DISTINCT_WORDS


def distinct_2(text: str) -> float:
    """Distinct word 2-grams over word 2-grams (1.0 for a text of fewer than two words)."""
    words = text.split()
    bigrams = list(pairwise(words))
    return len(set(bigrams)) / len(bigrams) if bigrams else 1.0


@dataclass(frozen=True)
class Stats:
    """Repetition figures of one list of texts."""

    texts: int
    mean_words: float
    mean_distinct_2: float
    looping: float  # share of texts, 0..1

    @classmethod
    def of(cls, texts: list[str]) -> Stats:
        n = len(texts)
        if not n:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(
            texts=n,
            mean_words=sum(len(t.split()) for t in texts) / n,
            mean_distinct_2=sum(distinct_2(t) for t in texts) / n,
            looping=sum(is_looping(t) for t in texts) / n,
        )


class ScriptError(Exception):
    """A result file or its samples cannot be used; the message names the file and line."""


def scored_texts(result_path: Path) -> tuple[list[str], list[str]]:
    """The generated texts that were scored, and their references, from the samples file.

    The result goes through the project's own validation first (schema, signature, the
    samples' sha256, metrics recomputed from the samples, the scored-user partition), so the
    figures are those of the file the leaderboard accepted, never of an edited samples file.
    """
    try:
        result = load_result(result_path)
        rows = read_samples(result_path, result)
    except (ResultError, SubmissionError) as exc:
        raise ScriptError(str(exc)) from None
    if result.task.narrative_type is None:
        raise ScriptError(f"{result_path}: a ranking-only result (no narrative type), no texts")
    generated, references = [], []
    for row in rows:
        if row.get("generated") is None:  # not scored: a user whose narrative the model trained on
            continue
        generated.append(str(row["generated"]))
        references.append(str(row["reference"]))
    return generated, references


def table(paths: list[Path]) -> list[str]:
    """Markdown rows, one per result file that narrates."""
    lines = [
        "| cell | texts | words (gen / ref) | distinct-2 (gen / ref) | looping % (gen / ref) |",
        "|---|---|---|---|---|",
    ]
    for path in paths:
        gen, ref = (Stats.of(t) for t in scored_texts(path))
        cell = f"{path.parent.name}/{path.stem}"
        lines.append(
            f"| {cell} | {gen.texts} | {gen.mean_words:.1f} / {ref.mean_words:.1f} "
            f"| {gen.mean_distinct_2:.3f} / {ref.mean_distinct_2:.3f} "
            f"| {100 * gen.looping:.1f} / {100 * ref.looping:.1f} |"
        )
    return lines


def main(argv: list[str]) -> int:
    names = argv or sorted(glob.glob(DEFAULT_GLOB))
    paths = [Path(n) for n in names if not n.endswith(".verified.json")]
    if not paths:
        print(f"error: no result files (looked for {DEFAULT_GLOB})", file=sys.stderr)
        return 1
    try:
        print("\n".join(table(paths)))
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
