"""Bad input as a new user would meet it: every message names file, line and field; nothing
half-written; ``skip_bad_lines`` / ``--skip-bad-lines`` turns bad lines into counted warnings."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import MAX_BAD_LINE_MESSAGES, DataFormatError, ReadReport, iter_records
from tests.test_amazon import meta, review, write_lines


def purchase(asin: str, day: int, **item: Any) -> dict[str, Any]:
    """One purchase_history entry in the confirmed release layout."""
    fields = {
        "asin": asin,
        "title": f"Item {asin}",
        "category": "Office Products - Office & School Supplies - Writing",
        "description": "A pen",
        "price": 4.25,
    }
    fields.update(item)
    return {
        "item": fields,
        "review": {"summary": "ok", "rating": 4, "text": "fine", "unix_time": 1_400_000_000 + day},
    }


def release_user(user: str, n: int, **top: Any) -> dict[str, Any]:
    """A user line of the release: ``n`` purchases, narratives and rater scores."""
    obj = {
        "reviewer_id": user,
        "purchase_history": [purchase(f"{user}-{k}", k) for k in range(n)],
        "last_purchase": {"reason": "needed pens", "explanation": "ran out"},
        "user": {"profile": "p", "brief_summary": "b", "long_summary": "l"},
        "metadata": {
            "example": {"richness": 6, "confidence": 7},
            "user": {"veracity": 6, "grounding": 5, "clarity": 6},
        },
    }
    obj.update(top)
    return obj


# -- the REGEN reader on schema-built fixtures --------------------------------------------------


def test_release_fixture_null_category_price_zero_unknown_fields_5_and_50(tmp_path: Path) -> None:
    five = release_user("U5", 5, release_note="extra top-level field")
    five["purchase_history"][0]["item"].update(category=None, price=0)
    five["purchase_history"][1]["item"].update(price=0.0, colour="red")
    five["purchase_history"][2]["review"]["helpful"] = 3
    fifty = release_user("U50", 50)
    path = write_lines(tmp_path / "office.jsonl", [five, fifty])
    report = ReadReport()
    u5, u50 = iter_records(path, report)
    assert u5.items["U5-0"].categories == () and u5.items["U5-0"].price is None
    assert u5.items["U5-1"].price is None
    assert u5.items["U5-2"].categories == ("Office Products", "Office & School Supplies", "Writing")
    assert u5.items["U5-2"].price == 4.25
    assert len(u5.interactions) == 5 and len(u50.interactions) == 50
    assert [i.timestamp for i in u50.interactions] == [1_400_000_000 + k for k in range(50)]
    assert u50.scores["example"] == {"richness": 6, "confidence": 7}
    assert report.unknown_fields == {
        "release_note": 1,
        "purchase_history[].item.colour": 1,
        "purchase_history[].review.helpful": 1,
    }
    assert (report.users, report.interactions, report.bad_lines) == (2, 55, 0)


# -- REGEN reader: one test per kind of bad line ------------------------------------------------

_GOOD = release_user("UG", 3)


def _broken(kind: str) -> tuple[str | dict[str, Any], str]:
    """A bad line of the given kind and the field its message must name."""
    bad = copy.deepcopy(_GOOD)
    if kind == "malformed":
        return '{"reviewer_id": "U", "purchase_history": [', "<line>"
    if kind == "missing":
        del bad["purchase_history"][1]["review"]["unix_time"]
        return bad, "purchase_history[1].review.unix_time"
    if kind == "wrong type":
        bad["purchase_history"][2]["item"]["price"] = "$4.25"
        return bad, "purchase_history[2].item.price"
    if kind == "not an object":
        return "[1, 2, 3]", "<line>"
    if kind == "not finite":  # Python's json reads NaN; int(NaN) must not escape as ValueError
        bad["purchase_history"][0]["review"]["unix_time"] = float("nan")
        return bad, "purchase_history[0].review.unix_time"
    raise AssertionError(kind)


KINDS = ["malformed", "missing", "wrong type", "not an object", "not finite"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_line_names_file_line_and_field(tmp_path: Path, kind: str) -> None:
    line, field = _broken(kind)
    path = write_lines(tmp_path / "office.jsonl", [_GOOD, _GOOD, line, _GOOD])
    with pytest.raises(DataFormatError) as info:
        list(iter_records(path))
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert str(err).startswith(f"{path}:3: field '{field}': ")


@pytest.mark.parametrize("kind", KINDS)
def test_skip_bad_lines_counts_instead(tmp_path: Path, kind: str) -> None:
    line, field = _broken(kind)
    path = write_lines(tmp_path / "office.jsonl.gz", [_GOOD, line, _GOOD, line])
    report = ReadReport()
    users = list(iter_records(path, report, skip_bad_lines=True))
    assert len(users) == 2 and report.users == 2 and report.interactions == 6
    assert report.bad_lines == 2
    assert all(f"field '{field}'" in m for m in report.bad_line_messages)
    assert [m.split(":")[1] for m in report.bad_line_messages] == ["2", "4"]
    assert len(report.sha256) == 64  # the whole file was read


def test_skipped_line_leaves_no_trace_in_counts(tmp_path: Path) -> None:
    bad = copy.deepcopy(_GOOD)
    bad["surprise"] = 1
    bad["purchase_history"][0]["critique"] = "cheaper"  # counted only if the line is good
    bad["purchase_history"][2]["review"]["rating"] = 9
    path = write_lines(tmp_path / "office.jsonl", [_GOOD, bad])
    report = ReadReport()
    assert len(list(iter_records(path, report, skip_bad_lines=True))) == 1
    assert report.unknown_fields == {} and report.critiques == 0 and report.bad_lines == 1
    assert (
        "field 'purchase_history[2].review.rating': expected 1-5, got 9"
        in (report.bad_line_messages[0])
    )


def test_bad_line_messages_are_capped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "office.jsonl", ["{"] * 8 + [_GOOD])
    report = ReadReport()
    assert len(list(iter_records(path, report, skip_bad_lines=True))) == 1
    assert report.bad_lines == 8 and len(report.bad_line_messages) == MAX_BAD_LINE_MESSAGES


def test_invalid_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "office.jsonl"
    path.write_bytes(json.dumps(_GOOD).encode() + b"\n" + b'{"reviewer_id": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"office.jsonl:2: field '<line>': invalid UTF-8"):
        list(iter_records(path))


def _truncated_gzip(path: Path, lines: list[bytes]) -> int:
    """Write half of the gzip of ``lines``; return how many lines a reader gets in full."""
    data = gzip.compress(b"".join(lines))
    path.write_bytes(data[: len(data) // 2])
    complete = 0
    with gzip.open(path, "rb") as fh, pytest.raises(EOFError):
        for _ in fh:
            complete += 1
    return complete


@pytest.mark.parametrize("skip", [False, True])
def test_truncated_gzip_always_raises_naming_last_good_line(tmp_path: Path, skip: bool) -> None:
    path = tmp_path / "office.jsonl.gz"
    lines = [json.dumps(release_user(f"U{k}", 8)).encode() + b"\n" for k in range(300)]
    complete = _truncated_gzip(path, lines)
    assert 0 < complete < 300
    report = ReadReport()
    with pytest.raises(DataFormatError) as info:
        list(iter_records(path, report, skip_bad_lines=skip))
    assert info.value.path == str(path) and info.value.line == complete + 1
    assert f"after line {complete} (the last complete line)" in str(info.value)
    assert report.sha256 == ""  # no fingerprint for a partial file


def test_cli_reports_bad_dataset_in_one_line(tmp_path: Path, capsys) -> None:
    line, _ = _broken("missing")
    path = write_lines(tmp_path / "office.jsonl", [_GOOD, line])
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"regen-bench: error: {path}:2: field 'purchase_history[1].review.unix_time': missing"
    )


# -- data prepare -------------------------------------------------------------------------------


def _store(tmp_path: Path, bad_review: Any = None, bad_meta: Any = None) -> tuple[Path, Path]:
    """Two users with 5 purchases each; the bad lines, if given, are line 3 of each file."""
    reviews: list[Any] = [review(u, f"I{d}", d) for u in ("U1", "U2") for d in range(5)]
    metas: list[Any] = [meta(f"I{d}") for d in range(5)]
    if bad_review is not None:
        reviews.insert(2, bad_review)
    if bad_meta is not None:
        metas.insert(2, bad_meta)
    return (
        write_lines(tmp_path / "Office_Products.json.gz", reviews),
        write_lines(tmp_path / "meta_Office_Products.json", metas),
    )


def _prepare(rev: Path, met: Path, out: Path, *extra: str) -> int:
    args = ["data", "prepare", "--reviews", str(rev), "--meta", str(met), "--out", str(out)]
    return main([*args, "-q", *extra])


def _bad_review(kind: str) -> tuple[Any, str]:
    if kind == "malformed":
        return '{"reviewerID": "U9", "asin": ', "<line>"
    if kind == "missing":
        bad = review("U9", "I1", 0)
        del bad["unixReviewTime"]
        return bad, "unixReviewTime"
    if kind == "wrong type":
        return {**review("U9", "I1", 0), "overall": "five"}, "overall"
    return {**review("U9", "I1", 0), "overall": 0.0}, "overall"  # out of range


PREP_KINDS = ["malformed", "missing", "wrong type", "out of range"]


@pytest.mark.parametrize("kind", PREP_KINDS)
def test_prepare_bad_review_line(tmp_path: Path, capsys, kind: str) -> None:
    line, field = _bad_review(kind)
    rev, met = _store(tmp_path, bad_review=line)
    out = tmp_path / "out.jsonl.gz"
    assert _prepare(rev, met, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"regen-bench: error: {rev}:3: field '{field}': ")
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [rev.name, met.name]
    )
    assert _prepare(rev, met, out, "--skip-bad-lines") == 0
    printed = capsys.readouterr().out
    assert "skipped        1 bad review lines and 0 bad meta lines" in printed
    assert f"{rev}:3: field '{field}'" in printed
    assert len(list(iter_records(out))) == 2


def test_prepare_bad_meta_line(tmp_path: Path, capsys) -> None:
    rev, met = _store(tmp_path, bad_meta="{'asin': 'I2', 'title': ")
    out = tmp_path / "out.jsonl"
    assert _prepare(rev, met, out) == 2
    err = capsys.readouterr().err
    assert f"{met}:3: field '<line>': neither JSON" in err and not out.exists()
    # a wrong type in a used item's metadata names the field
    rev, met = _store(tmp_path, bad_meta=meta("I3", description=[1, 2]))
    assert _prepare(rev, met, out) == 2
    assert f"{met}:3: field 'description': expected string or array of strings" in (
        capsys.readouterr().err
    )
    assert _prepare(rev, met, out, "--skip-bad-lines") == 0
    assert "skipped        0 bad review lines and 1 bad meta lines" in capsys.readouterr().out


@pytest.mark.parametrize("which", ["reviews", "meta"])
def test_prepare_truncated_gzip_keeps_previous_output(tmp_path: Path, capsys, which: str) -> None:
    rev, met = _store(tmp_path)
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    many_reviews = [
        json.dumps(review(f"U{u}", f"I{d}", d)).encode() + b"\n"
        for u in range(80)
        for d in range(6)
    ]
    many_meta = [
        json.dumps(meta(f"I{d}") | {"pad": "x" * 300 + str(d)}).encode() + b"\n" for d in range(400)
    ]
    if which == "reviews":
        target, lines = tmp_path / "Office_Products.json.gz", many_reviews
        rev = target
    else:
        target, lines = tmp_path / "meta_Office_Products.json.gz", many_meta
        met = target
        rev = write_lines(
            tmp_path / "Office_Products.json.gz", [review("U1", f"I{d}", d) for d in range(5)]
        )
    complete = _truncated_gzip(target, lines)
    for extra in ((), ("--skip-bad-lines",)):
        assert _prepare(rev, met, out, *extra) == 2
        err = capsys.readouterr().err
        assert f"{target}:{complete + 1}: field '<file>'" in err
        assert f"after line {complete} (the last complete line)" in err
        assert out.read_text() == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_prepare_missing_input_and_same_output(tmp_path: Path, capsys) -> None:
    rev, met = _store(tmp_path)
    assert _prepare(tmp_path / "nope.json.gz", met, tmp_path / "o.jsonl") == 2
    assert "--reviews file" in capsys.readouterr().err
    assert _prepare(rev, met, rev) == 2
    assert "is the --reviews file" in capsys.readouterr().err
    assert rev.exists() and gzip.decompress(rev.read_bytes())
