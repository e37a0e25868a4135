"""The fine-tuning loop of the ``hf`` narrator trainer (see the package docstring)."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regen_bench.finetune import LOG_FILE, MANIFEST_FILE, FinetuneSpec, Hyperparameters
from regen_bench_plugins.llm_backends.local_models import is_local_model_ref, resolve_local_model
from regen_bench_plugins.narrator_trainer.encoding import (
    IGNORE_INDEX,
    Features,
    encode_splits,
    loaders,
)

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _resolve_base(name: str) -> str:
    """Offline aliases and .gguf files become safetensors folders; hub ids pass through."""
    return str(resolve_local_model(name)) if is_local_model_ref(name) else name


def _mixed_precision(choice: str, cpu: bool) -> str:
    import torch

    if choice != "auto":
        return choice
    if not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _valid_loss(
    model: torch.nn.Module, loader: DataLoader[Features], accelerator: Accelerator
) -> float:
    """Mean loss per narrative token over the whole validation set (all processes).

    Summed per example and gathered with ``gather_for_metrics`` (which drops the duplicates
    padding the last batch), so the value does not depend on batch size or process count.
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for batch in loader:
            logits = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                use_cache=False,
            ).logits
            labels = batch["labels"][:, 1:]
            losses = F.cross_entropy(
                logits[:, :-1].float().transpose(1, 2),
                labels,
                ignore_index=IGNORE_INDEX,
                reduction="none",
            )
            per_example = torch.stack(
                [losses.sum(dim=1), (labels != IGNORE_INDEX).sum(dim=1).float()], dim=1
            )
            gathered = accelerator.gather_for_metrics(per_example)
            total += float(gathered[:, 0].sum())
            count += float(gathered[:, 1].sum())
    model.train()
    return total / max(count, 1.0)


def _optimizer(model: torch.nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (not on norms, biases)."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=hp.lr,
    )


def _runtime(accelerator: Accelerator) -> dict[str, Any]:
    """The manifest's ``versions`` and ``environment``."""
    import torch

    return {
        "versions": {
            d: _version(d) for d in ("regen-bench", "torch", "transformers", "accelerate")
        },
        "environment": {
            "python": platform.python_version(),
            "device": str(accelerator.device),
            "processes": accelerator.num_processes,
            "mixed_precision": str(accelerator.mixed_precision),
            "torch_threads": torch.get_num_threads(),
        },
    }


