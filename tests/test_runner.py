"""The runner's API: a frozen RunConfig and named steps that add up to ``run``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from regen_bench.data.synth import write_synthetic
from regen_bench.results import recompute_metrics, write_samples
from regen_bench.runner import (
    RunConfig,
    RunError,
    build_result,
    evaluate,
    fit,
    narrate,
    prepare,
    run,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "kit.jsonl"
    write_synthetic(path, users=120, items=120, seed=0)
    return path


def test_steps_one_by_one_give_the_run_result(store: Path, tmp_path: Path) -> None:
    config = RunConfig("popularity", "critique", str(store), output=tmp_path, limit=30)
    out = run(config, progress=False)
    prepared = prepare(config)
    assert len(prepared.data.test) == 30 and prepared.finetuned is None
    fitted = fit(prepared)
    evaluated = evaluate(prepared, fitted.model, progress=False)
    assert narrate(prepared, fitted.model, evaluated) is None  # critique: no narratives
    samples_path = tmp_path / "again.samples.jsonl"
    sha = write_samples(samples_path, evaluated.samples)
    assert sha == out.result.samples_sha256
    result = build_result(
        prepared, fitted, evaluated, None, samples_file=samples_path.name, samples_sha256=sha
    )
    assert result.metrics == out.result.metrics
    assert result.metrics == recompute_metrics(evaluated.samples, config.tie_policy)
    assert result.signature == out.result.signature
    assert out.result_path == tmp_path / "kit" / "critique" / "popularity.json"


def test_config_is_frozen_and_splits_narrator_options() -> None:
    config = RunConfig("m", "conversational", options={"depth": 2, "narrator.backend": "x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]
    assert config.model_options() == {"depth": 2}
    assert config.narrator_options() == {"backend": "x"}
    result, samples = RunConfig("m", "t", "d", narrative="n", output="o").output_paths("ds")
    assert (result.as_posix(), samples.name) == ("o/ds/t/m__n.json", "m__n.samples.jsonl")


def test_checks_come_before_any_data_is_loaded(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.jsonl")  # never read: every check below fails first
    for changes, needle in (
        ({"eval_batch_size": 0}, "eval batch size must be at least 1"),
        ({"limit": 0}, "--limit must be at least 1"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"task": "conversational"}, "needs a narrative type"),
    ):
        config = dataclasses.replace(RunConfig("popularity", "sequential", missing), **changes)
        with pytest.raises(RunError, match=needle):
            prepare(config)


def test_top_k_is_a_stable_sort_even_with_ties_at_the_cut() -> None:
    """Equal scores come in catalog order, also where the tie straddles the k-th place (an
    argpartition-based top-k picked an arbitrary subset of the tied items there)."""
    from regen_bench.runner.scoring import top_k

    rng = np.random.default_rng(0)
    for n in (7, 300, 2600, 23553):
        scores = np.round(rng.standard_normal((40, n)) * 2).astype(np.float32)
        scores[0] = 0.0
        scores[1] = -np.inf
        scores[2, n // 2] = 9.0
        want = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        assert (top_k(scores, 10) == want).all(), n
