"""``bert4rec``: BERT4Rec, bidirectional masked-item sequential recommendation (Sun et al. 2019).

Network (:mod:`regen_bench_plugins.bert4rec.net`): an item table with a padding row and a
[MASK] row, learned positions, ``blocks`` bidirectional post-LN transformer layers and BERT's
masked-item head, scored against the same item table plus a per-item bias.

Training (the Cloze task): each training sequence (its newest ``max_len`` items) is masked
afresh every epoch: each item becomes [MASK] with probability ``mask_prob`` (at least one per
sequence), or, with probability ``last_prob``, only the newest item is masked (the paper's
extra samples that match inference). Loss: softmax cross-entropy over the whole catalog at the
masked positions. At inference a [MASK] is appended after the newest ``max_len - 1`` items and
its output ranks the catalog. Critique text is ignored: registered for ``critique`` as the
language-blind baseline next to ``flare``, which subclasses this model.

Seeding, early stopping, fixed-shape scoring and checkpoints:
:mod:`regen_bench_plugins.torchrec.base`. Options:
:class:`~regen_bench_plugins.bert4rec.options.BERT4RecOptions`; where each default comes from
and what it measures on ``mini``: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from regen_bench import Example, UserSequence
from regen_bench_plugins.bert4rec.options import BERT4RecOptions
from regen_bench_plugins.torchrec.base import TorchRecommender
from regen_bench_plugins.torchrec.sequences import filled_width, left_pad, pad_rows

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class _Training:
    """Left-padded item ids (shifted) and critique ids aligned with them (FLARE only)."""

    items: np.ndarray
    critiques: np.ndarray | None


class BERT4Rec(TorchRecommender[_Training]):
    """BERT4Rec over the catalog; ignores critique text. Subclassed by FLARE."""

    NAME: ClassVar[str] = "bert4rec"
    OPTIONS: ClassVar[type[BERT4RecOptions]] = BERT4RecOptions
    NET_MODULE: ClassVar[str] = "regen_bench_plugins.bert4rec.net"

    options: BERT4RecOptions

    @property
    def mask_id(self) -> int:
        """The [MASK] token id (after the padding id 0 and the N shifted item ids)."""
        return len(self.catalog) + 1

    def _build_net(self) -> torch.nn.Module:
        o = self.options
        return self._net_mod.BERT4RecNet(
            len(self.catalog), o.hidden, o.blocks, o.heads, o.dropout, o.max_len, o.init
        )

    # -- model-specific pieces (overridden by FLARE) ------------------------------------------

    def _critique_rows(self, seqs: list[tuple[str | None, ...]], length: int) -> np.ndarray | None:
        """Critique ids aligned with the item columns, or None (BERT4Rec reads no text)."""
        return None

    def _train_logits(
        self, inputs: torch.Tensor, crits: torch.Tensor | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits at the masked positions, auxiliary loss or None) in training mode."""
        states = self.net(inputs)
        return self.net.logits(states[labels > 0]), None

    def _last_logits(self, inputs: torch.Tensor, crits: torch.Tensor | None) -> torch.Tensor:
        """Scores of every item at the last ([MASK]) column, eval mode, no grad."""
        logits: torch.Tensor = self.net.logits(self.net(inputs)[:, -1])
        return logits

    # -- training ---------------------------------------------------------------------------

    def _training_data(self, users: Sequence[UserSequence]) -> _Training:
        n = self.options.max_len
        return _Training(
            items=left_pad([u.items for u in users], n),
            critiques=self._critique_rows([u.critiques for u in users], n),
        )

    def _batch_loss(
        self, data: _Training, rows: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor:
        torch, device, o = self._torch, self.device, self.options
        width = filled_width(data.items[rows])
        seq = data.items[rows][:, -width:]
        crit_ids = None if data.critiques is None else data.critiques[rows][:, -width:]
        inp, lab, crit_ids = self._net_mod.mask_items(
            rng, seq, o.mask_prob, o.last_prob, self.mask_id, o.last_cut, crit_ids
        )
        crit = None if crit_ids is None else torch.from_numpy(crit_ids).to(device)
        lab_t = torch.from_numpy(lab).to(device)
        logits, aux = self._train_logits(torch.from_numpy(inp).to(device), crit, lab_t)
        loss = self._net_mod.masked_ce(logits, lab_t[lab_t > 0])
        return loss if aux is None else loss + aux

    # -- scoring ----------------------------------------------------------------------------

    def _score_rows(self, examples: Sequence[Example], fixed: bool) -> torch.Tensor:
        """History + [MASK] (and critique ids); filler rows of a fixed shape hold a lone [MASK]
        (all-padding rows are undefined in attention)."""
        torch, n = self._torch, self.options.max_len
        seq = left_pad([ex.history for ex in examples], n, append=self.mask_id)
        crit = self._critique_rows([(*ex.history_critiques, ex.critique) for ex in examples], n)
        if fixed:
            seq = pad_rows(seq, self.SCORE_BATCH)
            seq[len(examples) :, -1] = self.mask_id
            crit = None if crit is None else pad_rows(crit, self.SCORE_BATCH)
        else:
            width = filled_width(seq)
            seq = seq[:, -width:]
            crit = None if crit is None else crit[:, -width:]
        crit_t = None if crit is None else torch.from_numpy(crit).to(self.device)
        return self._last_logits(torch.from_numpy(seq).to(self.device), crit_t)
