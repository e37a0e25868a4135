"""The SASRec network and the tensor helpers of its training loop (imports torch).

Imported lazily by :mod:`regen_bench_plugins.sasrec` when a model is built, so that listing
plugins never pays for (or depends on) torch. Layout of a batch: item ids shifted by +1
(0 = padding), left-padded, right-aligned, so the newest item is always in the last column.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regen_bench_plugins.torchrec.scoring import item_scores

#: LayerNorm epsilon of the original implementation.
LN_EPS = 1e-8


class CausalSelfAttention(nn.Module):
    """Multi-head attention; queries and keys/values may differ (SASRec normalises only Q)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor
    ) -> torch.Tensor:
        b, t, d = query.shape
        h = self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.q(query)),
            split(self.k(keys)),
            split(self.v(keys)),
            attn_mask=allowed,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """One SASRec block as in the reference code: LN(x) attends over x, then a point-wise FFN."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.attn = CausalSelfAttention(hidden, heads, dropout)
        self.ffn_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        q = self.attn_norm(x)
        x = q + self.attn(q, x, allowed)
        x = self.ffn_norm(x)
        return x + self.ffn(x)


class SASRecNet(nn.Module):
    """Item + learned position embeddings, causal blocks, item embedding shared as output."""

    def __init__(
        self, n_items: int, hidden: int, blocks: int, heads: int, dropout: float, max_len: int
    ):
        super().__init__()
        self.max_len = max_len
        self.scale = math.sqrt(hidden)
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(hidden, heads, dropout) for _ in range(blocks))
        self.last_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        # Xavier-normal for every matrix, as the reference implementations do; N(0, 1)
        # embeddings times sqrt(hidden) would swamp the positional signal.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, hidden) of a left-padded (B, T) batch, T <= max_len."""
        _, t = seq.shape
        valid = seq > 0
        # Right-aligned positions: a row's states do not depend on how much padding precedes it.
        pos = torch.arange(self.max_len - t, self.max_len, device=seq.device)
        x = self.item_emb(seq) * self.scale + self.pos_emb(pos)
        keep = valid.unsqueeze(-1).to(x.dtype)
        x = self.emb_dropout(x) * keep
        # Causal and never attend to padding; each position may see itself so that all-padding
        # rows stay finite (their outputs are zeroed and never used).
        causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=seq.device)
        allowed = (causal & (valid[:, None, None, :] | eye)).contiguous()
        for block in self.blocks:
            x = block(x, allowed) * keep
        out: torch.Tensor = self.last_norm(x)
        return out

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item (padding row dropped): (..., n_items)."""
        return item_scores(states, self.item_emb.weight[1:])


def sample_negatives(
    rng: np.random.Generator, targets: np.ndarray, seen: list[np.ndarray], n_items: int
) -> np.ndarray:
    """One uniform negative (shifted id) per position, never an item of that user's sequence."""
    neg = rng.integers(1, n_items + 1, size=targets.shape)
    for row, items in enumerate(seen):
        if len(items) >= n_items:  # bought everything: nothing to avoid
            continue
        bad = np.isin(neg[row], items)
        while bad.any():
            neg[row, bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
            bad = np.isin(neg[row], items)
    return neg
