"""The dataset profile: hand-counted statistics, the docs' `mini` column, `data info --profile`."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import pytest

from regen_bench.cli import main
from regen_bench.data.dataset import Dataset
from regen_bench.data.placeholders import effective_placeholders
from regen_bench.data.profile import MISSING, Profile, profile
from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import Interaction, Item, Narratives, UserRecord
from regen_bench.resolve import resolve_dataset

ROOT = Path(__file__).resolve().parents[1]
DOC_NAME = "docs/data-format.md"
DOC = ROOT / DOC_NAME
SECTION = "## The embedded `mini` and how it compares with REGEN"
HEADER = "| statistic | REGEN Office | mini |"


def _record(
    user_id: str,
    purchases: Sequence[tuple[str, tuple[str, ...], str, float, str | None]],
    **narratives: str | None,
) -> UserRecord:
    """A user from (asin, category path, review text, rating, critique) per purchase."""
    items = {a: Item(asin=a, title=f"Item {a}", categories=cats) for a, cats, *_ in purchases}
    interactions = [
        Interaction(item_id=a, timestamp=1_500_000_000 + i, rating=r, text=text, critique=critique)
        for i, (a, _, text, r, critique) in enumerate(purchases)
    ]
    return UserRecord(user_id, interactions, items, Narratives(**narratives))


def _two_users() -> list[UserRecord]:
    pens = ("Office", "Pens")
    return [
        _record(
            "u1",
            [
                # A critique on the first purchase follows no pair: not counted anywhere.
                ("A", pens, "good pen", 5.0, "a first purchase critique"),
                ("B", (*pens, "Gel"), "", 4.0, "in blue please"),
                ("A", pens, "very nice paper here", 3.0, None),
            ],
            purchase_reason="a b c d",
            purchase_explanation="x y",
            product_endorsement="great",
            user_summary_long="one two three",
        ),
        _record(
            "u2",
            [("C", (), "ok", 2.0, None)],  # one purchase: no pair; no category path: depth 0
            purchase_reason="needed it",
            user_summary_long="   ",  # blank: not a narrative
        ),
    ]


def test_profile_of_hand_built_records() -> None:
    p = profile(iter(_two_users()))  # a one-pass iterator is enough
    assert p == Profile(
        users=2.0,
        items=3.0,  # A, B, C: A bought twice
        purchases_per_user=2.0,  # 4 purchases / 2 users
        critique_coverage=0.5,  # pairs (A,B), (B,A): one critiqued; u2 has none
        category_depth=1.75,  # (2 + 3 + 2 + 0) / 4
        review_words=1.75,  # (2 + 0 + 4 + 1) / 4
        critique_words=3.0,  # "in blue please" only
        reason_words=3.0,  # (4 + 2) / 2
        explanation_words=2.0,  # u1 only
        endorsement_words=1.0,  # u1 only
        long_summary_words=3.0,  # u2's blank one left out
        rating=3.5,  # (5 + 4 + 3 + 2) / 4
    )
    assert p.rows() == [
        ("users", "2"),
        ("items", "3"),
        ("purchases per user", "2.00"),
        ("critique coverage", "50.0%"),
        ("category depth", "1.75"),
        ("words per review", "1.8"),
        ("words per critique", "3.0"),
        ("words per purchase reason", "3.0"),
        ("words per purchase explanation", "2.0"),
        ("words per product endorsement", "1.0"),
        ("words per long user summary", "3.0"),
        ("mean rating", "3.50"),
    ]


def test_coverage_is_the_datasets() -> None:
    records = _two_users()
    assert (
        profile(records).critique_coverage == Dataset.from_records("x", records).critique_coverage()
    )


def test_users_with_one_purchase_have_no_pairs() -> None:
    records = [_record(f"u{i}", [("A", (), "fine", 4.0, "a critique")]) for i in range(3)]
    p = profile(records)
    assert (p.users, p.purchases_per_user, p.critique_coverage) == (3.0, 1.0, 0.0)
    assert math.isnan(p.critique_words) and math.isnan(p.reason_words)
    rows = dict(p.rows())
    assert rows["critique coverage"] == "0.0%"
    assert rows["words per critique"] == rows["words per purchase reason"] == MISSING
    assert Dataset.from_records("x", records).critique_coverage() == 0.0


def test_no_records() -> None:
    p = profile([])
    assert (p.users, p.items, p.critique_coverage) == (0.0, 0.0, 0.0)
    assert dict(p.rows())["purchases per user"] == MISSING


def test_placeholders_are_no_critiques_as_the_dataset_reads_them(tmp_path: Path) -> None:
    """Placeholders are dropped by the read, with the list the dataset uses, as in the loader."""
    path = tmp_path / "p.jsonl"
    critiques = [None, "N/A", "  ", "<<none>>", "black ink, please", "<<none>>", "no critique"]
    purchases = [(f"I{i}", ("Office",), "r", 4.0, c) for i, c in enumerate(critiques)]
    write_records([_record("u1", purchases), _record("u2", purchases[:1])], path)

    default = profile(iter_records(path))
    ds = Dataset.from_file(path, cache=False)
    # "N/A", blank and "no critique" are default placeholders; "<<none>>" is not.
    assert default.critique_coverage == ds.critique_coverage() == 3 / 6
    assert default.critique_words == (1 + 3 + 1) / 3

    declared = effective_placeholders(["<<none>>"])
    own = profile(iter_records(path, critique_placeholders=declared))
    ds = Dataset.from_file(path, cache=False, critique_placeholders=["<<none>>"])
    assert own.critique_coverage == ds.critique_coverage() == 1 / 6
    assert own.critique_words == 3.0


def test_rows_name_every_statistic_once() -> None:
    rows = profile(_two_users()).rows()
    assert len(rows) == len(fields(Profile))
    assert len({name for name, _ in rows}) == len(rows)


# --- the docs' `mini` column is what the shipped mini measures -----------------------------------


def _docs_table(text: str) -> list[tuple[int, str, str]]:
    """(line, statistic, mini value) of each row of the docs section's table."""
    lines = text.splitlines()
    assert SECTION in lines, f"{DOC_NAME}: no section {SECTION!r}"
    start = lines.index(SECTION)
    rows = []
    in_table = False
    for n, line in enumerate(lines[start + 1 :], start=start + 2):
        if line.startswith("## "):
            break
        if line.strip() == HEADER:
            in_table = True
            continue
        if in_table and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set(cells[0]) <= {"-", ":"}:
                continue
            assert len(cells) == 3, f"{DOC_NAME}:{n}: expected 3 cells, got {line!r}"
            rows.append((n, cells[0], cells[2]))
        elif in_table:
            break
    assert rows, f"{DOC_NAME}: no table `{HEADER}` under {SECTION!r}"
    return rows


