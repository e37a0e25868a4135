"""``benchmarks/clothing_scale.py`` on a tiny scale: every phase measured, the table printed,
and a second run resumes (nothing measured again)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "clothing_scale.py"


def _bench(work: Path, *extra: str) -> str:
    cmd = [sys.executable, str(SCRIPT), "--work", str(work), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_tiny_scale_end_to_end_and_resume(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    # 1/2048 of Clothing: 571 users, 184 items; 1/1024: 1,141 and 368
    args = ("--scales", "2048,1024", "--models", "popularity,sasrec", "--threads", "1")
    out = _bench(tmp_path, *args, "--max-steps", "2", "--valid-users", "20")
    cells = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json")}
    assert set(cells) == {
        f"{d}-{name}" for d in (2048, 1024) for name in ("synth", "load", "popularity", "sasrec")
    }
    assert cells["2048-load"]["users"] == 571 and cells["2048-load"]["items"] == 184
    sasrec = cells["1024-sasrec"]
    assert sasrec["fit_log"]["steps"] == 2 and sasrec["fit_log"]["valid_users"] == 20
    assert sasrec["peak_rss_gib"] > 0 and sasrec["test_examples"] > 0
    assert "max_steps=2" in sasrec["command"]
    assert "| 1/1024 | sasrec |" in out and "| sasrec | evaluate |" in out
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*.json")}
    again = _bench(tmp_path, *args)  # resumes: every cell is there already
    assert again == out
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cells").glob("*.json")}
    # A cell run with more torch threads says so in its row.
    path = tmp_path / "cells" / "1024-sasrec.json"
    cell = json.loads(path.read_text())
    cell["command"] = cell["command"].replace("--threads 1", "--threads 2")
    path.write_text(json.dumps(cell))
    shown = _bench(tmp_path, "--table")
    assert "| 1/1024 | sasrec (2 threads) |" in shown and "| 1/2048 | sasrec |" in shown


def test_bad_scales_are_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(tmp_path), "--scales", "4,x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "--scales" in proc.stderr
    assert not (tmp_path / "cells").exists()
