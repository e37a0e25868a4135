"""scripts/models_table.py: the README's Models table from result files, refusing mixed data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table():
    return load_script("scripts/models_table.py")


def _write(
    root: Path, task: str, model: str, fingerprint: str, ndcg: float, fit: dict | None = None
) -> None:
    metrics = {"ndcg@10": ndcg, "recall@10": 2 * ndcg, "mrr": ndcg / 2, "critiqued/ndcg@10": 0.5}
    path = root / task / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"metrics": metrics, "dataset": {"fingerprint": fingerprint}, "fit_log": fit or {}}
    path.write_text(json.dumps(result))


def test_rows_in_readme_order_with_four_decimals(table, tmp_path, capsys):
    _write(tmp_path, "critique", "sasrec", "a" * 64, 0.12345)
    _write(tmp_path, "sequential", "sasrec", "a" * 64, 0.1, {"epochs": 50, "best_epoch": 30})
    _write(tmp_path, "sequential", "popularity", "a" * 64, 0.03)
    assert table.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == [
        "| `popularity` | sequential | 0.0300 | 0.0600 | 0.0150 | 0.5000 | – |",
        "| `sasrec` | sequential | 0.1000 | 0.2000 | 0.0500 | 0.5000 | 50 (30) |",
        "| `sasrec` | critique | 0.1235 | 0.2469 | 0.0617 | 0.5000 | – |",
    ]


def test_results_of_two_datasets_are_refused(table, tmp_path, capsys):
    _write(tmp_path, "sequential", "sasrec", "a" * 64, 0.1)
    _write(tmp_path, "critique", "sasrec", "b" * 64, 0.1)
    assert table.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "different datasets" in err and "aaaaaaaaaaaa..." in err and "bbbbbbbbbbbb..." in err


def test_missing_folder_is_one_line(table, tmp_path, capsys):
    assert table.main([str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.startswith("error: no results folder")
