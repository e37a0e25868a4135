"""``lumen``: one LLM that reads critiques, emits item-ID tokens and writes the narrative.

The paper's LUMEN (section 4.2.2, Figure 5b) over any transformers causal LM: an item
vocabulary beside the text vocabulary (:mod:`~regen_bench_plugins.lumen.net`), the paper's
prompt with item slots (:mod:`~regen_bench_plugins.lumen.prompt`), joint training
(:mod:`~regen_bench_plugins.lumen.train`) and checkpoint folders
(:mod:`~regen_bench_plugins.lumen.checkpoint`). Decoding takes the forced ``ID:`` step in the
item vocabulary (its scores over the catalog are :meth:`Lumen.score`, so the ranking and the
narrated item agree), feeds the item back, forces `` Text:`` and continues greedily in the
text vocabulary; with ``decode=start_switch`` the model first writes the START marker in the
text vocabulary and the item step follows it (``item_head=tied`` scores items through the item
table, ``item_init=title`` starts it from the titles). Examples are scored one at a time (no
padding), so nothing depends on the evaluation batch. Options, presets and measured figures:
docs/models.md.

The text loss trains only on users outside the held-out bucket of ``text_partition`` (the
fine-tuned narrator's rule); :meth:`Lumen.text_partition` tells the run, which scores the text
of the held-out users only. On a task without critiques the prompts carry no critique field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench.weights import WeightsError, pin
from regen_bench_plugins.lumen.checkpoint import (
    BACKBONE_DIR,
    load_item_tables,
    read_meta,
    write_checkpoint,
)
from regen_bench_plugins.lumen.options import (
    BACKBONE_ALIASES,
    RUNTIME_KEYS,
    LumenOptions,
    resolve_options,
)
from regen_bench_plugins.torchrec.scoring import batched_valid_ndcg

if TYPE_CHECKING:
    import os

    import torch

    from regen_bench.finetune_manifest import UserPartition
    from regen_bench_plugins.lumen.net import LumenNet
    from regen_bench_plugins.lumen.prompt import Encoded, PromptEncoder


#: ``fit_log`` keys (saved with a checkpoint): whether the prompts had critique fields, and how
#: many users' narratives reached the text loss.
CRITIQUES_KEY = "critiques_in_prompt"
TEXT_USERS_KEY = "text_users"
#: ``fit_log`` / ``config()`` key (``decode=start_switch``): examples scored, and how many of them
#: had the START marker forced because the model had not written it.
START_KEY = "start_marker"


class Lumen(Model):
    """LUMEN: joint next-item recommendation (item vocabulary) and narrative generation.

    ``checkpoint=PATH`` loads a folder written by ``save_dir=PATH`` (or :meth:`save`) instead
    of training; its model-defining options are the folder's.
    """

    generates_text = True
    net: LumenNet
    encoder: PromptEncoder
    device: torch.device

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: object):
        super().__init__(catalog, seed=seed)
        folder = config.get("checkpoint")
        meta = read_meta(Path(str(folder)), catalog) if folder else None
        self.opts: LumenOptions = resolve_options(config, meta)
        if len(catalog) < 1:
            raise ValueError("lumen needs a non-empty catalog")
        self.fit_log: dict[str, Any] = dict(meta.get("fit_log", {})) if meta else {}
        self._users: dict[str, UserSequence] = {}
        #: ``decode=start_switch``: examples scored, and those whose START marker was forced
        #: (it had not come within ``start_max_tokens``): validation ones go to ``fit_log``,
        #: the later ones (the run's test examples) to ``config()``.
        self.start_counts = {"decoded": 0, "forced": 0}
        #: Whether prompts have critique fields: set by the task's data in :meth:`fit`, or by
        #: the checkpoint (one that predates the record had them).
        self.show_critiques = bool(self.fit_log.get(CRITIQUES_KEY, True))
        #: Users whose narrative reached the text loss (a checkpoint's record; None: unknown).
        self.text_users: int | None = self.fit_log.get(TEXT_USERS_KEY) if meta else 0
        self._build(Path(self.opts.checkpoint) if meta else None)

    def _build(self, checkpoint: Path | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from regen_bench_plugins.llm_backends.local_models import (
            is_local_model_ref,
            resolve_local_model,
        )
        from regen_bench_plugins.lumen.net import LumenNet
        from regen_bench_plugins.lumen.prompt import PromptEncoder
        from regen_bench_plugins.torchrec.device import resolve_device

        self._torch = torch
        self.device = resolve_device("lumen", self.opts.device)
        if checkpoint is not None:
            source = str(checkpoint / BACKBONE_DIR)
        else:
            ref = BACKBONE_ALIASES.get(self.opts.backbone, self.opts.backbone)
            source = str(resolve_local_model(ref)) if is_local_model_ref(ref) else ref
        self.source = source
        torch.manual_seed(self.seed)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            # float32 master weights; bf16 enters through autocast (Accelerate) where supported.
            backbone = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"lumen option 'backbone': cannot load '{source}': {first}") from None
        self.encoder = PromptEncoder(self.tokenizer, max_target_tokens=self.opts.max_target_tokens)
        self.net = LumenNet(backbone, len(self.catalog), head=self.opts.item_head)
        if checkpoint is not None:
            load_item_tables(self.net, checkpoint)
        elif self.opts.item_init == "title":
            self.net.init_items_from_titles(self.title_ids())
        self.net.to(self.device).eval()
        eos = backbone.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(self.tokenizer.eos_token_id))

    def title_ids(self) -> list[list[int]]:
        """Each catalog item's title as backbone token ids (``item_init=title``), with the
        leading space the prompt writes before a title (empty for an item without title)."""
        out = []
        for i in range(len(self.catalog)):
            title = " ".join((self.catalog[i].title or "").split())
            ids = self.encoder.text_ids(" " + title) if title else []
            out.append([int(t) for t in ids])
        return out

    @property
    def narrative(self) -> str | None:
        """The narrative type the model writes (None for ``narrative=none``)."""
        return self.opts.narrative_type

    # -- data -------------------------------------------------------------------------------
    def use_users(self, users: Sequence[UserSequence]) -> None:
        """Give the model users' ratings and reviews (the prompt shows them for history items).

        ``fit`` sees them for the first N-2 purchases; ratings/reviews of later history items
        are unknown to a model that only gets :class:`Example` objects, and are shown as
        ``Rating: 5 User Review: none`` (in a run: only the newest history item of a test
        example).
        """
        self._users = {u.user_id: u for u in users}

    def training_examples(self, train: Sequence[UserSequence]) -> list[Encoded]:
        """The encoded training prefixes of ``train`` (sets :attr:`text_users`)."""
        from regen_bench_plugins.lumen.prompt import training_encodings

        out = training_encodings(
            self.encoder, self.catalog, self.opts, train, show_critiques=self.show_critiques
        )
        self.text_users = len({e.user_id for e in out if e.narrative})
        return out

    def text_partition(self) -> tuple[UserPartition, int] | None:
        """The user partition of the text loss and how many users' narratives it trained on
        (the run scores the text of the held-out users only); None without a narrative."""
        if self.opts.narrative_type is None:
            return None
        if self.text_users is None:
            raise ValueError(
                f"lumen checkpoint {self.opts.checkpoint} predates the text partition (its text "
                "trained on every user, so no user is held out to score it): train it again"
            )
        return self.opts.text_partition, self.text_users

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Train with early stopping on validation NDCG@10 (nothing when a checkpoint loaded).

        Whether the prompts show critiques follows the task (its data): a checkpoint whose
        prompts showed them cannot run a task that hides them (it trained on them)."""
        from regen_bench_plugins.lumen.prompt import shows_critiques

        if not self._users:
            self.use_users(train)
        shown = shows_critiques(train, valid)
        if self.opts.checkpoint:
            if self.fit_log.get(CRITIQUES_KEY) and not shown:
                raise ValueError(
                    f"lumen checkpoint {self.opts.checkpoint} was trained with critiques in its "
                    "prompts; this task hides them (training included): train it on this task"
                )
            return {"checkpoint": self.opts.checkpoint, "trained": False, **self.fit_log}
        from regen_bench_plugins.lumen.train import train as train_net

        self.show_critiques = shown
        self.start_counts = {"decoded": 0, "forced": 0}
        self.fit_log = train_net(self, train, valid)
        self.fit_log[CRITIQUES_KEY] = shown
        self.fit_log[TEXT_USERS_KEY] = self.text_users
        if self.opts.decode == "start_switch":
            self.fit_log[START_KEY] = dict(self.start_counts)
            self.start_counts = {"decoded": 0, "forced": 0}
        if self.opts.save_dir and self._is_main_process():
            self.save(self.opts.save_dir)
        return self.fit_log

    @staticmethod
    def _is_main_process() -> bool:
        from accelerate import PartialState

        return bool(PartialState().is_main_process)

    # -- scoring and generation -------------------------------------------------------------
    def _prompt_tensors(self, ex: Example) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from regen_bench_plugins.lumen.prompt import example_segments

        torch = self._torch
        segs = example_segments(
            self.catalog,
            self.opts,
            ex,
            self._users.get(ex.user_id),
            show_critiques=self.show_critiques,
        )
        switch = self.opts.decode == "start_switch"
        enc = self.encoder.open_prompt(segs) if switch else self.encoder.prompt(segs)
        ids = torch.tensor([enc.ids], device=self.device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[0, enc.slot_pos] = True
        return ids, mask, torch.tensor(enc.slot_items, device=self.device, dtype=torch.long)

    def trace_steps(
        self, ex: Example, max_new_tokens: int | None = None
    ) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """Catalog scores and the decoding steps (``("item", i)`` / ``("text", tok)``)."""
        from regen_bench_plugins.lumen.prompt import START_MARKER, TEXT_PREFIX

        torch = self._torch
        self.net.eval()
        ids, mask, items = self._prompt_tensors(ex)
        limit = self.opts.max_new_tokens if max_new_tokens is None else max_new_tokens
        switch = self.opts.decode == "start_switch"
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, steps = self.net.decode(
                ids,
                mask,
                items,
                self.encoder.text_ids(TEXT_PREFIX),
                max_new_tokens=limit,
                eos_ids=self.eos_ids,
                start=self.encoder.text_ids(START_MARKER) if switch else None,
                start_max_tokens=self.opts.start_max_tokens,
            )
        return logits.float().cpu().numpy(), steps

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        out = np.empty((len(examples), len(self.catalog)), dtype=np.float32)
        for row, ex in enumerate(examples):
            out[row], steps = self.trace_steps(ex, max_new_tokens=0)
            if self.opts.decode == "start_switch":
                self.start_counts["decoded"] += 1
                self.start_counts["forced"] += any(kind == "forced" for kind, _ in steps)
        return out

    def valid_ndcg(self, examples: Sequence[Example]) -> float:
        """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties)."""
        return batched_valid_ndcg(self.score, examples, max(len(examples), 1))

    def generate(self, examples: Sequence[Example], narrative_type: str) -> list[str]:
        """The narrative after the model's own top-1 item, one example at a time."""
        from tqdm.auto import tqdm

        if narrative_type != self.narrative:
            raise ValueError(
                f"lumen was trained to write '{self.opts.narrative}' narratives; for "
                f"'{narrative_type}' train it with --set narrative={narrative_type}"
            )
        texts = []
        for ex in tqdm(examples, desc="lumen generate", unit="ex", disable=None):
            _, steps = self.trace_steps(ex)
            toks = [t for kind, t in steps if kind == "text" and t not in self.eos_ids]
            texts.append(str(self.tokenizer.decode(toks, skip_special_tokens=True)).strip())
        return texts

    # -- checkpoints and records --------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint folder atomically (complete or not at all)."""
        saved = {k: v for k, v in self.opts.as_dict().items() if k not in RUNTIME_KEYS}
        return write_checkpoint(
            path,
            self.net,
            self.tokenizer,
            options=saved,
            max_new_tokens=self.opts.max_new_tokens,
            catalog=self.catalog,
            seed=self.seed,
            fit_log=self.fit_log,
        )

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore what :meth:`fit` left from a folder :meth:`save` wrote (the runner's fit
        cache): the trained weights, the training log and what it records (critique fields,
        text users), and what trains (for :meth:`num_parameters`).

        Unlike the ``checkpoint`` option, this model's options and backbone source stay as
        built, so its records read as after training; a folder saved with other options is
        refused. The training users come separately (:meth:`use_users`).
        """
        import torch
        from transformers import AutoModelForCausalLM

        folder = Path(path)
        meta = read_meta(folder, self.catalog)
        saved = {k: v for k, v in self.opts.as_dict().items() if k not in RUNTIME_KEYS}
        if meta.get("options") != json.loads(json.dumps(saved)):
            raise ValueError(f"{folder}: saved with other lumen options than this model's")
        backbone = folder / BACKBONE_DIR
        trained = AutoModelForCausalLM.from_pretrained(str(backbone), dtype=torch.float32)
        self.net.backbone.load_state_dict(trained.state_dict())
        load_item_tables(self.net, folder)
        self.net.freeze(self.opts.train_layers, self.opts.train_item_emb)
        self.net.to(self.device).eval()
        self.fit_log = dict(meta.get("fit_log", {}))
        self.show_critiques = bool(self.fit_log.get(CRITIQUES_KEY, True))
        self.text_users = self.fit_log.get(TEXT_USERS_KEY)
        self.start_counts = {"decoded": 0, "forced": 0}

    def config(self) -> dict[str, Any]:
        from regen_bench_plugins.lumen.prompt import PROMPT_VERSION

        switch = {START_KEY: dict(self.start_counts)} if self.opts.decode == "start_switch" else {}
        return {
            **self.opts.as_dict(),
            "backbone_source": self.source,
            "prompt_version": PROMPT_VERSION,
            "device": str(self.device),
            **switch,
        }

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def weights(self) -> dict[str, str]:
        """The backbone as loaded (an alias's converted folder, a folder, a hub id or the
        checkpoint's fine-tuned copy), and a loaded checkpoint folder as a whole."""
        from regen_bench_plugins.llm_backends.local_models import SOURCE_FILE

        local = Path(self.source).exists()
        # An alias or folder by its name and the files loaded; a hub id by itself.
        targets: list[tuple[str, str, str | None]] = [
            ("backbone", self.opts.backbone, self.source)
            if local
            else ("backbone", self.source, None)
        ]
        if self.opts.checkpoint:
            targets.append(("checkpoint", self.opts.checkpoint, None))
        pins: dict[str, str] = {}
        for option, ref, path in targets:
            try:
                pins[option] = pin(ref, path, ignore=(SOURCE_FILE,))
            except WeightsError as exc:
                raise WeightsError(f"lumen option '{option}': {exc}") from None
        return pins
