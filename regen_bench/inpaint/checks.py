"""Rules that reject a schema-valid answer a small model wrote without doing the task.

A JSON schema cannot see three failures common with small local models: copying the prompt's
few-shot example instead of answering, echoing the prompt's layout (an answer that starts
``CURRENT: Penmark Gel Pens...`` or ``[Purchase 1]``), and looping (one phrase written again
and again until a length limit ends it). :func:`text_problem` names them; the pipeline hands
it to the client as an answer check, so such an answer is re-asked like a malformed one and
then recorded as a failure with the reason.

Word runs are compared case-insensitively, punctuation ignored. Hand-written (a few lines of
n-gram counting) because no well-kept library offers these two tests as such.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cache

#: An answer sharing a run of this many words with a few-shot example copies it.
COPY_RUN_WORDS = 8
#: An answer in which one run of ``LOOP_NGRAM`` words occurs ``LOOP_REPEATS`` times loops.
LOOP_NGRAM = 4
LOOP_REPEATS = 3
#: A sentence of at least this many words written twice is a loop too.
SENTENCE_MIN_WORDS = 5

_WORD = re.compile(r"[\w']+")
#: The labels the inpainting prompts lay items and histories out with (prompts.py): an answer
#: opening with one copies the prompt's layout instead of writing text.
_PROMPT_LABEL = re.compile(
    r"^\W*(CURRENT|DESIRED|Title|Category|Brand|Price|Description|Date|Rating|Review title|"
    r"Review|Answer|Purchase \d+|LAST PURCHASE|NEW ITEM|EARLIER PURCHASES|PURCHASE HISTORY)"
    r"(?:\s*[:\]]|\W*$)",
)
_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)")


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (punctuation dropped)."""
    return _WORD.findall(text.lower())


def _ngrams(seq: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))


@cache
def _example_index(examples: frozenset[str]) -> tuple[frozenset[tuple[str, ...]], frozenset[str]]:
    """(every ``COPY_RUN_WORDS``-word run of the examples, the examples' normalised texts)."""
    runs: set[tuple[str, ...]] = set()
    whole: set[str] = set()
    for text in examples:
        ws = words(text)
        whole.add(" ".join(ws))
        runs.update(_ngrams(ws, COPY_RUN_WORDS))
    return frozenset(runs), frozenset(whole)


def copies_example(text: str, examples: frozenset[str]) -> bool:
    """True when ``text`` is an example (punctuation and case aside) or shares a long run."""
    runs, whole = _example_index(examples)
    ws = words(text)
    if " ".join(ws) in whole:
        return True
    return any(g in runs for g in _ngrams(ws, COPY_RUN_WORDS))


def repetition(text: str) -> str | None:
    """Why ``text`` loops (a phrase or sentence repeated), or None."""
    counts = Counter(_ngrams(words(text), LOOP_NGRAM))
    if counts:
        gram, times = counts.most_common(1)[0]
        if times >= LOOP_REPEATS:
            return f"repeats '{' '.join(gram)}' {times} times"
    seen: set[str] = set()
    for sentence in _SENTENCE_END.split(text):
        ws = words(sentence)
        if len(ws) < SENTENCE_MIN_WORDS:
            continue
        key = " ".join(ws)
        if key in seen:
            return f"repeats the sentence '{sentence.strip()[:60]}'"
        seen.add(key)
    return None


def echoed_label(text: str) -> str | None:
    """The prompt label ``text`` opens with (``CURRENT``, ``Purchase 1``...), or None."""
    found = _PROMPT_LABEL.match(text)
    return found.group(1) if found else None


def text_problem(text: str, examples: frozenset[str]) -> str | None:
    """Why an answer string is unusable (copy of an example, echoed layout, loop), or None."""
    if copies_example(text, examples):
        return "copies the few-shot example"
    label = echoed_label(text)
    if label is not None:
        return f"echoes the prompt's '{label}' label"
    return repetition(text)


__all__ = [
    "COPY_RUN_WORDS",
    "LOOP_NGRAM",
    "LOOP_REPEATS",
    "copies_example",
    "echoed_label",
    "repetition",
    "text_problem",
    "words",
]
