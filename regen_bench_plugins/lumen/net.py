"""The LUMEN network: a causal LM backbone plus an item vocabulary (paper section 4.2.2).

- ``item_emb``: one randomly initialised embedding per catalog item (a single "ID token"),
  scaled like the backbone's own token embeddings so that it enters the residual stream at the
  same size (Gemma scales its embeddings by sqrt(hidden); the initial std is measured, not
  assumed); or each row the scaled mean of its title's token embeddings
  (:meth:`LumenNet.init_items_from_titles`).
- the item head (``head="separate"``, the default): a separate linear layer (hidden ->
  catalog) on the last hidden state (after the backbone's final norm), trained with softmax
  over the item vocabulary. It starts near zero (std 0.02/sqrt(hidden)), so the first item
  loss is about ln(catalog size): scoring with the embedding table itself by a plain dot
  product gave initial logits in the tens on SmolLM2, whose final hidden states are large,
  and an item loss of ~18 on an 800-item catalog before any step.
- or, with ``head="tied"`` (the paper's scoring through the item table), the item logits are
  ``scale * (h @ item_emb.weight^T) + bias``: the same tensor as the input slots' embeddings.
  ``scale`` is a learnable scalar that starts at ``1/sqrt(hidden)`` and ``bias`` a per-item
  learnable bias that starts at zero (beyond the paper's plain dot product: they let the start
  sit near ln(catalog size) and let the model set its own temperature). With
  ``train_item_emb=False`` the tied table still trains through the head; only its use at the
  input is detached, so the backward pass still stops at the lowest trainable layer.

Inputs are always given as ``inputs_embeds``: token embeddings from the backbone with the item
slots overwritten by item embeddings. Text logits are computed only where they are needed
(training labels, the next decoding step), which keeps a 49k-262k text vocabulary affordable.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import DynamicCache, PreTrainedModel


class LumenNet(nn.Module):
    """Backbone + item embedding table + item output head (separate, or the table itself)."""

    def __init__(self, backbone: PreTrainedModel, n_items: int, head: str = "separate"):
        super().__init__()
        if head not in ("separate", "tied"):
            raise ValueError(f"lumen item head must be 'separate' or 'tied', got {head!r}")
        self.head = head
        self.backbone = backbone
        table = cast(nn.Embedding, backbone.get_input_embeddings())  # maybe scaled (Gemma)
        hidden = int(table.weight.shape[1])
        with torch.no_grad():
            ids = torch.arange(min(int(table.weight.shape[0]), 256))
            # The embedding module may scale its output (Gemma: sqrt(hidden)); match what it
            # really outputs, not the raw table.
            std = float(table(ids).float().std()) or 0.02
        #: The std of the item table's random initialisation (the token embeddings' output).
        self.init_std = std
        self.item_emb = nn.Embedding(n_items, hidden)
        nn.init.normal_(self.item_emb.weight, std=std)
        #: Whether the item embeddings at the input slots get a gradient (``freeze``).
        self.input_grad = True
        #: The first trainable decoder layer when nothing below it trains and the inputs are
        #: fixed (set by ``freeze``): the input to that layer is then a constant of each
        #: example (``len(layers)``: the final normed states, for a frozen backbone).
        self.split: int | None = None
        self.item_head: nn.Linear | None = None
        if head == "separate":
            self.item_head = nn.Linear(hidden, n_items)
            # Near zero, not zero: a zero head gets the same gradient for every item that is
            # never a target, so those items would stay exactly tied forever.
            nn.init.normal_(self.item_head.weight, std=0.02 / hidden**0.5)
            nn.init.zeros_(self.item_head.bias)
        else:
            self.item_scale = nn.Parameter(torch.tensor(1.0 / hidden**0.5))
            self.item_bias = nn.Parameter(torch.zeros(n_items))
        softcap = getattr(backbone.config, "final_logit_softcapping", None)
        self.softcap = float(softcap) if softcap else None
        params = inspect.signature(backbone.get_decoder().forward).parameters
        # transformers 5.2x names the KV cache ``cache``; earlier versions ``past_key_values``.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    # -- pieces ---------------------------------------------------------------------------
    def token_embeddings(self) -> nn.Embedding:
        """The backbone's input token embedding."""
        return cast(nn.Embedding, self.backbone.get_input_embeddings())

    def embed(
        self, ids: torch.Tensor, slot_mask: torch.Tensor, slot_items: torch.Tensor
    ) -> torch.Tensor:
        """Token embeddings with the item slots (``slot_mask``) replaced by item embeddings.

        ``slot_items`` holds, in row-major order, one catalog index per True in ``slot_mask``.
        """
        emb = self.token_embeddings()(ids)
        table = self.item_emb.weight if self.input_grad else self.item_emb.weight.detach()
        items = nn.functional.embedding(slot_items, table).to(emb.dtype)
        return emb.masked_scatter(slot_mask.unsqueeze(-1), items)

    def hidden(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: DynamicCache | None = None,
    ) -> tuple[torch.Tensor, DynamicCache | None]:
        """Last hidden states (after the final norm) and the KV cache."""
        kw: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": attention_mask}
        if cache is not None:
            kw[self._cache_arg] = cache
            kw["use_cache"] = True
        else:
            kw["use_cache"] = False
        out = self.backbone.get_decoder()(**kw)
        # A DynamicCache is updated in place: the one passed in now holds these positions too.
        return out.last_hidden_state, cache

    def hidden_and_split(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states and the (detached) input to the first trainable layer
        (:attr:`split`), from one forward pass."""
        if self.split is None:
            raise ValueError("lumen: no frozen split (freeze() with train_layers >= 0 first)")
        inner = self.split < len(self.decoder_layers())
        out = self.backbone.get_decoder()(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            use_cache=False,
            output_hidden_states=inner,
        )
        kept = out.hidden_states[self.split] if inner else out.last_hidden_state
        return out.last_hidden_state, kept.detach()

    def top_hidden(self, states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Last hidden states from ``states`` (inputs to the first trainable layer, as
        :meth:`hidden_and_split` keeps them): only the layers from :attr:`split` up and the
        final norm run.

        Why the backbone's own forward over a shortened layer list, not the layers called one
        by one: the decoder builds the causal mask and the rotary position embeddings itself,
        differently from one architecture or transformers version to the next. Training
        checks the result against the full forward on its first batch (bit-identical on
        Llama) and does not use this path where they differ.
        """
        layers = self.decoder_layers()
        if self.split is None:
            raise ValueError("lumen: no frozen split (freeze() with train_layers >= 0 first)")
        if self.split >= len(layers):
            return states
        decoder = self.backbone.get_decoder()
        decoder.layers = nn.ModuleList(list(layers)[self.split :])
        try:
            out = decoder(inputs_embeds=states, attention_mask=attention_mask, use_cache=False)
        finally:
            decoder.layers = layers
        return cast(torch.Tensor, out.last_hidden_state)

    def text_logits(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.backbone.get_output_embeddings()(h)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def item_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores over the catalog from hidden states ``h`` (``[..., hidden]``)."""
        if self.item_head is not None:
            return self.item_head(h).float()
        table = self.item_emb.weight
        return (self.item_scale * (h.float() @ table.float().T) + self.item_bias).float()

    def item_inputs(self, items: torch.Tensor) -> torch.Tensor:
        """Input embeddings of catalog indices ``items`` (fed back while decoding)."""
        return self.item_emb(items)

    @torch.no_grad()
    def init_items_from_titles(self, titles: list[list[int]]) -> int:
        """Set each item's row to the mean of its title's token embeddings (the backbone's own
        input embedding, as it outputs them), all rows scaled by one factor so that the table's
        std is :attr:`init_std` (the random table's). Items with no title tokens keep their
        random row. Returns how many rows were set."""
        if len(titles) != self.item_emb.num_embeddings:
            n = self.item_emb.num_embeddings
            raise ValueError(f"lumen: {len(titles)} titles for {n} items")
        emb = self.token_embeddings()
        dev = self.item_emb.weight.device
        rows = [i for i, ids in enumerate(titles) if ids]
        if not rows:
            return 0
        means = torch.stack(
            [emb(torch.tensor(titles[i], device=dev)).float().mean(0) for i in rows]
        )
        spread = float(means.std()) if means.numel() > 1 else 0.0
        factor = self.init_std / spread if spread > 0 else 1.0
        self.item_emb.weight[torch.tensor(rows, device=dev)] = (means * factor).to(
            self.item_emb.weight.dtype
        )
        return len(rows)

    def decoder_layers(self) -> nn.ModuleList:
        """The backbone's stack of decoder layers (``model.layers`` in Llama, Gemma, Qwen...)."""
        layers = getattr(self.backbone.get_decoder(), "layers", None)
        if layers is None:
            raise ValueError(
                f"lumen: cannot find the decoder layers of {type(self.backbone).__name__} "
                "(no .layers); use train_layers=-1"
            )
        return layers

    def freeze(self, train_layers: int, train_item_emb: bool) -> None:
        """Choose what trains: ``train_layers=-1`` the whole backbone, ``n >= 0`` only its top
        ``n`` decoder layers and final norm (0: backbone frozen); the item head always trains,
        the item embedding table when ``train_item_emb`` (a tied table always trains through
        the head; ``train_item_emb=False`` then only detaches its use at the input).

        Why it pays on a CPU: with the bottom layers and the input embeddings frozen nothing
        below the top ``n`` layers needs a gradient, so the backward pass stops there (figures:
        docs/models.md). A trainable item table at the input needs the backward pass through
        every layer again.
        """
        self.backbone.requires_grad_(train_layers < 0)
        if train_layers > 0:
            layers = self.decoder_layers()
            if train_layers > len(layers):
                raise ValueError(
                    f"lumen option 'train_layers' ({train_layers}) exceeds the backbone's "
                    f"{len(layers)} layers"
                )
            for layer in list(layers)[-train_layers:]:
                layer.requires_grad_(True)
            norm = getattr(self.backbone.get_decoder(), "norm", None)
            if norm is not None:  # it scales what the top layers write into the item head
                norm.requires_grad_(True)
        if self.item_head is not None:
            self.item_emb.requires_grad_(train_item_emb)
            self.item_head.requires_grad_(True)
            self.input_grad = True
        else:
            self.item_emb.requires_grad_(True)
            self.item_scale.requires_grad_(True)
            self.item_bias.requires_grad_(True)
            self.input_grad = train_item_emb
        # The inputs of the trainable layers are constants only when the embeddings at the
        # input do not change: a separate head with a frozen table (a tied table trains
        # through the head, so the values at its input slots move even when detached).
        fixed_inputs = self.item_head is not None and not train_item_emb
        found = getattr(self.backbone.get_decoder(), "layers", None)
        self.split = None
        if train_layers >= 0 and fixed_inputs and found is not None:
            self.split = len(found) - train_layers

    # -- training ---------------------------------------------------------------------------
    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_mask: torch.Tensor,
        slot_items: torch.Tensor,
        labels: torch.Tensor,
        item_pos: torch.Tensor,
        item_target: torch.Tensor,
        item_rows: torch.Tensor | None = None,
        text_weight: float = 1.0,
        states: torch.Tensor | None = None,
        keep: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Item cross-entropy at the ID positions + token cross-entropy on the narrative.

        ``item_pos[k]`` (in row ``item_rows[k]``; default: one per row, in order) is an item slot
        whose item ``item_target[k]`` is predicted from the state just before it. Both losses
        are means over their own positions; ``loss = item + text_weight * text``.

        ``states`` (inputs to the first trainable layer, kept from an earlier pass) replace the
        frozen part of the forward pass; ``keep`` returns them as ``out["kept"]``.
        """
        kept = None
        if states is not None:
            h = self.top_hidden(states, attention_mask)
        elif keep:
            h, kept = self.hidden_and_split(self.embed(ids, slot_mask, slot_items), attention_mask)
        else:
            h, _ = self.hidden(self.embed(ids, slot_mask, slot_items), attention_mask)
        rows = torch.arange(len(ids), device=ids.device) if item_rows is None else item_rows
        item_loss = nn.functional.cross_entropy(
            self.item_logits(h[rows, item_pos - 1]), item_target
        )
        # labels[t] is predicted from the state at t-1.
        shifted = labels[:, 1:]
        mask = shifted != -100
        if bool(mask.any()):
            logits = self.text_logits(h[:, :-1][mask]).float()
            text_loss = nn.functional.cross_entropy(logits, shifted[mask])
        else:
            text_loss = h.sum() * 0.0
        out = {
            "loss": item_loss + text_weight * text_loss,
            "item_loss": item_loss.detach(),
            "text_loss": text_loss.detach(),
        }
        if kept is not None:
            out["kept"] = kept
            out["hidden"] = h.detach()
        return out

    # -- decoding ---------------------------------------------------------------------------
    def new_cache(self) -> DynamicCache:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.backbone.config)  # sliding-window layers (Gemma 3)
        except TypeError:  # transformers versions without the ``config`` argument
            return DynamicCache()

    @torch.no_grad()
    def decode(
        self,
        ids: torch.Tensor,
        slot_mask: torch.Tensor,
        slot_items: torch.Tensor,
        text_prefix: list[int],
        *,
        max_new_tokens: int,
        eos_ids: set[int],
        start: list[int] | None = None,
        start_max_tokens: int = 0,
    ) -> tuple[torch.Tensor, list[tuple[str, int]]]:
        """Greedy LUMEN decoding of one prompt (a 1-row batch).

        Without ``start`` the prompt ends with the forced ``ID:``, so the item step comes
        first. With ``start`` (the START marker's token ids) decoding begins in the text
        vocabulary: greedy tokens (steps ``("lead", tok)``) until they end with the marker,
        then the next position is the item step. When the marker has not come after
        ``start_max_tokens`` tokens, or an EOS id comes first, the marker is forced (steps
        ``("forced", tok)``) and the item step follows it.

        The item step's logits are the catalog scores and its argmax the recommended item
        (``("item", index)``). Its embedding is fed back, the fixed ``text_prefix``
        (`` Text:``) is forced, and decoding continues in the text vocabulary (``("text",
        tok)``) until an EOS id or ``max_new_tokens``. Returns the item logits and the steps.
        """
        dev = ids.device
        dtype = self.token_embeddings().weight.dtype
        steps: list[tuple[str, int]] = []
        cache = self.new_cache() if max_new_tokens > 0 or start is not None else None
        h, cache = self.hidden(self.embed(ids, slot_mask, slot_items), cache=cache)
        if start is not None:
            lead: list[int] = []
            while len(lead) < start_max_tokens:
                tok = int(self.text_logits(h[:, -1]).argmax(-1)[0])
                if tok in eos_ids:
                    break
                lead.append(tok)
                steps.append(("lead", tok))
                feed = self.token_embeddings()(torch.tensor([[tok]], device=dev))
                h, cache = self.hidden(feed.to(dtype), cache=cache)
                if lead[-len(start) :] == start:
                    break
            if lead[-len(start) :] != start:
                steps += [("forced", t) for t in start]
                feed = self.token_embeddings()(torch.tensor([start], device=dev))
                h, cache = self.hidden(feed.to(dtype), cache=cache)
        item_logits = self.item_logits(h[:, -1])[0]
        item = int(item_logits.argmax())
        steps.append(("item", item))
        if max_new_tokens <= 0:
            return item_logits, steps
        feed = torch.cat(
            [
                self.item_inputs(torch.tensor([[item]], device=dev)),
                self.token_embeddings()(torch.tensor([text_prefix], device=dev)),
            ],
            dim=1,
        )
        for _ in range(max_new_tokens):
            h, cache = self.hidden(feed.to(dtype), cache=cache)
            tok = int(self.text_logits(h[:, -1]).argmax(-1)[0])
            steps.append(("text", tok))
            if tok in eos_ids:
                break
            feed = self.token_embeddings()(torch.tensor([[tok]], device=dev))
        return item_logits, steps
