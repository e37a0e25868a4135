"""``run --fit-cache``: a ranking model trained once per ranking twin, with the numbers of
training anew (samples byte for byte), found only by the exact settings of its fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.reproduce import FITS_DIR
from regen_bench.results import load_result
from tests.conftest import make_record
from tests.test_conversational import ScriptedBackend, scripted  # noqa: F401 - fixture
from tests.test_flare import tiny, tiny_encoder  # noqa: F401 - fixture

pytest.importorskip("torch")

NARRATIVE = "purchase_reason"
#: Small but real training: dropout and batch shuffling draw from the global generators.
SASREC = ("epochs=3", "hidden=8", "dropout=0.3")


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    records = [
        make_record(
            f"U{u:02d}",
            [f"B{(u + k * 3) % 9:02d}" for k in range(5)],
            {2: "Something cheaper, please"} if u % 2 else None,
            purchase_reason=f"I bought it for my desk {u}.",
        )
        for u in range(16)
    ]
    path = tmp_path / "toy.jsonl"
    write_records(records, path)
    return path


def _run(
    toy: Path,
    out: Path,
    task: str,
    *options: str,
    cache: Path | None = None,
    seed: int = 0,
    model: str = "sasrec",
) -> tuple[dict[str, Any], bytes]:
    args = ["run", "--model", model, "--task", task, "--dataset", str(toy)]
    args += ["--output", str(out), "-q", "--threads", "1", "--seed", str(seed)]
    args += ["--embedder", "none", "--bertscore-model", "none"]
    if task in ("narrative", "conversational"):
        args += ["--narrative", NARRATIVE, "--set", "narrator.backend=scripted"]
    for kv in options:
        args += ["--set", kv]
    if cache is not None:
        args += ["--fit-cache", str(cache)]
    assert main(args) == 0
    stem = model + (f"__{NARRATIVE}" if task in ("narrative", "conversational") else "")
    folder = out / "toy" / task
    return json.loads((folder / f"{stem}.json").read_text()), (
        folder / f"{stem}.samples.jsonl"
    ).read_bytes()


def test_the_narrating_twin_reuses_the_fit_with_the_numbers_of_training_anew(
    toy: Path,
    tmp_path: Path,
    scripted: type[ScriptedBackend],  # noqa: F811 - fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "fits"
    first, _ = _run(toy, tmp_path / "a", "critique", *SASREC, cache=cache)
    assert "fit_reused" not in first
    entries = sorted(cache.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("sasrec-")
    # The model's own checkpoint (safetensors + JSON) and the fit record: nothing to unpickle.
    assert {p.name for p in entries[0].iterdir()} == {"model", "fit.json"}
    assert (entries[0] / "model" / "model.safetensors").is_file()
    assert "fit cache: kept" in capsys.readouterr().err

    reused, reused_samples = _run(toy, tmp_path / "b", "conversational", *SASREC, cache=cache)
    assert "fit cache: reused" in capsys.readouterr().err
    fresh, fresh_samples = _run(toy, tmp_path / "c", "conversational", *SASREC)
    # Ranks, narratives and every metric as if trained anew; the result says where it came from.
    assert reused_samples == fresh_samples
    assert reused["metrics"] == fresh["metrics"] and reused["signature"] == fresh["signature"]
    assert reused["fit_log"] == first["fit_log"]  # the stored log, its timings included

    def untimed(log: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in log.items() if "_s" not in k}  # prepare_s, train_s_per_epoch

    assert untimed(fresh["fit_log"]) == untimed(first["fit_log"])
    assert reused["fit_reused"]["file"] == entries[0].name
    assert reused["fit_reused"]["fit_s"] == first["timings"]["fit_s"] == reused["timings"]["fit_s"]
    assert "fit_reused" not in fresh
    assert load_result(tmp_path / "b" / "toy" / "conversational" / f"sasrec__{NARRATIVE}.json")
    # The ranking twin's metrics too: the same fit, the same test users.
    assert {k: v for k, v in reused["metrics"].items() if k in first["metrics"]} == first["metrics"]
    assert sorted(cache.iterdir()) == entries  # nothing new was kept


def test_other_settings_or_inputs_never_reuse_a_fit(toy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "fits"
    _run(toy, tmp_path / "a", "critique", *SASREC, cache=cache)
    # Another seed, other options, the history alone (no critiques): each trains its own.
    _run(toy, tmp_path / "b", "critique", *SASREC, cache=cache, seed=1)
    _run(toy, tmp_path / "c", "critique", *SASREC, "hidden=16", cache=cache)
    plain, plain_samples = _run(toy, tmp_path / "d", "sequential", *SASREC, cache=cache)
    assert "fit_reused" not in plain
    assert len(list(cache.iterdir())) == 4
    again, again_samples = _run(toy, tmp_path / "e", "sequential", *SASREC, cache=cache)
    assert again["fit_reused"] and again_samples == plain_samples


def test_an_unreadable_or_foreign_entry_is_trained_anew_and_replaced(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "fits"
    _, samples = _run(toy, tmp_path / "a", "sequential", *SASREC, cache=cache)
    (entry,) = cache.iterdir()
    record = json.loads((entry / "fit.json").read_text())
    (entry / "fit.json").write_text("{not json")
    result, again = _run(toy, tmp_path / "b", "sequential", *SASREC, cache=cache)
    assert "cannot be used" in capsys.readouterr().err
    assert "fit_reused" not in result and again == samples
    assert json.loads((entry / "fit.json").read_text())["fields"] == record["fields"]  # replaced
    # An entry whose recorded settings differ from its name's (a copied folder) is not trusted.
    record["fields"]["seed"] = 7
    (entry / "fit.json").write_text(json.dumps(record))
    result, _ = _run(toy, tmp_path / "c", "sequential", *SASREC, cache=cache)
    assert "made with other settings" in capsys.readouterr().err
    assert "fit_reused" not in result
    # Weights that do not fit the model: retrained, not half-loaded.
    (entry / "model" / "model.safetensors").write_bytes(b"broken")
    result, again = _run(toy, tmp_path / "d", "sequential", *SASREC, cache=cache)
    assert "cannot be used" in capsys.readouterr().err
    assert "fit_reused" not in result and again == samples


def test_a_model_without_checkpoints_is_trained_and_not_kept(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result, _ = _run(toy, tmp_path / "a", "sequential", cache=tmp_path / "fits", model="popularity")
    assert "has no checkpoints" in capsys.readouterr().err
    assert result["metrics"] and not (tmp_path / "fits").exists()


def test_reproduce_gives_every_run_cell_the_grid_fit_cache(tmp_path: Path) -> None:
    args = ["reproduce", "--dataset", "mini", "--models", "popularity", "--tasks", "sequential"]
    args += ["--dry-run", "--out", str(tmp_path / "r")]
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(args) == 0
    assert f"--fit-cache {tmp_path / 'r' / 'mini' / FITS_DIR}" in text.getvalue()


def test_flare_with_its_text_encoder_is_kept_and_reused_exactly(
    toy: Path,
    tmp_path: Path,
    tiny_encoder: str,  # noqa: F811 - fixture
    scripted: type[ScriptedBackend],  # noqa: F811 - fixture
) -> None:
    options = [f"{k}={v}" for k, v in tiny(tiny_encoder, dropout=0.2).items()]
    cache = tmp_path / "fits"
    _run(toy, tmp_path / "a", "critique", *options, cache=cache, model="flare")
    reused, reused_samples = _run(
        toy, tmp_path / "b", "conversational", *options, cache=cache, model="flare"
    )
    fresh, fresh_samples = _run(toy, tmp_path / "c", "conversational", *options, model="flare")
    assert reused["fit_reused"] and "fit_reused" not in fresh
    assert reused_samples == fresh_samples and reused["metrics"] == fresh["metrics"]
