"""``regen-bench tune``: hyperparameter search on the validation split, with Optuna.

(About 450 lines: the study, its objective, the withheld test split and the resume rules are
one mechanism; the file format it writes is :mod:`regen_bench.tuned_config`.)

A model is tunable when its option schema declares a ``SEARCH_SPACE`` (see
:mod:`regen_bench.options`). :func:`tune` runs an Optuna study over it:

- **validation only**: each trial builds the model exactly as ``regen-bench run`` does
  (:func:`regen_bench.runner.build_model`, same seed), fits it on the training split and scores
  it by its best-epoch NDCG@10 on the validation split. The task data it works from has its
  test split withheld (:class:`WithheldTest`: any access raises), so no test target can reach
  a trial;
- **the defaults first**: a new study's first trial is the model's defaults (those inside the
  space), so the best config found is never worse on validation than the defaults;
- **seeded TPE** (``TPESampler(seed=seed + trials already in the study)``, so a resumed search
  does not replay the first trials' draws) and **median pruning** on the per-epoch validation
  NDCG@10 that models report through ``epoch_callback`` (every first-party torch model does);
- **resumable**: the study lives in a sqlite file under a name derived from the model, task,
  dataset fingerprint, seed, search space and fixed options. Rerunning the same command after
  a crash or a kill continues it: finished trials (complete or pruned) count towards
  ``--trials`` and are never repeated; a trial that was running when the process died is
  marked failed and does not count. One process per study at a time.

The best trial is written as a :class:`TunedConfig` JSON file that ``regen-bench run --config
FILE`` takes: its ``options`` become the model options and its ``tuning`` block is recorded in
the result (:class:`regen_bench.results.Tuning`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, SupportsIndex

import numpy as np

from regen_bench.data.dataset import Catalog
from regen_bench.fileio import atomic_write
from regen_bench.metrics import metrics_from_counts, rank_counts
from regen_bench.model import Model
from regen_bench.options import Choice, Dimension, IntRange, LogUniform, check_search_space
from regen_bench.plugins import PluginManager, get_plugin_manager
from regen_bench.resolve import DEFAULT_DATASET, resolve_dataset
from regen_bench.results import Tuning
from regen_bench.runner import build_model, check_names
from regen_bench.runner.components import check_output
from regen_bench.runner.config import ranking_twin
from regen_bench.tasks import Example, TaskData, build_task
from regen_bench.threads import set_torch_threads
from regen_bench.tuned_config import (
    KIND,
    TrialRecord,
    TunedConfig,
    TuneError,
    apply_tuned_config,
    load_tuned_config,
)

#: The fit-log key holding a model's best-epoch validation NDCG@10 (the objective).
VALID_KEY = "best_valid_ndcg@10"
#: Median pruning: no pruning before this many finished trials, nor before this epoch.
#: Masked-item models (BERT4Rec, FLARE) first sit for ten or more epochs on a plateau at
#: popularity level (``mini``: validation NDCG@10 0.045-0.046 for epochs 2-11 with BERT4Rec's
#: defaults), where comparing a trial with the median of the others is comparing noise, so
#: pruning there would kill trials at random.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_EPOCHS = 20
OPTUNA_HINT = "regen-bench tune needs optuna: pip install 'regen-bench[tune]'"

Log = Callable[[str], None]


class TestSplitWithheld(RuntimeError):
    """Raised on any access to the test split of tuning data."""


class WithheldTest(list[Example]):
    """The test split of tuning data: empty of content, and any access raises.

    A trial that tried to read test targets (to score, to select, to stop early) fails loudly
    instead of silently leaking them into the search.
    """

    def _deny(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TestSplitWithheld("the tuner never reads the test split (test targets withheld)")

    __len__ = _deny
    __iter__ = _deny
    __reversed__ = _deny
    __contains__ = _deny
    __bool__ = _deny

    def __getitem__(self, index: SupportsIndex | slice) -> NoReturn:
        self._deny()

    def __repr__(self) -> str:
        return "WithheldTest()"


def tuning_data(data: TaskData) -> TaskData:
    """``data`` with its test split replaced by :class:`WithheldTest`."""
    return TaskData(
        task=data.task,
        catalog=data.catalog,
        train=data.train,
        valid=data.valid,
        test=WithheldTest(),
        narrative_type=data.narrative_type,
        skipped_users=data.skipped_users,
    )


@dataclass(frozen=True)
class TuneConfig:
    """One search: ``model`` on ``task`` of ``dataset``, ``trials`` finished trials in all.

    ``fixed`` options (``--set``) are held at their value and left out of the search space;
    ``timeout_min`` stops starting new trials after that many minutes (this session).
    ``out`` is the tuned-config file; ``storage`` the sqlite file of the study (default: next
    to ``out``, ``<out stem>.optuna.db``).
    """

    model: str
    task: str
    trials: int
    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    seed: int = 0
    timeout_min: float | None = None
    fixed: Mapping[str, object] = field(default_factory=dict)
    out: str | os.PathLike[str] | None = None
    storage: str | os.PathLike[str] | None = None
    threads: int | None = None

    def out_path(self, dataset_name: str) -> Path:
        """The tuned-config file: ``out``, else ``tuned/<dataset>/<task>/<model>.json``."""
        if self.out is not None:
            return Path(self.out)
        return Path("tuned") / dataset_name / self.task / f"{self.model}.json"

    def storage_path(self, dataset_name: str) -> Path:
        if self.storage is not None:
            return Path(self.storage)
        out = self.out_path(dataset_name)
        return out.with_name(out.stem + ".optuna.db")


@dataclass
class TuneOutput:
    """The written tuned config, its path, the storage file and the trials run this time."""

    tuned: TunedConfig
    path: Path
    storage: Path
    new_trials: int


def search_space_of(model: str, plugins: PluginManager) -> dict[str, Dimension]:
    """The checked search space of a registered model; TuneError if it declares none."""
    schema = plugins.get("model", model).options
    if schema is None or not schema.SEARCH_SPACE:
        tunable = [
            n
            for n in plugins.names("model")
            if (s := plugins.get("model", n).options) is not None and s.SEARCH_SPACE
        ]
        raise TuneError(
            f"model '{model}' declares no search space, so it cannot be tuned "
            f"(tunable models: {', '.join(tunable) or 'none'})"
        )
    return check_search_space(schema, model=model)


def study_name(
    model: str,
    task: str,
    fingerprint: str,
    seed: int,
    space: Mapping[str, Dimension],
    fixed: Mapping[str, object],
) -> str:
    """The study's name: the same search (model, task, data, seed, space, fixed options)
    always gets the same name, so rerunning a command resumes it."""
    spec = json.dumps(
        {"space": {k: d.as_dict() for k, d in space.items()}, "fixed": dict(fixed)},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(spec.encode()).hexdigest()[:8]
    return f"{model}-{task}-{fingerprint[:12]}-seed{seed}-{digest}"


def _suggest(trial: Any, name: str, dim: Dimension) -> object:
    if isinstance(dim, LogUniform):
        return trial.suggest_float(name, dim.low, dim.high, log=True)
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step)
    if isinstance(dim, Choice):
        return trial.suggest_categorical(name, list(dim.values))
    return trial.suggest_float(name, dim.low, dim.high)


def default_trial(schema: type[Any], space: Mapping[str, Dimension]) -> dict[str, object]:
    """The schema's defaults on the searched options that lie inside the space.

    A new study runs them as its first trial, so a search never reports a best config that
    is worse on validation than the defaults it set out to improve.
    """
    point: dict[str, object] = {}
    for name, dim in space.items():
        value = schema.model_fields[name].default
        if isinstance(dim, Choice):
            inside = value in dim.values
        else:
            low, high = dim.ends()
            inside = low <= value <= high
            if isinstance(dim, IntRange):
                inside = inside and (value - low) % dim.step == 0
        if inside:
            point[name] = value
    return point


def validation_ndcg(model: Model, valid: Sequence[Example], batch_size: int = 256) -> float:
    """Mean NDCG@10 of ``valid`` (full ranking, pessimistic ties): the objective of a model
    whose fit log does not report one."""
    total = 0.0
    for lo in range(0, len(valid), batch_size):
        batch = valid[lo : lo + batch_size]
        targets = np.array([ex.target for ex in batch], dtype=np.int64)
        greater, ties = rank_counts(model.score(batch), targets)
        total += float(metrics_from_counts(greater, ties, "pessimistic")["ndcg@10"].sum())
    return round(total / len(valid), 5)


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise TuneError(OPTUNA_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _fmt(params: Mapping[str, object]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _objective(
    optuna: Any,
    entry: Any,
    catalog: Catalog,
    data: TaskData,
    seed: int,
    space: Mapping[str, Dimension],
    fixed: Mapping[str, object],
) -> Callable[[Any], float]:
    def objective(trial: Any) -> float:
        params = {name: _suggest(trial, name, dim) for name, dim in space.items()}
        model = build_model(entry, catalog, seed, {**fixed, **params})
        if hasattr(model, "epoch_callback"):

            def report(epoch: int, ndcg: float) -> bool:
                trial.report(ndcg, epoch)
                return bool(trial.should_prune())

            model.epoch_callback = report
        fit_log = model.fit(data.train, data.valid) or {}
        trial.set_user_attr("epochs", fit_log.get("epochs"))
        if fit_log.get("stopped_by_callback"):
            raise optuna.TrialPruned(f"pruned after epoch {fit_log['stopped_by_callback']}")
        value = fit_log.get(VALID_KEY)
        return float(value) if value is not None else validation_ndcg(model, data.valid)

    return objective


def _fail_stale(optuna: Any, storage: Any, study: Any, log: Log) -> None:
    """Mark trials left RUNNING by a killed process as failed (they are then not counted)."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in running:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    if running:
        log(f"marked {len(running)} unfinished trial(s) of an earlier process as failed")


