"""``sasrec``: SASRec, self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

The network (:mod:`regen_bench_plugins.sasrec.net`) follows the reference implementation:
item embeddings scaled by sqrt(hidden) plus learned positions, ``blocks`` causal
self-attention blocks, a final LayerNorm, and the item table shared as the output layer:
score(item) = h_t · E_item, read at the last (newest) position.

Training: every training sequence gives inputs ``seq[:-1]`` and targets ``seq[1:]`` over its
last ``max_len`` steps. ``loss="ce"`` is softmax cross-entropy over the whole catalog at every
position (not the paper's loss, but known to train SASRec markedly better); ``loss="bce"`` is
the paper's binary cross-entropy against one negative per position drawn uniformly from items
the user never bought. Adam with betas (0.9, 0.98) as in the reference code. Seeding, early
stopping, fixed-shape scoring and checkpoints: :mod:`regen_bench_plugins.torchrec.base`.
Options: :class:`~regen_bench_plugins.sasrec.options.SASRecOptions`; where each default comes
from and what it measures on ``mini``: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from regen_bench import Example, UserSequence
from regen_bench_plugins.sasrec.options import SASRecOptions
from regen_bench_plugins.torchrec.base import TorchRecommender
from regen_bench_plugins.torchrec.sequences import filled_width, left_pad, pad_rows

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class _Training:
    """Left-padded inputs and targets (shifted ids) and each user's bought items (shifted)."""

    inputs: np.ndarray
    targets: np.ndarray
    seen: list[np.ndarray]


class SASRec(TorchRecommender[_Training]):
    """SASRec over the catalog; ignores critique text (a baseline that cannot read language)."""

    NAME: ClassVar[str] = "sasrec"
    OPTIONS: ClassVar[type[SASRecOptions]] = SASRecOptions
    NET_MODULE: ClassVar[str] = "regen_bench_plugins.sasrec.net"
    BETAS: ClassVar[tuple[float, float]] = (0.9, 0.98)
    WINDOW_EXTRA = 1  # a window of max_len + 1 purchases gives max_len (input, target) pairs

    options: SASRecOptions

    def _build_net(self) -> torch.nn.Module:
        o = self.options
        return self._net_mod.SASRecNet(
            len(self.catalog), o.hidden, o.blocks, o.heads, o.dropout, o.max_len
        )

    def _training_data(self, users: Sequence[UserSequence]) -> _Training:
        n = self.options.max_len
        return _Training(
            inputs=left_pad([u.items[:-1] for u in users], n),
            targets=left_pad([u.items[1:] for u in users], n),
            seen=[np.unique(u.items) + 1 for u in users],
        )

    def _batch_loss(
        self, data: _Training, rows: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor:
        torch, device = self._torch, self.device
        inputs = data.inputs[rows]
        width = filled_width(inputs)
        inp = torch.from_numpy(inputs[:, -width:]).to(device)
        tgt_np = data.targets[rows][:, -width:]
        tgt = torch.from_numpy(tgt_np).to(device)
        states = self.net(inp)
        mask = tgt > 0
        h = states[mask]
        if self.options.loss == "ce":
            return torch.nn.functional.cross_entropy(self.net.logits(h), tgt[mask] - 1)
        seen = [data.seen[r] for r in rows]
        neg_np = self._net_mod.sample_negatives(rng, tgt_np, seen, len(self.catalog))
        neg = torch.from_numpy(neg_np).to(device)
        emb = self.net.item_emb
        pos_logit = (h * emb(tgt[mask])).sum(-1)
        neg_logit = (h * emb(neg[mask])).sum(-1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(pos_logit, torch.ones_like(pos_logit)) + bce(
            neg_logit, torch.zeros_like(neg_logit)
        )

    def _score_rows(self, examples: Sequence[Example], fixed: bool) -> torch.Tensor:
        """Last-position scores; filler rows of a fixed shape are all padding."""
        torch = self._torch
        seq = left_pad([ex.history for ex in examples], self.options.max_len)
        seq = pad_rows(seq, self.SCORE_BATCH) if fixed else seq[:, -filled_width(seq) :]
        states = self.net(torch.from_numpy(seq).to(self.device))
        scores = self.net.logits(states[:, -1])
        if self.options.mask_history:
            for row, ex in enumerate(examples):
                idx = torch.as_tensor(np.asarray(ex.history, dtype=np.int64), device=self.device)
                scores[row, idx] = float("-inf")
        return scores
