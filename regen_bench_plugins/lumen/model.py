"""``lumen``: one LLM that reads critiques, emits item-ID tokens and writes the narrative.

The paper's LUMEN (section 4.2.2, Figure 5b) over any transformers causal LM:

- an extra **item vocabulary**: one randomly initialised embedding per catalog item (a single
  ID token) and an item output head trained with softmax over the catalog, kept separate from
  the text vocabulary (:mod:`regen_bench_plugins.lumen.net`);
- the paper's **prompt** with an item slot wherever an item id appears, target ``ID: [item]
  Text: <narrative>`` (:mod:`regen_bench_plugins.lumen.prompt`); item slots are filled with the
  item embeddings (``inputs_embeds``); loss = item cross-entropy at the ID position + token
  cross-entropy on the narrative (``text_weight`` weighs the second);
- **decoding** (``generate``): the prompt ends with the forced ``ID:``; that step is taken in
  the item vocabulary (its full score vector over the catalog is :meth:`Lumen.score`, so
  ranking metrics and the narrated item agree: the runner narrates the top-1 item), the item's
  embedding is fed back, `` Text:`` is forced, and decoding continues greedily in the text
  vocabulary. Scores and texts are computed one example at a time (no padding), so they do not
  depend on the evaluation batch.

Training data. Every training sequence (the first N-2 purchases) gives its prefixes as
examples ("subsequences up to N-2"): history ``items[:j]`` -> target ``items[j]`` for
``j = 1..N-3``, the longest ``max_prefixes`` of them (0 = all). The narrative text (of the
run's narrative type, option ``narrative``) is the target of the longest prefix only: REGEN
narratives describe the user and their *last* purchase, so one narrative per user is trained
once, not once per prefix. Caveat: REGEN narratives are per user and every user is also a test
user (leave-one-out), so the text loss trains on the very references the test later scores
against; LUMEN's text metrics are therefore optimistic, as they are in any joint training on
this split. ``text_weight=0`` trains recommendation only; ``narrative=none`` drops the text.

Truncation (recorded in :meth:`Lumen.config`): the ``max_history`` most recent purchases are
shown; titles, descriptions, reviews and critiques are clipped to ``max_field_chars``
characters, titles to ``max_title_words`` words (0: all); ``fields=title`` shows only each
item's title and critique (no category, description, price, rating, review); the narrative
target is cut to ``max_target_tokens`` tokens; generation stops after ``max_new_tokens``.

CPU budgets (all off by default, so the defaults stay the paper's full fine-tuning):
``train_layers=n`` trains only the top ``n`` decoder layers (0: frozen backbone; -1: all),
``train_item_emb=false`` freezes the random item table at the input (then the backward pass
stops at the lowest trainable layer), ``item_loss=all`` puts the item loss at every item slot
of a sequence (each slot predicted from the state before it: one forward pass of the longest
prefix trains all its shorter prefixes' next items), ``bucket`` batches examples of similar
length, ``train_minutes`` stops training after that much wall time (validated, best weights
restored; ``fit_log["stopped"]`` says why training ended). ``preset=cpu-hour`` bundles the
settings measured to fit a `mini` run into an hour on a 2-core CPU (:data:`PRESETS`;
explicit options override it).

Optimisation: AdamW at a constant learning rate (the paper: constant 1e-5, batch 512, up to
10,000 steps, early stopping) with ``lr`` for the backbone and ``item_lr`` for the new item
tables (freshly initialised tables need a larger rate to move in few steps), batch size
``batch_size`` reached by gradient accumulation over ``micro_batch`` rows, through
``accelerate.Accelerator`` (``accelerate launch`` spreads it over GPUs; bf16 autocast where
the device supports it, float32 on CPU). Validation NDCG@10 (full ranking, pessimistic ties)
on the first ``valid_examples`` validation examples after every epoch, or every
``eval_every`` optimizer steps; training stops after ``patience`` evaluations without
improvement and the best weights are restored.

Defaults: ``backbone="smollm2"`` (SmolLM2-135M-Instruct, packaged offline; CPU-friendly). The
issue names Gemma 3 270M (``backbone=gemma3-270m``, also offline) and the paper used Gemma 2B
(``backbone=google/gemma-2b`` on a machine with the hub): any transformers causal LM, local
folder, ``.gguf`` file or offline alias works. SmolLM2 is the default because it is about 3x
faster on CPU, where this harness's tests and quick runs happen.

Checkpoints: ``save_dir=PATH`` writes, after training, ``PATH/backbone`` (``save_pretrained``
of the backbone and its tokenizer), ``PATH/items.safetensors`` (item table and head) and
``PATH/lumen.json`` (options, catalog ids, training log); ``checkpoint=PATH`` loads one
instead of training (``regen-bench trace --model PATH`` reads it). No pickle is ever loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.metrics.ranking import metrics_from_counts, rank_counts
from regen_bench_plugins.torchrec.options import coerce_option

FORMAT_VERSION = 1
META_FILE = "lumen.json"
ITEMS_FILE = "items.safetensors"
#: Generic marker naming the model plugin of a checkpoint folder (read by ``regen-bench trace``).
MODEL_MARKER = "regen-bench-model.json"

#: Every option with its default (documented in the module docstring).
DEFAULTS: dict[str, Any] = {
    "preset": "",
    "backbone": "smollm2",
    "narrative": "product_endorsement",
    "max_history": 10,
    "max_field_chars": 200,
    "fields": "full",
    "max_title_words": 0,
    "max_target_tokens": 96,
    "max_new_tokens": 96,
    "max_prefixes": 0,
    "max_train_users": 0,
    "train_layers": -1,
    "train_item_emb": True,
    "item_loss": "last",
    "bucket": False,
    "train_minutes": 0.0,
    "lr": 1e-5,
    "item_lr": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 16,
    "micro_batch": 4,
    "epochs": 3,
    "max_steps": 10000,
    "eval_every": 0,
    "valid_examples": 256,
    "patience": 2,
    "text_weight": 1.0,
    "grad_clip": 1.0,
    "device": "auto",
    "save_dir": "",
    "checkpoint": "",
}
#: Options that define the trained model (the rest only say where/how it runs or is saved).
MODEL_KEYS = (
    "backbone",
    "narrative",
    "max_history",
    "max_field_chars",
    "fields",
    "max_title_words",
    "max_target_tokens",
)
RUNTIME_KEYS = ("max_new_tokens", "device", "save_dir", "checkpoint", "valid_examples")
#: Named bundles of options (``preset=NAME``); options given explicitly override them.
#: ``cpu-hour`` fits a `mini` run (2,000 users, 800 items, SmolLM2-135M, one thread) into an
#: hour on a small CPU: compact prompts (8 newest purchases, titles of at most 6 words and the
#: critiques; no category, description, price, rating or review), a 32-token narrative, the
#: longest prefix of every training user with the item loss at every item slot of it (one
#: forward pass trains all of the user's next-item predictions), frozen backbone but for the top
#: 2 layers, frozen item table (the backward pass stops at layer 28 of 30), larger constant rates
#: for what trains, length-bucketed micro-batches, validation every 40 steps and a 30-minute
#: training budget (validation inside it). Measured figures: docs/models.md.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-hour": {
        "max_history": 8,
        "max_field_chars": 120,
        "fields": "title",
        "max_title_words": 6,
        "max_target_tokens": 32,
        "max_new_tokens": 32,
        "max_prefixes": 1,
        "train_layers": 2,
        "train_item_emb": False,
        "item_loss": "all",
        "bucket": True,
        "lr": 1e-4,
        "item_lr": 2e-3,
        "batch_size": 16,
        "micro_batch": 8,
        "epochs": 20,
        "eval_every": 40,
        "valid_examples": 100,
        "patience": 4,
        "train_minutes": 30.0,
    },
}
#: Aliases of the paper's and the issue's backbones (hub ids need a machine with the hub).
BACKBONE_ALIASES = {"gemma-2b": "google/gemma-2b", "gemma3": "gemma3-270m"}


def _coerce(name: str, value: Any) -> Any:
    """Bring a value (possibly a string from ``--set``) to the default's type."""
    if value is None and name == "narrative":
        return "none"
    return coerce_option("lumen", name, value, DEFAULTS[name])


