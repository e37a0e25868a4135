"""RecBole 1.2.1 and the harness side by side on the same data, split and ranking protocol.

    .venv/bin/python benchmarks/recbole_parity.py [--dataset NAME_OR_PATH]
        [--models sasrec,bert4rec] [--quick] [--seed 0] [--threads 1] [--only recbole|ours]
        [--rerun-recbole] [--venv .recbole-venv] [--cache .recbole-parity]

The data is by default real MovieLens-100K as it ships inside the ``recbole`` wheel
(``recbole/dataset_example/ml-100k``: 943 users, 1,682 items, 100,000 ratings). RecBole reads
its own atomic files, exactly as ``run_recbole`` would (its ml-100k config included); the
harness reads them through ``regen-bench data import --format recbole --time-key
float32-normalized``, which orders each user's ratings by RecBole's own sort key.

``--dataset`` takes any dataset instead (a registered name such as ``mini`` or a REGEN-format
file): it is written as atomic files into ``--cache``/data/NAME/ by ``regen-bench data export
--format recbole`` (timestamps RecBole orders as the dataset does), RecBole reads them as a
custom dataset (``data_path`` that folder's parent, ``load_col: {inter: [user_id, item_id,
timestamp]}``, since RecBole loads only the two ids of a dataset it has no config for, the
rest at its defaults) and the harness runs on the dataset itself.

Before any training both views are compared: users, items, interactions, every user's ordered
sequence (a digest) and every validation and test target must be equal, or the script stops.

Protocol, both sides: leave-one-out (RecBole ``eval_args: {split: {LS: valid_and_test},
order: TO, group_by: user, mode: full}``), full ranking over the whole catalog, history items
not excluded (RecBole masks none for sequential models), test figures of the model that was
best on validation. RecBole runs with its model defaults (only ``train_neg_sample_args: ~``,
which its CE loss requires, and the metric list are set); the harness runs
``regen-bench run --model M --task sequential --seed S --threads T`` with default options.
Both use ``--threads`` torch threads, so their training times compare. MRR is printed both as
RecBole computes it (MRR@10, truncated) and as the harness does (untruncated).

RecBole pins an old numpy and needs ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` with current torch,
so it runs in a venv of its own (``--venv``, created on first use with :data:`RECBOLE_PINS`)
through ``benchmarks/recbole_runner.py``. A full RecBole run trains on every prefix of every
sequence (99,057 training examples per epoch on ML-100K) and takes about 40
minutes per model with two threads on an idle two-core machine, hours with one thread on a
busy one, so each result is cached as JSON under ``--cache``/recbole, keyed by RecBole's
version, the model, its config, the data fingerprint (the sha256 of the ``.inter`` file RecBole
reads, with the dataset's name for ``--dataset``), the seed and the threads, and reused
(printed as cached, with its date) unless ``--rerun-recbole``. ``--quick`` trains one epoch on
each side: a check that everything runs, not a comparison. A RecBole run that was stopped
(a session's end, a kill) resumes after its last finished epoch when the same command runs
again (``--rerun-recbole`` starts it afresh); its fit time adds up the parts. Not part of CI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "benchmarks" / "recbole_runner.py"
RECBOLE_VERSION = "1.2.1"
#: What RecBole's venv gets: torch from this machine's wheel; numpy < 1.24 because RecBole 1.2.1
#: still uses ``np.float`` (evaluator/metrics.py); setuptools < 81 because it imports ray 2.6,
#: which imports ``pkg_resources``.
RECBOLE_PINS = ("torch==2.13.0", f"recbole=={RECBOLE_VERSION}", "numpy==1.23.5", "setuptools<81")
#: harness model name -> RecBole model name.
MODELS = {"sasrec": "SASRec", "bert4rec": "BERT4Rec"}
DATASET = "ml-100k"
#: RecBole config of a ``--dataset`` (a custom dataset: RecBole would load only the two ids).
CUSTOM_CONFIG: dict[str, Any] = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
#: The time key that reproduces RecBole's order on ml-100k (its config normalises floats).
TIME_KEY = "float32-normalized"
QUICK_EPOCHS = 1
K = 10
#: RecBole config shared by every model (its model defaults are left alone).
PARITY_CONFIG: dict[str, Any] = {
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    },
    "train_neg_sample_args": None,  # required with loss_type CE (both models' default)
    "metrics": ["Recall", "MRR", "NDCG"],
    "topk": [K],
    "valid_metric": f"MRR@{K}",  # RecBole's default early-stopping metric
    "metric_decimal_place": 6,
    "use_gpu": False,
    "show_progress": False,
}


@dataclass
class Data:
    """The data both sides run on: where RecBole finds it and what the harness runs."""

    title: str  # what the table's title line calls it
    recbole_dataset: str  # RecBole's dataset name: <data_path>/<name>/<name>.inter
    data_path: str
    config: dict[str, Any]  # RecBole config besides recbole_config's
    fingerprint: str  # the cache key's ``data``
    harness: str  # `regen-bench run --dataset` of the harness side
    name: str  # the harness's name for it (its results folder)
    view: dict[str, Any]  # the harness's view (harness_view)


@dataclass
class Side:
    """One model's figures from one implementation."""

    name: str
    ndcg: float
    recall: float
    mrr_at_k: float
    mrr: float | None
    fit_s: float
    epochs: int | None
    note: str = ""


