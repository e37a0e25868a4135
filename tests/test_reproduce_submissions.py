"""The published submissions reproduce bit for bit from what their result files record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _script():
    return load_script("benchmarks/reproduce_submissions.py")


def _submissions(model: str) -> list[Path]:
    return sorted((ROOT / "submissions").glob(f"*/*/{model}.json"))  # not <model>.verified.json


@pytest.mark.parametrize("path", _submissions("popularity"), ids=lambda p: str(p.parent.name))
def test_popularity_submissions_reproduce(path: Path, tmp_path: Path) -> None:
    ok, detail = _script().check(path, tmp_path)
    assert ok, detail


def test_a_changed_number_is_caught(tmp_path: Path) -> None:
    [path, *_] = _submissions("popularity")
    forged = tmp_path / "forged.json"
    result = json.loads(path.read_text())
    result["samples_sha256"] = "0" * 64
    forged.write_text(json.dumps(result))
    ok, detail = _script().check(forged, tmp_path / "out")
    assert not ok and "!= published 000000000000" in detail


@pytest.mark.slow
@pytest.mark.parametrize("path", _submissions("sasrec"), ids=lambda p: str(p.parent.name))
def test_sasrec_submissions_reproduce(path: Path, tmp_path: Path) -> None:
    ok, detail = _script().check(path, tmp_path)
    assert ok, detail
