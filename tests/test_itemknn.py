"""The ``itemknn`` plugin: hand-computed similarities and scores, neighbourhood pruning, the
popularity back-off, batch independence, no use of held-out purchases, option errors."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regen_bench import Dataset, Example
from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.data.schema import UserRecord
from regen_bench.tasks import TaskData, build_task
from regen_bench.testing import check_model_plugin, tiny_dataset
from regen_bench_plugins.itemknn import model as itemknn_model
from regen_bench_plugins.itemknn.model import ItemKNN, cooccurrence
from tests.conftest import make_record

#: Training purchases (each user's first N-2); the last two of each user are held out and are
#: items nobody else buys (V* validation, T* test targets), so any use of them shows.
TRAIN = {"u1": "ABC", "u2": "AB", "u3": "AC", "u4": "DE"}


def _records() -> list[UserRecord]:
    return [
        make_record(user, [*items, f"V{k}", f"T{k}"])
        for k, (user, items) in enumerate(TRAIN.items())
    ]


@pytest.fixture(scope="module")
def data() -> TaskData:
    return build_task(Dataset.from_records("knn-hand", _records()), "sequential")


def _fit(data: TaskData, **options: Any) -> ItemKNN:
    model = ItemKNN(data.catalog, **options)
    model.fit(data.train, data.valid)
    return model


def _example(data: TaskData, history: str) -> Example:
    idx = data.catalog.index
    return Example("x", np.array([idx[a] for a in history]), (None,) * len(history), 0, None, {})


def _scores(model: ItemKNN, data: TaskData, history: str) -> dict[str, float]:
    row = model.score([_example(data, history)])[0]
    return {item.asin: float(row[i]) for i, item in enumerate(data.catalog)}


# Cosine by hand: A bought by 3 users, B and C by 2, D and E by 1; A-B and A-C co-bought by
# 2 users, B-C by 1, D-E by 1.
SIM_AB = 2 / math.sqrt(3 * 2)
SIM_BC = 1 / math.sqrt(2 * 2)
# Back-off by hand: training purchase count / (max count 3 + 1) - 1.
BACKOFF = {"A": -0.25, "B": -0.5, "C": -0.5, "D": -0.75, "E": -0.75}


def test_scores_are_the_hand_computed_cosines(data: TaskData) -> None:
    scores = _scores(_fit(data, shrink=0.0), data, "B")
    assert scores["A"] == pytest.approx(SIM_AB, rel=1e-6)
    assert scores["C"] == pytest.approx(SIM_BC, rel=1e-6)
    # no neighbour evidence: the popularity back-off, below every neighbour score
    for item in "BDE":
        assert scores[item] == pytest.approx(BACKOFF[item])
    # held-out items were never bought in training: the bottom of the ranking
    assert all(scores[f"{p}{k}"] == -1.0 for p in "VT" for k in range(4))


def test_recency_weights_and_plain_sum(data: TaskData) -> None:
    # history C then B (B newest): B weighs 1, C weighs decay
    scores = _scores(_fit(data, shrink=0.0, decay=0.5), data, "CB")
    assert scores["A"] == pytest.approx(SIM_AB + 0.5 * SIM_AB, rel=1e-6)
    assert scores["C"] == pytest.approx(SIM_BC, rel=1e-6)
    assert scores["B"] == pytest.approx(0.5 * SIM_BC, rel=1e-6)
    plain = _scores(_fit(data, shrink=0.0, decay=1.0), data, "CB")
    assert plain["A"] == pytest.approx(2 * SIM_AB, rel=1e-6)
    assert plain["B"] == pytest.approx(plain["C"]) == pytest.approx(SIM_BC, rel=1e-6)
    # history=1 reads only the newest purchase
    assert _scores(_fit(data, shrink=0.0, history=1), data, "CB") == _scores(
        _fit(data, shrink=0.0), data, "B"
    )


def test_shrink_and_neighbourhood_size(data: TaskData) -> None:
    shrunk = _scores(_fit(data, shrink=1.0), data, "B")
    assert shrunk["A"] == pytest.approx(2 / (math.sqrt(6) + 1), rel=1e-6)
    # one neighbour per item: A's two equally similar neighbours B and C, the lower catalog
    # index (B, bought first) is kept; C falls back to popularity
    one = _scores(_fit(data, shrink=0.0, neighbours=1), data, "A")
    assert one["B"] == pytest.approx(SIM_AB, rel=1e-6)
    assert one["C"] == pytest.approx(BACKOFF["C"])
    # B's single neighbour is A (0.82), not C (0.5)
    assert _scores(_fit(data, shrink=0.0, neighbours=1), data, "B")["C"] == BACKOFF["C"]


def test_fit_log_counts(data: TaskData) -> None:
    log = ItemKNN(data.catalog, neighbours=1).fit(data.train, data.valid)
    # ordered co-bought pairs: A-B, A-C, B-C, D-E both ways; one neighbour kept per bought item
    assert log == {"users": 4, "items_bought": 5, "co_bought_pairs": 8, "neighbours_kept": 5}


def test_cooccurrence_in_blocks_matches_dense_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    sets = [np.unique(rng.integers(0, 30, size=rng.integers(1, 9))) for _ in range(40)]
    flat, lengths = np.concatenate(sets), np.array([len(s) for s in sets])
    dense = np.zeros((30, 30))
    for s in sets:
        dense[np.ix_(s, s)] += 1
    np.fill_diagonal(dense, 0)
    monkeypatch.setattr(itemknn_model, "_PAIRS_PER_BLOCK", 20)  # many blocks, merged at the end
    rows, cols, counts = cooccurrence(flat, lengths, 30)
    sparse = np.zeros((30, 30))
    sparse[rows, cols] = counts
    np.testing.assert_array_equal(sparse, dense)


def test_held_out_purchases_are_never_read(data: TaskData) -> None:
    # Poisoned validation targets change nothing: only the training split is read.
    clean, poisoned = _fit(data), ItemKNN(data.catalog)
    poisoned.fit(data.train, [dataclasses.replace(ex, target=0) for ex in data.valid])
    np.testing.assert_array_equal(clean.score(data.test), poisoned.score(data.test))
    # A test target bought by nobody in training scores like any never-bought item.
    scores = clean.score(data.test)
    for row, ex in enumerate(data.test):
        assert scores[row, ex.target] == -1.0


def test_scores_do_not_depend_on_the_batch() -> None:
    data = build_task(tiny_dataset(), "sequential")
    model = _fit(data)
    full = model.score(data.test)
    one_by_one = np.concatenate([model.score([ex]) for ex in data.test])
    np.testing.assert_array_equal(full, one_by_one)


def test_honours_the_plugin_contracts() -> None:
    report = check_model_plugin("itemknn", config={"neighbours": 20})
    assert report.tasks == ["sequential", "critique"]
    assert report.fit_logs["sequential"]["users"] == 150


def test_critique_text_is_ignored() -> None:
    ds = tiny_dataset()
    seq, crit = build_task(ds, "sequential"), build_task(ds, "critique")
    np.testing.assert_array_equal(_fit(seq).score(seq.test), _fit(crit).score(crit.test))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"neighbours": 0}, "itemknn option 'neighbours' must be an int >= 1, got 0"),
        ({"decay": 1.5}, "itemknn option 'decay' must be a float in (0, 1], got 1.5"),
        ({"history": "many"}, "itemknn option 'history' must be an int >= 1, got 'many'"),
        ({"shrink": -1}, "itemknn option 'shrink' must be a float >= 0, got -1.0"),
        ({"neighbour": 5}, "unknown option 'neighbour' (did you mean 'neighbours'?)"),
    ],
)
def test_bad_options_are_one_line_errors(
    data: TaskData, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as err:
        ItemKNN(data.catalog, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_runs_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # as a new user would: run it, validate the result, and get one line for a bad option
    path = tmp_path / "hand.jsonl.gz"
    write_records(_records(), path)
    argv = ["run", "--model", "itemknn", "--task", "critique", "--dataset", str(path), "-q"]
    assert main([*argv, "--output", str(tmp_path / "res")]) == 0
    result_path = tmp_path / "res" / "hand" / "critique" / "itemknn.json"
    result = json.loads(result_path.read_text())
    assert result["model"]["config"] == {
        "neighbours": 100,
        "history": 10,
        "decay": 0.5,
        "shrink": 10.0,
    }
    assert main(["validate", str(result_path)]) == 0
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "bad"), "--set", "decay=0"]) == 2
    err = capsys.readouterr().err
    assert "itemknn option 'decay' must be a float in (0, 1], got 0.0" in err
    assert "Traceback" not in err