def _validate(opts: dict[str, Any]) -> None:
    for key in (
        "max_history",
        "max_field_chars",
        "max_target_tokens",
        "batch_size",
        "micro_batch",
        "max_steps",
        "valid_examples",
    ):
        if opts[key] < 1:
            raise ValueError(f"lumen option '{key}' must be at least 1, got {opts[key]}")
    for key in (
        "max_new_tokens",
        "max_prefixes",
        "max_train_users",
        "epochs",
        "eval_every",
        "max_title_words",
    ):
        if opts[key] < 0:
            raise ValueError(f"lumen option '{key}' must be >= 0, got {opts[key]}")
    for key in ("lr", "item_lr"):
        if opts[key] <= 0:
            raise ValueError(f"lumen option '{key}' must be > 0, got {opts[key]}")
    if opts["train_layers"] < -1:
        raise ValueError(
            f"lumen option 'train_layers' must be -1 (all) or >= 0, got {opts['train_layers']}"
        )
    if opts["item_loss"] not in ("last", "all"):
        raise ValueError(
            f"lumen option 'item_loss' must be 'last' or 'all', got {opts['item_loss']!r}"
        )
    if opts["fields"] not in ("full", "title"):
        raise ValueError(f"lumen option 'fields' must be 'full' or 'title', got {opts['fields']!r}")
    for key in ("weight_decay", "patience", "text_weight", "grad_clip", "train_minutes"):
        if opts[key] < 0:
            raise ValueError(f"lumen option '{key}' must be >= 0, got {opts[key]}")
    if opts["batch_size"] % opts["micro_batch"]:
        raise ValueError(
            f"lumen: batch_size ({opts['batch_size']}) must be a multiple of micro_batch "
            f"({opts['micro_batch']})"
        )
    if opts["narrative"] != "none" and opts["narrative"] not in NARRATIVE_TYPES:
        raise ValueError(
            f"lumen option 'narrative' must be 'none' or one of {', '.join(NARRATIVE_TYPES)}, "
            f"got {opts['narrative']!r}"
        )


