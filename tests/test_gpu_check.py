"""benchmarks/gpu_check.sh: the one-run GPU check. Its small mode runs on CPU here (slow test),
so the script a GPU machine runs cannot rot; the sizes and FLOP accounting are checked fast."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
PARTS = ("ranking", "lumen", "sasrec", "flare")

pytest.importorskip("torch")


def _load() -> ModuleType:
    return load_script("benchmarks/gpu_check.py")


def test_peak_table_and_lumen_flops_by_hand() -> None:
    gc = _load()
    assert gc.peak_tflops("NVIDIA H200") == 989.0
    assert gc.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gc.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gc.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gc.peak_tflops("NVIDIA L40S") == 362.0  # not L4's figure
    assert gc.peak_tflops("NVIDIA L4") == 121.0
    assert gc.peak_tflops("Tesla T4") is None
    cfg = gc.gemma_config(gc.Settings().lm)
    # 2 rows x 3 tokens, 5 narrative tokens per row, 7 items, 11 decoder parameters.
    expected = (
        6 * 11 * 6 + 12 * 18 * 8 * 256 * 3 * 6 + 6 * 2048 * 256_000 * 5 * 2 + 6 * 2048 * 7 * 2
    )
    assert gc.lumen_flops(cfg, 11, 7, rows=2, seq=3, text=5) == expected


def test_the_backbone_has_gemma_2b_shape() -> None:
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForCausalLM

    gc = _load()
    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(gc.gemma_config(gc.Settings().lm))
    assert type(model).__name__ == "GemmaForCausalLM"
    # google/gemma-2b: 2,506,172,416 parameters (tied input/output embeddings).
    assert sum(p.numel() for p in model.parameters()) == 2_506_172_416


def test_an_unknown_part_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--parts", "ranking,gpu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown part(s) gpu" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_small_mode_runs_every_part_on_cpu(tmp_path: Path) -> None:
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and timeout")
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHON": sys.executable, "SMALL": "1"}
    args = ["--device", "cpu", "--threads", "1", "--peak-tflops", "0.5", "--out", str(out)]
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(ranking|lumen|sasrec|flare)\s+(\S+)\s+([\d.]+)\s+(.*)", line)
        if m:
            rows[m[1]] = m
    assert set(rows) == set(PARTS), proc.stdout
    for m in rows.values():
        assert m[2] == "ok", m[0]
        assert re.search(r"\d", m[4]), m[0]
    result = json.loads(out.read_text())
    assert result["small"] and result["device"]["device"] == "cpu"
    rank = result["ranking"]
    assert (rank["users"], rank["items"]) == (20_000, 5_000) and rank["users_per_s"] > 0
    # Every user ranked (no cap reached at this size), and the GPU-side code path agrees with
    # the harness's CPU counting and top_k on every checked row.
    assert rank["users_counted"] == rank["users_top10"] == 20_000 and not rank["extrapolated"]
    assert rank["check_rows_matching"] == rank["check_rows"] > 0
    # Random embeddings: the target's mean rank is about half the catalog.
    assert 2_000 < rank["mean_rank"] < 3_000
    lumen = result["lumen"]
    assert lumen["tokens_per_s"] > 0 and lumen["optimizer_steps"] == 2 and lumen["mfu"] > 0
    assert lumen["precision"] == "float32"
    for name, batch in (("sasrec", 128), ("flare", 256)):
        part = result[name]
        assert part["batch"] == batch and part["steps_timed"] > 0 and part["epoch_s"] > 0
        assert part["steps_per_epoch"] == math.ceil(20_000 / batch)
        assert part["epoch_s"] == pytest.approx(part["steps_per_epoch"] / part["steps_per_s"], 0.01)


def _fake_part(name: str) -> dict[str, object]:
    return {"summary": f"{name} 12.5 s"}


def test_a_failing_part_prints_its_error_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    gc = _load()

    def broken(*args: object) -> dict[str, object]:
        raise ValueError("no such kernel\nsecond line")

    monkeypatch.setattr(gc, "part_ranking", lambda *a: _fake_part("ranking"))
    monkeypatch.setattr(gc, "part_sasrec", broken)
    monkeypatch.setattr(gc, "part_flare", lambda *a: _fake_part("flare"))
    out = tmp_path / "r.json"
    code = gc.main(["--device", "cpu", "--parts", "ranking,sasrec,flare", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert re.search(
        r"^sasrec\s+error\s+[\d.]+\s+ValueError: no such kernel \(test_gpu", text, re.M
    )
    assert re.search(r"^flare\s+ok\s+[\d.]+\s+flare 12.5 s$", text, re.M)
    result = json.loads(out.read_text())
    assert [result[p]["status"] for p in ("ranking", "sasrec", "flare")] == ["ok", "error", "ok"]
    assert "lumen" not in result


def test_the_wrappers_timeout_still_prints_the_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import signal

    gc = _load()

    def slow(*args: object) -> dict[str, object]:
        os.kill(os.getpid(), signal.SIGTERM)  # what `timeout` sends at the deadline
        raise AssertionError("SIGTERM should have stopped the part")

    monkeypatch.setattr(gc, "part_ranking", lambda *a: _fake_part("ranking"))
    monkeypatch.setattr(gc, "part_lumen", slow)
    before = signal.getsignal(signal.SIGTERM)
    code = gc.main(["--device", "cpu", "--parts", "ranking,lumen,sasrec"])
    text = capsys.readouterr().out
    assert code == 124
    assert re.search(r"^ranking\s+ok\s", text, re.M)
    assert re.search(r"^lumen\s+timeout\s", text, re.M)
    assert re.search(r"^sasrec\s+skipped\s", text, re.M)
    assert signal.getsignal(signal.SIGTERM) == before  # the handler does not outlive main


def test_full_sizes_are_refused_when_no_gpu_is_visible() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "no CUDA device visible" in proc.stderr and "--small" in proc.stderr
    assert "Traceback" not in proc.stderr and "[ranking]" not in proc.stdout
