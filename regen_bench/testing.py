"""Contract checks a plugin author calls from their own tests.

    from regen_bench.testing import check_model_plugin

    def test_my_model_honours_the_contracts():
        check_model_plugin("cooc", config={"smoothing": 0.1})

Each check raises :class:`ContractError` (an ``AssertionError``, so pytest reports it as a
failed test) with a message naming the model, the task and the broken rule. The checks use a
small simulated store (:func:`tiny_dataset`), so they run in seconds for light models; pass a
small ``config`` (few epochs) for trained ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from regen_bench.data.dataset import Dataset
from regen_bench.model import Model
from regen_bench.plugins import Entry, PluginManager, get_plugin_manager
from regen_bench.tasks import TASKS, Example, TaskData, build_task

#: Batch sizes whose scores must agree row for row (1, an odd size, everything at once).
BATCH_SIZES = (1, 7, 64)


class ContractError(AssertionError):
    """A plugin breaks a contract of the harness; the message says which and how."""


@dataclass
class ModelReport:
    """What :func:`check_model_plugin` checked, per task."""

    name: str
    tasks: list[str]
    fit_logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)


@lru_cache(maxsize=4)
def tiny_dataset(users: int = 150, items: int = 120, seed: int = 0) -> Dataset:
    """A small simulated store (same arguments, same data): critiques and narratives included."""
    from regen_bench.data.synth import synthesize

    return Dataset.from_records(f"kit-{users}x{items}", synthesize(users, items, seed))


@lru_cache(maxsize=4)
def successor_dataset(n_users: int = 60, n_items: int = 12, seed: int = 0) -> Dataset:
    """Users who always buy item i+1 (mod ``n_items``) after item i, from a random start, with
    4-10 purchases each: a sequential model that cannot learn this is broken."""
    from regen_bench.data.schema import Interaction, Item, UserRecord

    rng = np.random.default_rng(seed)
    records = []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(4, 11))
        asins = [f"I{(start + k) % n_items:02d}" for k in range(length)]
        records.append(
            UserRecord(
                user_id=f"u{u}",
                interactions=[Interaction(a, 1_500_000_000 + k, 5.0) for k, a in enumerate(asins)],
                items={a: Item(a, f"item {a}") for a in asins},
            )
        )
    return Dataset.from_records("successor", records)


def check_registration(name: str, plugins: PluginManager | None = None) -> Entry:
    """The model is registered through a plugin and names at least one task.

    The plugin manager has already checked the metadata (known task names, a string summary):
    a plugin that broke those rules failed to load, and its error is part of the message.
    """
    plugins = plugins or get_plugin_manager()
    if name not in plugins.entries["model"]:
        failed = [f"{p.name}: {p.error}" for p in plugins.infos if p.error]
        raise ContractError(
            f"model '{name}' is not registered (registered: {', '.join(plugins.names('model'))})"
            + (f"; failed plugins: {'; '.join(failed)}" if failed else "")
        )
    entry = plugins.get("model", name)
    if not entry.tasks:
        raise ContractError(f"model '{name}': register(..., tasks=(...)) names no task")
    return entry


def check_scores(
    model: Model, examples: Sequence[Example], n_items: int, where: str = ""
) -> np.ndarray:
    """``model.score`` gives finite floats of shape (len(examples), n_items)."""
    scores = np.asarray(model.score(examples))
    if scores.shape != (len(examples), n_items):
        raise ContractError(
            f"{where}score() returned shape {scores.shape}, expected ({len(examples)}, {n_items}) "
            "(one row per example, one column per catalog item)"
        )
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(
        scores.dtype, np.complexfloating
    ):
        raise ContractError(f"{where}score() returned dtype {scores.dtype}, expected real numbers")
    if np.isnan(scores).any():
        raise ContractError(f"{where}score() returned NaN")
    if np.isposinf(scores).any():
        raise ContractError(f"{where}score() returned +inf (only -inf may mark excluded items)")
    return scores.astype(np.float64)


def check_batch_invariance(
    model: Model, examples: Sequence[Example], sizes: Sequence[int] = BATCH_SIZES, where: str = ""
) -> None:
    """A row's scores do not depend on the batch it is scored in (eval mode, fixed padding)."""
    full = check_scores(model, examples, len(model.catalog), where)
    for size in sizes:
        parts = [
            check_scores(model, examples[i : i + size], len(model.catalog), where)
            for i in range(0, len(examples), size)
        ]
        batched = np.concatenate(parts, axis=0)
        if not np.allclose(batched, full, rtol=1e-5, atol=1e-6):
            row = int(np.argmax(np.abs(batched - full).max(axis=1)))
            raise ContractError(
                f"{where}scores depend on the batch: example {row} differs between batch size "
                f"{size} and {len(examples)} (max difference "
                f"{float(np.abs(batched - full).max()):.3g})"
            )


