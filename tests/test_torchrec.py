"""The shared pieces of the torch recommenders: sequences, device, checkpoints, option schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from regen_bench import UserSequence
from regen_bench.options import describe_options
from regen_bench.testing import successor_dataset
from regen_bench_plugins.bert4rec.options import BERT4RecOptions
from regen_bench_plugins.flare.options import FLAREOptions
from regen_bench_plugins.sasrec.options import SASRecOptions
from regen_bench_plugins.torchrec.checkpoint import catalog_fingerprint, read_checkpoint_config
from regen_bench_plugins.torchrec.sequences import (
    filled_width,
    left_pad,
    pad_rows,
    training_windows,
)


def test_left_pad_keeps_the_newest_items_right_aligned() -> None:
    out = left_pad([np.array([0, 1, 2, 3, 4]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert out.tolist() == [[3, 4, 5], [0, 0, 8], [0, 0, 0]]
    assert left_pad([[1, 2, 3]], 3, append=9).tolist() == [[3, 4, 9]]
    assert left_pad([[1]], 1, append=9).tolist() == [[9]]


def test_filled_width_and_pad_rows() -> None:
    batch = np.array([[0, 0, 1], [0, 2, 3]])
    assert filled_width(batch) == 2 and filled_width(np.zeros((2, 4), dtype=np.int64)) == 1
    padded = pad_rows(batch, 4)
    assert padded.shape == (4, 3) and padded.dtype == batch.dtype and not padded[2:].any()


def test_catalog_fingerprint_is_the_sha256_of_the_ids_in_order() -> None:
    catalog = successor_dataset(5, 6, 0).catalog
    ids = "\n".join(catalog.ids(range(len(catalog))))
    assert catalog_fingerprint(catalog) == hashlib.sha256(ids.encode()).hexdigest()


def test_checkpoint_config_errors_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path
    with pytest.raises(ValueError, match="no such checkpoint config"):
        read_checkpoint_config(folder)
    (folder / "config.json").write_text('{"model": "m", "config": {}}')
    with pytest.raises(ValueError, match="missing field 'catalog_sha256'"):
        read_checkpoint_config(folder)


@pytest.mark.parametrize(
    ("schema", "defaults"),
    [
        (
            SASRecOptions,
            {"heads": 1, "dropout": 0.5, "lr": 2e-3, "epochs": 200, "patience": 20, "loss": "ce"},
        ),
        (
            BERT4RecOptions,
            {"heads": 2, "dropout": 0.1, "epochs": 300, "patience": 50, "init": "bert"},
        ),
        (
            FLAREOptions,
            {"heads": 2, "lr": 2e-3, "batch_size": 256, "latents": 4, "patience": 10},
        ),
    ],
)
def test_model_defaults_and_help(schema: type, defaults: dict[str, object]) -> None:
    got = schema.defaults()
    assert {k: got[k] for k in defaults} == defaults and got["device"] == "cpu"
    assert all(info.description for info in describe_options(schema))


def test_shared_rules_apply_to_every_model() -> None:
    for schema, name in ((SASRecOptions, "sasrec"), (FLAREOptions, "flare")):
        with pytest.raises(ValueError, match=rf"^{name} options: hidden \(30\) must be divisible"):
            schema.parse({"hidden": 30, "heads": 4}, model=name)
    with pytest.raises(ValueError, match=r"bert4rec option 'max_len' must be an int >= 2, got 1"):
        BERT4RecOptions.parse({"max_len": 1}, model="bert4rec")


@pytest.mark.parametrize("model", ["sasrec", "bert4rec", "flare"])
def test_options_are_registered_as_metadata(model: str) -> None:
    from regen_bench.plugins import get_plugin_manager

    entry = get_plugin_manager().get("model", model)
    assert (
        entry.meta["options"]
        is {
            "sasrec": SASRecOptions,
            "bert4rec": BERT4RecOptions,
            "flare": FLAREOptions,
        }[model]
    )


def test_resolve_device() -> None:
    pytest.importorskip("torch")
    from regen_bench_plugins.torchrec.device import resolve_device

    assert str(resolve_device("m", "cpu")) == "cpu"
    assert resolve_device("m", "auto").type in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="m option 'device'"):
        resolve_device("m", "no-such-device")


def _user(n: int) -> UserSequence:
    return UserSequence(
        "u",
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
        np.ones(n, dtype=np.float32),
        tuple(f"c{i}" for i in range(n)),
    )


@pytest.mark.parametrize("n", [2, 5, 51, 52, 100, 101, 237])
def test_sasrec_windows_make_every_position_a_target_once(n: int) -> None:
    max_len = 50
    windows = training_windows([_user(n)], max_len + 1, max_len)
    targets = [int(i) for w in windows for i in w.items[1:]]  # SASRec: all but the first
    assert sorted(targets) == list(range(1, n))  # every purchase after the first, once
    assert all(2 <= len(w) <= max_len + 1 for w in windows)
    assert all(w.critiques == tuple(f"c{i}" for i in w.items) for w in windows)


@pytest.mark.parametrize("n", [2, 50, 51, 130])
def test_bert4rec_windows_cover_every_purchase_once(n: int) -> None:
    windows = training_windows([_user(n)], 50, 50)
    covered = sorted(int(i) for w in windows for i in w.items)
    assert covered[-1] == n - 1 and len(covered) == len(set(covered))
    assert covered == list(range(n)) or covered == list(range(n - len(covered), n))


@pytest.mark.parametrize(("n", "overlap"), [(130, 0.5), (237, 0.5), (300, 0.8), (260, 0.3)])
def test_overlapping_windows_repeat_each_purchase_in_new_contexts(n: int, overlap: float) -> None:
    windows = training_windows([_user(n)], 50, 50, overlap)
    step = max(1, round(50 * (1 - overlap)))
    assert [int(w.items[-1]) for w in windows[:2]] == [n - 1, n - 1 - step]
    counts = np.bincount([int(i) for w in windows for i in w.items], minlength=n)
    assert counts.min() >= 1  # nothing dropped
    # away from both edges every purchase is seen about 1 / (1 - overlap) times
    inner = counts[50 : n - 50]
    assert abs(inner.mean() - 50 / step) < 0.5, (inner.mean(), 50 / step)
    # each time in a new context: at a different position of its window
    k = 50 + int(np.argmax(inner))
    positions = [int(np.flatnonzero(w.items == k)[0]) for w in windows if k in w.items]
    assert len(positions) == counts[k] >= 2 and len(set(positions)) == len(positions)


def test_overlap_keeps_short_sequences_as_they_are() -> None:
    users = [_user(5), _user(50)]
    kept = training_windows(users, 50, 50, 0.5)
    assert len(kept) == 2 and all(a is b for a, b in zip(kept, users, strict=True))


def test_short_sequences_are_kept_as_they_are() -> None:
    users = [_user(5), _user(51)]
    kept = training_windows(users, 51, 50)
    assert len(kept) == 2 and all(a is b for a, b in zip(kept, users, strict=True))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("n_items", "dim"), [(256, 64), (2000, 64), (3001, 32), (5000, 128)])
def test_item_scores_are_bit_identical_to_the_torch_expression(
    n_items: int, dim: int, threads: int
) -> None:
    torch = pytest.importorskip("torch")
    from regen_bench_plugins.torchrec.scoring import item_scores

    gen = torch.Generator().manual_seed(n_items + dim)
    states = torch.randn(256, dim, generator=gen)
    table = torch.randn(n_items + 1, dim, generator=gen)
    items = table[1:]  # a row slice, as the models pass their embedding tables
    bias = torch.randn(n_items, generator=gen)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            plain = item_scores(states, items)
            scaled = item_scores(states, items, 0.125, bias)
    finally:
        torch.set_num_threads(saved)
    assert plain.shape == (256, n_items) and plain.dtype == torch.float32
    assert torch.equal(plain, states @ items.T)
    assert torch.equal(scaled, (states @ items.T) * 0.125 + bias)


def test_item_scores_keep_gradients_and_small_catalogs_on_torch() -> None:
    torch = pytest.importorskip("torch")
    from regen_bench_plugins.torchrec.scoring import MIN_BLAS_ITEMS, item_scores

    states = torch.randn(4, 8, requires_grad=True)
    items = torch.randn(MIN_BLAS_ITEMS, 8)
    out = item_scores(states, items, 0.5)
    assert out.grad_fn is not None  # training: the torch expression, differentiable
    out.sum().backward()
    assert states.grad is not None and torch.allclose(states.grad, 0.5 * items.sum(0).expand(4, 8))
    small = torch.randn(5, 8)  # MKL rounds differently from OpenBLAS on tiny catalogs
    with torch.no_grad():
        assert torch.equal(item_scores(states, small), states @ small.T)


def test_batched_scores_match_whatever_the_batch() -> None:
    torch = pytest.importorskip("torch")
    from regen_bench_plugins.torchrec.scoring import batched_scores

    table = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    examples = list(range(6))

    def score_batch(batch: list[int]) -> torch.Tensor:
        return table[torch.as_tensor(batch)]

    whole = batched_scores(score_batch, examples, 10, batch_size=8)  # type: ignore[arg-type]
    split = batched_scores(score_batch, examples, 10, batch_size=4)  # type: ignore[arg-type]
    assert np.array_equal(whole, table.numpy()) and np.array_equal(split, whole)