def tune(config: TuneConfig, *, log: Log = lambda _m: None) -> TuneOutput:
    """Run (or resume) the search and write the best trial as a tuned-config file."""
    plugins = get_plugin_manager()
    check_names(config.model, config.task, plugins)
    twin = ranking_twin(config.task)
    if twin is not None:
        raise TuneError(
            f"tune the ranking on the '{twin}' task: the {config.task} task ranks exactly as it "
            f"does, and a config tuned on '{twin}' runs on '{config.task}'"
        )
    if config.trials < 1:
        raise TuneError("--trials must be at least 1")
    if config.timeout_min is not None and config.timeout_min <= 0:
        raise TuneError("--timeout must be positive (minutes)")
    entry = plugins.get("model", config.model)
    space = search_space_of(config.model, plugins)
    assert entry.options is not None  # search_space_of: a schema with a space
    entry.options.parse(config.fixed, model=config.model)  # bad --set: one clear line
    space = {k: d for k, d in space.items() if k not in config.fixed}
    if not space:
        raise TuneError("every option of the search space is fixed with --set: nothing to tune")
    if config.threads is not None:
        set_torch_threads(config.threads)

    ds = resolve_dataset(config.dataset, config.data_dir, plugins)
    data = tuning_data(build_task(ds, config.task))
    if not data.valid:
        raise TuneError(f"dataset '{ds.name}' has no user with at least 3 purchases")
    catalog, fingerprint, ds_name = ds.catalog, ds.fingerprint, ds.name
    del ds  # from here on only the catalog, the training and the validation split exist
    log(
        f"dataset {ds_name}: {len(data.train)} training sequences, {len(data.valid)} validation "
        f"examples, {len(catalog)} items (test split withheld)"
    )

    out, db = config.out_path(ds_name), config.storage_path(ds_name)
    # Both folders are checked before the first trial, so a bad --out or --storage costs no
    # search; an --out that is itself a folder would fail only when the best config is written.
    for folder in {out.parent, db.parent}:
        try:
            check_output(folder)
        except ValueError as exc:
            raise TuneError(str(exc)) from None
    if out.is_dir():
        raise TuneError(f"--out {out} is a folder; give the file the best config goes to")
    optuna = _import_optuna()
    name = study_name(config.model, config.task, fingerprint, config.seed, space, config.fixed)
    storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=pruner,
    )
    _fail_stale(optuna, storage, study, log)
    if not study.trials:
        study.enqueue_trial(default_trial(entry.options, space))
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))
    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished_states))
    remaining = config.trials - done
    log(
        f"study {name} in {db}: {done} finished trial(s)"
        + (f", running {remaining} more" if remaining > 0 else ", nothing left to run")
    )
    started = [time.perf_counter()]

    def progress(study: Any, trial: Any) -> None:
        seconds = time.perf_counter() - started[0]
        started[0] = time.perf_counter()
        finished = len(study.get_trials(deepcopy=False, states=finished_states))
        state = trial.state.name.lower()
        what = f"ndcg@10 {trial.value:.4f}" if trial.value is not None else state
        if state == "pruned":
            last = trial.last_step
            what = f"pruned at epoch {last}" if last is not None else "pruned"
        try:
            best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            best = "no complete trial yet"
        log(
            f"trial {trial.number} [{finished}/{config.trials}] {what}; {best}; "
            f"{_fmt(trial.params)} ({seconds:.1f}s)"
        )

    before = len(study.trials)
    if remaining > 0:
        study.optimize(
            _objective(optuna, entry, catalog, data, config.seed, space, config.fixed),
            n_trials=remaining,
            timeout=None if config.timeout_min is None else config.timeout_min * 60,
            callbacks=[progress],
            gc_after_trial=True,
        )
    tuned = _tuned_config(optuna, study, config, entry.options, space, fingerprint, name)
    text = json.dumps(tuned.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    atomic_write(out, [text.encode("utf-8")])
    return TuneOutput(tuned, out, db, len(study.trials) - before)


def _tuned_config(
    optuna: Any,
    study: Any,
    config: TuneConfig,
    schema: Any,
    space: Mapping[str, Dimension],
    fingerprint: str,
    name: str,
) -> TunedConfig:
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE]
    pruned = [t for t in trials if t.state == states.PRUNED]
    if not complete:
        raise TuneError(
            f"study {name} has no complete trial yet ({len(pruned)} pruned); run more trials"
        )
    best = study.best_trial
    options = schema.parse({**config.fixed, **best.params}, model=config.model).as_dict()
    return TunedConfig(
        model=config.model,
        task=config.task,
        dataset=config.dataset,
        options=options,
        tuning=Tuning(
            study=name,
            search_space={k: d.as_dict() for k, d in space.items()},
            fixed=dict(config.fixed),
            trials=len(complete) + len(pruned),
            complete_trials=len(complete),
            pruned_trials=len(pruned),
            best_trial=best.number,
            best_valid_ndcg=float(best.value),
            sampler=f"TPESampler(seed={config.seed} + trials already in the study)",
            pruner=(
                f"MedianPruner(n_startup_trials={PRUNER_STARTUP_TRIALS}, "
                f"n_warmup_steps={PRUNER_WARMUP_EPOCHS}) on per-epoch validation NDCG@10"
            ),
            seed=config.seed,
            dataset_fingerprint=fingerprint,
            timeout_min=config.timeout_min,
            optuna_version=optuna.__version__,
        ),
        trials=[
            TrialRecord(
                number=t.number,
                state=t.state.name.lower(),
                value=t.value,
                params=dict(t.params),
                epochs=t.user_attrs.get("epochs"),
            )
            for t in trials
        ],
    )


__all__ = [
    "KIND",
    "TestSplitWithheld",
    "TrialRecord",
    "TuneConfig",
    "TuneError",
    "TuneOutput",
    "TunedConfig",
    "WithheldTest",
    "apply_tuned_config",
    "load_tuned_config",
    "search_space_of",
    "study_name",
    "tune",
    "tuning_data",
]
