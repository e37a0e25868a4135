"""The paper's ensemble rule (section 3.3.1): majority if more than half agree, else floor(mean)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

#: The Likert scale every rater uses.
SCALE: tuple[int, int] = (1, 7)


def aggregate(scores: Sequence[int]) -> int:
    """The final score of one output rated ``len(scores)`` times.

    The score that *more than half* of the runs gave wins; without such a majority the mean,
    rounded down, is used. ``[6, 6, 6, 6, 5, 5, 5]`` -> 6 (4 of 7); ``[6, 6, 6, 5, 5, 5, 4]``
    -> floor(37 / 7) = 5; a 2-2 tie ``[4, 4, 7, 7]`` -> floor(5.5) = 5.
    """
    if not scores:
        raise ValueError("aggregate: no scores")
    value, count = Counter(scores).most_common(1)[0]
    if count * 2 > len(scores):
        return int(value)
    return math.floor(sum(scores) / len(scores))


__all__ = ["SCALE", "aggregate"]
