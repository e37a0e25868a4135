"""The ``markov`` plugin: hand-computed smoothed transition probabilities, the popularity
back-off, batch independence, no use of held-out purchases, option errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regen_bench import Dataset, Example
from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.data.schema import UserRecord
from regen_bench.tasks import TaskData, build_task
from regen_bench.testing import check_model_plugin, successor_dataset, tiny_dataset
from regen_bench_plugins.markov.model import Markov
from tests.conftest import make_record

#: Training purchases (each user's first N-2); the last two of each user are held out and are
#: items nobody else buys (V* validation, T* test targets), so any use of them shows.
#: Transitions: A->B twice, A->C once, B->C twice, B->D once; C, D and E lead nowhere.
#: Purchases: A, B, C three times each, D and E once (11 in all).
TRAIN = {"u1": "ABC", "u2": "ABD", "u3": "AC", "u4": "BC", "u5": "E"}
POP = {"A": 3 / 11, "B": 3 / 11, "C": 3 / 11, "D": 1 / 11, "E": 1 / 11}


def _records() -> list[UserRecord]:
    return [
        make_record(user, [*items, f"V{k}", f"T{k}"])
        for k, (user, items) in enumerate(TRAIN.items())
    ]


@pytest.fixture(scope="module")
def data() -> TaskData:
    return build_task(Dataset.from_records("markov-hand", _records()), "sequential")


def _fit(data: TaskData, **options: Any) -> Markov:
    model = Markov(data.catalog, **options)
    model.fit(data.train, data.valid)
    return model


def _scores(model: Markov, data: TaskData, history: str) -> dict[str, float]:
    idx = data.catalog.index
    ex = Example("x", np.array([idx[a] for a in history], dtype=np.int64), (), 0, None, {})
    row = model.score([ex])[0]
    return {item.asin: float(row[i]) for i, item in enumerate(data.catalog)}


def _ranking(scores: dict[str, float], items: str) -> str:
    return "".join(sorted(items, key=lambda a: -scores[a]))


def test_scores_are_the_hand_computed_probabilities(data: TaskData) -> None:
    # last item A: 3 transitions out; P(j | A) = (count + 1 * popularity) / (3 + 1)
    scores = _scores(_fit(data, smoothing=1.0), data, "EA")
    assert scores["B"] == pytest.approx((2 + POP["B"]) / 4, rel=1e-6)
    assert scores["C"] == pytest.approx((1 + POP["C"]) / 4, rel=1e-6)
    # never seen after A: the popularity back-off, by popularity, below every seen successor
    assert scores["A"] == pytest.approx(POP["A"] / 4, rel=1e-6)
    assert scores["D"] == scores["E"] == pytest.approx(POP["D"] / 4, rel=1e-6)
    assert _ranking(scores, "ABCDE") == "BCADE"
    # held-out items were never bought in training: zero
    assert all(scores[f"{p}{k}"] == 0.0 for p in "VT" for k in range(5))
    # only the last item counts (E before A changes nothing)
    assert _scores(_fit(data), data, "A") == scores


def test_last_item_without_successors_gives_popularity(data: TaskData) -> None:
    model = _fit(data)
    for history in ("C", "AE", ""):
        scores = _scores(model, data, history)
        for item, share in POP.items():
            assert scores[item] == pytest.approx(share, rel=1e-6)


def test_smoothing_weighs_popularity_against_transitions(data: TaskData) -> None:
    # after B: D followed once (popularity 1/11), A never (popularity 3/11)
    light = _scores(_fit(data, smoothing=1.0), data, "B")
    assert _ranking(light, "ABCD") == "CDAB"  # counts first; A and B tie on popularity
    assert light["A"] == light["B"]
    heavy = _scores(_fit(data, smoothing=100.0), data, "B")
    assert heavy["D"] == pytest.approx((1 + 100 / 11) / 103, rel=1e-6)
    assert heavy["A"] == pytest.approx((100 * 3 / 11) / 103, rel=1e-6)
    assert heavy["A"] > heavy["D"]  # a heavy prior lets popularity overrule a single count


def test_fit_log_counts(data: TaskData) -> None:
    log = Markov(data.catalog).fit(data.train, data.valid)
    assert log == {
        "train_interactions": 11,
        "transitions": 6,
        "distinct_transitions": 4,
        "items_with_successors": 2,
    }


def test_learns_the_successor_pattern() -> None:
    data = build_task(successor_dataset(), "sequential")
    model = _fit(data)
    targets = np.array([ex.target for ex in data.test])
    assert (model.score(data.test).argmax(axis=1) == targets).all()


def test_held_out_purchases_are_never_read(data: TaskData) -> None:
    # Poisoned validation targets change nothing: only the training split is read.
    clean, poisoned = _fit(data), Markov(data.catalog)
    poisoned.fit(data.train, [dataclasses.replace(ex, target=0) for ex in data.valid])
    np.testing.assert_array_equal(clean.score(data.test), poisoned.score(data.test))
    # The test history ends with the validation target, which nobody bought in training: the
    # popularity ranking, the test target (also never bought) at zero.
    scores = clean.score(data.test)
    for row, ex in enumerate(data.test):
        assert scores[row, ex.target] == 0.0
        assert scores[row, data.catalog.index["A"]] == pytest.approx(POP["A"], rel=1e-6)


def test_scores_do_not_depend_on_the_batch() -> None:
    data = build_task(tiny_dataset(), "sequential")
    model = _fit(data)
    full = model.score(data.test)
    one_by_one = np.concatenate([model.score([ex]) for ex in data.test])
    np.testing.assert_array_equal(full, one_by_one)


def test_honours_the_plugin_contracts() -> None:
    report = check_model_plugin("markov", config={"smoothing": 0.5})
    assert report.tasks == ["sequential", "critique"]
    assert report.fit_logs["critique"]["train_interactions"] > 0


def test_critique_text_is_ignored() -> None:
    ds = tiny_dataset()
    seq, crit = build_task(ds, "sequential"), build_task(ds, "critique")
    np.testing.assert_array_equal(_fit(seq).score(seq.test), _fit(crit).score(crit.test))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"smoothing": 0}, "markov option 'smoothing' must be a float > 0, got 0.0"),
        ({"smoothing": "lots"}, "markov option 'smoothing' must be a float > 0, got 'lots'"),
        ({"smoothin": 1}, "unknown option 'smoothin' (did you mean 'smoothing'?)"),
    ],
)
def test_bad_options_are_one_line_errors(
    data: TaskData, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as err:
        Markov(data.catalog, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_runs_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # as a new user would: run it, validate the result, and get one line for a bad option
    path = tmp_path / "hand.jsonl.gz"
    write_records(_records(), path)
    argv = ["run", "--model", "markov", "--task", "sequential", "--dataset", str(path), "-q"]
    assert main([*argv, "--output", str(tmp_path / "res")]) == 0
    result_path = tmp_path / "res" / "hand" / "sequential" / "markov.json"
    assert json.loads(result_path.read_text())["model"]["config"] == {"smoothing": 1.0}
    assert main(["validate", str(result_path)]) == 0
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "bad"), "--set", "smoothing=-1"]) == 2
    err = capsys.readouterr().err
    assert "markov option 'smoothing' must be a float > 0, got -1.0" in err
    assert "Traceback" not in err