def _drift(docs: list[tuple[int, str, str]], measured: list[tuple[str, str]]) -> list[str]:
    """What differs between the docs' rows and the measured ones, one line each."""
    problems = []
    documented = {name: (n, value) for n, name, value in docs}
    for name, value in measured:
        if name not in documented:
            problems.append(f"{DOC_NAME}: no row for '{name}' (measured: {value})")
            continue
        n, doc_value = documented.pop(name)
        if doc_value != value:
            problems.append(
                f"{DOC_NAME}:{n}: '{name}': the docs say {doc_value}, "
                f"the shipped mini measures {value}"
            )
    problems += [f"{DOC_NAME}:{n}: '{name}' is no statistic" for name, (n, _) in documented.items()]
    if not problems and [name for _, name, _ in docs] != [name for name, _ in measured]:
        problems.append(f"{DOC_NAME}: rows not in the order of Profile.rows()")
    return problems


@pytest.fixture(scope="module")
def mini_rows() -> list[tuple[str, str]]:
    ds = resolve_dataset("mini")
    records = iter_records(ds.source, critique_placeholders=ds.critique_placeholders)
    p = profile(records)
    # The profile's counts are the loaded dataset's.
    assert p.users == len(ds.users) and p.items == len(ds.catalog)
    assert p.critique_coverage == ds.critique_coverage()
    return p.rows()


def test_the_docs_mini_column_is_the_shipped_mini(mini_rows: list[tuple[str, str]]) -> None:
    problems = _drift(_docs_table(DOC.read_text()), mini_rows)
    assert not problems, "\n".join(
        [
            *problems,
            "(regenerated mini? update the table from `regen-bench data info mini --profile`)",
        ]
    )


def test_a_drifted_table_is_reported(mini_rows: list[tuple[str, str]]) -> None:
    def table(rows: list[tuple[str, str]]) -> str:
        body = [f"| {name} | not published | {value} |" for name, value in rows]
        return "\n".join(["# Doc", SECTION, "", HEADER, "|---|---|---|", *body, "", "## Next"])

    assert _drift(_docs_table(table(mini_rows)), mini_rows) == []
    name, value = mini_rows[3]
    edited = [*mini_rows[:3], (name, "99.9%"), *mini_rows[4:]]
    assert _drift(_docs_table(table(edited)), mini_rows) == [
        f"{DOC_NAME}:9: '{name}': the docs say 99.9%, the shipped mini measures {value}"
    ]
    last, measured = mini_rows[-1]
    assert _drift(_docs_table(table(mini_rows[:-1])), mini_rows) == [
        f"{DOC_NAME}: no row for '{last}' (measured: {measured})"
    ]
    swapped = [mini_rows[1], mini_rows[0], *mini_rows[2:]]
    assert _drift(_docs_table(table(swapped)), mini_rows) == [
        f"{DOC_NAME}: rows not in the order of Profile.rows()"
    ]


def test_data_info_prints_the_profile(
    mini_rows: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "info", "mini", "--profile"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dataset        mini")
    block = out[out.index("profile") + 1 :]
    parsed = [re.fullmatch(r"  (\S.*?) {2,}(\S+)", line) for line in block]
    assert all(parsed), block
    assert [(m[1], m[2]) for m in parsed if m] == mini_rows
    assert main(["data", "info", "mini"]) == 0
    assert "profile" not in capsys.readouterr().out.splitlines()
