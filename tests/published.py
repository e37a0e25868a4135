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

from regen_bench.metrics.text import ROUGE_TYPES, lexical_metrics
from regen_bench.results import Result, is_scored, signature

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
        scored = [s for s in rows if s["reference"] is not None and is_scored(s)]
        if raw.get("narration") and scored:
            again = lexical_metrics(
                [s["reference"] for s in scored], [s["generated"] for s in scored], progress=False
            ).metrics
            raw["metrics"].update({k: again[k] for k in ("bleu", *ROUGE_TYPES)})
        data = "".join(json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n" for s in rows)
        file.write_text(data)
        raw["samples_sha256"] = hashlib.sha256(data.encode()).hexdigest()
    if result is not None:
        result(raw)
    raw["signature"] = signature(Result.model_validate(raw))
    path.write_text(json.dumps(raw))
