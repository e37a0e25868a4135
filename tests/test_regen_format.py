"""REGEN-format reading and writing: round trip, strictness, errors that name line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from regen_bench.data.dataset import Dataset
from regen_bench.data.regen import (
    DataFormatError,
    ReadReport,
    dumps_record,
    iter_records,
    write_records,
)

RELEASE_LINE = {
    "reviewer_id": "AX1",
    "purchase_history": [
        {
            "item": {
                "asin": "B1",
                "title": "Pen",
                "category": "Office Products - Pens - Gel",
                "description": "A pen",
                "price": 0,
            },
            "review": {"summary": "ok", "rating": 4, "text": "fine", "unix_time": 1400000000},
        },
        {
            "item": {
                "asin": "B2",
                "title": "Pen 2",
                "category": None,
                "description": "",
                "price": 3.5,
                "colour": "red",
            },
            "review": {"summary": "good", "rating": 5.0, "text": "nice", "unix_time": 1400000100},
            "user_critique": "Something cheaper",
        },
    ],
    "last_purchase": {"reason": "r", "explanation": "e", "product_endorsement": "buy it"},
    "user": {"profile": "p", "brief_summary": "b", "long_summary": "l"},
    "metadata": {"user": {"veracity": 6}},
    "extra_top": 1,
}


def _write_lines(path: Path, objs: list[object]) -> None:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))


def test_release_layout_is_read_with_mapping_and_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "office.jsonl"
    _write_lines(path, [RELEASE_LINE])
    report = ReadReport()
    [rec] = list(iter_records(path, report))
    assert rec.user_id == "AX1"
    assert rec.items["B1"].price is None  # the release writes 0 for missing
    assert rec.items["B1"].categories == ("Office Products", "Pens", "Gel")
    assert rec.items["B2"].categories == ()
    assert [i.critique for i in rec.interactions] == [None, "Something cheaper"]
    assert rec.narratives.product_endorsement == "buy it"
    assert rec.narratives.user_summary_long == "l"
    assert rec.scores == {"user": {"veracity": 6}}
    assert report.unknown_fields == {"extra_top": 1, "purchase_history[].item.colour": 1}
    assert report.users == 1 and report.interactions == 2 and report.critiques == 1
    assert len(report.sha256) == 64


def test_round_trip_plain_and_gzip_same_fingerprint(tmp_path: Path, records: list) -> None:
    fp_plain = write_records(records, tmp_path / "d.jsonl")
    fp_gz = write_records(records, tmp_path / "d.jsonl.gz")
    assert fp_plain == fp_gz
    again = list(iter_records(tmp_path / "d.jsonl.gz"))
    assert [dumps_record(r) for r in again] == [dumps_record(r) for r in records]
    ds = Dataset.from_file(tmp_path / "d.jsonl.gz")
    assert ds.fingerprint == fp_plain
    # gzip output carries no timestamp: identical bytes when written twice
    first = (tmp_path / "d.jsonl.gz").read_bytes()
    write_records(records, tmp_path / "d.jsonl.gz")
    assert (tmp_path / "d.jsonl.gz").read_bytes() == first


def test_dataset_catalog_and_sequences(records: list, tmp_path: Path) -> None:
    write_records(records, tmp_path / "d.jsonl")
    ds = Dataset.from_file(tmp_path / "d.jsonl", name="toy")
    assert ds.name == "toy"
    assert [i.asin for i in ds.catalog] == ["A1", "A2", "A3", "A4", "A5"]
    assert ds.users[1].items.tolist() == [1, 2, 4]
    assert ds.users[0].critiques == (None, None, "In black, please", None)
    # 6 adjacent pairs (3 + 2 + 1), one of them with a critique
    assert ds.critique_coverage() == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.pop("reviewer_id"), "reviewer_id"),
        (
            lambda o: o["purchase_history"][1]["review"].update(rating=9),
            "purchase_history[1].review.rating",
        ),
        (
            lambda o: o["purchase_history"][0]["item"].update(asin=5),
            "purchase_history[0].item.asin",
        ),
        (lambda o: o["purchase_history"][1].pop("review"), "purchase_history[1].review"),
        (lambda o: o.update(purchase_history=[]), "purchase_history"),
        (lambda o: o["user"].update(profile=["x"]), "user.profile"),
    ],
)
def test_bad_records_name_line_and_field(tmp_path: Path, mutate, field: str) -> None:
    bad = json.loads(json.dumps(RELEASE_LINE))
    mutate(bad)
    path = tmp_path / "bad.jsonl"
    _write_lines(path, [RELEASE_LINE, bad])
    with pytest.raises(DataFormatError) as info:
        list(iter_records(path))
    assert info.value.line == 2
    assert info.value.field == field
    assert f"bad.jsonl:2: field '{field}'" in str(info.value)


def test_invalid_json_and_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(RELEASE_LINE) + "\n\n{not json\n")
    with pytest.raises(DataFormatError, match=r"x.jsonl:3: .*invalid JSON"):
        list(iter_records(path))
    gz = tmp_path / "t.jsonl.gz"
    data = gzip.compress((json.dumps(RELEASE_LINE) + "\n").encode() * 50)
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated"):
        list(iter_records(gz))


def test_failed_write_leaves_nothing_behind(tmp_path: Path, records: list) -> None:
    def broken():
        yield records[0]
        raise RuntimeError("boom")

    target = tmp_path / "out.jsonl.gz"
    with pytest.raises(RuntimeError):
        write_records(broken(), target)
    assert list(tmp_path.iterdir()) == []
