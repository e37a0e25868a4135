"""LUMEN training: batches of encoded prefixes, and the Accelerate loop with validation,
early stopping, the step cap and the wall-time budget.

LUMEN does not use the shared epoch loop of :mod:`regen_bench_plugins.torchrec.base`: it
trains through ``accelerate.Accelerator`` (gradient accumulation to ``batch_size``, bf16
autocast on GPUs, ``accelerate launch``), with two AdamW learning rates, validation every
``eval_every`` optimizer steps and a time budget checked after every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from regen_bench import Example, UserSequence
from regen_bench_plugins.lumen.prompt import Encoded

if TYPE_CHECKING:
    from regen_bench_plugins.lumen.model import Lumen
    from regen_bench_plugins.lumen.net import LumenNet


def collate(batch: Sequence[Encoded], pad: int, *, every_slot: bool) -> dict[str, torch.Tensor]:
    """Right-padded tensors of ``batch`` for :meth:`LumenNet.forward`.

    ``every_slot`` (``item_loss=all``): every item slot is a next-item target, predicted from
    the state before it (which sees only the purchases before it): the shorter prefixes of the
    shown history train in the one forward pass of the longest. Otherwise only the target slot.
    """
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    slot = torch.zeros((len(batch), width), dtype=torch.bool)
    items: list[int] = []
    rows: list[int] = []
    pos: list[int] = []
    targets: list[int] = []
    for r, e in enumerate(batch):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        att[r, : len(e.ids)] = 1
        labels[r, : len(e.labels)] = torch.tensor(e.labels)
        slot[r, e.slot_pos] = True
        items += e.slot_items  # slot_pos ascending: row-major order of the mask
        slots = (
            list(zip(e.slot_pos, e.slot_items, strict=True))
            if every_slot
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


def micro_batches(
    examples: Sequence[Encoded], rng: np.random.Generator, size: int, *, bucket: bool
) -> list[list[int]]:
    """One epoch's micro-batches of ``size`` (indices into ``examples``), shuffled with ``rng``.

    ``bucket``: micro-batches are cut from runs of 64 micro-batches' worth of shuffled
    examples sorted by length, then shuffled: similar lengths share a batch, so right
    padding (the cost of dynamic padding) stays small while the order stays random.
    """
    order = [int(i) for i in rng.permutation(len(examples))]
    if not bucket:
        return [order[lo : lo + size] for lo in range(0, len(order), size)]
    out: list[list[int]] = []
    window = 64 * size
    for lo in range(0, len(order), window):
        chunk = sorted(order[lo : lo + window], key=lambda i: len(examples[i].ids))
        out += [chunk[k : k + size] for k in range(0, len(chunk), size)]
    return [out[i] for i in rng.permutation(len(out))]


class FrozenStates:
    """Each training example's input to the first trainable layer, kept after its first pass.

    With ``train_layers=n`` and fixed inputs (a frozen item table and a separate head) the
    layers below the top ``n`` never change, so their output for a given prompt is the same
    in every epoch: after one epoch a training step runs only the top ``n`` layers (measured
    on SmolLM2-135M with ``n=2``: a step 6.5x faster, the same losses bit for bit).
    float32 on the CPU, ``tokens x hidden x 4`` bytes; :func:`frozen_plan` decides whether
    it is used.
    """

    def __init__(self, lengths: Sequence[int]):
        self.lengths = list(lengths)
        self.rows: list[torch.Tensor | None] = [None] * len(self.lengths)

    def batch(self, chosen: Sequence[int], width: int, device: torch.device) -> torch.Tensor | None:
        """The kept states of ``chosen``, right-padded with zeros to ``width`` (None unless
        every one of them is kept). Padding only feeds padded positions: real positions
        never attend to the right of themselves, and padded ones carry no loss."""
        rows = [row for row in (self.rows[i] for i in chosen) if row is not None]
        if len(rows) < len(chosen):
            return None
        out = torch.zeros((len(rows), width, int(rows[0].shape[-1])), dtype=rows[0].dtype)
        for r, row in enumerate(rows):
            out[r, : len(row)] = row
        return out.to(device)

    def keep(
        self,
        net: LumenNet,
        out: dict[str, torch.Tensor],
        chosen: Sequence[int],
        attention_mask: torch.Tensor,
        plan: dict[str, Any],
    ) -> bool:
        """Keep a batch's states (``out["kept"]``). On the first batch, first check that the
        top layers alone reproduce the full pass (``out["hidden"]``); if they do not, record
        why in ``plan`` and return False: the cache is not to be used."""
        if "checked" not in plan:
            with torch.no_grad():
                top = net.top_hidden(out["kept"], attention_mask)
            diff = _same(out["hidden"], top, attention_mask)
            plan["checked"] = diff is None
            if diff is not None:
                plan.update(used=False, reason=f"the top layers alone differ by {diff:.3g}")
                return False
        for r, i in enumerate(chosen):
            self.rows[i] = out["kept"][r, : self.lengths[i]].to("cpu", copy=True)
        return True


def frozen_plan(model: Lumen, examples: Sequence[Encoded], processes: int) -> dict[str, Any]:
    """Whether training keeps the frozen layers' outputs (:class:`FrozenStates`), and why.

    Used when only the top layers train over fixed inputs (``net.split``), in one process,
    and the states fit in ``frozen_cache_gb``; ``fit_log["frozen_cache"]`` records the answer.
    """
    split = model.net.split
    hidden = int(model.net.item_emb.weight.shape[1])
    gib = sum(len(e.ids) for e in examples) * hidden * 4 / 2**30
    plan: dict[str, Any] = {"used": False, "gib": round(gib, 3)}
    limit = model.opts.frozen_cache_gb
    if split is None:
        plan["reason"] = (
            "every layer, or the item table at the input, trains (train_layers=-1, "
            "train_item_emb=true or item_head=tied)"
        )
    elif processes > 1:
        plan["reason"] = f"{processes} processes"
    elif gib > limit:
        plan["reason"] = f"needs {gib:.2f} GiB, over frozen_cache_gb={limit:g}"
    else:
        plan.update(used=True, split=split)
    return plan


def _same(full: torch.Tensor, top: torch.Tensor, mask: torch.Tensor) -> float | None:
    """None when ``top`` equals ``full`` at the real positions (to float32 rounding),
    else their largest difference."""
    a, b = full[mask.bool()].float(), top[mask.bool()].float()
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(a.abs().max()) if a.numel() else 0.0
    return None if diff <= 1e-5 * max(scale, 1.0) else diff


class _FrozenValidation:
    """Validation scores through the top layers over kept prompt states (``decode=forced``:
    the item step is the prompt's last position, so nothing else needs the frozen layers)."""

    def __init__(self, model: Lumen, examples: Sequence[Example]):
        self.model, self.examples = model, list(examples)
        self.states: list[torch.Tensor] | None = None

    @torch.no_grad()
    def ndcg(self) -> float:
        from regen_bench_plugins.torchrec.scoring import batched_valid_ndcg

        net = self.model.net
        net.eval()
        if self.states is None:
            self.states = []
            for ex in self.examples:
                ids, mask, items = self.model._prompt_tensors(ex)
                self.states.append(net.hidden_and_split(net.embed(ids, mask, items), None)[1])
        rows = [net.item_logits(net.top_hidden(s, None)[:, -1])[0] for s in self.states]
        scores = torch.stack(rows).float().cpu().numpy()
        # One batch of every example: the scores are already in their order.
        return batched_valid_ndcg(lambda _batch: scores, self.examples, len(scores))


class _Validation:
    """Validation NDCG@10 at evaluation points, the best weights, and patience."""

    def __init__(self, ndcg: Callable[[], float] | None, net: torch.nn.Module, patience: int):
        self.ndcg, self.net, self.patience = ndcg, net, patience
        self.best, self.best_step = -1.0, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale, self.stop = 0, False
        self.evals: list[dict[str, float]] = []
        self.at = -1  # the step last evaluated

    def __call__(self, step: int) -> None:
        ndcg = self.ndcg() if self.ndcg else float("nan")
        self.evals.append({"step": step, "ndcg@10": round(ndcg, 5)})
        self.at = step
        if not self.ndcg or ndcg > self.best:
            self.best, self.best_step, self.stale = ndcg, step, 0
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()
            }
        else:
            self.stale += 1
            self.stop = self.stale >= self.patience