def train(
    spec: FinetuneSpec, *, log: Callable[[str], None] = print, progress: bool = True
) -> dict[str, Any]:
    """Fine-tune ``spec.base_model`` on ``spec.train``; write ``spec.out_dir``; return manifest."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    hp = spec.hyper
    start = time.perf_counter()
    accelerator = Accelerator(
        cpu=hp.cpu,
        mixed_precision=_mixed_precision(hp.mixed_precision, hp.cpu),
        gradient_accumulation_steps=hp.grad_accum,
    )
    main = accelerator.is_main_process
    say = log if main else (lambda _m: None)
    set_seed(spec.seed)

    out = spec.out_dir
    work = out.parent / f".{out.name}.partial"
    if main:
        shutil.rmtree(work, ignore_errors=True)  # a crashed earlier attempt
        work.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        return _train(spec, accelerator, work, start, say, progress)
    except BaseException:
        if main:  # nothing half-written stays behind
            shutil.rmtree(work, ignore_errors=True)
        raise


def _train(
    spec: FinetuneSpec,
    accelerator: Accelerator,
    work: Path,
    start: float,
    say: Callable[[str], None],
    progress: bool,
) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    from regen_bench.progress import Progress

    hp, out, main = spec.hyper, spec.out_dir, accelerator.is_main_process
    if main:
        _resolve_base(spec.base_model)  # converts an alias once, before the others read it
    accelerator.wait_for_everyone()
    source = _resolve_base(spec.base_model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {spec.base_model} has no EOS token to end narratives")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    use_template = bool(tokenizer.chat_template)
    encoded, skipped = encode_splits(spec, tokenizer, use_template)
    if any(skipped.values()):
        say(f"skipped pairs longer than {hp.max_length} tokens: {skipped}")
    lengths = [len(f["input_ids"]) for f in encoded["train"]]
    say(
        f"{len(encoded['train'])} train / {len(encoded['valid'])} valid pairs, tokens per pair "
        f"{min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}), "
        f"chat template: {use_template}"
    )

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    optimizer = _optimizer(model, hp)
    train_loader, valid_loader = loaders(encoded, hp, int(tokenizer.pad_token_id), spec.seed)
    model, optimizer, train_loader, valid_loader = accelerator.prepare(
        model, optimizer, train_loader, valid_loader
    )
    steps_per_epoch = max(1, math.ceil(len(train_loader) / hp.grad_accum))
    total = hp.epochs * steps_per_epoch
    if hp.max_steps is not None:
        total = min(total, hp.max_steps)
    # Stepped by hand once per optimizer step (not prepared: Accelerate would step it once per
    # process and micro-batch).
    scheduler = get_linear_schedule_with_warmup(optimizer, min(hp.warmup_steps, total), total)

    log_path = work / LOG_FILE
    curve: list[dict[str, Any]] = []
    best_loss, best_step, bad_evals = math.inf, 0, 0
    train_sum = torch.zeros((), device=accelerator.device)
    train_n = 0

    def evaluate(step: int) -> bool:
        """Log one curve point, keep the checkpoint if best; True when patience runs out."""
        nonlocal best_loss, best_step, bad_evals, train_sum, train_n
        valid = _valid_loss(model, valid_loader, accelerator)
        mean_train = None
        if train_n:
            mean_train = float(accelerator.reduce(train_sum, reduction="mean")) / train_n
        train_sum, train_n = torch.zeros((), device=accelerator.device), 0
        point = {
            "step": step,
            "epoch": round(step / steps_per_epoch, 4),
            "train_loss": None if mean_train is None else round(mean_train, 5),
            "valid_loss": round(valid, 5),
            "elapsed_s": round(time.perf_counter() - start, 1),
        }
        curve.append(point)
        improved = valid < best_loss
        if improved:
            best_loss, best_step, bad_evals = valid, step, 0
            accelerator.wait_for_everyone()
            state = accelerator.get_state_dict(model)
            if main:
                accelerator.unwrap_model(model).save_pretrained(work, state_dict=state)
        else:
            bad_evals += 1
        if main:
            with log_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
        tl = "-" if mean_train is None else f"{mean_train:.4f}"
        say(
            f"step {step:>5}/{total}  epoch {point['epoch']:.2f}  train_loss {tl}  "
            f"valid_loss {valid:.4f}{'  (best)' if improved else ''}  {point['elapsed_s']:.0f}s"
        )
        return hp.patience > 0 and bad_evals >= hp.patience

    evaluate(0)  # the base model's validation loss: where the curve starts
    model.train()
    step = 0
    stopped = "max_steps" if hp.max_steps is not None and total == hp.max_steps else "epochs"
    bar = Progress("fine-tune", total, unit="step", enabled=progress and main)
    done = False
    for _epoch in range(hp.epochs):
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch, use_cache=False).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            train_sum += loss.detach() / hp.grad_accum
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            train_n += 1
            bar.update(1, {"loss": f"{float(loss.detach()):.3f}"})
            if (step % hp.eval_every == 0 or step == total) and evaluate(step):
                stopped, done = "early_stopping", True
            if step >= total:
                done = True
            if done:
                break
        if done:
            break
    bar.close()
    if curve[-1]["step"] != step:
        evaluate(step)

    manifest = {
        **spec.manifest,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_source": source,
        "prompt": {**spec.manifest.get("prompt", {}), "chat_template": use_template},
        "hyperparameters": {
            **{k: v for k, v in vars(hp).items()},
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total,
            "optimizer": "AdamW",
            "schedule": "linear warmup + linear decay",
        },
        **_runtime(accelerator),
        "pairs": {
            "train": len(encoded["train"]),
            "valid": len(encoded["valid"]),
            "skipped_train": skipped["train"],
            "skipped_valid": skipped["valid"],
        },
        "curve": curve,
        "best_step": best_step,
        "best_valid_loss": round(best_loss, 5),
        "stopped": stopped,
        "train_s": round(time.perf_counter() - start, 1),
    }
    accelerator.wait_for_everyone()
    if main:
        tokenizer.save_pretrained(work)
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.is_dir():
            out.rmdir()  # empty (checked before training)
        os.replace(work, out)
        say(
            f"best valid_loss {best_loss:.4f} at step {best_step} (stopped: {stopped}); wrote {out}"
        )
    accelerator.wait_for_everyone()
    return manifest


__all__ = ["train"]
