"""The BERT4Rec network, the sequence encoder FLARE shares, and masking helpers (imports torch).

Imported lazily by :mod:`regen_bench_plugins.bert4rec` and :mod:`regen_bench_plugins.flare`.
Token ids of a batch: 0 = padding, 1..N = catalog items shifted by +1, N+1 = [MASK].
Sequences are left-padded and right-aligned, so the [MASK] appended at inference is always in
the last column and always gets the same (last) position embedding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regen_bench_plugins.torchrec.scoring import item_scores

#: LayerNorm epsilon of BERT.
LN_EPS = 1e-12


class SequenceEncoder(nn.Module):
    """Learned positions + bidirectional post-LN transformer + BERT's masked-item output head.

    ``forward`` takes token vectors (B, T, hidden) already looked up by the caller (an ID table
    for BERT4Rec, fused ID + text vectors for FLARE), so both models share this module.
    """

    def __init__(self, hidden: int, blocks: int, heads: int, dropout: float, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.emb_norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.dropout = nn.Dropout(dropout)
        # torch's own transformer layer (post-LN, GELU as in BERT); nested tensors are off so
        # the eval fast path keeps the padded shape, and with it batch-independent numbers.
        layer = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=4 * hidden,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            layer_norm_eps=LN_EPS,
        )
        self.layers = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        # BERT's MLM head: dense + GELU + LayerNorm, then a dot product with the item table.
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=LN_EPS)
        )

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Head outputs (B, T, hidden) of (B, T, hidden) token vectors; ``valid`` = not padding.

        Every row needs at least one valid token (all-padding attention is undefined).
        """
        t = tokens.shape[1]
        pos = torch.arange(self.max_len - t, self.max_len, device=tokens.device)
        x = self.dropout(self.emb_norm(tokens + self.pos_emb(pos)))
        x = self.layers(x, src_key_padding_mask=~valid)
        out: torch.Tensor = self.head(x)
        return out


class BERT4RecNet(nn.Module):
    """Item table (padding, N items, [MASK]) shared by input and output, plus an output bias."""

    def __init__(
        self,
        n_items: int,
        hidden: int,
        blocks: int,
        heads: int,
        dropout: float,
        max_len: int,
        init: str = "unit",
    ):
        super().__init__()
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 2, hidden, padding_idx=0)
        self.encoder = SequenceEncoder(hidden, blocks, heads, dropout, max_len)
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        self.logit_scale = init_weights(self, hidden, init)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Head outputs (B, T, hidden) of a left-padded (B, T) token batch."""
        return self.encoder(self.item_emb(seq), seq > 0)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item: (..., n_items)."""
        items = self.item_emb.weight[1 : self.n_items + 1]
        return item_scores(states, items, self.logit_scale, self.out_bias)


def init_weights(module: nn.Module, hidden: int, scheme: str = "unit") -> float:
    """Initialise ``module``'s weights by ``scheme``; returns the logit scale that goes with it.

    ``unit``: Xavier-normal for every weight matrix, N(0, 1) for every embedding table, logits
    divided by sqrt(hidden). Unit-variance tables keep items and positions on one scale
    whatever the catalog size (Xavier on a table would shrink item vectors with N), and avoid
    the long plateau at the uniform loss that small initial query/key weights can cause on
    tiny data. ``bert``: BERT's (and RecBole's) truncated N(0, 0.02) for every weight matrix
    and table, zero biases, logits unscaled.
    """
    if scheme == "bert":
        for mod in module.modules():
            if isinstance(mod, nn.Linear) and mod.bias is not None:
                nn.init.zeros_(mod.bias)
        for p in module.parameters():
            if p.dim() > 1:
                nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
        scale = 1.0
    elif scheme == "unit":
        for mod in module.modules():
            if isinstance(mod, nn.Embedding):
                nn.init.normal_(mod.weight)
        for name, p in module.named_parameters():
            if p.dim() > 1 and "emb" not in name:
                nn.init.xavier_normal_(p)
        scale = hidden**-0.5
    else:
        raise ValueError(f"unknown init scheme {scheme!r} (unit, bert)")
    for mod in module.modules():
        if isinstance(mod, nn.Embedding) and mod.padding_idx is not None:
            with torch.no_grad():
                mod.weight[mod.padding_idx].zero_()
    return scale


def mask_items(
    rng: np.random.Generator,
    seq: np.ndarray,
    prob: float,
    last_prob: float,
    mask_id: int,
    last_cut: str = "end",
    aligned: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Cloze masking: (inputs, labels, aligned); labels hold the shifted target id or 0.

    Each item is replaced by [MASK] with probability ``prob`` (at least one per row); with
    probability ``last_prob`` a row instead masks only its newest item (BERT4Rec's extra
    samples that mimic inference). With ``last_cut="random"`` such a row is first cut after a
    random purchase (keeping at least one before it) and right-aligned again, so these
    inference-like samples predict every position of a long sequence in turn, as RecBole's
    every-prefix rows do, instead of only each window's newest purchase. ``aligned`` (ids
    column-aligned with ``seq``, e.g. FLARE's critiques) is cut and shifted the same way.
    """
    valid = seq > 0
    masked = (rng.random(seq.shape) < prob) & valid
    only_last = rng.random(len(seq)) < last_prob
    if last_cut == "random" and only_last.any():
        seq = seq.copy()
        aligned = None if aligned is None else aligned.copy()
        width = seq.shape[1]
        for row in np.flatnonzero(only_last):
            cols = np.flatnonzero(valid[row])
            if len(cols) < 2:
                continue
            cut = int(cols[rng.integers(1, len(cols))])  # the new newest purchase
            kept = seq[row, cols[0] : cut + 1].copy()
            seq[row] = 0
            seq[row, width - len(kept) :] = kept
            if aligned is not None:
                along = aligned[row, cols[0] : cut + 1].copy()
                aligned[row] = 0
                aligned[row, width - len(along) :] = along
        valid = seq > 0
    masked[only_last] = False
    masked[only_last, -1] = valid[only_last, -1]
    for row in np.flatnonzero(~masked.any(axis=1) & valid.any(axis=1)):
        cols = np.flatnonzero(valid[row])
        masked[row, cols[rng.integers(len(cols))]] = True
    inputs = np.where(masked, mask_id, seq)
    labels = np.where(masked, seq, 0)
    return inputs, labels, aligned


def masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Full-softmax cross-entropy over the catalog at the masked positions (labels > 0)."""
    return F.cross_entropy(logits, labels - 1)
