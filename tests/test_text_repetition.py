"""scripts/text_repetition.py: the looping share of a cell's scored texts, beside its references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def rep():
    return load_script("scripts/text_repetition.py")


def _cell(root: Path, name: str, rows: list[dict]) -> Path:
    path = root / "narrative" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = f"{name}.samples.jsonl"
    (path.parent / samples).write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.write_text(json.dumps({"samples_file": samples}))
    return path


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
    loop = "the pen the pen the pen the pen the pen"
    rows = [
        {"generated": loop, "reference": "A tidy student who buys pens."},
        {"generated": "Likes black folders for the office.", "reference": "Buys folders."},
        {"generated": None, "reference": loop},  # not scored: left out of both columns
    ]
    path = _cell(tmp_path, "lumen__user_summary", rows)
    assert rep.main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == (
        "| narrative/lumen__user_summary | 2 | 8.0 / 4.0 | 0.611 / 1.000 | 50.0 / 0.0 |"
    )


def test_a_bad_samples_line_is_named_not_a_traceback(rep, tmp_path, capsys):
    path = _cell(tmp_path, "flare__purchase_reason", [{"generated": "ok", "reference": "ok"}])
    samples = path.parent / "flare__purchase_reason.samples.jsonl"
    samples.write_text(samples.read_text() + '{"generated": "no reference"}\n')
    assert rep.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{samples}:2: not a sample row" in err and "reference" in err


def test_a_ranking_only_result_is_refused_by_name(rep, tmp_path, capsys):
    path = tmp_path / "sasrec.json"
    path.write_text(json.dumps({"metrics": {}}))
    assert rep.main([str(path)]) == 1
    assert f"{path}: no samples_file" in capsys.readouterr().err


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
