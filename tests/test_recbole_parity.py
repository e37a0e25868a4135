"""The pure parts of benchmarks/recbole_parity.py (RecBole itself never runs in the tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from regen_bench.data.recbole import import_recbole
from tests.test_recbole_import import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:  # benchmarks/ is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def parity() -> ModuleType:
    return _load("recbole_parity")


def test_config_is_recboles_loo_full_ranking(parity: ModuleType) -> None:
    config = parity.recbole_config("SASRec", seed=3, quick=False)
    assert config["eval_args"] == {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    }
    assert config["train_neg_sample_args"] is None and config["seed"] == 3
    assert "epochs" not in config  # RecBole's default number of epochs
    assert parity.recbole_config("SASRec", seed=3, quick=True)["epochs"] == parity.QUICK_EPOCHS
    config["eval_args"]["order"] = "RO"  # a copy: the shared defaults are not changed
    assert parity.PARITY_CONFIG["eval_args"]["order"] == "TO"


def test_cache_key_covers_every_field(parity: ModuleType) -> None:
    base = {
        "recbole_version": "1.2.1",
        "model": "SASRec",
        "config": parity.recbole_config("SASRec", seed=0, quick=False),
        "data": "ab" * 32,
        "seed": 0,
        "threads": 1,
    }
    key = parity.cache_key(**base)
    assert key == parity.cache_key(**base)
    changed = [
        {"recbole_version": "1.2.2"},
        {"model": "BERT4Rec"},
        {"config": parity.recbole_config("SASRec", seed=0, quick=True)},
        {"data": "cd" * 32},
        {"seed": 1},
        {"threads": 2},
    ]
    assert len({key, *(parity.cache_key(**(base | c)) for c in changed)}) == 1 + len(changed)


def test_digest_matches_the_runners(parity: ModuleType) -> None:
    runner = _load("recbole_runner")  # imports nothing of RecBole at module level
    seqs = {"u2": ["a", "b"], "u10": ["c"]}
    assert parity.sequences_digest(seqs) == runner.sequences_digest(seqs)


def test_harness_view_and_comparison(parity: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "toy.jsonl"
    import_recbole(write_dataset(tmp_path), out)
    view = parity.harness_view(out)
    assert (view["users"], view["items"], view["interactions"]) == (3, 4, 8)
    assert view["test_targets"] == {"u1": "i2", "u2": "i4"}  # u3 has one rating: not split
    assert view["valid_targets"] == {"u1": "i4", "u2": "i1"}
    assert parity.compare_data(view, view) == []
    other = json.loads(json.dumps(view))
    other["test_targets"]["u1"] = "i4"
    other["items"] = 5
    other["sequences_sha256"] = "0"
    problems = parity.compare_data(other, view)
    assert problems == [
        "items: RecBole 5, harness 4",
        "the users' ordered sequences differ",
        "test_targets: 1 users differ, e.g. ['u1']",
    ]


def test_mrr_at_k_is_truncated_and_pessimistic(parity: ModuleType, tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    rows = [{"greater": 0, "ties": 0}, {"greater": 1, "ties": 2}, {"greater": 10, "ties": 0}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert parity.mrr_at_k(samples) == pytest.approx((1 + 1 / 4 + 0) / 3)


def test_sides_and_table(parity: ModuleType, tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"greater": 1, "ties": 0}) + "\n")
    ours = parity.ours_side(
        {
            "metrics": {"ndcg@10": 0.5, "recall@10": 1.0, "mrr": 0.5},
            "timings": {"fit_s": 12.0},
            "fit_log": {"epochs": 7},
        },
        samples,
    )
    cached = {
        "result": {
            "recbole_version": "1.2.1",
            "test": {"ndcg@10": 0.06, "recall@10": 0.13, "mrr@10": 0.04},
            "fit_s": 2450.0,
            "epochs": 40,
        }
    }
    theirs = parity.recbole_side(cached, "cached 2026-01-01 00:00 UTC")
    lines = parity.table([("sasrec", theirs), ("sasrec", ours)])
    assert lines[0].split()[:3] == ["model", "implementation", "NDCG@10"]
    assert "RecBole 1.2.1" in lines[1] and "0.0600" in lines[1] and "cached 2026" in lines[1]
    assert "regen-bench" in lines[2] and "0.5000" in lines[2] and lines[2].split()[-1] == "12.0"


def test_unknown_model_is_a_usage_error(parity: ModuleType) -> None:
    with pytest.raises(SystemExit):
        parity.parse_args(["--models", "sasrec,gru4rec"])
    args = parity.parse_args(["--models", "bert4rec", "--quick", "--threads", "2"])
    assert (args.models, args.quick, args.threads, args.seed) == (["bert4rec"], True, 2, 0)
