"""run(model, task, dataset) -> Result: the one place that wires data, model and metrics."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

import regen_bench
from regen_bench.data.dataset import Dataset
from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.embedding import DEFAULT_EMBEDDER
from regen_bench.finetune import FinetuneManifest, finetuned_narrator, manifest_sha256
from regen_bench.llm import check_options
from regen_bench.metrics.ranking import DEFAULT_TIE_POLICY, TIE_POLICIES, rank_counts
from regen_bench.metrics.text import DEFAULT_BERTSCORE_MODEL, compute_text_metrics
from regen_bench.model import Model
from regen_bench.narrator import PROMPT_VERSION, NarratorConfig, narrate, narrated_items
from regen_bench.plugins import PluginManager, UnknownNameError, get_plugin_manager
from regen_bench.results import (
    DatasetInfo,
    Environment,
    ModelInfo,
    Narration,
    NarratorFinetune,
    Protocol,
    Result,
    TaskInfo,
    recompute_metrics,
    signature,
    write_result,
    write_samples,
)
from regen_bench.tasks import SPLIT, TASKS, Example, TaskData, build_task

DEFAULT_DATASET = "mini"
DEFAULT_OUTPUT = "results"
TOP_K = 10


class RunError(ValueError):
    """A run cannot start (bad names, unsupported task...); the message says why."""


@dataclass
class RunOutput:
    result: Result
    result_path: Path
    samples_path: Path


def resolve_dataset(
    name_or_path: str, data_dir: str | None = None, plugins: PluginManager | None = None
) -> Dataset:
    """Load a registered dataset by name, or a REGEN-format file by path."""
    plugins = plugins or get_plugin_manager()
    if name_or_path in plugins.entries["dataset"]:
        path = plugins.get("dataset", name_or_path).factory(data_dir=data_dir)
        return Dataset.from_file(path, name=name_or_path)
    if os.path.sep in name_or_path or os.path.exists(name_or_path):
        if not os.path.isfile(name_or_path):
            raise RunError(f"dataset file '{name_or_path}' does not exist")
        return Dataset.from_file(name_or_path)
    raise UnknownNameError("dataset", name_or_path, plugins.names("dataset"))


def check_names(model: str, task: str, plugins: PluginManager) -> None:
    """Fail fast (before loading data) on an unknown model/task or an unsupported pair."""
    if task not in TASKS:
        raise UnknownNameError("task", task, list(TASKS))
    entry = plugins.get("model", model)
    if not supports(entry.meta, task):
        supported = tuple(entry.meta.get("tasks", ()))
        raise RunError(
            f"model '{model}' does not support task '{task}' "
            f"(it supports: {', '.join(supported) or 'none'}); models for '{task}': "
            + ", ".join(
                n for n in plugins.names("model") if supports(plugins.get("model", n).meta, task)
            )
        )


def supports(meta: dict[str, Any], task: str) -> bool:
    """Whether a model registered with ``meta`` can run ``task``.

    The conversational task is open to joint models that declare it and, through the narrator,
    to every model that ranks with critiques (it ranks exactly as on ``critique``).
    """
    tasks = tuple(meta.get("tasks", ()))
    return task in tasks or (task == "conversational" and "critique" in tasks)


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(regen_bench.__file__).parent,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _environment(model: Model) -> Environment:
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        numpy=np.__version__,
        torch=_version("torch"),
        transformers=_version("transformers"),
        device=str(model.config().get("device", "cpu")),
        threads=_torch_threads(),
    )


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k indices per row, best first; equal scores in catalog order (deterministic)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


def evaluate(
    model: Model,
    data: TaskData,
    *,
    batch_size: int = 256,
    exclude_history: bool = False,
    has_critique: Sequence[bool] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score the test examples in batches; return one record per example with its counts."""
    samples: list[dict[str, Any]] = []
    catalog = data.catalog
    bar = tqdm(total=len(data.test), desc="evaluate", unit="ex", disable=not progress)
    for batch in _batches(data.test, batch_size):
        scores = np.asarray(model.score(batch), dtype=np.float32)
        if scores.shape != (len(batch), len(catalog)):
            raise RunError(
                f"model returned scores of shape {scores.shape}, expected "
                f"({len(batch)}, {len(catalog)})"
            )
        targets = np.array([ex.target for ex in batch], dtype=np.int64)
        exclude = (
            [np.setdiff1d(ex.history, [ex.target]) for ex in batch] if exclude_history else None
        )
        greater, ties = rank_counts(scores, targets, exclude)
        if exclude is not None:
            for row, ex_items in zip(scores, exclude, strict=True):
                row[ex_items] = -np.inf
        top = _top_k(scores, TOP_K)
        for i, ex in enumerate(batch):
            n = len(samples)
            samples.append(
                {
                    "user_id": ex.user_id,
                    "target": catalog[ex.target].asin,
                    "top_k": catalog.ids(top[i]),
                    "greater": int(greater[i]),
                    "ties": int(ties[i]),
                    "critique": ex.critique,
                    "has_critique": bool(has_critique[n]) if has_critique is not None else False,
                }
            )
        bar.update(len(batch))
    bar.close()
    return samples


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads for this process (no-op without torch).

    On a shared or oversubscribed machine torch's default (one thread per core) can spin-wait
    and run many times slower than one thread; results do not depend on the thread count.
    """
    if threads < 1:
        raise RunError("--threads must be at least 1")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


NARRATOR_PREFIX = "narrator."


def _split_narrator_options(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--set`` options: ``narrator.*`` keys configure the narrator, the rest the model."""
    model_cfg = {k: v for k, v in config.items() if not k.startswith(NARRATOR_PREFIX)}
    narrator = {
        k.removeprefix(NARRATOR_PREFIX): v
        for k, v in config.items()
        if k.startswith(NARRATOR_PREFIX)
    }
    return model_cfg, narrator


