"""benchmarks/lumen_gpu.sh runs end to end (accelerate launch, training, result, tokens/s) on
CPU with a tiny random backbone, so the one-step GPU check cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_lumen import backbone_dir  # noqa: F401  (the tiny random backbone fixture)

pytest.importorskip("accelerate")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lumen_gpu.sh"


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_with_a_tiny_backbone(backbone_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    env = {
        **os.environ,
        # The venv's accelerate and python, as a user who activated it would have them.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BACKBONE": str(backbone_dir),
        "DEVICE": "cpu",
        "MIXED": "no",
        "MAX_STEPS": "2",
        "EPOCHS": "1",
        "BATCH": "4",
        "MICRO": "2",
        "LIMIT": "3",
        "EXTRA": "valid_examples=4 max_new_tokens=4 max_history=3 max_prefixes=1",
        "OUT": str(tmp_path / "out"),
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tokens/s (no, cpu)" in proc.stdout
    result = json.loads(
        next(
            (tmp_path / "out").glob("*/conversational/lumen__product_endorsement.json")
        ).read_text()
    )
    log = result["fit_log"]
    assert log["steps"] == 2 and log["train_tokens"] > 0
    assert 0 <= result["metrics"]["recall@10"] <= 1 and "rougeL" in result["metrics"]
    assert (tmp_path / "out" / "lumen-checkpoint" / "lumen.json").is_file()
