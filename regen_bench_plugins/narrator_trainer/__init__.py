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

Modules: :mod:`.encoding` (pairs to token ids and batches) and :mod:`.training` (the loop, the
checkpoint, the manifest).
"""

from __future__ import annotations

from regen_bench import Register, hookimpl
from regen_bench_plugins.llm_backends.hf import render_prompt
from regen_bench_plugins.narrator_trainer.encoding import collate, encode_pair
from regen_bench_plugins.narrator_trainer.training import train


@hookimpl
def register_narrator_trainers(register: Register) -> None:
    """``hf``: :func:`~regen_bench_plugins.narrator_trainer.training.train`."""
    register(
        "hf",
        train,
        summary="fine-tune a transformers causal LM (hub id, folder, .gguf, smollm2 / "
        "gemma3-270m) with Accelerate",
    )


__all__ = ["collate", "encode_pair", "register_narrator_trainers", "render_prompt", "train"]
