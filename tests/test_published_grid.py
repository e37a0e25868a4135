"""The published ``mini`` grid keeps what Tables 4 and 5 promise: every text column of a
narrative type is scored on the same held-out users (the fine-tuned narrator's and LUMEN's),
ranking on every test user, and the critique helps the hybrid's ranking (the paper's finding).

These read the repository's own submissions; a cell that is not published yet is not checked,
and each test asserts that it found the cells it needs."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from regen_bench.results import load_result

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "submissions" / "mini"
NARRATING = ("narrative", "conversational")


def _cells() -> list[Path]:
    """Published narrating cells (``<task>/<model>__<narrative>.json``)."""
    return sorted(
        p
        for task in NARRATING
        for p in (MINI / task).glob("*__*.json")
        if not p.name.endswith(".verified.json")
    )


def _samples(result_path: Path) -> list[dict[str, object]]:
    lines = result_path.with_suffix(".samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_text_column_of_a_narrative_type_scores_the_same_held_out_users() -> None:
    by_type: dict[str, dict[str, frozenset[str]]] = defaultdict(dict)
    for path in _cells():
        result = load_result(path)
        samples = _samples(path)
        # ranking on every test user, text on the held-out ones only
        assert len(samples) == result.protocol.test_examples == 5000, path
        scored = frozenset(
            str(s["user_id"]) for s in samples if not s.get("text_excluded") and s.get("reference")
        )
        assert result.narration is not None
        assert len(scored) == result.narration.scored, path
        assert 0 < len(scored) < len(samples) // 5, path  # a held-out share, not everyone
        by_type[str(result.task.narrative_type)][path.parent.name + "/" + path.stem] = scored
    assert by_type, "no narrating cell is published"
    for narrative, cells in by_type.items():
        distinct = set(cells.values())
        assert len(distinct) == 1, f"{narrative}: cells score different users: {sorted(cells)}"


def test_the_critique_helps_the_hybrid_rank() -> None:
    pairs = 0
    for with_critique in sorted((MINI / "conversational").glob("flare__*.json")):
        without = MINI / "narrative" / with_critique.name
        if with_critique.name.endswith(".verified.json") or not without.exists():
            continue
        a, b = load_result(with_critique), load_result(without)
        for metric in ("recall@10", "ndcg@10", "mrr"):
            assert a.metrics[metric] > b.metrics[metric], (with_critique.name, metric)
        pairs += 1
    assert pairs >= 1
