"""``regen-bench data import --format recbole``: RecBole atomic files -> REGEN format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regen_bench.cli import main
from regen_bench.data import Dataset
from regen_bench.data.recbole import RecboleImportError, import_recbole, time_keys
from regen_bench.data.recbole_atomic import AtomicFormatError
from regen_bench.data.regen import iter_records

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
# u1 rates i3 before i1 in the file although i1 is older; i2 and i4 tie at t=300, i4 first in
# the file; u2's rows interleave with u1's.
INTER_ROWS = [
    "u1\ti3\t4\t200",
    "u2\ti2\t5\t50",
    "u1\ti4\t3\t300",
    "u1\ti1\t5\t100",
    "u2\ti1\t2\t60",
    "u1\ti2\t1\t300",
    "u2\ti4\t4\t70",
    "u3\ti1\t3\t10",
]
ITEM = [
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\tprice:float"
    "\tbrand:token",
    "i1\tToy Story\t1995\tAnimation Comedy\t9.5\tPixar",
    "i2\tHeat\t1995\tAction Crime Thriller\t\t",
    "i3\tBabe\t1995\tDrama\t0\tUniversal",
    "i4\tCasino\t1995\t\t-1\t",
    "i9\tUnrated\t2000\tDrama\t3\t",
]
USER = ["user_id:token\tage:token\tgender:token", "u1\t24\tM", "u2\t53\tF", "u3\t23\tM"]


def write_dataset(
    root: Path,
    inter: list[str] | None = None,
    item: list[str] | None = ITEM,
    user: list[str] | None = USER,
    name: str = "toy",
) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = inter if inter is not None else [INTER_HEADER, *INTER_ROWS]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    for suffix, rows in (("item", item), ("user", user)):
        if rows is not None:
            (folder / f"{name}.{suffix}").write_text("\n".join(rows) + "\n")
    return folder


def sequences(path: Path) -> dict[str, list[str]]:
    return {r.user_id: [i.item_id for i in r.interactions] for r in iter_records(path)}


def test_good_dataset_orders_by_time_and_maps_item_text(tmp_path: Path) -> None:
    out = tmp_path / "toy.jsonl.gz"
    stats = import_recbole(write_dataset(tmp_path), out)
    assert sequences(out) == {
        "u1": ["i1", "i3", "i4", "i2"],  # by time; the tie at 300 keeps file order (i4, i2)
        "u2": ["i2", "i1", "i4"],
        "u3": ["i1"],
    }
    assert (stats.users, stats.items, stats.interactions, stats.tied) == (3, 4, 8, 2)
    assert stats.mapped == {"title": "movie_title", "categories": "genre", "price": "price"} | {
        "brand": "brand"
    }
    assert stats.ignored_columns == ["release_year"]
    assert stats.unused_item_rows == 1  # i9: nobody rated it, so it is not in the catalog
    assert stats.user_rows == 3
    records = {r.user_id: r for r in iter_records(out)}
    u1 = records["u1"]
    assert [(i.timestamp, i.rating) for i in u1.interactions] == [
        (100, 5.0),
        (200, 4.0),
        (300, 3.0),
        (300, 1.0),
    ]
    toy, heat, babe, casino = (u1.items[a] for a in ("i1", "i2", "i3", "i4"))
    assert (toy.title, toy.categories, toy.price, toy.brand) == (
        "Toy Story",
        ("Animation", "Comedy"),
        9.5,
        "Pixar",
    )
    assert (heat.title, heat.categories, heat.price, heat.brand) == (
        "Heat",
        ("Action", "Crime", "Thriller"),
        None,
        None,
    )
    assert babe.price is None and casino.price is None  # 0 and negative prices are "missing"
    assert casino.categories == ()
    ds = Dataset.from_file(out, cache=False)
    assert len(ds.users) == 3 and len(ds.catalog) == 4


def test_cli_prints_summary_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "toy.jsonl"
    folder = write_dataset(tmp_path)
    assert main(["data", "import", "--format", "recbole", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "users          3" in printed
    assert "title <- movie_title" in printed and "ties in file order" in printed
    assert out.exists()


def test_ties_keep_file_order_under_every_time_key(tmp_path: Path) -> None:
    # 1.7e9 and 1.7e9 + 10 are one float32 value: RecBole's own sort sees a tie there.
    rows = [INTER_HEADER, "u\tb\t5\t1700000010", "u\ta\t5\t1700000000", "u\tc\t5\t1600000000"]
    folder = write_dataset(tmp_path, rows, item=None, user=None)
    got = {}
    for key in ("exact", "float32", "float32-normalized"):
        out = tmp_path / f"{key}.jsonl"
        import_recbole(folder, out, time_key=key, require_item_file=False)
        got[key] = sequences(out)["u"]
    assert got["exact"] == ["c", "a", "b"]
    assert got["float32"] == ["c", "b", "a"]  # b and a tie in float32: file order
    assert got["float32-normalized"] == ["c", "a", "b"]  # normalised, 10 s apart is resolved


def test_time_keys_match_recbole_arithmetic() -> None:
    times = np.array([881250949.0, 881250950.0, 874724710.0, 893286638.0])
    norm = time_keys(times, "float32-normalized")
    assert norm.dtype == np.float32
    expected = ((times - times.min()) / (times.max() - times.min())).astype(np.float32)
    assert np.array_equal(norm, expected)
    assert np.array_equal(time_keys(np.array([5.0, 5.0]), "float32-normalized"), [1.0, 1.0])
    assert time_keys(times, "exact") is times


@pytest.mark.parametrize(
    ("row", "where"),
    [
        ("u9\ti1\t4", "toy.inter:4: column 3: expected 4 tab-separated columns, got 3"),
        (
            "u9\ti1\t4\tsoon",
            "toy.inter:4: column 4 'timestamp:float': expected a number, got 'soon'",
        ),
        ("u9\ti1\tfive\t1", "toy.inter:4: column 3 'rating:float': expected a number, got 'five'"),
        ("\ti1\t4\t1", "toy.inter:4: column 1 'user_id:token': empty"),
        ("u9\ti1\t\t1", "toy.inter:4: column 3 'rating:float': expected a number, got an empty"),
        ("u9\ti1\t7\t1", "toy.inter:4: column 3 'rating:float': expected a rating 1-5"),
    ],
)
def test_bad_line_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, where: str
) -> None:
    folder = write_dataset(tmp_path, [INTER_HEADER, *INTER_ROWS[:2], row, *INTER_ROWS[2:]])
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    with pytest.raises(AtomicFormatError) as info:
        import_recbole(folder, out)
    assert where in str(info.value) and str(info.value).startswith(str(folder))
    args = ["data", "import", "--format", "recbole", str(folder), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert where in err and err.count("\n") == 1
    assert out.read_text() == "previous content\n"  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl")]


def test_out_of_range_ratings_can_be_ignored(tmp_path: Path) -> None:
    rows = [INTER_HEADER, "u\ta\t0.5\t1", "u\tb\t10\t2", "u\tc\t3\t3"]
    folder = write_dataset(tmp_path, rows, item=None, user=None)
    with pytest.raises(AtomicFormatError, match="--ignore-ratings"):
        import_recbole(folder, tmp_path / "o.jsonl", require_item_file=False)
    stats = import_recbole(
        folder, tmp_path / "o.jsonl", require_item_file=False, ignore_ratings=True
    )
    assert stats.ratings == "ignored"
    [record] = iter_records(tmp_path / "o.jsonl")
    assert [i.rating for i in record.interactions] == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("user_id:token\titem:token\ttimestamp:float", "toy.inter:1: header: no 'item_id' column"),
        ("user_id:token\titem_id:token\ttimestamp:date", "column 3 'timestamp:date': unknown type"),
        ("user_id:token\titem_id\ttimestamp:float", "column 2 'item_id': expected name:type"),
        ("user_id:token\titem_id:float\ttimestamp:float", "'item_id:float': expected type token"),
        ("user_id:token\titem_id:token\ttimestamp:token", "'timestamp:token': expected type float"),
    ],
)
def test_bad_header(tmp_path: Path, header: str, message: str) -> None:
    folder = write_dataset(tmp_path, [header, "u\ti\t1"])
    with pytest.raises(AtomicFormatError, match=message):
        import_recbole(folder, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_item_file_names_its_line(tmp_path: Path) -> None:
    item = [*ITEM[:3], "i3\tBabe\t1995\tDrama\tcheap\tUniversal", *ITEM[4:]]
    folder = write_dataset(tmp_path, item=item)
    with pytest.raises(AtomicFormatError, match=r"toy\.item:4: column 5 'price:float'"):
        import_recbole(folder, tmp_path / "o.jsonl")
    assert not (tmp_path / "o.jsonl").exists()


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path)
    path = folder / "toy.inter"
    path.write_bytes(path.read_bytes().replace(b"u2\ti1", b"u\xff\ti1"))
    with pytest.raises(AtomicFormatError, match=r"toy\.inter:6: <line>: invalid UTF-8"):
        import_recbole(folder, tmp_path / "o.jsonl")


def test_missing_item_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_dataset(tmp_path, item=None)
    out = tmp_path / "o.jsonl"
    with pytest.raises(RecboleImportError, match=r"no item file .*toy\.item.*--no-item-file"):
        import_recbole(folder, out)
    assert main(["data", "import", "--format", "recbole", str(folder), "--out", str(out)]) == 2
    assert "--no-item-file" in capsys.readouterr().err
    assert not out.exists()
    stats = import_recbole(folder, out, require_item_file=False)
    assert stats.item_path is None
    assert all(not i.title for r in iter_records(out) for i in r.items.values())


def test_items_without_a_row_keep_an_empty_title(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, item=ITEM[:2])  # only i1 has a row
    stats = import_recbole(folder, tmp_path / "o.jsonl")
    assert stats.items_without_row == 3
    titles = {a: it.title for r in iter_records(tmp_path / "o.jsonl") for a, it in r.items.items()}
    assert titles == {"i1": "Toy Story", "i2": "", "i3": "", "i4": ""}


def test_folder_and_file_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        import_recbole(tmp_path / "nope", tmp_path / "o.jsonl")
    folder = write_dataset(tmp_path, name="ml")
    (folder / "ml.inter").rename(folder / "other.inter")
    (folder / "ml.item").rename(folder / "other.item")
    stats = import_recbole(folder, tmp_path / "o.jsonl")  # the one .inter file of the folder
    assert stats.inter_path.endswith("other.inter") and stats.item_path
    (folder / "second.inter").write_text(INTER_HEADER + "\n")
    with pytest.raises(RecboleImportError, match=r"expected .*ml\.inter"):
        import_recbole(folder, tmp_path / "o.jsonl")
    with pytest.raises(RecboleImportError, match="is an input file"):
        import_recbole(write_dataset(tmp_path), tmp_path / "toy" / "toy.item")


def test_min_interactions_and_no_time_column(tmp_path: Path) -> None:
    rows = ["user_id:token\titem_id:token", "a\tx", "b\ty", "a\tz", "a\ty", "b\tx", "c\tx"]
    folder = write_dataset(tmp_path, rows, item=None, user=None)
    out = tmp_path / "o.jsonl"
    stats = import_recbole(folder, out, min_interactions=2, require_item_file=False)
    assert (stats.short_users, stats.short_interactions, stats.has_time) == (1, 1, False)
    assert stats.ratings == "none"
    records = list(iter_records(out))
    assert {r.user_id: [i.item_id for i in r.interactions] for r in records} == {
        "a": ["x", "z", "y"],
        "b": ["y", "x"],
    }
    assert {i.timestamp for r in records for i in r.interactions} == {0}
    assert {i.rating for r in records for i in r.interactions} == {5.0}
    with pytest.raises(RecboleImportError, match="no user has 9 or more"):
        import_recbole(folder, out, min_interactions=9, require_item_file=False)
    with pytest.raises(RecboleImportError, match="at least 1"):
        import_recbole(folder, out, min_interactions=0)


def test_other_field_names(tmp_path: Path) -> None:
    rows = ["uid:token\tbusiness_id:token\tstars:float\tdate:float", "u\tb1\t4\t2", "u\tb2\t5\t1"]
    item = ["business_id:token\tname:token\tcategories:token_seq", "b1\tCafe\tFood Coffee"]
    folder = write_dataset(tmp_path, rows, item=item, user=None)
    out = tmp_path / "o.jsonl"
    stats = import_recbole(
        folder,
        out,
        user_field="uid",
        item_field="business_id",
        time_field="date",
        rating_field="stars",
    )
    assert stats.mapped == {"categories": "categories"}
    [record] = iter_records(out)
    assert [(i.item_id, i.rating) for i in record.interactions] == [("b2", 5.0), ("b1", 4.0)]
    assert record.items["b1"].categories == ("Food", "Coffee")
