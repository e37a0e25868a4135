"""Item sequences as fixed-width id arrays: left-padded, right-aligned (newest item last)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from regen_bench import UserSequence


def left_pad(
    seqs: Sequence[np.ndarray | Sequence[int]],
    length: int,
    append: int | None = None,
    shift: int = 1,
) -> np.ndarray:
    """Last items of each sequence, shifted by ``shift``, left-padded to ``length`` with 0.

    With ``append`` (e.g. a [MASK] id) that token takes the last column and the newest
    ``length - 1`` items precede it.
    """
    keep = length - (append is not None)
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for row, seq in enumerate(seqs):
        items = np.asarray(seq, dtype=np.int64)
        tail = items[max(len(items) - keep, 0) :]
        if len(tail):
            out[row, keep - len(tail) : keep] = tail + shift
        if append is not None:
            out[row, -1] = append
    return out


def filled_width(batch: np.ndarray) -> int:
    """How many trailing columns hold any token (at least 1): the rest is all padding."""
    return max(int((batch > 0).sum(axis=1).max()) if len(batch) else 0, 1)


def pad_rows(batch: np.ndarray, rows: int) -> np.ndarray:
    """``batch`` filled up with all-zero rows to ``rows`` rows (a fixed scoring shape)."""
    filler = np.zeros((rows - len(batch), *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, filler])


def training_windows(
    users: Sequence[UserSequence], length: int, targets: int, overlap: float = 0.0
) -> list[UserSequence]:
    """Each sequence longer than ``length`` cut into windows of at most ``length`` purchases.

    Windows end ``targets`` purchases apart, newest first, so a model that reads ``length``
    purchases and predicts ``targets`` of them (SASRec: ``length = max_len + 1``, every
    position after the first; BERT4Rec: ``length = targets = max_len``) sees every purchase as
    a target exactly once per epoch, as RecBole's every-prefix training does, at a fraction of
    the cost. A sequence that fits is kept as it is (same object, same order): on short,
    REGEN-like sequences this changes nothing. With ``overlap`` > 0 windows end
    ``max(1, round(targets * (1 - overlap)))`` purchases apart instead, so each purchase is a
    target about ``1 / (1 - overlap)`` times per epoch, each time with a different context.
    """
    step = max(1, round(targets * (1.0 - overlap)))
    out: list[UserSequence] = []
    for user in users:
        if len(user) <= length:
            out.append(user)
            continue
        stop = len(user)
        while stop >= 2:
            start = max(stop - length, 0)
            out.append(_window(user, start, stop))
            if start == 0:
                break
            stop -= step
    return out


def _window(user: UserSequence, start: int, stop: int) -> UserSequence:
    return dataclasses.replace(
        user,
        items=user.items[start:stop],
        timestamps=user.timestamps[start:stop],
        ratings=user.ratings[start:stop],
        critiques=user.critiques[start:stop],
        reviews=user.reviews[start:stop],
    )
