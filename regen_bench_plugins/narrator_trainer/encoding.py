"""Pairs to training batches: the prompt rendered as the ``hf`` backend renders it, then the
narrative and EOS; labels mask the prompt (IGNORE_INDEX), so the loss covers only the narrative."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from regen_bench.finetune import FinetuneSpec, Hyperparameters, Pair
from regen_bench_plugins.llm_backends.hf import render_prompt

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
#: One encoded pair: ``input_ids`` and ``labels`` (IGNORE_INDEX on the prompt).
Features = dict[str, list[int]]


def encode_pair(
    tokenizer: PreTrainedTokenizerBase,
    system: str,
    pair: Pair,
    use_chat_template: bool,
    max_length: int,
) -> Features | None:
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


def collate(features: Sequence[Features], pad_id: int) -> dict[str, torch.Tensor]:
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


def encode_splits(
    spec: FinetuneSpec, tokenizer: PreTrainedTokenizerBase, use_template: bool
) -> tuple[dict[str, list[Features]], dict[str, int]]:
    """The encoded ``train`` and ``valid`` pairs, and how many of each were too long."""
    max_length = spec.hyper.max_length
    encoded: dict[str, list[Features]] = {}
    skipped: dict[str, int] = {}
    for name, pairs in (("train", spec.train), ("valid", spec.valid)):
        rows = [encode_pair(tokenizer, spec.system, p, use_template, max_length) for p in pairs]
        encoded[name] = [r for r in rows if r is not None]
        skipped[name] = len(rows) - len(encoded[name])
        if not encoded[name]:
            raise ValueError(
                f"every {name} pair is longer than --max-length {max_length} tokens; raise "
                "it or shorten the prompt (--max-history, --max-field-chars)"
            )
    return encoded, skipped


def loaders(
    encoded: dict[str, list[Features]], hp: Hyperparameters, pad: int, seed: int
) -> tuple[DataLoader[Features], DataLoader[Features]]:
    """The train loader (seeded shuffles) and the valid loader (in order)."""
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    generator = torch.Generator().manual_seed(seed)
    # A seeded sampler: the same shuffles on every run (and on every process under Accelerate).
    train_loader: DataLoader[Features] = DataLoader(
        encoded["train"],  # type: ignore[arg-type]
        batch_size=hp.batch_size,
        sampler=RandomSampler(encoded["train"], generator=generator),
        collate_fn=lambda f: collate(f, pad),
    )
    valid_loader: DataLoader[Features] = DataLoader(
        encoded["valid"],  # type: ignore[arg-type]
        batch_size=hp.eval_batch_size,
        shuffle=False,
        collate_fn=lambda f: collate(f, pad),
    )
    return train_loader, valid_loader


__all__ = ["IGNORE_INDEX", "Features", "collate", "encode_pair", "encode_splits", "loaders"]