def _fit(entry: Entry, data: TaskData, seed: int, config: dict[str, Any]) -> tuple[Model, dict]:
    model = entry.factory(data.catalog, seed=seed, **config)
    if not isinstance(model, Model):
        raise ContractError(
            f"model '{entry.name}': factory returned {type(model).__name__}, not a "
            "regen_bench.Model"
        )
    log = model.fit(data.train, data.valid) or {}
    if not isinstance(log, dict):
        raise ContractError(f"model '{entry.name}': fit() must return a dict (the training log)")
    return model, log


def check_model_plugin(
    name: str,
    *,
    config: dict[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    dataset: Dataset | None = None,
    seed: int = 0,
    plugins: PluginManager | None = None,
) -> ModelReport:
    """Every contract a model plugin must honour, on each task it declares (or ``tasks``).

    Registration; the factory builds a :class:`~regen_bench.Model` that accepts ``seed`` and
    the options in ``config``, rejects an unknown option, and records JSON-serialisable
    ``config()``; ``fit`` returns a dict; scores are finite, shaped (examples, catalog), the
    same for any batch size, and identical for two models built with the same seed; a model
    registered with ``generates_text=True`` says so on the instance too and returns one string
    per example from ``generate``.
    """
    import json

    config = dict(config or {})
    entry = check_registration(name, plugins)
    declared = [t for t in entry.tasks if not TASKS[t].generates]
    chosen = list(tasks) if tasks is not None else declared
    for task in chosen:
        if task not in entry.tasks:
            raise ContractError(f"model '{name}' does not declare task '{task}'")
    ds = dataset if dataset is not None else tiny_dataset()
    report = ModelReport(name, chosen)
    try:
        entry.factory(ds.catalog, seed=seed, **config, no_such_option_xyz=1)
    except (TypeError, ValueError):
        report.checks.append("unknown option rejected")
    else:
        raise ContractError(
            f"model '{name}': an unknown option was accepted silently (pass unknown options to "
            "Model.__init__, which rejects them)"
        )
    for task in chosen:
        where = f"model '{name}', task '{task}': "
        data = build_task(ds, task)
        examples = data.test[: max(BATCH_SIZES) + 9]
        model, log = _fit(entry, data, seed, config)
        report.fit_logs[task] = log
        try:
            json.dumps(model.config())
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{where}config() is not JSON-serialisable ({exc})") from None
        first = check_scores(model, examples, len(data.catalog), where)
        check_batch_invariance(model, examples, where=where)
        again, _ = _fit(entry, data, seed, config)
        second = check_scores(again, examples, len(data.catalog), where)
        if not np.array_equal(first, second):
            raise ContractError(
                f"{where}two models built and trained with seed {seed} give different scores "
                f"(max difference {float(np.abs(first - second).max()):.3g}); seed every "
                "random generator from the `seed` argument"
            )
        if model.generates_text != entry.generates_text:
            raise ContractError(
                f"{where}the model's generates_text is {model.generates_text} but it was "
                f"registered with generates_text={entry.generates_text}"
            )
        if entry.generates_text:
            texts = model.generate(examples, "purchase_reason")
            if len(texts) != len(examples) or not all(isinstance(t, str) for t in texts):
                raise ContractError(f"{where}generate() must return one string per example")
        report.checks.append(f"{task}: shapes, batch invariance, determinism")
    return report


__all__ = [
    "BATCH_SIZES",
    "ContractError",
    "ModelReport",
    "check_batch_invariance",
    "check_model_plugin",
    "check_registration",
    "check_scores",
    "tiny_dataset",
]
