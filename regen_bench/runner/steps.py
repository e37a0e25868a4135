"""The named steps of a run, in order: prepare, fit, evaluate, narrate, build the result.

Each step takes what the previous ones produced and returns a small record of its own, so a
caller (a notebook, a sweep) can run them one by one; :func:`run` calls them all and writes the
result file and the per-sample file.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import regen_bench
from regen_bench.data.dataset import Catalog, Dataset
from regen_bench.finetune_manifest import FinetuneManifest, finetuned_narrator
from regen_bench.llm import check_options
from regen_bench.model import Model
from regen_bench.narrator import NarratorConfig
from regen_bench.plugins import Entry, PluginManager, get_plugin_manager
from regen_bench.progress import quiet
from regen_bench.resolve import resolve_dataset
from regen_bench.results import (
    DatasetInfo,
    FitReuse,
    ModelInfo,
    Narration,
    Protocol,
    Result,
    TaskInfo,
    recompute_metrics,
    signature,
    write_result_pair,
)
from regen_bench.runner import fit_cache
from regen_bench.runner.components import check_output, preflight
from regen_bench.runner.config import RunConfig, RunError, check_config
from regen_bench.runner.environment import environment, git_commit
from regen_bench.runner.narration import check_text_users, narrate_samples
from regen_bench.runner.scoring import score_examples
from regen_bench.tasks import SPLIT, TaskData, build_task, target_critiqued
from regen_bench.threads import set_torch_threads
from regen_bench.weights import WeightsError

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


@dataclass
class Prepared:
    """Everything checked and loaded before training: the data, the model entry, the narrator."""

    config: RunConfig
    plugins: PluginManager
    entry: Entry
    dataset: Dataset
    data: TaskData
    narrator: NarratorConfig
    finetuned: FinetuneManifest | None
    #: ``time.perf_counter()`` when loading began (the timings start here).
    started: float


@dataclass
class Fitted:
    """The trained model, its fit log, ``time.perf_counter()`` once built and once trained, and
    the pins of the pretrained weights it loaded (role ``model.<option>``)."""

    model: Model
    fit_log: dict[str, Any]
    built: float
    fitted: float
    weights: dict[str, str] = field(default_factory=dict)
    #: Set when the model came from the fit cache instead of training.
    reused: FitReuse | None = None


@dataclass
class Evaluated:
    """The per-sample records of the test examples (``done``: perf_counter() after scoring)."""

    #: One record per test example (user, target, top-k, rank counts); narration extends them.
    samples: list[dict[str, Any]]
    has_critique: list[bool]
    done: float


@dataclass
class Narrated:
    """How the narratives were made, their text metrics, perf_counter() once scored, and the
    pins of the weights narrating and scoring loaded (narrator, embedder, BERTScore model)."""

    narration: Narration
    metrics: dict[str, float]
    done: float
    weights: dict[str, str] = field(default_factory=dict)


@dataclass
class RunOutput:
    """The written result, the result file and the per-sample file."""

    result: Result
    result_path: Path
    samples_path: Path


def _prepare_narrator(
    data: TaskData,
    narrative: str,
    options: dict[str, object],
    cfg: NarratorConfig,
    plugins: PluginManager,
) -> tuple[NarratorConfig, FinetuneManifest | None]:
    """Check the narrator before training, not after; adopt a fine-tuned narrator's prompt."""
    backend = plugins.get("llm_backend", cfg.backend)
    check_options(f"llm backend '{cfg.backend}'", backend.factory, cfg.backend_options)
    cfg, finetuned = finetuned_narrator(cfg, options, narrative)
    if finetuned is not None:  # the run must have someone to score
        rule = finetuned.partition.rule()
        if all(rule.bucket(ex.user_id) != "heldout" for ex in data.test):
            raise RunError(
                f"none of the {len(data.test)} test users is held out from the "
                "fine-tuned narrator's training (all are in its train/valid buckets); evaluate "
                "more users (--limit)"
            )
    return cfg, finetuned


