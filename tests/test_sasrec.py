"""The ``sasrec`` plugin: learning, determinism, batch independence, options, lazy torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regen_bench.tasks import TaskData, build_task
from regen_bench.testing import successor_dataset

pytest.importorskip("torch")

from regen_bench_plugins.sasrec.model import SASRec
from regen_bench_plugins.sasrec.options import SASRecOptions

N_ITEMS = 12
#: A tiny, fast configuration (the defaults are sized for the mini data set).
TINY = {
    "hidden": 16,
    "blocks": 1,
    "heads": 1,
    "dropout": 0.0,
    "max_len": 8,
    "lr": 1e-2,
    "batch_size": 32,
    "epochs": 40,
    "patience": 3,
}


def _successor_data(n_users: int = 60, seed: int = 0) -> TaskData:
    """Users who always buy item i+1 (mod N_ITEMS) after item i (the kit's successor world)."""
    return build_task(successor_dataset(n_users, N_ITEMS, seed), "sequential")


@pytest.fixture(scope="module")
def data() -> TaskData:
    return _successor_data()


@pytest.fixture(scope="module")
def trained(data: TaskData) -> tuple[SASRec, dict]:
    model = SASRec(data.catalog, seed=0, **TINY)
    return model, model.fit(data.train, data.valid)


def test_learns_the_successor_pattern(data: TaskData, trained: tuple[SASRec, dict]) -> None:
    model, _ = trained
    scores = model.score(data.test)
    targets = np.array([ex.target for ex in data.test])
    assert (scores.argmax(axis=1) == targets).mean() > 0.9


def test_shape_and_dtype(data: TaskData, trained: tuple[SASRec, dict]) -> None:
    scores = trained[0].score(data.test[:7])
    assert scores.shape == (7, len(data.catalog)) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert trained[0].score([]).shape == (0, len(data.catalog))


def test_early_stopping_restores_best_weights(data: TaskData, trained: tuple[SASRec, dict]) -> None:
    model, log = trained
    assert 1 <= log["best_epoch"] <= log["epochs"] <= TINY["epochs"]
    assert len(log["valid_ndcg@10"]) == log["epochs"]
    assert log["best_valid_ndcg@10"] == max(log["valid_ndcg@10"])
    if log["epochs"] < TINY["epochs"]:  # it stopped early: exactly `patience` epochs later
        assert log["epochs"] == log["best_epoch"] + TINY["patience"]
    # The weights in place are the best epoch's, not the last one's.
    assert model.valid_ndcg(data.valid) == pytest.approx(log["best_valid_ndcg@10"], abs=1e-5)


def test_restores_best_weights_when_later_epochs_are_worse(data: TaskData) -> None:
    # A learning rate far too high makes validation wander; whatever the last epoch did, the
    # model must end with the best epoch's weights.
    model = SASRec(data.catalog, seed=1, **{**TINY, "lr": 0.5, "epochs": 6, "patience": 6})
    log = model.fit(data.train, data.valid)
    assert log["epochs"] == 6
    assert model.valid_ndcg(data.valid) == pytest.approx(log["best_valid_ndcg@10"], abs=1e-5)


def test_same_seed_same_scores(data: TaskData) -> None:
    cfg = {**TINY, "dropout": 0.3, "epochs": 3}
    runs = []
    for seed in (5, 5, 6):
        model = SASRec(data.catalog, seed=seed, **cfg)
        model.fit(data.train, data.valid)
        runs.append(model.score(data.test))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_scores_do_not_depend_on_the_batch(data: TaskData, trained: tuple[SASRec, dict]) -> None:
    model = trained[0]
    lengths = [len(ex.history) for ex in data.test]
    # Short, long and longer-than-max_len histories together.
    assert min(lengths) < TINY["max_len"] < max(lengths)
    batch = model.score(data.test)
    for i in (int(np.argmin(lengths)), int(np.argmax(lengths)), 3):
        assert np.array_equal(model.score([data.test[i]])[0], batch[i])
    assert np.array_equal(model.score(data.test[::-1])[::-1], batch)


def test_mask_history(data: TaskData) -> None:
    model = SASRec(data.catalog, seed=0, **{**TINY, "mask_history": True})
    ex = data.test[0]
    scores = model.score([ex])[0]
    assert np.isneginf(scores[ex.history]).all()
    assert np.isfinite(np.delete(scores, ex.history)).all()


def test_bce_loss_trains(data: TaskData) -> None:
    model = SASRec(data.catalog, seed=0, **{**TINY, "loss": "bce", "epochs": 2})
    log = model.fit(data.train, data.valid)
    assert log["epochs"] == 2 and all(np.isfinite(log["train_loss"]))


def test_negatives_avoid_the_users_items() -> None:
    from regen_bench_plugins.sasrec.net import sample_negatives

    rng = np.random.default_rng(0)
    seen = [np.array([1, 2, 3]), np.array([4])]
    neg = sample_negatives(rng, np.ones((2, 50), dtype=np.int64), seen, n_items=5)
    assert not np.isin(neg[0], seen[0]).any() and not np.isin(neg[1], seen[1]).any()
    assert neg.min() >= 1 and neg.max() <= 5


def test_config_and_parameters(data: TaskData) -> None:
    model = SASRec(data.catalog, seed=0, **TINY)
    cfg = model.config()
    assert set(cfg) == set(SASRecOptions.model_fields) and cfg["device"] == "cpu"
    assert {k: cfg[k] for k in TINY} == TINY
    rebuilt = SASRec(data.catalog, seed=0, **cfg)
    assert rebuilt.config() == cfg
    # item table (N+1) + positions + one block (4 linears, 2 FFN linears, 2 LN) + final LN
    h = TINY["hidden"]
    expected = (N_ITEMS + 1) * h + TINY["max_len"] * h + 6 * (h * h + h) + 2 * 2 * h + 2 * h
    assert model.num_parameters() == expected


def test_command_line_strings_are_coerced(data: TaskData) -> None:
    model = SASRec(data.catalog, hidden="16", lr="0.01", mask_history="true", loss="bce")
    cfg = model.config()
    assert (cfg["hidden"], cfg["lr"], cfg["mask_history"]) == (16, 0.01, True)


@pytest.mark.parametrize(
    "bad",
    [
        {"hiden": 32},
        {"loss": "hinge"},
        {"hidden": 30, "heads": 4},
        {"dropout": 1.0},
        {"blocks": 0},
        {"hidden": "wide"},
        {"device": "no-such-device"},
    ],
)
def test_bad_options_raise_value_error(data: TaskData, bad: dict) -> None:
    with pytest.raises(ValueError):
        SASRec(data.catalog, **bad)


def test_registered_for_sequential_and_critique(data: TaskData) -> None:
    calls = []
    import regen_bench_plugins.sasrec as plugin

    plugin.register_models(lambda *a, **kw: calls.append((a, kw)))
    [(args, meta)] = calls
    assert args[0] == "sasrec"
    assert isinstance(args[1](data.catalog), SASRec)
    assert set(meta["tasks"]) == {"sequential", "critique"}


def test_module_import_does_not_import_torch() -> None:
    code = (
        "import sys, regen_bench_plugins.sasrec; "
        "assert 'torch' not in sys.modules, 'torch imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_gives_install_hint(data: TaskData, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    monkeypatch.delitem(sys.modules, "regen_bench_plugins.sasrec.net", raising=False)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        SASRec(data.catalog)


def test_checkpoint_round_trip(
    data: TaskData, trained: tuple[SASRec, dict], tmp_path: Path
) -> None:
    model = trained[0]
    folder = model.save(tmp_path / "ckpt")
    restored = SASRec.from_checkpoint(folder, data.catalog)
    assert restored.config() == model.config()
    assert np.array_equal(restored.score(data.test), model.score(data.test))


def test_max_steps_stops_mid_epoch_and_projects_the_epoch(data: TaskData) -> None:
    """The Clothing benchmark's budget: a fixed number of steps (reproducible), and the fit log
    says what one whole epoch would take at that pace."""
    model = SASRec(data.catalog, seed=0, **{**TINY, "batch_size": 8, "max_steps": 3})
    log = model.fit(data.train, data.valid)
    assert log["epochs"] == 1 and log["steps"] == 3
    assert log["steps_per_epoch"] == -(-len(data.train) // 8)
    assert log["epoch_s_projected"] > log["train_s_per_epoch"]
    again = SASRec(data.catalog, seed=0, **{**TINY, "batch_size": 8, "max_steps": 3})
    again.fit(data.train, data.valid)
    assert np.array_equal(model.score(data.test), again.score(data.test))


def test_valid_users_scores_a_fixed_sample(data: TaskData) -> None:
    model = SASRec(data.catalog, seed=0, **{**TINY, "epochs": 2, "valid_users": 10})
    log = model.fit(data.train, data.valid)
    assert log["valid_users"] == 10
    first = model._valid_sample(data.valid)
    assert len(first) == 10 and [e.user_id for e in first] == [
        e.user_id for e in model._valid_sample(data.valid)
    ]
    # all of them when the sample would not be smaller
    assert len(
        SASRec(data.catalog, seed=0, **{**TINY, "valid_users": 1000})._valid_sample(data.valid)
    ) == len(data.valid)
