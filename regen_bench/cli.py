"""``regen-bench`` command line: parses arguments and calls the runner, data and results code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from regen_bench import __version__
from regen_bench.data.regen import DataFormatError
from regen_bench.metrics.ranking import DEFAULT_TIE_POLICY, METRIC_NAMES, TIE_POLICIES
from regen_bench.metrics.text import DEFAULT_BERTSCORE_MODEL, TEXT_METRIC_NAMES
from regen_bench.plugins import PluginError, UnknownNameError, get_plugin_manager
from regen_bench.tasks import TASKS

EXIT_USAGE = 2


class CliError(Exception):
    """Reported as one line on stderr with exit status 2."""


def _parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON (numbers, bools), else str."""
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--set expects key=value, got '{pair}'")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    from regen_bench.runner import run

    out = run(
        args.model,
        args.task,
        args.dataset,
        narrative=args.narrative,
        output=args.output,
        seed=args.seed,
        config=_parse_set(args.set),
        data_dir=args.data_dir,
        eval_batch_size=args.eval_batch_size,
        tie_policy=args.tie_policy,
        exclude_history=args.exclude_history,
        limit=args.limit,
        threads=args.threads,
        embedder=None if args.embedder == "none" else args.embedder,
        bertscore_model=None if args.bertscore_model == "none" else args.bertscore_model,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
    )
    r = out.result
    print(
        f"{r.model.name} on {r.task.name} ({r.dataset.name}, "
        f"{r.protocol.test_examples} test users, full ranking over {r.dataset.items} items)"
    )
    width = max(len(m) for m in (*METRIC_NAMES, *TEXT_METRIC_NAMES))
    crit = any(k.startswith("critiqued/") for k in r.metrics)
    header = f"  {'metric':<{width}}  {'all':>8}" + (f"  {'critiqued':>9}" if crit else "")
    print(header)
    for name in METRIC_NAMES:
        line = f"  {name:<{width}}  {r.metrics[name]:>8.4f}"
        if crit:
            line += f"  {r.metrics['critiqued/' + name]:>9.4f}"
        print(line)
    if r.narration is not None:
        n = r.narration
        who = "the model" if n.backend is None else f"{n.backend} ({n.llm_model})"
        print(
            f"  narratives: {r.task.narrative_type} by {who}, about the {n.condition} item, "
            f"{n.scored} scored, {n.failed} failed"
            + (
                f", {n.excluded} left out (the narrator was fine-tuned on them)"
                if n.excluded
                else ""
            )
        )
        for name in TEXT_METRIC_NAMES:
            if name in r.metrics:
                print(f"  {name:<{width}}  {r.metrics[name]:>8.4f}")
    print(f"  time: fit {r.timings['fit_s']:.1f}s, evaluate {r.timings['evaluate_s']:.1f}s")
    print(f"signature: {r.signature}")
    print(f"wrote {out.result_path} and {out.samples_path.name}")
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from regen_bench.trace import trace

    print(
        trace(
            args.model,
            args.user,
            args.dataset,
            narrative=args.narrative,
            data_dir=args.data_dir,
            top_k=args.top_k,
            max_new_tokens=args.max_new_tokens,
        )
    )
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from regen_bench.results import ResultError, load_result

    bad = 0
    for path in args.files:
        try:
            result = load_result(path)
        except ResultError as exc:
            print(f"INVALID {exc}", file=sys.stderr)
            bad += 1
        else:
            print(
                f"ok {path}: {result.model.name} / {result.task.name} / "
                f"{result.dataset.name} ({result.signature})"
            )
    return 1 if bad else 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    manager = get_plugin_manager()
    rows: list[dict[str, Any]] = [
        {
            "name": p.name,
            "module": p.module,
            "source": p.source,
            "distribution": p.distribution,
            "version": p.version,
            "registers": [f"{kind}:{name}" for kind, name in p.registered],
            "error": p.error,
        }
        for p in manager.infos
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        origin = f"{row['source']} ({row['distribution']} {row['version']})".rstrip()
        print(f"{row['name']:<14} {origin}")
        if row["error"]:
            print(f"    FAILED: {row['error']}")
        for kind, name in ((k, n) for k, n in (r.split(":", 1) for r in row["registers"])):
            entry = manager.get(kind, name)
            tasks = entry.meta.get("tasks")
            extra = f" [tasks: {', '.join(tasks)}]" if tasks else ""
            print(f"    {kind:<11} {name:<12} {entry.meta.get('summary', '')}{extra}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from regen_bench.data.synth import write_synthetic

    stats = write_synthetic(
        args.out, users=args.users, items=args.items, seed=args.seed, bare=args.bare
    )
    for line in stats.lines():
        print(line)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from regen_bench.data.amazon import prepare

    stats = prepare(
        args.reviews,
        args.meta,
        args.out,
        min_interactions=args.min_interactions,
        max_len=args.max_len,
        k_core=args.k_core,
        skip_bad_lines=args.skip_bad_lines,
        progress=not args.quiet,
    )
    for line in stats.lines():
        print(line)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from regen_bench.runner import resolve_dataset

    ds = resolve_dataset(args.dataset, args.data_dir)
    lengths = ds.lengths().tolist()
    n = sum(lengths)
    print(f"dataset        {ds.name} ({ds.source})")
    print(f"fingerprint    {ds.fingerprint}")
    print(f"users          {len(ds.users)}")
    print(f"items          {len(ds.catalog)}")
    print(
        f"interactions   {n} ({n / max(len(ds.users), 1):.2f} items/user, "
        f"min {min(lengths, default=0)}, max {max(lengths, default=0)})"
    )
    print(f"critiques      {ds.critique_coverage():.1%} of adjacent pairs")
    for field, count in sorted(ds.report.unknown_fields.items()):
        print(f"unknown field  {field}: {count} time(s)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from regen_bench.data.export import export_hf
    from regen_bench.runner import resolve_dataset

    ds = resolve_dataset(args.dataset, args.data_dir)
    counts = export_hf(ds, args.out, progress=not args.quiet)
    print(f"wrote {args.out} ({args.format}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _cmd_inpaint(args: argparse.Namespace) -> int:
    from regen_bench.inpaint import InpaintConfig, inpaint

    backend_config = _parse_set(args.set)
    if args.model is not None:
        backend_config["model"] = args.model
    config = InpaintConfig(
        min_shared_levels=args.min_shared_levels,
        candidates=args.candidates,
        seed=args.seed,
        temperature=args.temperature,
        max_field_chars=args.max_field_chars,
    )
    report = inpaint(
        args.dataset,
        args.out,
        args.backend,
        backend_config=backend_config,
        config=config,
        limit=args.limit,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        schema_retries=args.schema_retries,
        reask_temperature=args.reask_temperature,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
    )
    if report is not None:
        for line in report.lines():
            print(line)
        print(f"wrote {args.out} (+ .inpaint.json manifest, .inpaint-failures.jsonl)")
    return 0


def _cmd_leaderboard_build(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, build

    try:
        written = build(args.submissions, args.out)
    except SubmissionError as exc:
        print(f"regen-bench leaderboard build: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


def _cmd_leaderboard_check(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import check

    problems = check(args.submissions, args.out)
    for problem in problems:
        print(f"regen-bench leaderboard check: {problem}", file=sys.stderr)
    if not problems:
        print(f"ok: {args.out} is up to date with {args.submissions}")
    return 1 if problems else 0


def _cmd_leaderboard_submit(args: argparse.Namespace) -> int:
    from regen_bench.leaderboard import SubmissionError, submit

    try:
        dest = submit(
            args.result,
            args.submissions,
            replace=args.replace,
            log=lambda m: print(m, file=sys.stderr),
        )
    except SubmissionError as exc:
        print(f"REJECTED {exc}", file=sys.stderr)
        return 1
    print(f"accepted {dest}; now run `regen-bench leaderboard build`")
    return 0


def _cmd_rate(args: argparse.Namespace) -> int:
    from regen_bench.rating import rate_file

    outcome = rate_file(
        args.dataset,
        args.out,
        rater=args.rater,
        backend=args.backend,
        backend_options=_parse_set(args.set),
        rater_options=_parse_set(args.rater_set),
        runs=args.runs,
        limit=args.limit,
        seed=args.seed,
        concurrency=args.concurrency,
        plots=args.plots,
        bias_check=not args.no_bias_check,
        progress=not args.quiet,
    )
    for line in outcome.lines():
        print(line)
    return 0


def _cmd_narrator_finetune(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from regen_bench.finetune import Hyperparameters, UserPartition, finetune, is_main_process

    manifest = finetune(
        args.dataset,
        args.narrative,
        args.out,
        base_model=args.model,
        trainer=args.trainer,
        partition=UserPartition(args.salt, args.heldout_fraction, args.valid_fraction),
        hyper=Hyperparameters(
            epochs=args.epochs,
            max_steps=args.max_steps,
            lr=args.lr,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            eval_every=args.eval_every,
            eval_batch_size=args.eval_batch_size,
            patience=args.patience,
            max_length=args.max_length,
            warmup_steps=args.warmup_steps,
            weight_decay=args.weight_decay,
            mixed_precision=args.mixed_precision,
            cpu=args.cpu,
        ),
        seed=args.seed,
        max_history=args.max_history,
        max_field_chars=args.max_field_chars,
        limit_users=args.limit_users,
        limit_valid=args.limit_valid,
        threads=args.threads,
        data_dir=args.data_dir,
        progress=not args.quiet,
        log=lambda m: tqdm.write(m, file=sys.stdout),
    )
    first, best = manifest.curve[0].valid_loss, manifest.best_valid_loss
    if not is_main_process():
        return 0
    print(
        f"valid loss {first:.4f} (base model) -> {best:.4f} (step {manifest.best_step}); "
        f"narrator in {args.out}: --set narrator.model={args.out}"
    )
    return 0


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regen-bench",
        description="Train, evaluate and compare models on the REGEN benchmark "
        "(recommendation with critiques and narratives).",
    )
    parser.add_argument("--version", action="version", version=f"regen-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="train a model, evaluate it on the test split, write results",
        description="Train MODEL on TASK (leave-one-out split), rank the whole "
        "catalog for every test user and write a result JSON plus a per-sample "
        "jsonl under OUTPUT/<dataset>/<task>/.",
    )
    run.add_argument("--model", required=True, help="model plugin name (see `regen-bench plugins`)")
    run.add_argument(
        "--task",
        required=True,
        help="task: " + "; ".join(f"{t.name} ({t.description})" for t in TASKS.values()),
    )
    run.add_argument(
        "--dataset",
        default="mini",
        help="registered dataset name or path of a REGEN-format file (default: mini)",
    )
    run.add_argument("--data-dir", default=None, help="where dataset plugins look for files")
    run.add_argument("--narrative", default=None, help="narrative type for the conversational task")
    run.add_argument("--output", default="results", help="result folder (default: results)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, repeatable (e.g. --set epochs=20 --set loss=bce); "
        "narrator.KEY=VALUE configures the conversational task's narrator: narrator.backend "
        "(default hf), narrator.model, narrator.condition (target: the true next item, the "
        "paper's upper bound; top1: the model's first choice), narrator.max_tokens, "
        "narrator.temperature, narrator.cache; other narrator.* keys go to the LLM backend",
    )
    run.add_argument(
        "--embedder",
        default="minilm",
        help="embedder plugin for the semantic-similarity metric, or 'none' (default: minilm)",
    )
    run.add_argument(
        "--bertscore-model",
        default=DEFAULT_BERTSCORE_MODEL,
        help="local model folder or hub id for BERTScore, or 'none' "
        f"(default: {DEFAULT_BERTSCORE_MODEL}, shipped offline)",
    )
    run.add_argument(
        "--eval-batch-size",
        type=int,
        default=256,
        help="test examples scored at once; results do not depend on it",
    )
    run.add_argument(
        "--tie-policy",
        default=DEFAULT_TIE_POLICY,
        choices=TIE_POLICIES,
        help="how items scoring exactly like the target count "
        f"(default: {DEFAULT_TIE_POLICY}: ties rank above the target)",
    )
    run.add_argument(
        "--exclude-history",
        action="store_true",
        help="remove the user's earlier purchases from the ranking (default: kept)",
    )
    run.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="evaluate only the first N test users (quick checks; recorded in the signature, "
        "so the numbers never compare with full runs)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads for training, scoring and local LLMs (default: torch's choice, one "
        "per core; use 1 on a shared machine, where more threads can be much slower)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    val = sub.add_parser("validate", help="check result files (schema, signature, per-sample data)")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.set_defaults(func=_cmd_validate)

    tr = sub.add_parser(
        "trace",
        help="conversational trace of one test user from a saved model (paper Figure 6)",
    )
    tr.add_argument("--model", required=True, help="saved model folder (e.g. a lumen save_dir)")
    tr.add_argument("--user", required=True, help="user id (a test user of the dataset)")
    tr.add_argument("--dataset", default="mini", help="registered dataset name or REGEN file")
    tr.add_argument("--data-dir", default=None, help="where dataset plugins look for files")
    tr.add_argument("--narrative", default=None, help="narrative type (default: the model's)")
    tr.add_argument("--top-k", type=int, default=5, help="recommended items to show")
    tr.add_argument("--max-new-tokens", type=int, default=None, help="narrative length cap")
    tr.set_defaults(func=_cmd_trace)

    plug = sub.add_parser("plugins", help="list plugins, their versions and what they register")
    plug.add_argument("--json", action="store_true", help="machine-readable output")
    plug.set_defaults(func=_cmd_plugins)

    data = sub.add_parser("data", help="dataset tools (synth, info, prepare)")
    data.set_defaults(func=lambda _args: _print_help(data))
    dsub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    synth = dsub.add_parser("synth", help="regenerate the simulated `mini` store (or a variant)")
    synth.add_argument("--out", required=True, help="output REGEN-format file (.jsonl or .gz)")
    synth.add_argument("--users", type=int, default=2000, help="number of users (default: 2000)")
    synth.add_argument("--items", type=int, default=800, help="number of items (default: 800)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument(
        "--bare",
        action="store_true",
        help="leave critiques and narratives out (reviews kept): input for `regen-bench inpaint`",
    )
    synth.set_defaults(func=_cmd_synth)
    info = dsub.add_parser("info", help="statistics of a dataset (name or path)")
    info.add_argument("dataset", help="registered dataset name or REGEN-format file")
    info.add_argument("--data-dir", default=None)
    info.set_defaults(func=_cmd_info)
    export = dsub.add_parser(
        "export",
        help="write a dataset as a Hugging Face `datasets` folder (train/validation/test)",
        description="Write the leave-one-out split of DATASET as a `datasets.load_from_disk` "
        "folder OUT (train/validation/test splits, catalog in OUT/items, README card).",
    )
    export.add_argument("--format", choices=["hf"], default="hf", help="output format (hf)")
    export.add_argument("dataset", help="registered dataset name or REGEN-format file")
    export.add_argument("out", help="output folder (must not exist or be empty)")
    export.add_argument("--data-dir", default=None)
    export.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    export.set_defaults(func=_cmd_export)
    prep = dsub.add_parser(
        "prepare",
        help="Amazon Reviews 2018 raw files -> REGEN-format user sequences",
        description="Build time-sorted, de-duplicated user sequences (a repeated purchase of "
        "an item keeps the first) from Amazon Reviews 2018 review and metadata files, and "
        "write them as a REGEN-format file (empty narratives, no critiques).",
    )
    prep.add_argument("--reviews", required=True, help="reviews file, e.g. Office_Products.json.gz")
    prep.add_argument(
        "--meta", required=True, help="metadata file, e.g. meta_Office_Products.json.gz"
    )
    prep.add_argument("--out", required=True, help="output REGEN-format file (.jsonl or .gz)")
    prep.add_argument(
        "--min-interactions",
        type=int,
        default=5,
        help="drop users with fewer purchases (default: 5)",
    )
    prep.add_argument(
        "--max-len", type=int, default=50, help="keep the most recent N purchases (default: 50)"
    )
    prep.add_argument(
        "--k-core",
        type=int,
        default=None,
        metavar="K",
        help="iterative k-core: users and items with at least K interactions (default: off)",
    )
    prep.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="skip and count malformed lines instead of stopping at the first",
    )
    prep.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    prep.set_defaults(func=_cmd_prepare)

    inp = sub.add_parser(
        "inpaint",
        help="fill critiques and narratives of a REGEN-format file with an LLM (resumable)",
        description="Generate critiques for similar adjacent purchases and six narratives per "
        "user with an LLM backend, as REGEN was made. Every finished call is kept in "
        "OUT.inpaint-cache.sqlite: rerun the same command to resume after a crash.",
    )
    inp.add_argument("--dataset", required=True, help="REGEN-format file (e.g. from data prepare)")
    inp.add_argument("--backend", required=True, help="llm_backend plugin (openai, gemini, hf...)")
    inp.add_argument("--model", default=None, help="backend model (else the backend's default)")
    inp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. --set base_url=http://localhost:8000/v1)",
    )
    inp.add_argument("--out", required=True, help="output REGEN-format file (.jsonl or .gz)")
    inp.add_argument("--limit", type=int, default=None, metavar="N", help="first N users only")
    inp.add_argument(
        "--dry-run", action="store_true", help="print a few prompts and the call count; no calls"
    )
    inp.add_argument(
        "--min-shared-levels",
        type=int,
        default=4,
        help="critiques for pairs sharing at least this many category levels (default: 4)",
    )
    inp.add_argument(
        "--candidates", type=int, default=3, help="critiques asked per pair, one kept (default: 3)"
    )
    inp.add_argument("--seed", type=int, default=0, help="seed of choices and requests (default 0)")
    inp.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default: 0, greedy)"
    )
    inp.add_argument(
        "--concurrency", type=int, default=4, help="parallel backend calls (default: 4)"
    )
    inp.add_argument(
        "--max-field-chars",
        type=int,
        default=240,
        help="characters kept of each title, description and review in prompts (default: 240)",
    )
    inp.add_argument(
        "--schema-retries",
        type=int,
        default=2,
        help="times a malformed answer is asked again before it is a failure (default: 2)",
    )
    inp.add_argument(
        "--reask-temperature",
        type=float,
        default=0.7,
        help="re-asks sample at least this hot under a new seed, so they differ (default: 0.7)",
    )
    inp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    inp.set_defaults(func=_cmd_inpaint)
    _add_leaderboard_parser(sub)
    _add_rate_parser(sub)
    _add_narrator_parser(sub)
    return parser


def _add_narrator_parser(sub: Any) -> None:
    from regen_bench.finetune import DEFAULT_SALT

    nar = sub.add_parser("narrator", help="narrator tools (finetune)")
    nar.set_defaults(func=lambda _args: _print_help(nar))
    nsub = nar.add_subparsers(dest="narrator_command", metavar="NARRATOR_COMMAND")
    ft = nsub.add_parser(
        "finetune",
        help="fine-tune a causal LM on a dataset's narratives (Accelerate; multi-GPU with "
        "`accelerate launch -m regen_bench narrator finetune ...`)",
        description="Fine-tune MODEL to write NARRATIVE narratives from the narrator's own "
        "prompt (the same text `run --task conversational` sends it about the true next item). "
        "Users are split by a salted hash of their id into train / valid / heldout; only "
        "heldout users are scored when a run uses the result as its narrator "
        "(--set narrator.backend=hf --set narrator.model=OUT). Writes OUT (save_pretrained "
        "checkpoint of the best validation loss, tokenizer, finetune-log.jsonl, "
        "narrator-finetune.json) atomically.",
    )
    ft.add_argument("--dataset", default="mini", help="registered dataset or REGEN file")
    ft.add_argument("--data-dir", default=None, help="where dataset plugins look for files")
    ft.add_argument("--narrative", required=True, help="narrative type to learn")
    ft.add_argument(
        "--model",
        default="smollm2",
        help="base causal LM: offline alias (smollm2, gemma3-270m), folder, .gguf or hub id "
        "(default: smollm2)",
    )
    ft.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    ft.add_argument("--trainer", default="hf", help="narrator_trainer plugin (default: hf)")
    ft.add_argument("--epochs", type=int, default=3, help="passes over the train pairs (3)")
    ft.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps")
    ft.add_argument("--lr", type=float, default=5e-5, help="AdamW peak learning rate (5e-5)")
    ft.add_argument("--batch-size", type=int, default=4, help="pairs per micro-batch (4)")
    ft.add_argument(
        "--grad-accum", type=int, default=1, help="micro-batches per optimizer step (1)"
    )
    ft.add_argument("--warmup-steps", type=int, default=10, help="linear warmup steps (10)")
    ft.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (0)")
    ft.add_argument(
        "--eval-every", type=int, default=50, help="validation loss every N optimizer steps (50)"
    )
    ft.add_argument("--eval-batch-size", type=int, default=4, help="validation batch size (4)")
    ft.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after N evaluations without a better validation loss; 0 = never (3)",
    )
    ft.add_argument(
        "--max-length",
        type=int,
        default=512,
        help="longest prompt + narrative in tokens; longer pairs are skipped and counted (512)",
    )
    ft.add_argument(
        "--max-history",
        type=int,
        default=10,
        help="purchases shown in the prompt (10; the narrator reuses the trained value)",
    )
    ft.add_argument(
        "--max-field-chars",
        type=int,
        default=200,
        help="characters kept of descriptions and reviews in the prompt (200; reused likewise)",
    )
    ft.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.5,
        help="share of users never used for fine-tuning; the only ones scored (0.5)",
    )
    ft.add_argument(
        "--valid-fraction", type=float, default=0.05, help="share of users for validation (0.05)"
    )
    ft.add_argument(
        "--salt", default=DEFAULT_SALT, help=f"salt of the user hash (default: {DEFAULT_SALT})"
    )
    ft.add_argument(
        "--limit-users", type=int, default=None, metavar="N", help="first N train users only"
    )
    ft.add_argument(
        "--limit-valid", type=int, default=None, metavar="N", help="first N valid users only"
    )
    ft.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="auto: bf16 on a GPU that supports it, else full precision",
    )
    ft.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is there")
    ft.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ft.add_argument(
        "--threads", type=int, default=None, metavar="N", help="torch CPU threads (1 if shared)"
    )
    ft.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ft.set_defaults(func=_cmd_narrator_finetune)


