"""FLARE's network: a Perceiver resampler fusing ID and text, over the BERT4Rec encoder.

Imported lazily by :mod:`regen_bench_plugins.flare`. How an item vector is made (``e_i`` the
learned ID embedding, ``t_i,1..L`` the frozen encoder's token states of the item text, ``P``
a fixed PCA-whitening to ``hidden`` dimensions fitted once on the catalog's tokens, ``N`` a
LayerNorm without affine, ``R`` the resampler returning ``latents`` vectors):

    v_i = e_i + mean_k R([N(e_i) ; N(P t_i,1) ; ... ; N(P t_i,L)])_k   (padding tokens masked)

So the ID embedding is one extra key/value token next to the text tokens (the latents can
weigh it against the text) and is also added residually (a direct path for collaborative
signal). ``P`` is fixed rather than learned for speed: ``N(P t)`` of frozen text is then a
constant, and the resampler's learned key/value projection (applied right after it) is the
only per-token work of a training step; together they are a learned map restricted to the
``hidden`` leading principal directions of the encoder's token space.

The text-only view ``u_i = mean_k R([N(P t_i,1..L)])_k`` (ID token left out) is the view the
optional InfoNCE term aligns with ``e_i``. A critique ``c`` (token states ``s_1..M`` of the
same frozen encoder) becomes ``w_c = W_c mean_k R([N(P s_1..M)])_k + b``; it is added to the
token of the item it led to (or to the [MASK] standing for that item). The item vectors ``v``
are both the input table and the output layer: score(i) = head(h) · v_i / sqrt(hidden) + b_i.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from regen_bench_plugins.bert4rec.net import LN_EPS, SequenceEncoder, init_weights
from regen_bench_plugins.flare.options import FLAREOptions
from regen_bench_plugins.torchrec.scoring import item_scores

#: CUDA's memory-efficient attention kernel refuses batches of more than 65,535 rows when it
#: draws dropout ("cannot produce valid seed and offset outputs"), and the per-step catalog
#: pass is one batch of every item (377k at Clothing scale): there it runs in slices.
CUDA_ATTENTION_ROWS = 32_768


def attention_rows(query: torch.Tensor) -> int | None:
    """The most batch rows one attention call may take on ``query``'s device (None: no limit).

    CPU kernels have no such limit, and slicing would change which dropout draws each row
    gets, so CPU runs keep their one call (and their numbers).
    """
    return CUDA_ATTENTION_ROWS if query.is_cuda else None


class ResamplerLayer(nn.Module):
    """Latents cross-attend over [tokens; latents] (Flamingo's form), then a feed-forward.

    Tokens arrive already normalised (LayerNorm without affine, see :meth:`FlareNet.project`),
    so frozen text tokens are a constant computed once, and each training step's only
    per-token work is the key/value projection (weight gradients only).

    Written on ``scaled_dot_product_attention`` rather than ``nn.MultiheadAttention``: the
    latter's batch-first transposes copied the (items x tokens) tensors, the bulk of the cost
    of the per-step catalog pass on CPU.
    """

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm_latents = nn.LayerNorm(hidden, eps=LN_EPS)
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(
            nn.LayerNorm(hidden, eps=LN_EPS),
            nn.Linear(hidden, 4 * hidden),
            nn.GELU(),
            nn.Linear(4 * hidden, hidden),
        )

    def forward(
        self, latents: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        b, k, d = latents.shape
        h = self.heads
        lat = self.norm_latents(latents)
        # Keys include the latents themselves, so a row whose tokens are all padding is still
        # well defined (attention over the latents only).
        kv = self.kv(torch.cat([tokens, lat], dim=1))
        keep = torch.cat([valid, valid.new_ones(b, k)], dim=1)[:, None, None, :]
        key, value = kv.view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        query = self.q(lat).view(b, k, h, d // h).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        rows = attention_rows(query)
        if rows is None or b <= rows:
            att = F.scaled_dot_product_attention(query, key, value, attn_mask=keep, dropout_p=p)
        else:
            att = torch.cat(
                [
                    F.scaled_dot_product_attention(
                        query[i : i + rows],
                        key[i : i + rows],
                        value[i : i + rows],
                        attn_mask=keep[i : i + rows],
                        dropout_p=p,
                    )
                    for i in range(0, b, rows)
                ]
            )
        latents = latents + self.out(att.transpose(1, 2).reshape(b, k, d))
        return latents + self.ffn(latents)


class PerceiverResampler(nn.Module):
    """``latents`` learned queries; ``forward`` maps (B, L, d) tokens to (B, latents, d)."""

    def __init__(self, hidden: int, latents: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(latents, hidden))
        self.layers = nn.ModuleList(ResamplerLayer(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        lat = self.latents.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            lat = layer(lat, tokens, valid)
        out: torch.Tensor = self.norm(lat)
        return out


class FlareNet(nn.Module):
    """ID table, fixed text projection, resampler, critique head and the sequence encoder."""

    pca_mean: torch.Tensor
    pca_basis: torch.Tensor
    pca_fitted: torch.Tensor

    def __init__(
        self,
        n_items: int,
        text_dim: int,
        hidden: int,
        blocks: int,
        heads: int,
        dropout: float,
        max_len: int,
        latents: int,
        resampler_layers: int,
        init: str = "unit",
    ):
        super().__init__()
        self.n_items = n_items
        self.hidden = hidden
        self.id_emb = nn.Embedding(n_items, hidden)
        # Fixed (not trained) PCA-whitening of the frozen encoder's token states to `hidden`
        # dimensions, fitted once on the catalog's tokens; stored with the weights.
        self.register_buffer("pca_mean", torch.zeros(text_dim))
        self.register_buffer("pca_basis", torch.zeros(text_dim, hidden))
        self.register_buffer("pca_fitted", torch.zeros((), dtype=torch.bool))
        self.resampler = PerceiverResampler(hidden, latents, heads, resampler_layers, dropout)
        self.crit_out = nn.Linear(hidden, hidden)
        self.mask_emb = nn.Parameter(torch.zeros(hidden))
        self.encoder = SequenceEncoder(hidden, blocks, heads, dropout, max_len)
        self.out_bias = nn.Parameter(torch.zeros(n_items))
        self.logit_scale = init_weights(self, hidden, init)
        # The scale of the ID table (unit: like the resampler's LayerNorm-ed output).
        nn.init.normal_(self.mask_emb, std=1.0 if init == "unit" else 0.02)

    @classmethod
    def from_options(cls, n_items: int, text_dim: int, o: FLAREOptions) -> FlareNet:
        """The network of ``n_items`` items over ``text_dim``-dim encoder states, sized by ``o``."""
        return cls(
            n_items,
            text_dim,
            o.hidden,
            o.blocks,
            o.heads,
            o.dropout,
            o.max_len,
            o.latents,
            o.resampler_layers,
            o.init,
        )

    def fit_projection(self, states: torch.Tensor, valid: torch.Tensor) -> None:
        """Fit the PCA-whitening of token states (N, L, text_dim) on their valid tokens."""
        x = states[valid].double()
        mean = x.mean(dim=0)
        cov = (x - mean).T @ (x - mean) / max(len(x) - 1, 1)
        self._set_projection(mean, cov)

    def fit_projection_streamed(self, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """The same fit from (states, valid) chunks of any size, summed in float64 (for
        catalogs whose text does not fit in memory at once)."""
        n, total, gram = 0, None, None
        for states, valid in chunks:
            x = states[valid].double()
            n += len(x)
            total = x.sum(dim=0) if total is None else total + x.sum(dim=0)
            gram = x.T @ x if gram is None else gram + x.T @ x
        if total is None or gram is None or n == 0:
            raise ValueError("flare: no item text to fit the text projection on")
        mean = total / n
        cov = (gram - n * torch.outer(mean, mean)) / max(n - 1, 1)
        self._set_projection(mean, cov)

    def _set_projection(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        eigval, eigvec = torch.linalg.eigh(cov)  # ascending
        eigval, eigvec = eigval.flip(0)[: self.hidden], eigvec.flip(1)[:, : self.hidden]
        # Directions of (near) zero variance are left unscaled rather than blown up.
        scale = eigval.clamp_min(float(eigval[0]) * 1e-6).rsqrt()
        with torch.no_grad():
            self.pca_mean.copy_(mean.float())
            self.pca_basis.copy_((eigvec * scale).float())
            self.pca_fitted.fill_(True)

    def project(self, states: torch.Tensor) -> torch.Tensor:
        """Resampler tokens (M, L, hidden) of token states: PCA-whitened, LayerNorm-ed."""
        x = (states - self.pca_mean) @ self.pca_basis
        return F.layer_norm(x, (self.hidden,), eps=LN_EPS)

    def item_vectors(
        self, idx: torch.Tensor, text: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """v_i (M, hidden) of items ``idx`` (M,) from their projected tokens (M, L, hidden)."""
        ids = self.id_emb(idx)
        id_token = F.layer_norm(ids, (self.hidden,), eps=LN_EPS).unsqueeze(1)
        tokens = torch.cat([id_token, text], dim=1)
        keep = torch.cat([valid.new_ones(len(idx), 1), valid], dim=1)
        return ids + self.resampler(tokens, keep).mean(dim=1)

    def text_vectors(self, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Text-only view (M, hidden): the resampler over projected tokens, no ID token."""
        return self.resampler(text, valid).mean(dim=1)

    def critique_vectors(self, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """w_c (M, hidden) of critiques from their projected tokens."""
        return self.crit_out(self.text_vectors(text, valid))

    def forward(
        self, seq: torch.Tensor, items: torch.Tensor, crit: torch.Tensor | None
    ) -> torch.Tensor:
        """Head outputs (B, T, hidden).

        ``seq``: (B, T) token ids (0 padding, 1..N items, N+1 [MASK]); ``items``: (N, hidden)
        item vectors; ``crit``: (B, T, hidden) critique vectors to add (zeros where none).
        """
        pad = items.new_zeros(1, items.shape[1])
        table = torch.cat([pad, items, self.mask_emb.unsqueeze(0)])
        tokens = table[seq]
        if crit is not None:
            tokens = tokens + crit
        return self.encoder(tokens, seq > 0)

    def logits(self, states: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of every catalog item: (..., n_items)."""
        return item_scores(states, items, self.logit_scale, self.out_bias)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows of ``a`` and ``b`` (in-batch negatives, cosine)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
