"""The ``bert4rec`` plugin: masking, learning, determinism, batch independence, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regen_bench.tasks import TaskData, build_task
from regen_bench.testing import successor_dataset

pytest.importorskip("torch")

from regen_bench_plugins.bert4rec.model import BERT4Rec
from regen_bench_plugins.bert4rec.net import mask_items
from regen_bench_plugins.bert4rec.options import BERT4RecOptions
from regen_bench_plugins.torchrec.sequences import left_pad

N_ITEMS = 12
#: A tiny, fast configuration (the defaults are sized for the mini data set).
TINY = {
    "hidden": 16,
    "blocks": 1,
    "heads": 2,
    "dropout": 0.0,
    "max_len": 8,
    "mask_prob": 0.4,
    "lr": 5e-3,
    "batch_size": 16,
    "epochs": 80,
    "patience": 15,
}


def successor_data(n_users: int = 60, seed: int = 0) -> TaskData:
    """Users who always buy item i+1 (mod N_ITEMS) after item i (the kit's successor world)."""
    return build_task(successor_dataset(n_users, N_ITEMS, seed), "sequential")


@pytest.fixture(scope="module")
def data() -> TaskData:
    return successor_data()


#: A few epochs: enough for checks that need trained (non-initial) weights, fast by default.
SHORT = {**TINY, "epochs": 6, "patience": 2}


@pytest.fixture(scope="module")
def trained(data: TaskData) -> tuple[BERT4Rec, dict]:
    model = BERT4Rec(data.catalog, seed=0, **SHORT)
    return model, model.fit(data.train, data.valid)


def test_mask_items_masks_only_items_and_at_least_one_per_row() -> None:
    rng = np.random.default_rng(0)
    seq = left_pad([np.arange(3), np.arange(7), np.array([5])], 6)
    inputs, labels, _ = mask_items(rng, seq, prob=0.01, last_prob=0.0, mask_id=99)
    assert ((inputs == 99) == (labels > 0)).all()
    assert (labels > 0).sum(axis=1).min() >= 1  # never a row without a target
    assert not ((seq == 0) & (labels > 0)).any()  # padding is never a target
    assert np.array_equal(np.where(labels > 0, labels, inputs), seq)
    # last_prob=1: exactly the newest item is masked in every row.
    inputs, labels, _ = mask_items(rng, seq, prob=0.9, last_prob=1.0, mask_id=99)
    assert (labels[:, :-1] == 0).all() and np.array_equal(labels[:, -1], seq[:, -1])


def test_random_cut_predicts_every_position_of_a_sequence_in_turn() -> None:
    rng = np.random.default_rng(2)
    seq = left_pad([np.arange(40)] * 4000, 50)  # shifted ids 1..40, right-aligned
    crits = seq * 10  # ids aligned with the items (FLARE's critiques) follow the same cut
    inputs, labels, cut_crits = mask_items(
        rng, seq, prob=0.2, last_prob=1.0, mask_id=99, last_cut="random", aligned=crits
    )
    assert cut_crits is not None
    assert np.array_equal(cut_crits, np.where(labels > 0, labels, inputs) * 10)
    # every row masks only its (new) newest column, after an unchanged run of older items
    assert (labels[:, :-1] == 0).all() and (inputs[:, -1] == 99).all()
    targets = labels[:, -1]
    assert targets.min() == 2 and targets.max() == 40  # at least one item of context kept
    assert len(np.unique(targets)) == 39  # every position but the first, in turn
    for row, t in zip(inputs[:50], targets[:50], strict=True):
        kept = row[row > 0][:-1]  # the context before the [MASK]
        assert kept.tolist() == list(range(1, int(t)))
    # last_cut="end" (the default) never drops a purchase
    _, end, _ = mask_items(rng, seq, prob=0.2, last_prob=1.0, mask_id=99)
    assert (end[:, -1] == 40).all()


def test_mask_probability_is_respected() -> None:
    rng = np.random.default_rng(1)
    seq = left_pad([np.arange(50)] * 200, 50)
    _, labels, _ = mask_items(rng, seq, prob=0.2, last_prob=0.0, mask_id=99)
    assert (labels > 0).mean() == pytest.approx(0.2, abs=0.01)


def test_left_pad_appends_the_mask_after_the_newest_items() -> None:
    out = left_pad([np.array([0, 1, 2, 3, 4])], 4, append=9)
    assert out.tolist() == [[3, 4, 5, 9]]
    assert left_pad([np.array([2])], 4, append=9).tolist() == [[0, 0, 3, 9]]
    assert left_pad([np.array([2, 0])], 3, shift=0).tolist() == [[0, 2, 0]]


@pytest.mark.slow
def test_learns_the_successor_pattern(data: TaskData) -> None:
    model = BERT4Rec(data.catalog, seed=0, **TINY)
    model.fit(data.train, data.valid)
    scores = model.score(data.test)
    targets = np.array([ex.target for ex in data.test])
    assert (scores.argmax(axis=1) == targets).mean() > 0.9


def test_shape_and_dtype(data: TaskData, trained: tuple[BERT4Rec, dict]) -> None:
    scores = trained[0].score(data.test[:7])
    assert scores.shape == (7, len(data.catalog)) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert trained[0].score([]).shape == (0, len(data.catalog))


def test_early_stopping_restores_best_weights(
    data: TaskData, trained: tuple[BERT4Rec, dict]
) -> None:
    model, log = trained
    assert 1 <= log["best_epoch"] <= log["epochs"] <= SHORT["epochs"]
    assert log["best_valid_ndcg@10"] == max(log["valid_ndcg@10"])
    if log["epochs"] < SHORT["epochs"]:
        assert log["epochs"] == log["best_epoch"] + SHORT["patience"]
    assert model.valid_ndcg(data.valid) == pytest.approx(log["best_valid_ndcg@10"], abs=1e-5)


def test_same_seed_same_scores(data: TaskData) -> None:
    cfg = {**TINY, "dropout": 0.3, "epochs": 2}
    runs = []
    for seed in (5, 5, 6):
        model = BERT4Rec(data.catalog, seed=seed, **cfg)
        model.fit(data.train, data.valid)
        runs.append(model.score(data.test))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_scores_do_not_depend_on_the_batch(data: TaskData, trained: tuple[BERT4Rec, dict]) -> None:
    model = trained[0]
    lengths = [len(ex.history) for ex in data.test]
    assert min(lengths) < TINY["max_len"] < max(lengths)
    batch = model.score(data.test)
    for i in (int(np.argmin(lengths)), int(np.argmax(lengths)), 3):
        assert np.array_equal(model.score([data.test[i]])[0], batch[i])
    assert np.array_equal(model.score(data.test[::-1])[::-1], batch)


def test_checkpoint_round_trip(
    data: TaskData, trained: tuple[BERT4Rec, dict], tmp_path: Path
) -> None:
    model = trained[0]
    model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    restored = BERT4Rec.from_checkpoint(tmp_path / "ckpt", data.catalog)
    assert np.array_equal(restored.score(data.test), model.score(data.test))
    # An untrained model of the same config loads the weights in place.
    fresh = BERT4Rec(data.catalog, seed=9, **SHORT)
    assert not np.array_equal(fresh.score(data.test), model.score(data.test))
    fresh.load(tmp_path / "ckpt")
    assert np.array_equal(fresh.score(data.test), model.score(data.test))


def test_checkpoint_mismatches_are_clear_errors(
    data: TaskData, trained: tuple[BERT4Rec, dict], tmp_path: Path
) -> None:
    folder = trained[0].save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match=r"config.json: field 'config' differs.*hidden"):
        BERT4Rec(data.catalog, **{**SHORT, "hidden": 32}).load(folder)
    other = successor_data(n_users=5, seed=3)
    assert [it.asin for it in other.catalog] != [it.asin for it in data.catalog]
    with pytest.raises(ValueError, match="catalog_sha256"):
        BERT4Rec(other.catalog, **SHORT).load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json: line 1: invalid JSON"):
        BERT4Rec.from_checkpoint(folder, data.catalog)
    meta = {"model": "bert4rec", "config": {}, "catalog_sha256": "x"}
    (folder / "config.json").write_text(json.dumps(meta))
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="catalog_sha256"):
        BERT4Rec(data.catalog, **SHORT).load(folder)
    with pytest.raises(ValueError, match="no such checkpoint"):
        BERT4Rec(data.catalog, **TINY).load(tmp_path / "missing")