def _narrate(
    model: Model,
    data: TaskData,
    ds: Dataset,
    samples: list[dict[str, Any]],
    narrative: str,
    cfg: NarratorConfig,
    *,
    cache_default: str,
    embedder: str | None,
    bertscore_model: str | None,
    progress: bool,
    log: Callable[[str], None],
    finetuned: FinetuneManifest | None = None,
) -> tuple[Narration, dict[str, float]]:
    """Write a narrative per test example, score it against the reference, extend ``samples``.

    A model that writes text itself (``generates_text``) narrates its own first choice; any other
    model is paired with the narrator (an LLM backend), on the item ``cfg.condition`` names.
    A ``finetuned`` narrator only narrates (and is only scored on) the users of its held-out
    bucket: it was trained on the others' reference narratives.
    """
    examples = data.test
    catalog = data.catalog
    top1 = [catalog.index[s["top_k"][0]] for s in samples]
    targets = [ex.target for ex in examples]
    excluded: dict[int, str] = {}
    ft_info: NarratorFinetune | None = None
    if model.generates_text:
        texts = list(model.generate(examples, narrative))
        if len(texts) != len(examples):
            raise RunError(f"model returned {len(texts)} narratives for {len(examples)} examples")
        errors: list[str | None] = [None] * len(texts)
        narrated, usage = top1, {}
        condition: Literal["target", "top1"] = "top1"
        backend = llm_model = None
        prompt_version = None
        record: dict[str, Any] = {}
    else:
        narrated = narrated_items(targets, top1, cfg.condition)
        by_user = {u.user_id: u for u in ds.users}
        cache = cfg.cache if cfg.cache is not None else cache_default
        if finetuned is not None:
            # (A folder retrained in place never hits old answers: the hf backend's cache key
            # carries a tag of the folder's files.)
            excluded, ft_info = _finetune_exclusions(examples, finetuned, cfg, ds)
            log(
                f"fine-tuned narrator: {len(examples) - len(excluded)} held-out test users "
                f"narrated and scored, {len(excluded)} left out (its train/valid users)"
            )
        keep = [i for i in range(len(examples)) if i not in excluded]
        log(f"narrating {len(keep)} examples with llm backend '{cfg.backend}'")
        out = narrate(
            catalog,
            [by_user[examples[i].user_id] for i in keep],
            [examples[i] for i in keep],
            [narrated[i] for i in keep],
            narrative,
            cfg,
            cache_path=cache or None,
            progress=progress,
        )
        texts, errors = [""] * len(examples), [None] * len(examples)
        for j, i in enumerate(keep):
            texts[i], errors[i] = out.texts[j], out.errors[j]
        usage = out.usage
        condition, backend, llm_model = cfg.condition, out.backend, out.model
        if ft_info is not None:
            # Name a fine-tuned narrator by its manifest, not by the folder it happens to sit
            # in: the same weights compare wherever they are stored, retrained ones never do.
            llm_model = f"{ft_info.base_model}+ft.{ft_info.manifest_sha256[:12]}"
        prompt_version, record = PROMPT_VERSION, cfg.record()
    for i, (sample, ex, item, text, err) in enumerate(
        zip(samples, examples, narrated, texts, errors, strict=True)
    ):
        sample["narrated"] = catalog[item].asin
        sample["generated"] = None if i in excluded else text
        sample["reference"] = ex.references.get(narrative)
        if i in excluded:
            sample["text_excluded"] = excluded[i]
        if err is not None:
            sample["narration_error"] = err
    scored = [s for s in samples if s["reference"] is not None and "text_excluded" not in s]
    if not scored:
        raise RunError(f"dataset '{ds.name}' has no reference '{narrative}' narratives to score")
    log(f"scoring {len(scored)} narratives (BLEU, ROUGE, semantic similarity, BERTScore)")
    tm = compute_text_metrics(
        [s["reference"] for s in scored],
        [s["generated"] for s in scored],
        embedder=embedder,
        bertscore_model=bertscore_model,
        progress=progress,
    )
    narration = Narration(
        generator="model" if model.generates_text else "narrator",
        condition=condition,
        backend=backend,
        llm_model=llm_model,
        prompt_version=prompt_version,
        config=record,
        text_config=tm.config,
        scored=len(scored),
        failed=sum(e is not None for e in errors),
        usage=usage,
        excluded=len(excluded),
        finetune=ft_info,
    )
    return narration, tm.metrics