def _add_rate_parser(sub: Any) -> None:
    rate = sub.add_parser(
        "rate",
        help="score narratives or critiques with an LLM auto-rater ensemble (resumable)",
        description="Rate every output RUNS times (majority of runs, else floor of the mean), "
        "write the scores into the metadata of OUT (a REGEN-format file), OUT.scores.csv and "
        "OUT.rating.json (with the negative-sampling bias check). Finished calls are kept in "
        "OUT.rate-cache.sqlite: rerun the same command to resume.",
    )
    rate.add_argument("--dataset", required=True, help="registered dataset name or REGEN file")
    rate.add_argument("--rater", required=True, help="rater plugin (narrative, critique)")
    rate.add_argument("--backend", required=True, help="llm_backend plugin (openai, gemini, hf...)")
    rate.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. --set model=smollm2)",
    )
    rate.add_argument(
        "--rater-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="rater option, repeatable (temperature, max_history, max_field_chars, max_tokens)",
    )
    rate.add_argument("--runs", type=int, default=7, help="ratings per output (default: 7)")
    rate.add_argument("--limit", type=int, default=None, metavar="N", help="first N users only")
    rate.add_argument("--seed", type=int, default=0, help="seed of runs and negatives (default 0)")
    rate.add_argument(
        "--concurrency", type=int, default=4, help="parallel backend calls (default: 4)"
    )
    rate.add_argument("--out", required=True, help="output REGEN-format file (.jsonl or .gz)")
    rate.add_argument("--plots", default=None, metavar="DIR", help="write PNG figures + report")
    rate.add_argument(
        "--no-bias-check",
        action="store_true",
        help="skip the negative samples A (other history) and B (other history and item)",
    )
    rate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    rate.set_defaults(func=_cmd_rate)


