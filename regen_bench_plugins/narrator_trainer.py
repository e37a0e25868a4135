"""``hf`` narrator trainer: a transformers causal LM fine-tuned on narratives with Accelerate.

Every pair becomes ``render(system, prompt) + narrative + EOS`` where ``render`` is the text the
``hf`` LLM backend feeds the model at inference (the tokenizer's chat template when it has one),
tokenised the same way; the loss covers only the narrative and EOS (prompt labels are -100).
Training goes through :class:`accelerate.Accelerator`, so the same command runs on one CPU, one
GPU, or several GPUs with ``accelerate launch -m regen_bench narrator finetune ...``: mixed
precision (bf16 where supported), gradient accumulation through ``accelerator.accumulate``,
validation loss gathered over processes. The validation loss is computed every
``eval_every`` optimizer steps (and before the first step, and at the end); the best checkpoint
is kept (early stopping after ``patience`` evaluations without improvement).

The output folder appears complete or not at all: everything is written to a hidden sibling
``.<name>.partial`` and renamed at the end.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from regen_bench import Register, hookimpl
from regen_bench.finetune import LOG_FILE, MANIFEST_FILE, FinetuneSpec, Pair
from regen_bench_plugins.llm_backends.hf import render_prompt

IGNORE_INDEX = -100


def encode_pair(
    tokenizer: Any, system: str, pair: Pair, use_chat_template: bool, max_length: int
) -> dict[str, list[int]] | None:
    """Token ids and labels of one pair (labels -100 on the prompt); None if over max_length."""
    rendered = render_prompt(tokenizer, system, pair.prompt, use_chat_template)
    # The backend lets a chat template write its own BOS; a plain prompt gets the tokenizer's.
    prompt_ids = list(tokenizer(rendered, add_special_tokens=not use_chat_template)["input_ids"])
    target_ids = list(tokenizer(pair.target, add_special_tokens=False)["input_ids"])
    target_ids.append(int(tokenizer.eos_token_id))
    if len(prompt_ids) + len(target_ids) > max_length:
        return None
    return {
        "input_ids": prompt_ids + target_ids,
        "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
    }


def collate(features: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded batch; padding is masked out of attention and loss."""
    import torch

    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _resolve_base(name: str) -> str:
    """Offline aliases and .gguf files become safetensors folders; hub ids pass through."""
    from regen_bench_plugins.llm_backends.local_models import (
        is_local_model_ref,
        resolve_local_model,
    )

    return str(resolve_local_model(name)) if is_local_model_ref(name) else name


def _mixed_precision(choice: str, cpu: bool) -> str:
    import torch

    if choice != "auto":
        return choice
    if not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def _valid_loss(model: Any, loader: Any, accelerator: Any) -> float:
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
    accelerator: Any,
    work: Path,
    start: float,
    say: Callable[[str], None],
    progress: bool,
) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader, RandomSampler
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

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

    encoded: dict[str, list[dict[str, list[int]]]] = {}
    skipped: dict[str, int] = {}
    for name, pairs in (("train", spec.train), ("valid", spec.valid)):
        rows = [encode_pair(tokenizer, spec.system, p, use_template, hp.max_length) for p in pairs]
        encoded[name] = [r for r in rows if r is not None]
        skipped[name] = len(rows) - len(encoded[name])
        if not encoded[name]:
            raise ValueError(
                f"every {name} pair is longer than --max-length {hp.max_length} tokens; raise "
                "it or shorten the prompt (--max-history, --max-field-chars)"
            )
    if any(skipped.values()):
        say(f"skipped pairs longer than {hp.max_length} tokens: {skipped}")
    lengths = [len(f["input_ids"]) for f in encoded["train"]]
    say(
        f"{len(encoded['train'])} train / {len(encoded['valid'])} valid pairs, tokens per pair "
        f"{min(lengths)}-{max(lengths)} (mean {sum(lengths) / len(lengths):.0f}), "
        f"chat template: {use_template}"
    )

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=hp.lr,
    )
    pad = int(tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(spec.seed)
    # A seeded sampler: the same shuffles on every run (and on every process under Accelerate).
    train_loader: Any = DataLoader(
        encoded["train"],  # type: ignore[arg-type]
        batch_size=hp.batch_size,
        sampler=RandomSampler(encoded["train"], generator=generator),
        collate_fn=lambda f: collate(f, pad),
    )
    valid_loader: Any = DataLoader(
        encoded["valid"],  # type: ignore[arg-type]
        batch_size=hp.eval_batch_size,
        shuffle=False,
        collate_fn=lambda f: collate(f, pad),
    )
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
    bar = tqdm(total=total, desc="fine-tune", unit="step", disable=not (progress and main))
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
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
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


@hookimpl
def register_narrator_trainers(register: Register) -> None:
    register(
        "hf",
        train,
        summary="fine-tune a transformers causal LM (hub id, folder, .gguf, smollm2 / "
        "gemma3-270m) with Accelerate",
    )


__all__ = ["collate", "encode_pair", "render_prompt", "train"]
