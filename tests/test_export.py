"""``regen-bench data export --format hf``: a datasets folder that reloads as written."""

from __future__ import annotations

import pytest

from regen_bench.cli import main
from regen_bench.data.dataset import Dataset
from regen_bench.data.regen import write_records
from regen_bench.tasks import build_task

datasets = pytest.importorskip("datasets")


def test_export_mini_reloads_with_task_split_sizes(tmp_path, capsys):
    out = tmp_path / "mini-hf"
    assert main(["data", "export", "--format", "hf", "mini", str(out), "-q"]) == 0
    assert "train 5000" in capsys.readouterr().out
    splits = datasets.load_from_disk(str(out))
    items = datasets.load_from_disk(str(out / "items"))
    from regen_bench.resolve import resolve_dataset

    ds = resolve_dataset("mini")
    task = build_task(ds, "conversational", "purchase_reason")
    assert set(splits) == {"train", "validation", "test"}
    assert len(splits["train"]) == len(task.train)
    assert len(splits["validation"]) == len(task.valid)
    assert len(splits["test"]) == len(task.test)
    assert len(items) == len(ds.catalog) == 2000
    ex, row = task.test[7], splits["test"][7]
    assert row["user_id"] == ex.user_id
    assert row["history"] == ds.catalog.ids(ex.history)
    assert row["target"] == ds.catalog[ex.target].asin
    assert row["critique"] == ex.critique and row["history_critiques"] == list(ex.history_critiques)
    assert row["purchase_reason"] == ex.references["purchase_reason"]
    assert items[3]["title"] == ds.catalog[3].title
    assert "load_from_disk" in (out / "README.md").read_text()


def test_export_small_fixture_values(tmp_path, records):
    src = tmp_path / "toy.jsonl"
    write_records(records, src)
    out = tmp_path / "hf"
    assert main(["data", "export", str(src), str(out), "-q"]) == 0
    splits = datasets.load_from_disk(str(out))
    # u3 has two purchases: too short for the split.
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [2, 2, 2]
    train, test = splits["train"][0], splits["test"][0]
    assert (train["history"], train["target"]) == (["A1"], "A2")
    assert (test["history"], test["target"]) == (["A1", "A2", "A3"], "A4")
    assert splits["validation"][0]["critique"] == "In black, please"
    assert test["history_critiques"] == [None, None, "In black, please"]
    assert splits["test"][1]["product_endorsement"] == "great pen"
    items = datasets.load_from_disk(str(out / "items"))
    assert items["price"] == [9.5] * 5 and items[0]["brand"] == "Acme"
    assert items[0]["categories"][-1] == "Leaf 1"
    assert Dataset.from_file(src).catalog[0].asin == items[0]["asin"]


def test_export_refuses_non_empty_output(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("keep me")
    assert main(["data", "export", "mini", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "x").read_text() == "keep me"
