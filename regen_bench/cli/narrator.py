"""``regen-bench narrator finetune``: fine-tune a causal LM as the narrator of a narrating task."""

from __future__ import annotations

import argparse
import sys
from typing import get_args

import regen_bench.cli._common as common

#: Training settings: (Hyperparameters field, type, help); ``--field-name`` on the command line.
HYPER_OPTIONS: tuple[tuple[str, type[int] | type[float], str], ...] = (
    ("epochs", int, "passes over the train pairs"),
    ("max_steps", int, "cap on optimizer steps"),
    ("lr", float, "AdamW peak learning rate"),
    ("batch_size", int, "pairs per micro-batch"),
    ("grad_accum", int, "micro-batches per optimizer step"),
    ("warmup_steps", int, "linear warmup steps"),
    ("weight_decay", float, "AdamW weight decay"),
    ("eval_every", int, "validation loss every N optimizer steps"),
    ("eval_batch_size", int, "validation batch size"),
    ("patience", int, "stop after N evaluations without a better validation loss; 0 = never"),
    (
        "max_length",
        int,
        "longest prompt + narrative in tokens; longer pairs are skipped and counted",
    ),
)


def _configure_finetune(parser: argparse.ArgumentParser) -> None:
    from regen_bench.finetune import (
        DEFAULT_BASE_MODEL,
        DEFAULT_TASK,
        DEFAULT_TRAINER,
        Hyperparameters,
        MixedPrecision,
        UserPartition,
        finetune,
        narrating_tasks,
    )
    from regen_bench.narrator import NarratorConfig
    from regen_bench.resolve import DEFAULT_DATASET

    common.add_dataset(parser, default=DEFAULT_DATASET)
    parser.add_argument("--narrative", required=True, help="narrative type to learn")
    parser.add_argument(
        "--task",
        default=DEFAULT_TASK,
        metavar="{" + ",".join(narrating_tasks()) + "}",
        help="the task whose narrator prompts to learn: conversational shows the critiques, "
        "narrative none (default: %(default)s); a run of another kind refuses the result",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_BASE_MODEL,
        help="base causal LM: offline alias (smollm2, gemma3-270m), folder, .gguf or hub id "
        "(default: %(default)s)",
    )
    common.add_out(parser, "output folder (must not exist or be empty)")
    parser.add_argument(
        "--trainer",
        default=DEFAULT_TRAINER,
        help="narrator_trainer plugin (default: %(default)s)",
    )
    hyper: list[common.NumberOption] = []
    for name, kind, text in HYPER_OPTIONS:
        default = getattr(Hyperparameters, name)
        shown = "" if default is None else " (%(default)g)"
        hyper.append(("--" + name.replace("_", "-"), kind, default, text + shown))
    common.add_numbers(
        parser,
        [
            *hyper,
            (
                "--max-history",
                int,
                NarratorConfig.max_history,
                "purchases shown in the prompt (%(default)s; the narrator reuses the trained "
                "value)",
            ),
            (
                "--max-field-chars",
                int,
                NarratorConfig.max_field_chars,
                "characters kept of descriptions and reviews in the prompt (%(default)s; reused "
                "likewise)",
            ),
            (
                "--heldout-fraction",
                float,
                UserPartition.heldout_fraction,
                "share of users never used for fine-tuning; the only ones scored (%(default)s)",
            ),
            (
                "--valid-fraction",
                float,
                UserPartition.valid_fraction,
                "share of users for validation (%(default)s)",
            ),
        ],
    )
    parser.add_argument(
        "--salt", default=UserPartition.salt, help="salt of the user hash (default: %(default)s)"
    )
    parser.add_argument(
        "--limit-users",
        "--limit",
        dest="limit_users",
        type=int,
        default=None,
        metavar="N",
        help="first N train users only",
    )
    parser.add_argument(
        "--limit-valid", type=int, default=None, metavar="N", help="first N valid users only"
    )
    parser.add_argument(
        "--mixed-precision",
        choices=get_args(MixedPrecision),
        default=Hyperparameters.mixed_precision,
        help="auto: bf16 on a GPU that supports it, else full precision",
    )
    parser.add_argument(
        "--cpu", action="store_true", help="train on the CPU even if a GPU is there"
    )
    common.add_seed(parser, common.signature_defaults(finetune)["seed"])
    common.add_threads(parser, "torch CPU threads (1 if shared)")
    common.add_quiet(parser, "no progress bar")