def prepare(
    config: RunConfig, *, plugins: PluginManager | None = None, log: Log = _quiet
) -> Prepared:
    """Check the config and that every component can load (before loading data), set
    threads, load the task, check the narrator."""
    plugins = plugins or get_plugin_manager()
    check_config(config, plugins)
    preflight(config, plugins)
    if config.threads is not None:
        set_torch_threads(config.threads)
    started = time.perf_counter()
    ds = resolve_dataset(config.dataset, config.data_dir, plugins)
    if config.tuning is not None and config.tuning.dataset_fingerprint != ds.fingerprint:
        raise RunError(
            f"the tuned config was searched on another dataset (fingerprint "
            f"{config.tuning.dataset_fingerprint[:12]}..., this one {ds.fingerprint[:12]}...); "
            "tune on this dataset, or run on that one (--dataset)"
        )
    # The folder of this dataset's results, now that its name is known (the preflight
    # checked the output folder above it): before training, not after.
    check_output(config.output_paths(ds.name)[0].parent)
    data = build_task(ds, config.task, config.narrative)
    if config.limit is not None:
        # A documented subset for quick checks (e.g. LLM narration on CPU): the first ``limit``
        # test users in file order. Recorded in the protocol and the signature.
        data.test = data.test[: config.limit]
    if not data.test:
        raise RunError(f"dataset '{ds.name}' has no user with at least 3 purchases")
    log(
        f"dataset {ds.name}: {len(ds.users)} users, {len(ds.catalog)} items, "
        f"{len(data.test)} test examples"
    )
    options = config.narrator_options()
    narrator = NarratorConfig.from_options(options)
    if options and not data.task.generates:
        raise RunError(
            "narrator.* options apply to a task that writes narratives (narrative or "
            f"conversational task only), not '{config.task}'"
        )
    entry = plugins.get("model", config.model)
    finetuned = None
    if data.task.generates and not entry.meta.get("generates_text", False):
        assert config.narrative is not None  # check_config: a generating task names one
        narrator, finetuned = _prepare_narrator(data, config.narrative, options, narrator, plugins)
    return Prepared(config, plugins, entry, ds, data, narrator, finetuned, started)


def build_model(entry: Entry, catalog: Catalog, seed: int, options: dict[str, object]) -> Model:
    """Seed the global generators and build the model from its factory (what :func:`fit` and
    ``regen-bench tune`` do before training, so that both train the same model)."""
    random.seed(seed)
    np.random.seed(seed)  # legacy global seed for plugins that still use it
    model: Model = entry.factory(catalog, seed=seed, **options)
    return model


def model_weights(model: Model, name: str) -> dict[str, str]:
    """Role ``model.<option>`` -> pin of each pretrained weight ``model`` loaded (its optional
    ``weights()``); a pin that fails is a :class:`RunError` naming the model and the option."""
    own = getattr(model, "weights", None)
    try:
        pins: dict[str, str] = own() if callable(own) else {}
    except WeightsError as exc:
        raise RunError(f"model '{name}': cannot pin the weights it loaded: {exc}") from None
    return {f"model.{option}": pinned for option, pinned in pins.items()}


def fit(prepared: Prepared, *, log: Log = _quiet) -> Fitted:
    """Seed, build the model from its factory, pin the weights it loaded and train it on the
    training split; with ``config.fit_cache``, load (or keep) its fit instead
    (:mod:`~regen_bench.runner.fit_cache`)."""
    config = prepared.config
    model = build_model(
        prepared.entry, prepared.dataset.catalog, config.seed, config.model_options()
    )
    # Before training: a run whose weights cannot be recorded, or whose own text would
    # leave no held-out user to score, stops before the long part.
    weights = model_weights(model, config.model)
    if prepared.data.task.generates:
        check_text_users(model, prepared.data.test)
    cache = _fit_cache_fields(prepared, model, log)
    built = time.perf_counter()
    if cache is not None:
        record = fit_cache.load(*cache, model, log)
        if record is not None:
            fit_cache.give_users(model, prepared.data.train)
            loaded = time.perf_counter()
            log(f"fit cache: reused {cache[0]} (trained {record.trained} in {record.fit_s:.1f}s)")
            reuse = FitReuse(
                file=cache[0].name,
                trained=record.trained,
                fit_s=record.fit_s,
                load_s=round(loaded - built, 3),
            )
            return Fitted(model, record.fit_log, built, loaded, weights, reuse)
        if cache[0].exists():  # a failed load may have left part of the entry in the model
            model = build_model(
                prepared.entry, prepared.dataset.catalog, config.seed, config.model_options()
            )
            built = time.perf_counter()
    fit_log = model.fit(prepared.data.train, prepared.data.valid) or {}
    fitted = time.perf_counter()
    if cache is not None:
        fit_cache.store(*cache, model, fit_log, round(fitted - built, 3), log)
    return Fitted(model, fit_log, built, fitted, weights)


def _fit_cache_fields(
    prepared: Prepared, model: Model, log: Log
) -> tuple[Path, dict[str, Any]] | None:
    """Where the fit of this run is kept and what its key holds; None without a cache or for a
    model without checkpoints (``save``/``load``). The key of a model that writes text names
    the narrative type too: its text loss trained on those references."""
    config, entry = prepared.config, prepared.entry
    if config.fit_cache is None:
        return None
    if not fit_cache.keeps_checkpoints(model):
        log(f"fit cache: model '{config.model}' has no checkpoints (save/load); trained as usual")
        return None
    info = next((p for p in prepared.plugins.infos if p.name == entry.plugin), None)
    fields = fit_cache.key_fields(
        model=config.model,
        plugin=entry.plugin,
        plugin_version=info.version if info else "",
        options=config.model_options(),
        fingerprint=prepared.dataset.fingerprint,
        data=prepared.data,
        seed=config.seed,
        narrative=prepared.data.narrative_type if entry.meta.get("generates_text", False) else None,
    )
    return fit_cache.entry_path(config.fit_cache, fields), fields


