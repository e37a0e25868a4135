"""Leave-one-out split and what each task reveals."""

from __future__ import annotations

import pytest

from regen_bench.data.dataset import Dataset
from regen_bench.tasks import build_task


def test_leave_one_out(records: list) -> None:
    ds = Dataset.from_records("toy", records)
    data = build_task(ds, "sequential")
    assert data.skipped_users == 1  # u3 has 2 purchases
    assert [u.items.tolist() for u in data.train] == [[0, 1], [1]]
    assert [(e.history.tolist(), e.target) for e in data.valid] == [([0, 1], 2), ([1], 2)]
    assert [(e.history.tolist(), e.target) for e in data.test] == [([0, 1, 2], 3), ([1, 2], 4)]


def test_sequential_hides_critiques_critique_task_shows_them(records: list) -> None:
    ds = Dataset.from_records("toy", records)
    seq = build_task(ds, "sequential")
    assert all(c is None for u in seq.train for c in u.critiques)
    assert all(c is None for e in seq.valid + seq.test for c in (e.critique, *e.history_critiques))
    crit = build_task(ds, "critique")
    # u1's critique leads to purchase 2: the validation target
    assert crit.valid[0].critique == "In black, please"
    assert crit.test[0].history_critiques == (None, None, "In black, please")
    assert crit.test[0].critique is None


def test_conversational_needs_narrative_type(records: list) -> None:
    ds = Dataset.from_records("toy", records)
    with pytest.raises(ValueError, match="narrative type"):
        build_task(ds, "conversational")
    with pytest.raises(ValueError, match="takes no narrative"):
        build_task(ds, "sequential", "purchase_reason")
    conv = build_task(ds, "conversational", "purchase_reason")
    assert conv.test[0].references["purchase_reason"] == "needed pens"


def test_task_sequences_are_lazy_views_of_the_dataset(records: list) -> None:
    """As a Clothing-size run needs: no list of users or examples is built up front."""
    from regen_bench.tasks import Rows

    ds = Dataset.from_records("toy", records)
    data = build_task(ds, "critique")
    assert isinstance(data.test, Rows) and len(data.test) == 2
    part = data.test[:1]
    assert isinstance(part, Rows) and [e.user_id for e in part] == ["u1"]
    # each access builds a fresh object: changing one does not change the dataset
    data.train[0].items[0] = 99
    assert data.train[0].items[0] == 0
    assert [e.target for e in data.valid + data.test] == [2, 2, 3, 4]


def test_target_critiqued_reads_the_store_and_falls_back_to_users(records: list) -> None:
    from regen_bench.tasks import target_critiqued

    from .conftest import make_record

    more = [make_record("u4", ["A1", "A2", "A6"], {2: "Something cheaper"}), *records]
    ds = Dataset.from_records("toy", more)
    seq = build_task(ds, "sequential")
    # the sequential task hides critiques, but the "critiqued" subset is still known
    expected = [True, False, False]
    assert target_critiqued(ds, seq.test) == expected
    assert target_critiqued(ds, list(seq.test)) == expected
    assert target_critiqued(ds, seq.test[1:]) == expected[1:]


def test_building_a_task_builds_no_user(records: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """The splits are computed from the purchase counts alone; users are built on access."""
    from regen_bench.data.dataset import UserList

    ds = Dataset.from_records("toy", records)
    built: list[int] = []
    original = UserList._user
    monkeypatch.setattr(UserList, "_user", lambda self, u: built.append(u) or original(self, u))
    data = build_task(ds, "conversational", "purchase_reason")
    assert built == [] and data.skipped_users == 1
    ex = data.test[1]
    assert built == [1] and ex.references["purchase_reason"] is None
    # examples are built without reviews; training sequences keep them (LUMEN reads them)
    assert data.test.users.reviews is False and data.train.users.reviews is True