def finetune_command(args: argparse.Namespace) -> list[str]:
    """The command that reproduces this fine-tuning, every setting spelt out (defaults too,
    so a later change of a default cannot change what it means) and ``--out`` left as the
    placeholder: recorded in the manifest, shown and re-run beside each run it narrates."""
    from regen_bench.finetune_manifest import NARRATOR_PLACEHOLDER

    cmd = ["regen-bench", "narrator", "finetune", "--dataset", args.dataset]
    if args.data_dir is not None:
        cmd += ["--data-dir", args.data_dir]
    cmd += ["--task", args.task, "--narrative", args.narrative, "--model", args.model]
    cmd += ["--trainer", args.trainer]
    for name, _kind, _text in HYPER_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            cmd += ["--" + name.replace("_", "-"), str(value)]
    cmd += ["--max-history", str(args.max_history), "--max-field-chars", str(args.max_field_chars)]
    cmd += ["--heldout-fraction", str(args.heldout_fraction)]
    cmd += ["--valid-fraction", str(args.valid_fraction), "--salt", args.salt]
    for flag, value in (("--limit-users", args.limit_users), ("--limit-valid", args.limit_valid)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += ["--mixed-precision", args.mixed_precision] + ["--cpu"] * bool(args.cpu)
    cmd += ["--seed", str(args.seed)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    return [*cmd, "--out", NARRATOR_PLACEHOLDER]


def _finetune(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from regen_bench.finetune import Hyperparameters, UserPartition, finetune, is_main_process

    hyper = Hyperparameters(
        **{name: getattr(args, name) for name, _kind, _text in HYPER_OPTIONS},
        mixed_precision=args.mixed_precision,
        cpu=args.cpu,
    )
    manifest = finetune(
        args.dataset,
        args.narrative,
        args.out,
        task=args.task,
        base_model=args.model,
        trainer=args.trainer,
        partition=UserPartition(args.salt, args.heldout_fraction, args.valid_fraction),
        hyper=hyper,
        seed=args.seed,
        max_history=args.max_history,
        max_field_chars=args.max_field_chars,
        limit_users=args.limit_users,
        limit_valid=args.limit_valid,
        threads=args.threads,
        data_dir=args.data_dir,
        progress=not args.quiet,
        log=lambda m: tqdm.write(m, file=sys.stdout),
        command=finetune_command(args),
    )
    first, best = manifest.curve[0].valid_loss, manifest.best_valid_loss
    if not is_main_process():
        return 0
    print(
        f"valid loss {first:.4f} (base model) -> {best:.4f} (step {manifest.best_step}); "
        f"narrator in {args.out} for --task {args.task}: --set narrator.model={args.out}"
    )
    return 0


SUBCOMMANDS = (
    common.Command(
        "finetune",
        help="fine-tune a causal LM on a dataset's narratives (Accelerate; multi-GPU with "
        "`accelerate launch -m regen_bench narrator finetune ...`)",
        description="Fine-tune MODEL to write NARRATIVE narratives from the narrator's own "
        "prompt (the same text `run --task TASK` sends it about the true next item: with the "
        "critiques on conversational, without any on narrative; a run of the other task "
        "refuses the result). "
        "Users are split by a salted hash of their id into train / valid / heldout; only "
        "heldout users are scored when a run uses the result as its narrator "
        "(--set narrator.backend=hf --set narrator.model=OUT). Writes OUT (save_pretrained "
        "checkpoint of the best validation loss, tokenizer, finetune-log.jsonl, "
        "narrator-finetune.json) atomically.",
        configure=_configure_finetune,
        handler=_finetune,
    ),
)

COMMANDS = (common.group("narrator", "narrator tools", SUBCOMMANDS),)
