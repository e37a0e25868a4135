"""scripts/text_repetition.py: the looping share of a cell's scored texts, beside its references."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.published import copy_published, edit_covering_tracks
from tests.scripts import load_script


@pytest.fixture(scope="module")
def rep():
    return load_script("scripts/text_repetition.py")


def test_a_repeated_bigram_or_few_distinct_words_is_a_loop(rep):
    assert rep.is_looping(
        "buys a desk organizer and buys a desk organizer and buys a desk "
        "organizer and buys a desk organizer"
    )
    assert not rep.is_looping("buys a desk organizer and buys a desk organizer and buys a desk")
    assert rep.is_looping("A: A: A: A:")  # 2-gram (A:, A:) three times, 1 of 4 words distinct
    assert rep.is_looping("")
    assert not rep.is_looping("A practical buyer of black pens and sturdy binders.")
    assert rep.distinct_2("a b a b") == pytest.approx(2 / 3)
    assert rep.distinct_2("one") == 1.0


def test_table_counts_only_scored_texts_and_shows_the_references(rep, tmp_path, capsys):
    """A published cell whose texts are replaced (hash and signature redone): one scored text
    loops, the others do not; the users the model trained on stay out of both columns."""
    path = copy_published("narrative", "lumen__user_summary", tmp_path)
    loop = "the pen the pen the pen the pen the pen"  # 10 words, 2 of 9 bigrams distinct
    scored: list[int] = []

    def replace(rows):
        for i, row in enumerate(rows):
            if row["generated"] is None:
                row["reference"] = loop  # not scored: must not count as a looping reference
                continue
            first = not scored
            scored.append(i)
            row["generated"] = loop if first else "Likes black folders for the office."
            row["reference"] = "A tidy student who buys pens." if first else "Buys folders."

    edit_covering_tracks(path, samples=replace)
    assert rep.main([str(path)]) == 0
    n = len(scored)
    assert 100 < n < 5000  # the held-out users only
    out = capsys.readouterr().out.splitlines()
    assert out[2] == (
        f"| {tmp_path.name}/lumen__user_summary | {n} | {(10 + 6 * (n - 1)) / n:.1f} / "
        f"{(6 + 2 * (n - 1)) / n:.1f} | {(2 / 9 + n - 1) / n:.3f} / 1.000 "
        f"| {100 / n:.1f} / 0.0 |"
    )


def test_an_edited_samples_file_is_refused_by_name(rep, tmp_path, capsys):
    """Texts changed without redoing the hash: the figures would not be the published ones."""
    path = copy_published("narrative", "lumen__purchase_reason", tmp_path)
    samples = tmp_path / "lumen__purchase_reason.samples.jsonl"
    samples.write_text(samples.read_text().replace('"generated": "', '"generated": "x ', 1))
    assert rep.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{samples}: sha256 differs from the result file's samples_sha256" in err


def test_a_ranking_only_result_is_refused_by_name(rep, tmp_path, capsys):
    path = copy_published("sequential", "popularity", tmp_path)
    assert rep.main([str(path)]) == 1
    assert f"{path}: a ranking-only result (no narrative type)" in capsys.readouterr().err


def test_the_rows_quoted_in_docs_are_what_the_script_prints(rep):
    """docs/reproduce.md quotes the script's rows over the published cells, exactly."""
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "reproduce.md").read_text(encoding="utf-8")
    quoted = [
        line
        for line in doc.splitlines()
        if line.startswith("| conversational/lumen__") or line.startswith("| narrative/lumen__")
    ]
    assert quoted, "docs/reproduce.md no longer quotes the repetition table"
    cells = [root / "submissions" / "mini" / line.split()[1] for line in quoted]
    printed = rep.table([c.with_suffix(".json") for c in cells])[2:]
    assert quoted == printed