def train(model: Lumen, users: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
    """Train ``model.net`` on the prefixes of ``users``; restore the best validation step;
    return the log.

    Validation (NDCG@10 on the first ``valid_examples`` of ``valid``) runs after every epoch,
    or every ``eval_every`` optimizer steps, and on the last step; training ends after
    ``epochs``, at ``max_steps``, when the ``train_minutes`` budget (which counts building the
    examples) is spent, or after ``patience`` evaluations without gain (``log["stopped"]``
    says which).
    """
    from accelerate import Accelerator

    from regen_bench.progress import Progress

    opts = model.opts
    start = time.perf_counter()  # the budget includes building the examples
    examples = model.training_examples(users)
    valid = list(valid)[: opts.valid_examples]
    accum = opts.batch_size // opts.micro_batch
    bf16 = model.device.type == "cuda" and torch.cuda.is_bf16_supported()
    acc = Accelerator(
        gradient_accumulation_steps=accum,
        mixed_precision="bf16" if bf16 else "no",
        cpu=model.device.type == "cpu",
    )
    torch.manual_seed(model.seed)
    rng = np.random.default_rng(model.seed)
    model.net.freeze(opts.train_layers, opts.train_item_emb)
    named = [(n, p) for n, p in model.net.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n.startswith("backbone.")], "lr": opts.lr},
        {"params": [p for n, p in named if not n.startswith("backbone.")], "lr": opts.item_lr},
    ]
    optim = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=opts.weight_decay)
    net, optim = acc.prepare(model.net, optim)
    model.device = acc.device
    log: dict[str, Any] = {
        "train_examples": len(examples),
        "narrative_targets": sum(e.narrative for e in examples),
        "tokens_per_epoch": sum(len(e.ids) for e in examples),
        "mixed_precision": "bf16" if bf16 else "no",
        "processes": acc.num_processes,
        "trainable_parameters": sum(p.numel() for _, p in named),
    }
    plan = frozen_plan(model, examples, acc.num_processes)
    frozen = FrozenStates([len(e.ids) for e in examples]) if plan["used"] else None
    log["frozen_cache"] = plan
    ndcg = (lambda: model.valid_ndcg(valid)) if valid else None
    if valid and frozen is not None and opts.decode == "forced":
        kept_valid = _FrozenValidation(model, valid)
        # The full path again when the first batch's check dropped the cache.
        ndcg = lambda: kept_valid.ndcg() if plan["used"] else model.valid_ndcg(valid)  # noqa: E731
    validate = _Validation(ndcg, model.net, opts.patience)
    losses: list[float] = []
    item_losses: list[float] = []
    text_losses: list[float] = []
    step = 0
    stopped = "epochs"
    budget_s = opts.train_minutes * 60.0
    train_tokens, train_s = 0, 0.0  # throughput excludes validation
    pad = model.encoder.placeholder
    bar = Progress("lumen", opts.epochs, enabled=acc.is_main_process)
    for _epoch in range(opts.epochs):
        net.train()
        # Each process takes its share of the micro-batches (``accelerate launch``).
        batches = micro_batches(examples, rng, opts.micro_batch, bucket=opts.bucket)
        total, total_item, total_text, micro = 0.0, 0.0, 0.0, 0
        for chosen in batches[acc.process_index :: acc.num_processes]:
            batch = collate([examples[i] for i in chosen], pad, every_slot=opts.item_loss == "all")
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            t_step = time.perf_counter()
            states = None
            if frozen is not None:
                states = frozen.batch(chosen, int(batch["ids"].shape[1]), acc.device)
            with acc.accumulate(net):
                out = net(
                    **batch,
                    text_weight=opts.text_weight,
                    states=states,
                    keep=frozen is not None and states is None,
                )
                mask = batch["attention_mask"]
                if frozen and "kept" in out and not frozen.keep(model.net, out, chosen, mask, plan):
                    frozen = None
                acc.backward(out["loss"])
                if acc.sync_gradients and opts.grad_clip:
                    acc.clip_grad_norm_(net.parameters(), opts.grad_clip)
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
                if opts.eval_every and step % opts.eval_every == 0:
                    validate(step)
                    net.train()
                if budget_s and time.perf_counter() - start >= budget_s:
                    stopped = "train_minutes"
                elif validate.stop:
                    stopped = "patience"
                elif step >= opts.max_steps:
                    stopped = "max_steps"
                if stopped != "epochs":
                    break
            bar.set({"loss": f"{total / micro:.4f}", "step": step})
        losses.append(round(total / max(micro, 1), 5))
        item_losses.append(round(total_item / max(micro, 1), 5))
        text_losses.append(round(total_text / max(micro, 1), 5))
        if (not opts.eval_every or stopped != "epochs") and validate.at != step:
            validate(step)  # every epoch, and the last step when a budget or cap stops it
        last = validate.evals[-1]["ndcg@10"] if validate.evals else float("nan")
        bar.update(
            1,
            {
                "loss": f"{losses[-1]:.4f}",
                "step": step,
                "valid ndcg@10": f"{last:.4f}",
                "best step": validate.best_step,
            },
        )
        if validate.stop and stopped == "epochs":
            stopped = "patience"
        if stopped != "epochs":
            break
    if validate.at != step:
        validate(step)
    bar.close()
    model.net = acc.unwrap_model(net)
    if validate.best_state is not None:
        model.net.load_state_dict(validate.best_state)
    model.net.eval()
    log.update(
        {
            "epochs": len(losses),
            "steps": step,
            "best_step": validate.best_step,
            "best_valid_ndcg@10": round(validate.best, 5) if valid else None,
            "stopped": stopped,
            "valid": validate.evals,
            "train_loss": losses,
            "train_item_loss": item_losses,
            "train_text_loss": text_losses,
            "train_tokens": train_tokens,
            "train_tokens_per_s": round(train_tokens / train_s, 1) if train_s else None,
            "device": str(model.device),
            "fit_s": round(time.perf_counter() - start, 3),
        }
    )
    return log