def catalog_digest(catalog: Catalog) -> str:
    """sha256 of the catalog's item ids in index order (a checkpoint fits one catalog)."""
    return hashlib.sha256("\n".join(catalog.ids(range(len(catalog)))).encode()).hexdigest()


class Lumen(Model):
    """LUMEN: joint next-item recommendation (item vocabulary) and narrative generation."""

    generates_text = True

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        known = {k: config.pop(k) for k in list(config) if k in DEFAULTS}
        super().__init__(catalog, seed=seed, **config)  # raises on unknown keys
        if len(catalog) < 1:
            raise ValueError("lumen needs a non-empty catalog")
        preset = _coerce("preset", known.get("preset", ""))
        if preset and preset not in PRESETS:
            raise ValueError(
                f"lumen option 'preset' must be one of {', '.join(PRESETS)}, got {preset!r}"
            )
        opts = {
            k: _coerce(k, v) for k, v in {**DEFAULTS, **PRESETS.get(preset, {}), **known}.items()
        }
        meta: dict[str, Any] | None = None
        if opts["checkpoint"]:
            meta = self._read_meta(Path(opts["checkpoint"]), catalog)
            for key, value in meta["options"].items():
                if key in RUNTIME_KEYS or key not in DEFAULTS:
                    continue
                if key in known and key in MODEL_KEYS and _coerce(key, known[key]) != value:
                    raise ValueError(
                        f"lumen option '{key}'={known[key]!r} contradicts the checkpoint "
                        f"({value!r}); leave it out when loading a checkpoint"
                    )
                opts[key] = value
            # The trained narrative length is the default of later generation (``trace``).
            saved_new = meta.get("max_new_tokens")
            if "max_new_tokens" not in known and isinstance(saved_new, int):
                opts["max_new_tokens"] = saved_new
        _validate(opts)
        self.opts = opts
        self.fit_log: dict[str, Any] = dict(meta.get("fit_log", {})) if meta else {}
        self._users: dict[str, UserSequence] = {}
        self._build(Path(opts["checkpoint"]) if meta else None)

    # -- construction -----------------------------------------------------------------------
    @staticmethod
    def _read_meta(path: Path, catalog: Catalog) -> dict[str, Any]:
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path}: not a lumen checkpoint (no {META_FILE})")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{meta_path}: line {exc.lineno}: not valid JSON") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: field 'format' must be {FORMAT_VERSION}")
        if meta.get("catalog_sha256") != catalog_digest(catalog):
            raise ValueError(
                f"{meta_path}: field 'catalog_sha256': the checkpoint was trained on another "
                f"catalog ({meta.get('catalog_items')} items) than this dataset's "
                f"({len(catalog)} items)"
            )
        return dict(meta)

    def _build(self, checkpoint: Path | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from regen_bench_plugins.llm_backends.local_models import (
            is_local_model_ref,
            resolve_local_model,
        )
        from regen_bench_plugins.lumen.net import LumenNet
        from regen_bench_plugins.lumen.prompt import PromptEncoder

        self._torch = torch
        opts = self.opts
        if opts["device"] == "auto":
            opts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(opts["device"])
        except RuntimeError as exc:
            raise ValueError(f"lumen option 'device': {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("lumen option 'device': CUDA is not available on this machine")
        if checkpoint is not None:
            source = str(checkpoint / "backbone")
        else:
            ref = BACKBONE_ALIASES.get(opts["backbone"], opts["backbone"])
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
        self.net = LumenNet(backbone, len(self.catalog))
        if checkpoint is not None:
            from safetensors.torch import load_file

            state = load_file(str(checkpoint / ITEMS_FILE))
            got = self.net.load_state_dict(state, strict=False)
            bad = [k for k in got.missing_keys if not k.startswith("backbone.")]
            if bad or got.unexpected_keys:
                raise ValueError(
                    f"{checkpoint / ITEMS_FILE}: tensors do not match the model "
                    f"(missing {bad}, unexpected {got.unexpected_keys})"
                )
        self.net.to(self.device).eval()
        self.encoder = PromptEncoder(self.tokenizer, max_target_tokens=opts["max_target_tokens"])
        eos = backbone.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(self.tokenizer.eos_token_id))

    @property
    def narrative(self) -> str | None:
        return None if self.opts["narrative"] == "none" else str(self.opts["narrative"])

    # -- data -------------------------------------------------------------------------------
    def _segments(
        self,
        items: Sequence[int] | np.ndarray,
        ratings: Sequence[float] | np.ndarray,
        reviews: Sequence[tuple[str, str]],
        critiques: Sequence[str | None],
        next_critique: str | None,
    ) -> list[str | int]:
        from regen_bench_plugins.lumen.prompt import prompt_segments

        return prompt_segments(
            self.catalog,
            items,
            ratings,
            reviews,
            critiques,
            next_critique,
            self.narrative,
            max_history=self.opts["max_history"],
            max_field_chars=self.opts["max_field_chars"],
            fields=self.opts["fields"],
            max_title_words=self.opts["max_title_words"],
        )

    def training_examples(self, train: Sequence[UserSequence]) -> list[Any]:
        """Encoded prefixes of the training sequences (see module docstring)."""
        users = list(train)
        if self.opts["max_train_users"]:
            users = users[: self.opts["max_train_users"]]
        out = []
        for user in users:
            n = len(user)
            last = list(range(1, n))
            if self.opts["max_prefixes"]:
                last = last[-self.opts["max_prefixes"] :]
            text = user.narratives.as_dict().get(self.narrative) if self.narrative else None
            for j in last:
                segs = self._segments(
                    user.items[:j],
                    user.ratings[:j],
                    user.reviews[:j],
                    user.critiques[:j],
                    user.critiques[j] if j < len(user.critiques) else None,
                )
                out.append(
                    self.encoder.training(segs, int(user.items[j]), text if j == n - 1 else None)
                )
        return out

    def _example_segments(self, ex: Example, user: UserSequence | None = None) -> list[str | int]:
        """Segments of a test/validation example (ratings and reviews need the user)."""
        n = len(ex.history)
        ratings = [5.0] * n
        reviews = [("", "")] * n
        found = user or self._users.get(ex.user_id)
        if found is not None:
            # Known for the purchases the model was given (training: the first N-2).
            k = min(n, len(found), len(found.reviews))
            ratings[:k] = [float(r) for r in found.ratings[:k]]
            reviews[:k] = list(found.reviews[:k])
        return self._segments(ex.history, ratings, reviews, ex.history_critiques, ex.critique)

    def use_users(self, users: Sequence[UserSequence]) -> None:
        """Give the model users' ratings and reviews (the prompt shows them for history items).

        ``fit`` sees them for the first N-2 purchases; ratings/reviews of later history items
        are unknown to a model that only gets :class:`Example` objects, and are shown as
        ``Rating: 5 User Review: none`` (in a run: only the newest history item of a test
        example).
        """
        self._users = {u.user_id: u for u in users}

    def _collate(self, batch: Sequence[Any]) -> dict[str, Any]:
        torch = self._torch
        width = max(len(e.ids) for e in batch)
        pad = self.encoder.placeholder
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        slot = torch.zeros((len(batch), width), dtype=torch.bool)
        items: list[int] = []
        rows: list[int] = []
        pos: list[int] = []
        targets: list[int] = []
        every = self.opts["item_loss"] == "all"
        for r, e in enumerate(batch):
            ids[r, : len(e.ids)] = torch.tensor(e.ids)
            att[r, : len(e.ids)] = 1
            labels[r, : len(e.labels)] = torch.tensor(e.labels)
            slot[r, e.slot_pos] = True
            items += e.slot_items  # slot_pos ascending: row-major order of the mask
            # item_loss=all: every item slot is a next-item target (predicted from the state
            # before it, which sees only the purchases before it): the prefixes of the shown
            # history, trained in the one forward pass of the longest prefix.
            slots = (
                list(zip(e.slot_pos, e.slot_items, strict=True))
                if every
                else [(e.item_pos, e.item_target)]
            )
            rows += [r] * len(slots)
            pos += [p for p, _ in slots]
            targets += [t for _, t in slots]
        return {
            "ids": ids,
            "attention_mask": att,
            "slot_mask": slot,
            "slot_items": torch.tensor(items, dtype=torch.long),
            "labels": labels,
            "item_rows": torch.tensor(rows, dtype=torch.long),
            "item_pos": torch.tensor(pos, dtype=torch.long),
            "item_target": torch.tensor(targets, dtype=torch.long),
        }

    def _batches(self, examples: Sequence[Any], rng: np.random.Generator) -> list[list[int]]:
        """One epoch's micro-batches (indices into ``examples``), shuffled with ``rng``.

        ``bucket``: micro-batches are cut from runs of 64 micro-batches' worth of shuffled
        examples sorted by length, then shuffled: similar lengths share a batch, so right
        padding (the cost of dynamic padding) stays small while the order stays random.
        """
        size = self.opts["micro_batch"]
        order = [int(i) for i in rng.permutation(len(examples))]
        if not self.opts["bucket"]:
            return [order[lo : lo + size] for lo in range(0, len(order), size)]
        out: list[list[int]] = []
        window = 64 * size
        for lo in range(0, len(order), window):
            chunk = sorted(order[lo : lo + window], key=lambda i: len(examples[i].ids))
            out += [chunk[k : k + size] for k in range(0, len(chunk), size)]
        return [out[i] for i in rng.permutation(len(out))]

    # -- training ---------------------------------------------------------------------------
    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Train with early stopping on validation NDCG@10 (nothing when a checkpoint loaded)."""
        if not self._users:
            self.use_users(train)
        if self.opts["checkpoint"]:
            return {"checkpoint": self.opts["checkpoint"], "trained": False, **self.fit_log}
        from accelerate import Accelerator
        from tqdm.auto import tqdm

        torch, opts = self._torch, self.opts
        start = time.perf_counter()
        examples = self.training_examples(train)
        valid = list(valid)[: opts["valid_examples"]]
        accum = opts["batch_size"] // opts["micro_batch"]
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        acc = Accelerator(
            gradient_accumulation_steps=accum,
            mixed_precision="bf16" if bf16 else "no",
            cpu=self.device.type == "cpu",
        )
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.net.freeze(opts["train_layers"], opts["train_item_emb"])
        named = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if n.startswith("backbone.")], "lr": opts["lr"]},
            {
                "params": [p for n, p in named if not n.startswith("backbone.")],
                "lr": opts["item_lr"],
            },
        ]
        optim = torch.optim.AdamW(
            [g for g in groups if g["params"]], weight_decay=opts["weight_decay"]
        )
        net, optim = acc.prepare(self.net, optim)
        self.device = acc.device
        log: dict[str, Any] = {
            "train_examples": len(examples),
            "narrative_targets": sum(any(v != -100 for v in e.labels) for e in examples),
            "tokens_per_epoch": sum(len(e.ids) for e in examples),
            "mixed_precision": "bf16" if bf16 else "no",
            "processes": acc.num_processes,
            "trainable_parameters": sum(p.numel() for _, p in named),
        }
        best, best_step, best_state = -1.0, 0, None
        evals: list[dict[str, float]] = []
        losses: list[float] = []
        item_losses: list[float] = []
        text_losses: list[float] = []
        step, stale, stop = 0, 0, False
        stopped = "epochs"
        budget_s = opts["train_minutes"] * 60.0
        train_tokens, train_s = 0, 0.0  # throughput excludes validation

        def evaluate() -> None:
            nonlocal best, best_step, best_state, stale, stop
            ndcg = self.valid_ndcg(valid) if valid else float("nan")
            evals.append({"step": step, "ndcg@10": round(ndcg, 5)})
            if not valid or ndcg > best:
                best, best_step, stale = ndcg, step, 0
                best_state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
            else:
                stale += 1
                stop = stale >= opts["patience"]

        bar = tqdm(total=opts["epochs"], desc="lumen", unit="epoch", disable=None)
        evaluated_at = -1
        for _epoch in range(opts["epochs"]):
            net.train()
            # Each process takes its share of the micro-batches (``accelerate launch``).
            batches = self._batches(examples, rng)[acc.process_index :: acc.num_processes]
            total, total_item, total_text, micro = 0.0, 0.0, 0.0, 0
            for chosen in batches:
                batch = self._collate([examples[i] for i in chosen])
                batch = {k: v.to(acc.device) for k, v in batch.items()}
                t_step = time.perf_counter()
                with acc.accumulate(net):
                    out = net(**batch, text_weight=opts["text_weight"])
                    acc.backward(out["loss"])
                    if acc.sync_gradients and opts["grad_clip"]:
                        acc.clip_grad_norm_(net.parameters(), opts["grad_clip"])
                    optim.step()
                    optim.zero_grad(set_to_none=True)
                total += float(out["loss"].detach())  # (also waits for the device)
                train_s += time.perf_counter() - t_step
                train_tokens += int(batch["attention_mask"].sum()) * acc.num_processes
                total_item += float(out["item_loss"])
                total_text += float(out["text_loss"])
                micro += 1
                if acc.sync_gradients:
                    step += 1
                    if opts["eval_every"] and step % opts["eval_every"] == 0:
                        evaluate()
                        evaluated_at = step
                        net.train()
                    if budget_s and time.perf_counter() - start >= budget_s:
                        stopped = "train_minutes"
                    elif stop:
                        stopped = "patience"
                    elif step >= opts["max_steps"]:
                        stopped = "max_steps"
                    if stopped != "epochs":
                        break
                bar.set_postfix(loss=f"{total / micro:.4f}", step=step)
            losses.append(round(total / max(micro, 1), 5))
            item_losses.append(round(total_item / max(micro, 1), 5))
            text_losses.append(round(total_text / max(micro, 1), 5))
            if (not opts["eval_every"] or stopped != "epochs") and evaluated_at != step:
                evaluate()  # every epoch, and the last step when a budget or cap stops it
                evaluated_at = step
            bar.update(1)
            if stop and stopped == "epochs":
                stopped = "patience"
            if stopped != "epochs":
                break
        if evaluated_at != step:
            evaluate()
        bar.close()
        self.net = acc.unwrap_model(net)
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        log.update(
            {
                "epochs": len(losses),
                "steps": step,
                "best_step": best_step,
                "best_valid_ndcg@10": round(best, 5) if valid else None,
                "stopped": stopped,
                "valid": evals,
                "train_loss": losses,
                "train_item_loss": item_losses,
                "train_text_loss": text_losses,
                "train_tokens": train_tokens,
                "train_tokens_per_s": round(train_tokens / train_s, 1) if train_s else None,
                "device": str(self.device),
                "fit_s": round(time.perf_counter() - start, 3),
            }
        )
        self.fit_log = log
        if opts["save_dir"] and acc.is_main_process:
            self.save(opts["save_dir"])
        return log

    # -- scoring and generation -------------------------------------------------------------
    def _prompt_tensors(self, ex: Example) -> tuple[Any, Any, Any]:
        torch = self._torch
        enc = self.encoder.prompt(self._example_segments(ex))
        ids = torch.tensor([enc.ids], device=self.device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[0, enc.slot_pos] = True
        return ids, mask, torch.tensor(enc.slot_items, device=self.device, dtype=torch.long)

    def _autocast(self) -> Any:
        torch = self._torch
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    def trace_steps(
        self, ex: Example, max_new_tokens: int | None = None
    ) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """Catalog scores and the decoding steps (``("item", i)`` / ``("text", tok)``)."""
        from regen_bench_plugins.lumen.prompt import TEXT_PREFIX

        self.net.eval()
        ids, mask, items = self._prompt_tensors(ex)
        limit = self.opts["max_new_tokens"] if max_new_tokens is None else max_new_tokens
        with self._autocast():
            logits, steps = self.net.decode(
                ids,
                mask,
                items,
                self.encoder.text_ids(TEXT_PREFIX),
                max_new_tokens=limit,
                eos_ids=self.eos_ids,
            )
        return logits.float().cpu().numpy(), steps

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        out = np.empty((len(examples), len(self.catalog)), dtype=np.float32)
        for row, ex in enumerate(examples):
            out[row] = self.trace_steps(ex, max_new_tokens=0)[0]
        return out

    def valid_ndcg(self, examples: Sequence[Example]) -> float:
        """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties)."""
        scores = self.score(examples)
        greater, ties = rank_counts(scores, np.array([ex.target for ex in examples]))
        return float(metrics_from_counts(greater, ties, "pessimistic")["ndcg@10"].mean())

    def generate(self, examples: Sequence[Example], narrative_type: str) -> list[str]:
        """The narrative after the model's own top-1 item, one example at a time."""
        from tqdm.auto import tqdm

        if narrative_type != self.narrative:
            raise ValueError(
                f"lumen was trained to write '{self.opts['narrative']}' narratives; for "
                f"'{narrative_type}' train it with --set narrative={narrative_type}"
            )
        texts = []
        for ex in tqdm(examples, desc="lumen generate", unit="ex", disable=None):
            _, steps = self.trace_steps(ex)
            toks = [t for kind, t in steps if kind == "text" and t not in self.eos_ids]
            texts.append(str(self.tokenizer.decode(toks, skip_special_tokens=True)).strip())
        return texts

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint folder atomically (complete or not at all)."""
        from safetensors.torch import save_file

        out = Path(path)
        if out.exists() and not (out / META_FILE).is_file():
            raise FileExistsError(f"{out}: exists and is not a lumen checkpoint; not replacing")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            self.net.backbone.save_pretrained(tmp / "backbone")
            self.tokenizer.save_pretrained(tmp / "backbone")
            items = {
                k: v.detach().cpu().contiguous()
                for k, v in self.net.state_dict().items()
                if not k.startswith("backbone.")
            }
            save_file(items, str(tmp / ITEMS_FILE))
            meta = {
                "format": FORMAT_VERSION,
                "model": "lumen",
                "options": {k: v for k, v in self.opts.items() if k not in RUNTIME_KEYS},
                "max_new_tokens": self.opts["max_new_tokens"],
                "catalog_items": len(self.catalog),
                "catalog_sha256": catalog_digest(self.catalog),
                "seed": self.seed,
                "fit_log": self.fit_log,
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
            (tmp / MODEL_MARKER).write_text(json.dumps({"model": "lumen"}) + "\n")
            os.chmod(tmp, 0o755)
            if out.exists():
                old = out.with_name(f".{out.name}.old")
                os.replace(out, old)
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    def config(self) -> dict[str, Any]:
        from regen_bench_plugins.lumen.prompt import PROMPT_VERSION

        return {
            **copy.deepcopy(self.opts),
            "backbone_source": self.source,
            "prompt_version": PROMPT_VERSION,
            "device": str(self.device),
        }

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)