def recbole_config(model: str, *, seed: int, quick: bool) -> dict[str, Any]:
    """The RecBole ``config_dict`` of a parity run, without paths (what the cache key sees)."""
    config = json.loads(json.dumps(PARITY_CONFIG))
    config["seed"] = seed
    if quick:
        config["epochs"] = QUICK_EPOCHS
    return config


def cache_key(
    *, recbole_version: str, model: str, config: dict[str, Any], data: str, seed: int, threads: int
) -> str:
    """sha256 of everything a cached RecBole figure depends on."""
    fields = {
        "recbole": recbole_version,
        "model": model,
        "config": config,
        "data": data,
        "seed": seed,
        "threads": threads,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def sequences_digest(sequences: dict[str, list[str]]) -> str:
    """The twin of ``recbole_runner.sequences_digest``: user order, items in sequence order."""
    digest = hashlib.sha256()
    for user in sorted(sequences):
        digest.update(f"{user}\t{' '.join(sequences[user])}\n".encode())
    return digest.hexdigest()


def harness_view(path: Path) -> dict[str, Any]:
    """Counts, sequence digest and leave-one-out targets of a REGEN-format file."""
    from regen_bench.data.regen import iter_records

    return sequences_view(
        {r.user_id: [i.item_id for i in r.interactions] for r in iter_records(path)}
    )


def dataset_view(ds: Any) -> dict[str, Any]:
    """:func:`harness_view` of a loaded ``regen_bench`` Dataset (what a run reads)."""
    return sequences_view({u.user_id: ds.catalog.ids(u.items) for u in ds.users})


def sequences_view(seqs: dict[str, list[str]]) -> dict[str, Any]:
    """Counts, sequence digest and leave-one-out targets of users' item sequences."""
    return {
        "users": len(seqs),
        "items": len({i for s in seqs.values() for i in s}),
        "interactions": sum(len(s) for s in seqs.values()),
        "sequences_sha256": sequences_digest(seqs),
        "valid_targets": {u: s[-2] for u, s in seqs.items() if len(s) >= 3},
        "test_targets": {u: s[-1] for u, s in seqs.items() if len(s) >= 3},
    }


def compare_data(recbole: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Differences between RecBole's and the harness's view of the data (empty: the same)."""
    problems = [
        f"{key}: RecBole {recbole[key]:,}, harness {ours[key]:,}"
        for key in ("users", "items", "interactions")
        if recbole[key] != ours[key]
    ]
    if recbole["sequences_sha256"] != ours["sequences_sha256"]:
        problems.append("the users' ordered sequences differ")
    for split in ("valid_targets", "test_targets"):
        a, b = recbole[split], ours[split]
        differ = sorted(u for u in a.keys() | b.keys() if a.get(u) != b.get(u))
        if differ:
            problems.append(f"{split}: {len(differ)} users differ, e.g. {differ[:5]}")
    return problems


def mrr_at_k(samples: Path, k: int = K) -> float:
    """RecBole's truncated MRR@k from a harness per-sample file (pessimistic rank)."""
    total, n = 0.0, 0
    with open(samples) as fh:
        for line in fh:
            row = json.loads(line)
            rank = row["greater"] + row["ties"]
            total += 1.0 / (rank + 1) if rank < k else 0.0
            n += 1
    return total / n if n else 0.0


def ours_side(result: dict[str, Any], samples: Path) -> Side:
    metrics, fit = result["metrics"], result.get("fit_log") or {}
    return Side(
        name="regen-bench",
        ndcg=metrics[f"ndcg@{K}"],
        recall=metrics[f"recall@{K}"],
        mrr_at_k=mrr_at_k(samples),
        mrr=metrics["mrr"],
        fit_s=result["timings"]["fit_s"],
        epochs=fit.get("epochs"),
    )


def recbole_side(cached: dict[str, Any], note: str) -> Side:
    test = cached["result"]["test"]
    return Side(
        name=f"RecBole {cached['result']['recbole_version']}",
        ndcg=test[f"ndcg@{K}"],
        recall=test[f"recall@{K}"],
        mrr_at_k=test[f"mrr@{K}"],
        mrr=None,
        fit_s=cached["result"]["fit_s"],
        epochs=cached["result"]["epochs"],
        note=note,
    )


def table(rows: Sequence[tuple[str, Side]]) -> list[str]:
    out = [
        f"{'model':10} {'implementation':16} {'NDCG@10':>8} {'Recall@10':>9} {'MRR@10':>7} "
        f"{'MRR':>7} {'epochs':>6} {'fit s':>8}  note"
    ]
    for model, s in rows:
        mrr = f"{s.mrr:.4f}" if s.mrr is not None else "-"
        epochs = str(s.epochs) if s.epochs is not None else "-"
        out.append(
            f"{model:10} {s.name:16} {s.ndcg:8.4f} {s.recall:9.4f} {s.mrr_at_k:7.4f} {mrr:>7} "
            f"{epochs:>6} {s.fit_s:8.1f}  {s.note}"
        )
    return out


# -- the RecBole venv and runner ----------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def recbole_info(venv: Path) -> dict[str, str] | None:
    """RecBole's version and dataset folder in ``venv``, or None when it is not usable."""
    python = _venv_python(venv)
    if not python.exists():
        return None
    code = (
        "import json, os, recbole, numpy; print(json.dumps({'version': recbole.__version__, "
        "'examples': os.path.join(os.path.dirname(recbole.__file__), 'dataset_example')}))"
    )
    done = subprocess.run([str(python), "-W", "ignore", "-c", code], capture_output=True, text=True)
    if done.returncode:
        return None
    info: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return info


def ensure_venv(venv: Path) -> dict[str, str]:
    """RecBole's venv, created with :data:`RECBOLE_PINS` when missing or broken."""
    info = recbole_info(venv)
    if info is not None and info["version"] == RECBOLE_VERSION:
        return info
    print(f"creating RecBole's venv {venv} ({' '.join(RECBOLE_PINS)}); a few minutes", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(_venv_python(venv)), "-m", "pip", "install", "-q", *RECBOLE_PINS]
    subprocess.run(pip, check=True)
    info = recbole_info(venv)
    if info is None or info["version"] != RECBOLE_VERSION:
        raise SystemExit(f"RecBole {RECBOLE_VERSION} does not import in {venv}")
    return info


def run_recbole(
    venv: Path, spec: dict[str, Any], work: Path, log: Path, out: Path
) -> dict[str, Any]:
    """Run ``recbole_runner.py`` on ``spec`` in ``work`` (RecBole writes log/ and saved/ there)."""
    work.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1", PYTHONWARNINGS="ignore")
    # A resumed run appends to the log of the parts before it.
    resume = spec.get("resume")
    with open(log, "a" if resume and Path(resume).exists() else "w") as fh:
        done = subprocess.run(
            [str(_venv_python(venv)), str(RUNNER), str(spec_path), str(out)],
            cwd=work,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(
            f"RecBole failed (exit {done.returncode}); {log} ends:\n" + "\n".join(tail)
        )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- the steps ----------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(source: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "regen_bench", "data", "import", "--format", "recbole"]
    cmd += [str(source), "--out", str(out), "--time-key", TIME_KEY]
    print("$ regen-bench " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)


def ml100k_data(args: argparse.Namespace, info: dict[str, str]) -> Data:
    """RecBole's own ML-100K, and the harness's import of it."""
    source = Path(info["examples"]) / DATASET
    data = args.cache / "data" / f"{DATASET}.jsonl.gz"
    convert(source, data)
    return Data(
        title="ML-100K",
        recbole_dataset=DATASET,
        data_path=info["examples"],
        config={},
        fingerprint=_sha256(source / f"{DATASET}.inter"),
        harness=str(data),
        name=data.name.split(".")[0],
        view=harness_view(data),
    )


def exported_data(args: argparse.Namespace) -> Data:
    """``--dataset`` exported as RecBole atomic files into ``--cache``/data/NAME/."""
    from regen_bench.data.export_recbole import export_recbole
    from regen_bench.resolve import resolve_dataset

    ds = resolve_dataset(args.dataset)
    root = args.cache / "data"
    folder = root / ds.name
    # The export of an earlier run is rewritten: the dataset may have changed since.
    for suffix in ("inter", "item"):
        (folder / f"{ds.name}.{suffix}").unlink(missing_ok=True)
    print(f"$ regen-bench data export --format recbole {args.dataset} {folder}", flush=True)
    try:
        written = export_recbole(ds, folder)
    except ValueError as exc:
        raise SystemExit(f"cannot export {args.dataset}: {exc}") from None
    print(f"wrote {folder} (recbole): {written.summary()}")
    return Data(
        title=ds.name,
        recbole_dataset=ds.name,
        data_path=str(root.resolve()),
        config=json.loads(json.dumps(CUSTOM_CONFIG)),
        fingerprint=f"{ds.name} {_sha256(folder / f'{ds.name}.inter')}",
        harness=args.dataset,
        name=ds.name,
        view=dataset_view(ds),
    )


def recbole_result(
    args: argparse.Namespace, info: dict[str, str], model: str, data: Data
) -> tuple[dict[str, Any] | None, str]:
    """The cached or fresh RecBole result of ``model`` and how it was obtained."""
    config = {**recbole_config(MODELS[model], seed=args.seed, quick=args.quick), **data.config}
    key = cache_key(
        recbole_version=info["version"],
        model=MODELS[model],
        config=config,
        data=data.fingerprint,
        seed=args.seed,
        threads=args.threads,
    )
    name = f"{MODELS[model]}-{key[:12]}"
    path = args.cache / "recbole" / f"{name}.json"
    log = args.cache / "logs" / f"{name}.log"
    if path.exists() and not args.rerun_recbole:
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached, f"cached {cached['created']} ({path})"
    if args.only == "ours":
        return None, f"no cached RecBole result ({path})"
    work = args.cache / "work" / name
    resume = work / "resume.pth"
    if args.rerun_recbole:
        resume.unlink(missing_ok=True)
    spec = {
        "resume": str(resume.resolve()),
        "model": MODELS[model],
        "dataset": data.recbole_dataset,
        "threads": args.threads,
        "config": {
            **config,
            "data_path": data.data_path,
            "checkpoint_dir": str((work / "saved").resolve()),
        },
    }
    how = "resuming an interrupted run" if resume.exists() else "training"
    print(f"RecBole {MODELS[model]}: {how}; progress: tail -f {log}", flush=True)
    start = time.time()
    result = run_recbole(args.venv, spec, work, log, work / "result.json")
    cached = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "key": key,
        "key_fields": {"config": config, "data": data.fingerprint, "seed": args.seed},
        "threads": args.threads,
        "wall_s": round(time.time() - start, 1),
        "result": result,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cached, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return cached, f"trained now ({path})"


def ours_result(args: argparse.Namespace, model: str, data: Data) -> tuple[Side, dict[str, str]]:
    out = args.cache / ("ours-quick" if args.quick else "ours")
    cmd = [sys.executable, "-m", "regen_bench", "run", "--model", model, "--task", "sequential"]
    cmd += ["--seed", str(args.seed), "--threads", str(args.threads), "--dataset", data.harness]
    cmd += ["--out", str(out), "-q"]
    if args.quick:
        cmd += ["--set", f"epochs={QUICK_EPOCHS}"]
    print("$ regen-bench " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    folder = out / data.name / "sequential"
    result = json.loads((folder / f"{model}.json").read_text())
    samples = folder / result["samples_file"]
    targets = {}
    with open(samples) as fh:
        for line in fh:
            row = json.loads(line)
            targets[row["user_id"]] = row["target"]
    return ours_side(result, samples), targets


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default=None,
        metavar="NAME_OR_PATH",
        help="a registered dataset or REGEN-format file, exported to RecBole atomic files "
        f"under --cache/data (default: RecBole's own {DATASET})",
    )
    parser.add_argument("--models", default="sasrec,bert4rec", help="comma-separated (%(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epoch each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--only", choices=["recbole", "ours"], default=None)
    parser.add_argument("--rerun-recbole", action="store_true", help="ignore cached results")
    parser.add_argument("--venv", type=Path, default=ROOT / ".recbole-venv")
    parser.add_argument("--cache", type=Path, default=ROOT / ".recbole-parity")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    return args


def data_check(args: argparse.Namespace, data: Data) -> list[str]:
    """How RecBole's split of ``data`` differs from the harness's view (empty: not at all)."""
    check_spec = {
        "model": "SASRec",
        "dataset": data.recbole_dataset,
        "threads": args.threads,
        "data_only": True,
    }
    check_spec["config"] = {**recbole_config("SASRec", seed=args.seed, quick=True), **data.config}
    check_spec["config"]["data_path"] = data.data_path
    (args.cache / "work").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="data-check-", dir=args.cache / "work") as tmp:
        work = Path(tmp)
        rb_view = run_recbole(args.venv, check_spec, work, work / "log.txt", work / "result.json")
    return compare_data(rb_view["data"], data.view)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = ensure_venv(args.venv)
    data = ml100k_data(args, info) if args.dataset is None else exported_data(args)
    ours_view = data.view
    problems = data_check(args, data)
    print(
        f"data: {ours_view['users']:,} users, {ours_view['items']:,} items, "
        f"{ours_view['interactions']:,} interactions; "
        + ("RecBole and the harness see the same sequences and targets" if not problems else "")
    )
    if problems:
        print("data differ between RecBole and the harness:\n  " + "\n  ".join(problems))
        return 1

    rows: list[tuple[str, Side]] = []
    for model in args.models:
        cached, how = recbole_result(args, info, model, data)
        print(f"RecBole {MODELS[model]}: {how}", flush=True)
        if cached is not None:
            rows.append((model, recbole_side(cached, how.split(" (")[0])))
        if args.only == "recbole":
            continue
        side, targets = ours_result(args, model, data)
        if targets != ours_view["test_targets"]:
            print(f"{model}: the run's test targets differ from the converted file's")
            return 1
        if cached is not None:
            side.note = f"fit {side.fit_s / cached['result']['fit_s']:.2f}x RecBole's"
        rows.append((model, side))
    print()
    print(f"{data.title}, leave-one-out, full ranking, seed {args.seed}, {args.threads} thread(s)")
    for line in table(rows):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