def _add_leaderboard_parser(sub: Any) -> None:
    lb = sub.add_parser(
        "leaderboard",
        help="validate submissions, build and check the published leaderboards",
        description="Submissions live in SUBMISSIONS/<dataset>/<task>/<model>[__<narrative>].json "
        "(+ .samples.jsonl); tables go to OUT/<dataset>.md and OUT/index.html.",
    )
    lb.set_defaults(func=lambda _args: _print_help(lb))
    lsub = lb.add_subparsers(dest="leaderboard_command", metavar="LEADERBOARD_COMMAND")
    for name, func, text in (
        ("build", _cmd_leaderboard_build, "write OUT/<dataset>.md and OUT/index.html"),
        (
            "check",
            _cmd_leaderboard_check,
            "exit 1 if a submission is invalid or the published tables are out of date",
        ),
    ):
        cmd = lsub.add_parser(name, help=text)
        cmd.add_argument(
            "--submissions", default="submissions", help="submissions folder (default: submissions)"
        )
        cmd.add_argument(
            "--out", default="leaderboards", help="output folder (default: leaderboards)"
        )
        cmd.set_defaults(func=func)
    submit = lsub.add_parser(
        "submit",
        help="validate a result file and copy it (with its per-sample file) into SUBMISSIONS",
    )
    submit.add_argument("result", metavar="RESULT.json", help="a result file written by `run`")
    submit.add_argument(
        "--submissions", default="submissions", help="submissions folder (default: submissions)"
    )
    submit.add_argument("--replace", action="store_true", help="overwrite an accepted result")
    submit.set_defaults(func=_cmd_leaderboard_submit)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except (UnknownNameError, DataFormatError, CliError, PluginError) as exc:
        print(f"regen-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as exc:
        # Bad user input surfaces as ValueError (unknown model option, missing narrative...);
        # REGEN_BENCH_DEBUG=1 shows the traceback when hunting a bug.
        if os.environ.get("REGEN_BENCH_DEBUG"):
            raise
        print(f"regen-bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("regen-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