def _finetune_exclusions(
    examples: Sequence[Example], manifest: FinetuneManifest, cfg: NarratorConfig, ds: Dataset
) -> tuple[dict[int, str], NarratorFinetune]:
    """Examples whose user is in the fine-tuned narrator's train/valid bucket, and its record."""
    rule = manifest.partition.rule()
    excluded = {
        i: f"user in the narrator's fine-tuning '{bucket}' bucket"
        for i, ex in enumerate(examples)
        if (bucket := rule.bucket(ex.user_id)) != "heldout"
    }
    info = NarratorFinetune(
        base_model=manifest.base_model,
        trainer=manifest.trainer,
        manifest_sha256=manifest_sha256(str(cfg.backend_options["model"])),
        dataset_fingerprint=str(manifest.dataset.get("fingerprint", "")),
        same_dataset=manifest.dataset.get("fingerprint") == ds.fingerprint,
        salt=manifest.partition.salt,
        heldout_fraction=manifest.partition.heldout_fraction,
        valid_fraction=manifest.partition.valid_fraction,
        trained_users=manifest.pairs.get("train", 0),
        valid_users=manifest.pairs.get("valid", 0),
        best_valid_loss=manifest.best_valid_loss,
    )
    return excluded, info


def run(
    model: str,
    task: str,
    dataset: str = DEFAULT_DATASET,
    *,
    narrative: str | None = None,
    output: str | os.PathLike[str] = DEFAULT_OUTPUT,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    data_dir: str | None = None,
    eval_batch_size: int = 256,
    tie_policy: str = DEFAULT_TIE_POLICY,
    exclude_history: bool = False,
    limit: int | None = None,
    embedder: str | None = DEFAULT_EMBEDDER,
    bertscore_model: str | None = DEFAULT_BERTSCORE_MODEL,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> RunOutput:
    """Train ``model`` on ``task`` of ``dataset``, evaluate on the test split, write results."""
    plugins = get_plugin_manager()
    check_names(model, task, plugins)
    if tie_policy not in TIE_POLICIES:
        raise UnknownNameError("tie policy", tie_policy, list(TIE_POLICIES))
    if eval_batch_size < 1:
        raise RunError("eval batch size must be at least 1")
    if limit is not None and limit < 1:
        raise RunError("--limit must be at least 1")
    if threads is not None:
        set_torch_threads(threads)
    if TASKS[task].generates and narrative not in NARRATIVE_TYPES:
        raise RunError(
            f"task '{task}' needs a narrative type, one of {', '.join(NARRATIVE_TYPES)} "
            "(--narrative TYPE)"
        )
    t0 = time.perf_counter()
    ds = resolve_dataset(dataset, data_dir, plugins)
    data = build_task(ds, task, narrative)
    if limit is not None:
        # A documented subset for quick checks (e.g. LLM narration on CPU): the first ``limit``
        # test users in file order. Recorded in the protocol and the signature.
        data.test = data.test[:limit]
    if not data.test:
        raise RunError(f"dataset '{ds.name}' has no user with at least 3 purchases")
    log(
        f"dataset {ds.name}: {len(ds.users)} users, {len(ds.catalog)} items, "
        f"{len(data.test)} test examples"
    )
    model_config, narrator_options = _split_narrator_options(config or {})
    narrator_cfg = NarratorConfig.from_options(narrator_options)
    if narrator_options and not data.task.generates:
        raise RunError(f"narrator.* options apply to the conversational task only, not '{task}'")
    entry = plugins.get("model", model)
    finetuned = None
    if data.task.generates and not entry.meta.get("generates_text", False):
        # Fail before training, not after: the backend exists and takes these options.
        backend = plugins.get("llm_backend", narrator_cfg.backend)
        check_options(
            f"llm backend '{narrator_cfg.backend}'", backend.factory, narrator_cfg.backend_options
        )
        assert narrative is not None
        narrator_cfg, finetuned = finetuned_narrator(narrator_cfg, narrator_options, narrative)
        if finetuned is not None:  # before training: the run must have someone to score
            rule = finetuned.partition.rule()
            if all(rule.bucket(ex.user_id) != "heldout" for ex in data.test):
                raise RunError(
                    f"none of the {len(data.test)} test users is held out from the fine-tuned "
                    "narrator's training (all are in its train/valid buckets); evaluate more "
                    "users (--limit)"
                )
    random.seed(seed)
    np.random.seed(seed)  # legacy global seed for plugins that still use it
    instance: Model = entry.factory(ds.catalog, seed=seed, **model_config)
    t_load = time.perf_counter()
    fit_log = instance.fit(data.train, data.valid) or {}
    t_fit = time.perf_counter()
    by_user = {u.user_id: u for u in ds.users}
    has_critique = [by_user[ex.user_id].critiques[-1] is not None for ex in data.test]
    samples = evaluate(
        instance,
        data,
        batch_size=eval_batch_size,
        exclude_history=exclude_history,
        has_critique=has_critique,
        progress=progress,
    )
    t_eval = time.perf_counter()
    narration = None
    if data.task.generates:
        assert narrative is not None
        narration = _narrate(
            instance,
            data,
            ds,
            samples,
            narrative,
            narrator_cfg,
            cache_default=str(Path(output) / ".llm-cache.sqlite"),
            embedder=embedder,
            bertscore_model=bertscore_model,
            progress=progress,
            log=log,
            finetuned=finetuned,
        )
    t_text = time.perf_counter()

    out_dir = Path(output) / ds.name / task
    stem = model + (f"__{narrative}" if narrative else "")
    samples_path = out_dir / f"{stem}.samples.jsonl"
    samples_sha = write_samples(samples_path, samples)
    info = next((p for p in plugins.infos if p.name == entry.plugin), None)
    result = Result(
        harness_version=regen_bench.__version__,
        git_commit=_git_commit(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=ModelInfo(
            name=model,
            plugin=entry.plugin,
            version=info.version if info else "",
            config=instance.config(),
            parameters=instance.num_parameters(),
        ),
        task=TaskInfo(name=task, version=data.task.version, narrative_type=narrative),
        dataset=DatasetInfo(
            name=ds.name,
            fingerprint=ds.fingerprint,
            split=SPLIT,
            users=len(ds.users),
            items=len(ds.catalog),
            interactions=sum(len(u) for u in ds.users),
            skipped_users=data.skipped_users,
            critique_coverage=ds.critique_coverage(),
        ),
        protocol=Protocol(
            tie_policy=tie_policy,
            exclude_history=exclude_history,
            test_examples=len(samples),
            critiqued_examples=sum(has_critique),
            limit=limit,
        ),
        metrics={**recompute_metrics(samples, tie_policy), **(narration[1] if narration else {})},
        timings={
            "load_s": round(t_load - t0, 3),
            "fit_s": round(t_fit - t_load, 3),
            "evaluate_s": round(t_eval - t_fit, 3),
            **({"narrate_and_score_s": round(t_text - t_eval, 3)} if narration else {}),
            "total_s": round(t_text - t0, 3),
        },
        seeds={"seed": seed},
        environment=_environment(instance),
        fit_log=fit_log,
        narration=narration[0] if narration else None,
        samples_file=samples_path.name,
        samples_sha256=samples_sha,
        signature="",
    )
    result.signature = signature(result)
    result_path = out_dir / f"{stem}.json"
    write_result(result_path, result)
    return RunOutput(result, result_path, samples_path)
