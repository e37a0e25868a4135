"""The plugin author's kit: the example package through real entry points, and the contract
checks of ``regen_bench.testing`` (which must pass for first-party models and catch bad ones)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import regen_bench.plugins
from regen_bench import Model, hookimpl
from regen_bench.cli import main
from regen_bench.plugins import PluginManager, get_plugin_manager
from regen_bench.testing import ContractError, check_model_plugin, tiny_dataset

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "regen-bench-itemknn"


@pytest.fixture
def itemknn_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The example package as pip would expose it: its source plus a dist-info with the
    entry point from its own pyproject.toml (so a stale copy cannot pass)."""
    pyproject = (EXAMPLE / "pyproject.toml").read_text()
    line = next(x for x in pyproject.splitlines() if x.startswith("example-itemknn = "))
    info = tmp_path / "regen_bench_itemknn-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: regen-bench-itemknn\nVersion: 0.1.0\n"
    )
    entry_point = line.replace('"', "")  # TOML string -> entry_points.txt value
    (info / "entry_points.txt").write_text(f"[regen_bench]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REGEN_BENCH_PLUGINS", raising=False)
    monkeypatch.setattr(regen_bench.plugins, "_DEFAULT", None)  # reload with the new path
    yield
    for mod in [m for m in sys.modules if m.startswith("regen_bench_itemknn")]:
        sys.modules.pop(mod)


def test_example_plugin_runs_through_the_cli(
    itemknn_installed: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # as a new user would: install the example, list plugins, run it, validate the result
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["example-itemknn"]["distribution"] == "regen-bench-itemknn"
    assert rows["example-itemknn"]["version"] == "0.1.0"
    assert rows["example-itemknn"]["error"] is None, rows["example-itemknn"]["error"]
    assert rows["example-itemknn"]["registers"] == ["model:example-itemknn"]
    out = tmp_path / "res"
    argv = ["run", "--model", "example-itemknn", "--task", "sequential", "--output", str(out), "-q"]
    assert main([*argv, "--set", "neighbours=20"]) == 0
    result = json.loads((out / "mini/sequential/example-itemknn.json").read_text())
    assert result["model"]["plugin"] == "example-itemknn"
    assert result["model"]["config"] == {"neighbours": 20, "decay": 0.7, "history": 5}
    # The tutorial's few-line item-kNN ranks like a real model (0.0465 Recall@10 on mini), at
    # about the popularity baseline's level (0.0442): the calibrated mini rewards more than
    # co-occurrence with recent purchases (the first-party itemknn: 0.0737, history excluded).
    assert 0.04 < result["metrics"]["recall@10"] < 0.2
    assert main(["validate", str(out / "mini/sequential/example-itemknn.json")]) == 0


def test_example_plugin_honours_the_contracts(itemknn_installed: None) -> None:
    report = check_model_plugin("example-itemknn", config={"neighbours": 20})
    assert report.tasks == ["sequential", "critique"]
    assert report.fit_logs["sequential"]["users"] == 150


def test_popularity_honours_the_contracts() -> None:
    report = check_model_plugin("popularity")
    assert report.checks[0] == "unknown option rejected"
    assert len(report.checks) == 3


SASREC_TINY = {"hidden": 16, "blocks": 1, "max_len": 10, "epochs": 2, "dropout": 0.1}


@pytest.fixture
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster than spin-waiting threads on a shared machine
    yield
    torch.set_num_threads(before)


def test_sasrec_honours_the_contracts(one_thread: None) -> None:
    report = check_model_plugin("sasrec", config=SASREC_TINY, tasks=["sequential"])
    assert report.fit_logs["sequential"]["epochs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("sasrec", SASREC_TINY),
        ("bert4rec", {"hidden": 16, "blocks": 1, "max_len": 10, "epochs": 2}),
        ("flare", {"hidden": 16, "blocks": 1, "max_len": 10, "epochs": 1}),
    ],
)
def test_first_party_models_honour_the_contracts(
    one_thread: None, name: str, config: dict[str, Any]
) -> None:
    if name not in get_plugin_manager().entries["model"]:
        pytest.skip(f"{name} is not registered")
    check_model_plugin(name, config=config)


# -- the checks catch broken models ------------------------------------------------------


class _Base(Model):
    def score(self, examples):  # type: ignore[no-untyped-def]
        return np.tile(np.arange(len(self.catalog), dtype=np.float32), (len(examples), 1))


class WrongShape(_Base):
    def score(self, examples):  # type: ignore[no-untyped-def]
        return np.zeros((len(examples), len(self.catalog) - 1))


class BatchDependent(_Base):
    def score(self, examples):  # type: ignore[no-untyped-def]
        return super().score(examples) * len(examples)


class Unseeded(_Base):
    def fit(self, train, valid):  # type: ignore[no-untyped-def]
        self.noise = np.random.default_rng().random(len(self.catalog))  # ignores the seed
        return {}

    def score(self, examples):  # type: ignore[no-untyped-def]
        return np.tile(self.noise, (len(examples), 1))


class SwallowsOptions(_Base):
    def __init__(self, catalog, *, seed=0, **config):  # type: ignore[no-untyped-def]
        super().__init__(catalog, seed=seed)


class NaNScores(_Base):
    def score(self, examples):  # type: ignore[no-untyped-def]
        return np.full((len(examples), len(self.catalog)), np.nan)


def _manager(
    cls: type, tasks: tuple[str, ...] = ("sequential",), strict: bool = True, **meta: Any
) -> PluginManager:
    class Plugin:
        @hookimpl
        def register_models(self, register):  # type: ignore[no-untyped-def]
            register("bad", cls, tasks=tasks, **meta)

    pm = PluginManager(strict=strict)
    pm.register_plugin(Plugin(), "bad-plugin")
    return pm


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (WrongShape, r"shape \(73, 119\), expected \(73, 120\)"),
        (BatchDependent, "scores depend on the batch"),
        (Unseeded, "two models built and trained with seed 0 give different scores"),
        (SwallowsOptions, "an unknown option was accepted silently"),
        (NaNScores, "returned NaN"),
    ],
)
def test_contract_violations_are_reported(cls: type, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        check_model_plugin("bad", plugins=_manager(cls))


def test_registration_problems_are_reported() -> None:
    with pytest.raises(ContractError, match="model 'nope' is not registered"):
        check_model_plugin("nope", plugins=_manager(_Base))
    with pytest.raises(ContractError, match=r"unknown task\(s\) \['ranking'\]"):
        # the manager refuses the registration; the kit reports the plugin's error
        check_model_plugin("bad", plugins=_manager(_Base, tasks=("ranking",), strict=False))
    with pytest.raises(ContractError, match="names no task"):
        check_model_plugin("bad", plugins=_manager(_Base, tasks=()))
    with pytest.raises(ContractError, match="does not declare task 'critique'"):
        check_model_plugin("bad", plugins=_manager(_Base), tasks=["critique"])
    # the runner reads generates_text from the registration: the model must agree with it
    with pytest.raises(ContractError, match="generates_text is False but it was registered"):
        check_model_plugin("bad", plugins=_manager(_Base, generates_text=True))


def test_tiny_dataset_is_deterministic() -> None:
    a = tiny_dataset()
    assert (len(a.users), len(a.catalog)) == (150, 120)
    tiny_dataset.cache_clear()
    assert tiny_dataset().fingerprint == a.fingerprint
