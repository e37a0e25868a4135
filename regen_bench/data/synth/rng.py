"""The simulator's random source: sampling that is reproducible on every Python version."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Rng:
    """Sampling built only on ``random.Random.random()``.

    Python guarantees that ``random()`` gives the same stream for the same seed on every
    version and platform; ``choice``/``shuffle``/``sample`` carry no such promise, so they are
    re-implemented here on top of it (that keeps the shipped file reproducible).
    """

    def __init__(self, seed: str):
        self._r = random.Random(seed)

    def random(self) -> float:
        return self._r.random()

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)``."""
        return min(int(self._r.random() * n), n - 1)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._r.random()

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def weighted(self, weights: Sequence[float]) -> int:
        """Index drawn with probability proportional to ``weights`` (not all zero)."""
        total = math.fsum(weights)
        x = self._r.random() * total
        acc = 0.0
        for i, w in enumerate(weights):
            acc += w
            if x < acc and w > 0:
                return i
        return max(i for i, w in enumerate(weights) if w > 0)

    def shuffle(self, items: list[T]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        pool = list(seq)
        self.shuffle(pool)
        return pool[:k]

    def expo(self, mean: float) -> float:
        return -mean * math.log(1.0 - self._r.random())

    def normal(self, mu: float, sigma: float) -> float:
        # Irwin-Hall: plain arithmetic, so no libm differences between platforms.
        return mu + sigma * (math.fsum(self._r.random() for _ in range(12)) - 6.0)
