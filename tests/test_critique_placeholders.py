"""Critique placeholders: the release's "no critique" sentinel is never read as a critique.

The files here have the REGEN release layout (docs/data-format.md): every purchase pair that
got no critique holds a placeholder string instead of null, as the paper says the release does.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from regen_bench import hookimpl
from regen_bench.cli import main
from regen_bench.data import placeholders
from regen_bench.data.dataset import Dataset
from regen_bench.data.regen import ReadReport, iter_records
from regen_bench.data.store_cache import cache_root
from regen_bench.plugins import PluginManager
from regen_bench.resolve import resolve_dataset
from regen_bench.results import load_result
from regen_bench.tasks import build_task

MINI_FINGERPRINT = "7d986a1bf5cc05242802de98b7bb00e85a9de0abda4c53d4034b9066683dadd7"
USERS, PURCHASES = 50, 5  # 50 users x 4 adjacent pairs = 200 pairs
PAIRS = USERS * (PURCHASES - 1)


def _is_critiqued(user: int, pos: int) -> bool:
    """Which pairs carry a real critique: one in five (40 of 200), the user's last pair for
    every fifth user."""
    return (user * (PURCHASES - 1) + pos - 1) % 5 == 0


#: Real critiques per user, by position (pos >= 1).
TRUE_CRITIQUES = {u: {p for p in range(1, PURCHASES) if _is_critiqued(u, p)} for u in range(USERS)}
N_CRITIQUED = sum(len(ps) for ps in TRUE_CRITIQUES.values())


def _write_release(path: Path, sentinel: str | list[str]) -> Path:
    """A REGEN-shaped file whose non-critiqued purchases (first ones included) hold
    ``sentinel`` (a list: cycled through, as spelling variants)."""
    variants = [sentinel] if isinstance(sentinel, str) else sentinel
    lines, k = [], 0
    for u in range(USERS):
        history = []
        for p in range(PURCHASES):
            asin = f"B{(u * 3 + p * 7) % 40:03d}"
            if p in TRUE_CRITIQUES[u]:
                critique = f"Like {asin} but for user {u}, position {p}, please"
            else:
                critique, k = variants[k % len(variants)], k + 1
            history.append(
                {
                    "item": {
                        "asin": asin,
                        "title": f"Item {asin}",
                        "category": "Office Products - Pens",
                        "description": "",
                        "price": 2.5,
                    },
                    "review": {
                        "summary": "ok",
                        "rating": 4,
                        "text": "fine",
                        "unix_time": 1_400_000_000 + 86400 * p,
                    },
                    "user_critique": critique,
                }
            )
        lines.append(
            json.dumps(
                {
                    "reviewer_id": f"A{u:03d}",
                    "purchase_history": history,
                    "last_purchase": {"reason": "r", "explanation": "e", "endorsement": "x"},
                    "user": {"profile": "p", "brief_summary": "b", "long_summary": "l"},
                    "metadata": {},
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "critique_placeholders" in r.getMessage()]


def test_default_placeholder_is_no_critique(tmp_path: Path, caplog) -> None:
    # Spelling variants of a listed placeholder: case and surrounding spaces do not matter.
    path = _write_release(tmp_path / "office.jsonl", ["N/A", " n/a ", "N/a"])
    ds = Dataset.from_file(path)
    assert ds.critique_coverage() == pytest.approx(N_CRITIQUED / PAIRS) == 0.2
    assert ds.report.critiques == ds.report.critiqued_pairs == N_CRITIQUED
    # 250 purchases less 40 critiques, stripped, each spelling counted as written.
    assert ds.report.placeholder_critiques == {"N/A": 70, "n/a": 70, "N/a": 70}
    for u, user in enumerate(ds.users):
        assert [p for p, c in enumerate(user.critiques) if c is not None] == sorted(
            TRUE_CRITIQUES[u]
        )
    test = build_task(ds, "critique").test
    critiqued = {ex.user_id for ex in test if ex.critique is not None}
    assert critiqued == {f"A{u:03d}" for u in range(USERS) if PURCHASES - 1 in TRUE_CRITIQUES[u]}
    assert len(critiqued) == USERS // 5
    assert not _warnings(caplog)  # nothing left that looks like a sentinel
    # The warm load (from the columnar cache) reads the same.
    warm = Dataset.from_file(path)
    assert warm.store is not None and warm.store.path is not None
    assert warm.critique_coverage() == ds.critique_coverage()
    assert warm.report.placeholder_critiques == ds.report.placeholder_critiques
    assert warm.fingerprint == ds.fingerprint != ds.report.sha256  # critiques differ from file's


def test_run_counts_only_real_critiques(tmp_path: Path, capsys) -> None:
    path = _write_release(tmp_path / "office.jsonl", "None")
    out = tmp_path / "res"
    argv = ["run", "--model", "popularity", "--task", "critique", "--dataset", str(path)]
    assert main([*argv, "--output", str(out), "--threads", "1", "-q"]) == 0
    result_path = out / "office" / "critique" / "popularity.json"
    result = load_result(result_path)
    assert result.dataset.critique_coverage == pytest.approx(0.2)
    assert result.protocol.test_examples == USERS
    assert result.protocol.critiqued_examples == USERS // 5
    samples = [json.loads(x) for x in (result_path.parent / result.samples_file).open()]
    flagged = {s["user_id"] for s in samples if s["has_critique"]}
    assert flagged == {f"A{u:03d}" for u in range(USERS) if PURCHASES - 1 in TRUE_CRITIQUES[u]}


def test_unlisted_sentinel_is_named_with_the_option(tmp_path: Path, caplog, capsys) -> None:
    path = _write_release(tmp_path / "info" / "office.jsonl", "<<none>>")
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "critiques      100.0% of adjacent pairs" in out  # as read: the sentinel counts
    (warning,) = _warnings(caplog)
    assert '"<<none>>"' in warning and "160 of 200 adjacent purchase pairs (80.0%" in warning
    assert f'{{"critique_placeholders": ["<<none>>"]}} to {path}.options.json' in warning

    # A run warns too, once, and still completes.
    caplog.clear()
    run_path = _write_release(tmp_path / "run" / "office.jsonl", "<<none>>")
    argv = ["run", "--model", "popularity", "--task", "critique", "--dataset", str(run_path)]
    assert main([*argv, "--output", str(tmp_path / "res"), "--threads", "1", "-q"]) == 0
    (warning,) = _warnings(caplog)
    assert '"<<none>>"' in warning and "80.0%" in warning


def test_warning_reaches_stderr_of_the_command(tmp_path: Path) -> None:
    """As a new user would see it: one line on stderr, exit status 0."""
    path = _write_release(tmp_path / "office.jsonl", "<<none>>")
    proc = subprocess.run(
        [sys.executable, "-m", "regen_bench", "data", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "warning" in x]
    assert len(lines) == 1 and lines[0].startswith("regen-bench: warning: dataset 'office'")
    assert '"<<none>>"' in lines[0] and "critique_placeholders" in lines[0]


def test_declared_sentinel_is_dropped_and_changes_the_fingerprint(tmp_path: Path, caplog) -> None:
    path = _write_release(tmp_path / "office.jsonl", "<<none>>")
    before = Dataset.from_file(path)
    assert before.fingerprint == before.report.sha256  # nothing dropped: the content's sha256
    assert before.critique_coverage() == 1.0

    options = Path(f"{path}.options.json")
    options.write_text(json.dumps({"critique_placeholders": ["<<NONE>>"]}))
    caplog.clear()
    after = Dataset.from_file(path)
    assert after.critique_coverage() == pytest.approx(0.2)
    assert after.report.placeholder_critiques == {"<<none>>": 210}
    assert "<<NONE>>" in after.critique_placeholders and "N/A" in after.critique_placeholders
    assert after.fingerprint != before.fingerprint
    assert after.report.sha256 == before.report.sha256  # same file, other critiques
    assert not _warnings(caplog)
    # The cache keeps one folder, for the list in use; it is trusted on the next load.
    (folder,) = [p for p in cache_root(path).iterdir() if not p.name.startswith(".")]
    assert folder.name.startswith(f"{after.report.sha256}-p")
    again = Dataset.from_file(path)
    assert again.store is not None and again.store.path == folder
    assert again.fingerprint == after.fingerprint

    # Declared by a dataset plugin instead: the same critiques, the same fingerprint.
    options.unlink()

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register(
                "office-test",
                lambda data_dir=None: placeholders.DatasetFile(
                    path, critique_placeholders=["<<none>>"]
                ),
            )

    pm = PluginManager(strict=True)
    pm.register_plugin(Plugin(), "office-test")
    from_plugin = resolve_dataset("office-test", plugins=pm)
    assert from_plugin.name == "office-test" and from_plugin.source == str(path)
    assert from_plugin.critique_coverage() == pytest.approx(0.2)
    assert from_plugin.fingerprint == after.fingerprint


def test_bad_options_file_is_one_clear_error(tmp_path: Path, capsys) -> None:
    path = _write_release(tmp_path / "office.jsonl", "N/A")
    options = Path(f"{path}.options.json")
    for content, needle in (
        ("{oops", "invalid JSON"),
        ('{"critique_placeholders": "N/A"}', "field 'critique_placeholders': expected a list"),
        ('{"critique_placeholder": []}', "unknown dataset option 'critique_placeholder'"),
    ):
        options.write_text(content)
        assert main(["data", "info", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"regen-bench: error: {options}") and needle in err
        assert len(err.splitlines()) == 1


def test_mini_fingerprint_unchanged_and_no_warning(caplog) -> None:
    ds = resolve_dataset("mini")
    assert ds.fingerprint == MINI_FINGERPRINT
    assert not ds.report.placeholder_critiques and not _warnings(caplog)


def test_frequent_strings_bounded_and_exact_for_the_heavy_hitter() -> None:
    tally = placeholders.FrequentStrings(width=100)
    for i in range(10_000):
        tally.add("<<none>>" if i % 5 else f"unique critique {i}")
    assert tally.most_common(1) == {"<<none>>": 8000}
    assert len(tally.counts) <= 200  # the 2,000 distinct strings were not all kept


def test_iter_records_reports_placeholders(tmp_path: Path) -> None:
    path = _write_release(tmp_path / "office.jsonl", "<<none>>")
    report = ReadReport()
    records = list(iter_records(path, report, critique_placeholders=["<<none>>"]))
    assert sum(i.critique is not None for r in records for i in r.interactions) == N_CRITIQUED
    assert report.placeholder_critiques == {"<<none>>": 210}
    assert report.critique_placeholders == ["<<none>>"]
    assert len(report.frequent_critiques) == placeholders.KEEP_FREQUENT
    assert max(report.frequent_critiques.values()) == 1


@pytest.fixture(autouse=True)
def _capture_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="regen_bench.data.dataset")
