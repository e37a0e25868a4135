"""Amazon Reviews 2018 raw files -> REGEN sequences: cleaning, ordering, de-duplication, filters."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.amazon import PrepareError, build_sequences, prepare
from regen_bench.data.amazon_meta import clean_text, decode_meta_line, item_from_meta, parse_price
from regen_bench.data.regen import DataFormatError, iter_records
from regen_bench.results import load_result

T0 = 1_400_000_000
DAY = 86_400


def review(user: str, asin: str, day: int, rating: float = 4.0, text: str = "") -> dict[str, Any]:
    """A raw 2018 review line (with the fields the harness ignores, as in the real files)."""
    return {
        "overall": rating,
        "verified": True,
        "reviewTime": "01 1, 2014",
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "A shopper",
        "reviewText": text or f"{user} on {asin}",
        "summary": f"summary {asin}",
        "unixReviewTime": T0 + day * DAY,
        "style": {"Color:": " Black"},
    }


def meta(asin: str, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "asin": asin,
        "title": f"Item {asin}",
        "brand": "Acme",
        "price": "$9.99",
        "category": ["Office Products", "Office &amp; School Supplies", "Writing"],
        "description": [f"<p>About <b>{asin}</b></p>"],
        "main_cat": "Office Products",
        "also_buy": [],
    }
    obj.update(fields)
    return obj


def write_lines(path: Path, lines: list[Any]) -> Path:
    """JSON lines (dicts) or raw text lines (str), gzip when the name ends in .gz."""
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def run_prepare(tmp_path: Path, reviews: list[Any], metas: list[Any], **kw: Any):
    rev = write_lines(tmp_path / "Office_Products.json.gz", reviews)
    met = write_lines(tmp_path / "meta_Office_Products.json.gz", metas)
    out = tmp_path / "office.jsonl.gz"
    stats = prepare(rev, met, out, progress=False, **kw)
    return stats, list(iter_records(out)), out


# -- cleaning -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        ("$12.99", 12.99),
        ("$1,299.00", 1299.0),
        ("$5.99 - $12.99", 5.99),  # a range gives its low end
        ("12.50", 12.5),
        (" $3 ", 3.0),
        ("$0.00", None),
        ("", None),
        (".a-box-inner{background-color:#fff} 6px", None),  # CSS junk found in 2018 meta
        ("Currently unavailable.", None),
        ("$1,24.99", None),  # not a valid thousands grouping
        (None, None),
        (7, 7.0),
        (0, None),
        (True, None),
    ],
)
def test_parse_price(raw: Any, price: float | None) -> None:
    assert parse_price(raw) == price


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("<p>Great &amp; cheap</p><br/>pen", "Great & cheap pen"),
        ("<script>var a = 1;</script>Blue <b>gel</b>  pens", "Blue gel pens"),
        ("Pens &amp; Refills", "Pens & Refills"),
        ("size < 5 inches", "size < 5 inches"),
        ("  plain\n text ", "plain text"),
        ('<img src="x.png" alt="AMAZON FASHION"/>', ""),
    ],
)
def test_clean_text(raw: str, text: str) -> None:
    assert clean_text(raw) == text


def test_meta_lines_json_or_python_literal(tmp_path: Path) -> None:
    ctx = ("meta.json", 1)
    as_json = json.dumps(meta("B1")).encode()
    as_literal = repr(meta("B1", title='Bob\'s "best" pen', price=None)).encode()
    assert decode_meta_line(as_json, ctx)["asin"] == "B1"
    item = item_from_meta(decode_meta_line(as_literal, ctx), ctx)
    assert item.title == 'Bob\'s "best" pen' and item.price is None
    # Code is never evaluated: a call is neither JSON nor a literal.
    with pytest.raises(DataFormatError, match=r"meta.json:1: field '<line>': neither JSON"):
        decode_meta_line(b"__import__('os').system('echo hi')", ctx)


def test_item_from_meta_fields() -> None:
    ctx = ("m", 1)
    item = item_from_meta(meta("B1", price="$5.99 - $12.99", brand="  "), ctx)
    assert item.categories == ("Office Products", "Office & School Supplies", "Writing")
    assert item.description == "About B1"
    assert item.price == 5.99 and item.brand is None
    # no category list: main_cat becomes a one-level path; 2014 files use `categories`
    assert item_from_meta(meta("B2", category=[]), ctx).categories == ("Office Products",)
    old = {"asin": "B3", "categories": [["Office Products", "Pens"], ["Other"]], "price": 4.5}
    assert item_from_meta(old, ctx).categories == ("Office Products", "Pens")
    assert item_from_meta(old, ctx).price == 4.5
    assert item_from_meta({"asin": "B4", "description": "one string"}, ctx).description == (
        "one string"
    )


# -- sequences ----------------------------------------------------------------------------------


def test_time_order_ties_duplicates_and_filters(tmp_path: Path) -> None:
    reviews = [
        review("U1", "X", 3),
        review("U1", "Y", 1, rating=2.0, text="first Y"),
        review("U1", "Z", 1),  # same time as Y, later in the file: after Y
        review("U1", "Y", 2, rating=5.0, text="second Y"),  # repeated purchase: dropped
        review("U1", "W", 5),
        review("U1", "V", 4),
        review("U1", "Y", 0 + 6),  # a third purchase of Y: dropped too
        *[review("U2", a, d) for d, a in enumerate(["X", "Y", "Z", "V"])],  # 4 items: dropped
        *[review("U0", a, d) for d, a in enumerate(["V", "W", "X", "Y", "Q"])],  # exactly 5
    ]
    metas = [meta(a) for a in "VWXYZ"] + [meta("X", title="a later duplicate line")]
    stats, records, _ = run_prepare(tmp_path, reviews, metas)
    assert [r.user_id for r in records] == ["U0", "U1"]  # reviewerID order
    u1 = records[1]
    assert [i.item_id for i in u1.interactions] == ["Y", "Z", "X", "V", "W"]
    assert u1.interactions[0].text == "first Y" and u1.interactions[0].rating == 2.0
    assert u1.interactions[0].timestamp == T0 + DAY
    assert u1.items["X"].title == "Item X"  # the first meta line of an asin wins
    assert records[0].items["Q"].title == ""  # no metadata: kept with an empty title
    assert u1.narratives.purchase_reason is None and all(
        i.critique is None for i in u1.interactions
    )
    assert (stats.users, stats.items, stats.interactions) == (2, 6, 10)
    assert stats.items_per_user == 5.0
    assert (stats.reviews, stats.raw_users, stats.raw_items) == (16, 3, 6)
    assert stats.repeats == 2
    assert (stats.short_users, stats.short_interactions) == (1, 4)
    assert (stats.truncated_users, stats.truncated_interactions) == (0, 0)
    assert stats.items_without_meta == 1 and stats.meta_duplicates == 1
    assert sum(stats.dropped().values()) == stats.reviews - stats.interactions


def test_tie_break_is_file_order(tmp_path: Path) -> None:
    same_day = [review("U1", a, 0) for a in "ABCDE"]
    _, forward, _ = run_prepare(tmp_path, same_day, [])
    _, backward, _ = run_prepare(tmp_path, same_day[::-1], [])
    assert [i.item_id for i in forward[0].interactions] == list("ABCDE")
    assert [i.item_id for i in backward[0].interactions] == list("EDCBA")


def test_max_len_keeps_most_recent_and_min_interactions(tmp_path: Path) -> None:
    reviews = [review("U50", f"I{d:02d}", d) for d in range(50)]
    reviews += [review("U60", f"I{d:02d}", d) for d in range(60)]
    reviews += [review("U3", f"I{d:02d}", d) for d in range(3)]
    stats, records, _ = run_prepare(tmp_path, reviews, [])
    by_id = {r.user_id: r for r in records}
    assert set(by_id) == {"U50", "U60"}
    assert len(by_id["U50"].interactions) == 50
    assert [i.item_id for i in by_id["U60"].interactions] == [f"I{d:02d}" for d in range(10, 60)]
    assert (stats.truncated_users, stats.truncated_interactions) == (1, 10)
    stats, records, _ = run_prepare(tmp_path, reviews, [], min_interactions=3, max_len=20)
    assert {r.user_id: len(r.interactions) for r in records} == {"U50": 20, "U60": 20, "U3": 3}


def test_k_core_is_iterative(tmp_path: Path) -> None:
    # item c has 1 interaction; removing it leaves U3 with one purchase, which removes U3.
    reviews = [review("U1", "a", 0), review("U1", "b", 1), review("U2", "a", 0)]
    reviews += [review("U2", "b", 1), review("U3", "a", 0), review("U3", "c", 1)]
    stats, records, _ = run_prepare(tmp_path, reviews, [], k_core=2, min_interactions=2)
    assert [r.user_id for r in records] == ["U1", "U2"]
    assert (stats.kcore_rounds, stats.kcore_users, stats.kcore_items) == (2, 1, 1)
    assert stats.kcore_interactions == 2 and stats.items == 2
    # without k-core U3 keeps both purchases
    _, records, _ = run_prepare(tmp_path, reviews, [], min_interactions=2)
    assert [r.user_id for r in records] == ["U1", "U2", "U3"]


def test_build_sequences_on_arrays_is_independent_of_input_order() -> None:
    import numpy as np

    from regen_bench.data.amazon import PrepareStats

    rng = np.random.default_rng(0)
    n = 2000
    users = rng.integers(0, 100, n)
    items = rng.integers(0, 50, n)
    times = rng.integers(0, 10_000, n)
    lines = np.arange(1, n + 1)
    perm = rng.permutation(n)
    a = build_sequences(users, items, times, lines, PrepareStats())
    b = build_sequences(users[perm], items[perm], times[perm], lines[perm], PrepareStats())
    for x, y in zip(a, b, strict=True):
        assert x.tolist() == y.tolist()
    kept_users, kept_items, kept_times, _ = a
    pairs = set(zip(kept_users.tolist(), kept_items.tolist(), strict=True))
    assert len(pairs) == len(kept_users)  # no repeated purchase
    assert np.all(np.bincount(kept_users)[np.unique(kept_users)] >= 5)
    same_user = kept_users[1:] == kept_users[:-1]
    assert np.all(kept_times[1:][same_user] >= kept_times[:-1][same_user])


def test_same_input_same_bytes(tmp_path: Path) -> None:
    reviews = [review(f"U{u}", f"I{(u + d) % 9}", d) for u in range(8) for d in range(6)]
    _, _, out = run_prepare(tmp_path, reviews, [meta(f"I{i}") for i in range(9)])
    first = out.read_bytes()
    # a shuffled file (no ties in time within a user) gives the same dataset, byte for byte
    random.Random(1).shuffle(reviews)
    _, _, out = run_prepare(tmp_path, reviews, [meta(f"I{i}") for i in range(9)])
    assert out.read_bytes() == first


def test_bad_options_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="--max-len"):
        run_prepare(tmp_path, [review("U1", "A", 0)], [], max_len=0)
    with pytest.raises(PrepareError, match="no user has 5 or more interactions"):
        run_prepare(tmp_path, [review("U1", "A", 0)], [])
    assert not (tmp_path / "office.jsonl.gz").exists()


# -- end to end ---------------------------------------------------------------------------------


def fixture_store(tmp_path: Path, users: int = 60, items: int = 25) -> tuple[Path, Path]:
    """Raw Office-like files: a popular head, repeats, ties, JSON and Python-literal meta."""
    rng = random.Random(7)
    reviews = []
    for u in range(users):
        for d in range(5 + u % 7):
            asin = f"B{min(int(rng.expovariate(0.15)), items - 1):03d}"
            reviews.append(review(f"A{u:04d}", asin, d // 2, rating=float(rng.randint(1, 5))))
    rng.shuffle(reviews)
    metas: list[Any] = []
    for i in range(items - 1):  # the last item has no metadata
        obj = meta(f"B{i:03d}", price=f"${i}.99 - ${i + 5}.99" if i % 4 == 0 else f"${i}.49")
        metas.append(json.dumps(obj) if i % 2 else repr(obj))
    return (
        write_lines(tmp_path / "Office_Products.json.gz", reviews),
        write_lines(tmp_path / "meta_Office_Products.json", metas),
    )


def test_prepare_then_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rev, met = fixture_store(tmp_path)
    out = tmp_path / "prepared.jsonl.gz"
    args = ["data", "prepare", "--reviews", str(rev), "--meta", str(met), "--out", str(out), "-q"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "users          " in printed and "items/user" in printed
    assert "repeated purchases of an item by the same user" in printed
    records = list(iter_records(out))
    assert 40 <= len(records) <= 60
    assert all(5 <= len(r.interactions) <= 50 for r in records)
    code = main(
        [
            "run",
            "--model",
            "popularity",
            "--task",
            "sequential",
            "--dataset",
            str(out),
            "--output",
            str(tmp_path / "results"),
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    result = load_result(tmp_path / "results" / "prepared" / "sequential" / "popularity.json")
    assert result.protocol.test_examples == len(records)
    assert result.dataset.users == len(records)
    assert 0.0 < result.metrics["recall@10"] <= 1.0
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "results/prepared/sequential/popularity.json")]) == 0


@pytest.mark.slow
def test_prepare_then_sasrec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rev, met = fixture_store(tmp_path)
    out = tmp_path / "prepared.jsonl"
    assert (
        main(["data", "prepare", "--reviews", str(rev), "--meta", str(met), "--out", str(out)]) == 0
    )
    args = ["run", "--model", "sasrec", "--task", "sequential", "--dataset", str(out)]
    args += ["--output", str(tmp_path / "results"), "-q", "--set", "epochs=2"]
    assert main(args) == 0, capsys.readouterr().err
    result = load_result(tmp_path / "results" / "prepared" / "sequential" / "sasrec.json")
    assert result.model.config["epochs"] == 2
    assert result.protocol.test_examples == len(list(iter_records(out)))