def test_config_and_parameters(data: TaskData) -> None:
    model = BERT4Rec(data.catalog, seed=0, **TINY)
    cfg = model.config()
    assert set(cfg) == set(BERT4RecOptions.model_fields) and cfg["device"] == "cpu"
    assert {k: cfg[k] for k in TINY} == TINY
    assert BERT4Rec(data.catalog, seed=0, **cfg).config() == cfg
    h, n, t = TINY["hidden"], N_ITEMS, TINY["max_len"]
    layer = (3 * h * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h) + 4 * h
    expected = (n + 2) * h + t * h + 2 * h + layer + (h * h + h) + 2 * h + n
    assert model.num_parameters() == expected


def test_command_line_strings_are_coerced(data: TaskData) -> None:
    cfg = BERT4Rec(data.catalog, hidden="16", mask_prob="0.4", lr="0.01").config()
    assert (cfg["hidden"], cfg["mask_prob"], cfg["lr"]) == (16, 0.4, 0.01)


@pytest.mark.parametrize(
    "bad",
    [
        {"hiden": 32},
        {"hidden": 30, "heads": 4},
        {"dropout": 1.0},
        {"mask_prob": 0.0},
        {"last_prob": 1.5},
        {"max_len": 1},
        {"hidden": "wide"},
        {"device": "no-such-device"},
    ],
)
def test_bad_options_raise_value_error(data: TaskData, bad: dict) -> None:
    with pytest.raises(ValueError):
        BERT4Rec(data.catalog, **bad)


def test_registered_for_sequential_and_critique(data: TaskData) -> None:
    calls = []
    import regen_bench_plugins.bert4rec as plugin

    plugin.register_models(lambda *a, **kw: calls.append((a, kw)))
    [(args, meta)] = calls
    assert args[0] == "bert4rec"
    assert isinstance(args[1](data.catalog), BERT4Rec)
    assert set(meta["tasks"]) == {"sequential", "critique"}


def test_module_import_does_not_import_torch() -> None:
    code = (
        "import sys, regen_bench_plugins.bert4rec; "
        "assert 'torch' not in sys.modules, 'torch imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