def evaluate(prepared: Prepared, model: Model, *, progress: bool = True) -> Evaluated:
    """Rank the whole catalog for every test example; one sample record each."""
    has_critique = target_critiqued(prepared.dataset, prepared.data.test)
    samples = score_examples(
        model,
        prepared.data,
        batch_size=prepared.config.eval_batch_size,
        exclude_history=prepared.config.exclude_history,
        has_critique=has_critique,
        progress=progress,
    )
    return Evaluated(samples, has_critique, time.perf_counter())


def narrate(
    prepared: Prepared,
    model: Model,
    evaluated: Evaluated,
    *,
    progress: bool = True,
    log: Log = _quiet,
) -> Narrated | None:
    """Write and score the narratives of a generating task (None for the others)."""
    if not prepared.data.task.generates:
        return None
    narration, metrics, weights = narrate_samples(
        model,
        prepared.data,
        prepared.dataset,
        evaluated.samples,
        prepared.narrator,
        prepared.config,
        finetuned=prepared.finetuned,
        progress=progress,
        log=log,
    )
    return Narrated(narration, metrics, time.perf_counter(), weights)


def build_result(
    prepared: Prepared,
    fitted: Fitted,
    evaluated: Evaluated,
    narrated: Narrated | None,
    *,
    samples_file: str,
    samples_sha256: str,
) -> Result:
    """The signed result record of a run whose samples were written to ``samples_file``."""
    config, ds, data, entry = prepared.config, prepared.dataset, prepared.data, prepared.entry
    samples = evaluated.samples
    info = next((p for p in prepared.plugins.infos if p.name == entry.plugin), None)
    t0, finished = prepared.started, narrated.done if narrated else evaluated.done
    weights = {**fitted.weights, **(narrated.weights if narrated else {})}
    result = Result(
        harness_version=regen_bench.__version__,
        git_commit=git_commit(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=ModelInfo(
            name=config.model,
            plugin=entry.plugin,
            version=info.version if info else "",
            config=fitted.model.config(),
            parameters=fitted.model.num_parameters(),
        ),
        task=TaskInfo(name=config.task, version=data.task.version, narrative_type=config.narrative),
        dataset=DatasetInfo(
            name=ds.name,
            fingerprint=ds.fingerprint,
            split=SPLIT,
            users=len(ds.users),
            items=len(ds.catalog),
            interactions=int(ds.lengths().sum()),
            skipped_users=data.skipped_users,
            critique_coverage=ds.critique_coverage(),
        ),
        protocol=Protocol(
            tie_policy=config.tie_policy,
            exclude_history=config.exclude_history,
            test_examples=len(samples),
            critiqued_examples=sum(evaluated.has_critique),
            limit=config.limit,
        ),
        metrics={
            **recompute_metrics(samples, config.tie_policy),
            **(narrated.metrics if narrated else {}),
        },
        timings={
            "load_s": round(fitted.built - t0, 3),
            # A reused fit reports what its training took, so timings compare across runs.
            "fit_s": fitted.reused.fit_s
            if fitted.reused
            else round(fitted.fitted - fitted.built, 3),
            "evaluate_s": round(evaluated.done - fitted.fitted, 3),
            **({"narrate_and_score_s": round(finished - evaluated.done, 3)} if narrated else {}),
            "total_s": round(finished - t0, 3),
        },
        seeds={"seed": config.seed},
        environment=environment(fitted.model),
        fit_log=fitted.fit_log,
        fit_reused=fitted.reused,
        narration=narrated.narration if narrated else None,
        tuning=config.tuning,
        weights=weights or None,
        samples_file=samples_file,
        samples_sha256=samples_sha256,
        signature="",
    )
    result.signature = signature(result)
    return result


def run(config: RunConfig, *, progress: bool = True, log: Log = _quiet) -> RunOutput:
    """Train, evaluate and (for a narrating task) narrate; write the result files.

    Writes ``OUTPUT/<dataset>/<task>/<model>[__<narrative>].json`` and its ``.samples.jsonl``
    as a pair (:func:`~regen_bench.results.write_result_pair`: an interrupted run leaves the
    old pair, the new one, or samples with no result, never a result that does not validate).
    ``progress=False`` also quietens the model's own epoch progress
    (:mod:`regen_bench.progress`).
    """
    prepared = prepare(config, log=log)
    with quiet(not progress):
        fitted = fit(prepared, log=log)
        evaluated = evaluate(prepared, fitted.model, progress=progress)
        narrated = narrate(prepared, fitted.model, evaluated, progress=progress, log=log)
    result_path, samples_path = config.output_paths(prepared.dataset.name)
    result = write_result_pair(
        result_path,
        samples_path,
        evaluated.samples,
        lambda name, sha: build_result(
            prepared, fitted, evaluated, narrated, samples_file=name, samples_sha256=sha
        ),
    )
    return RunOutput(result, result_path, samples_path)


__all__ = [
    "Evaluated",
    "Fitted",
    "Narrated",
    "Prepared",
    "RunOutput",
    "build_model",
    "build_result",
    "evaluate",
    "fit",
    "model_weights",
    "narrate",
    "prepare",
    "run",
]
