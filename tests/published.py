"""Copies of the published ``mini`` cells, and edits of them that cover their tracks.

Tests that need a real, valid result file take one of ``submissions/mini`` rather than
building a minimal fake, so the file goes through every check the leaderboard applies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regen_bench.results import Result, recompute_lexical, signature

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions" / "mini"
Samples = list[dict[str, Any]]


def copy_published(task: str, name: str, dest: Path) -> Path:
    """``submissions/mini/TASK/NAME.json`` and its samples copied into ``dest``; the copy's path.

    Skips the test when the cell is not published.
    """
    src = SUBMISSIONS / task / f"{name}.json"
    if not src.is_file():
        pytest.skip(f"{src} is not published")
    shutil.copy(SUBMISSIONS / task / f"{name}.samples.jsonl", dest)
    return Path(shutil.copy(src, dest))


def edit_covering_tracks(
    path: Path,
    samples: Callable[[Samples], None] | None = None,
    result: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Edit the samples and/or the result, then redo the hash and the signature, as someone
    covering their tracks would; edited texts get their BLEU and ROUGE recomputed too."""
    raw = json.loads(path.read_text())
    if samples is not None:
        file = path.parent / raw["samples_file"]
        rows = [json.loads(line) for line in file.read_text().splitlines()]
        samples(rows)
        if raw.get("narration"):
            raw["metrics"].update(recompute_lexical(file, rows))
        data = "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in rows)
        file.write_text(data)
        raw["samples_sha256"] = hashlib.sha256(data.encode()).hexdigest()
    if result is not None:
        result(raw)
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))
