"""A misbehaving third-party package cannot take over a first-party name, nor end every
command by exiting at import: installed as a new user would install it (real entry points)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import regen_bench
from regen_bench.data.synth import write_synthetic
from regen_bench.plugins import PluginError, PluginManager
from tests.test_plugins import _fake_distribution

REPO = Path(__file__).resolve().parents[1]
#: Registers the first-party model name ``popularity``; building it leaves a marker file.
TAKEOVER = """
    import os
    from pathlib import Path
    from regen_bench import hookimpl

    def build(catalog, **config):
        Path(os.environ["TAKEOVER_MARKER"]).write_text("third-party popularity built")
        raise RuntimeError("the third-party popularity ran")

    @hookimpl
    def register_models(register):
        register("popularity", build, tasks=("sequential",), summary="not the real one")
        register("other-model", build, tasks=("sequential",))
"""
#: Imported only if its entry point (named like a first-party one) were loaded.
SAME_NAME = """
    import os
    from pathlib import Path
    Path(os.environ["TAKEOVER_MARKER"]).write_text("same-name module imported")
"""
EXITS = "import sys\nsys.exit(3)\n"
MODULES = ("tp_takeover", "tp_same_name", "tp_exits")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path holding one misbehaving distribution with three entry points."""
    root = tmp_path / "site"
    root.mkdir()
    _fake_distribution(
        root,
        "sneaky-pkg",
        {"tp_takeover": TAKEOVER, "tp_same_name": SAME_NAME, "tp_exits": EXITS},
        # "a-takeover" sorts before "popularity": loading by name alone would let it in first.
        {"a-takeover": "tp_takeover", "popularity": "tp_same_name", "exiter": "tp_exits"},
    )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("TAKEOVER_MARKER", str(tmp_path / "marker"))
    monkeypatch.delenv("REGEN_BENCH_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("REGEN_BENCH_PLUGINS", raising=False)
    yield root
    for mod in MODULES:
        sys.modules.pop(mod, None)


def _cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``regen-bench ARGS`` in a fresh process with the misbehaving package installed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("REGEN_BENCH_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "regen_bench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_first_party_names_are_kept_and_the_clash_is_reported(
    site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="regen_bench.plugins")
    pm = PluginManager()
    pm.load_entry_points()
    entry = pm.get("model", "popularity")
    assert entry.plugin == "popularity"
    assert entry.factory.__module__ != "tp_takeover"
    owner = next(p for p in pm.infos if p.name == "popularity" and p.error is None)
    assert owner.first_party and owner.distribution == "regen-bench"
    # the third party's whole registration is refused, naming both plugins
    takeover = next(p for p in pm.infos if p.name == "a-takeover")
    assert not takeover.first_party and takeover.registered == []
    assert takeover.error == (
        "registration failed: model 'popularity' belongs to first-party plugin 'popularity' "
        f"(regen-bench {regen_bench.__version__}); a third-party plugin may not take it over"
    )
    assert "other-model" not in pm.names("model")
    # an entry point named like a first-party one is not even imported
    same = next(p for p in pm.infos if p.name == "popularity" and p.error is not None)
    assert same.distribution == "sneaky-pkg" and "tp_same_name" not in sys.modules
    assert same.error == (
        "entry-point name 'popularity' is already taken by first-party plugin 'popularity' "
        f"(regen-bench {regen_bench.__version__}); not imported"
    )
    assert not (tmp_path / "marker").exists()
    # one warning line per refused plugin, naming both sides
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    clash = [w for w in warnings if "a-takeover" in w]
    assert clash == [
        "regen-bench: warning: plugin 'a-takeover' (sneaky-pkg 1.2.3) skipped: "
        f"{takeover.error} (see `regen-bench plugins`)"
    ]
    assert all("\n" not in w for w in warnings)


def test_strict_mode_makes_the_clash_an_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGEN_BENCH_PLUGINS", "popularity,a-takeover")
    with pytest.raises(PluginError, match=r"'a-takeover'.*first-party plugin 'popularity'"):
        PluginManager(strict=True).load_entry_points()


def test_run_popularity_runs_the_first_party_code(site: Path, tmp_path: Path) -> None:
    data = tmp_path / "shop.jsonl"
    write_synthetic(data, users=60, items=110, seed=0)
    proc = _cli(
        site,
        *("run", "--model", "popularity", "--task", "sequential", "--dataset", str(data)),
        *("--output", str(tmp_path / "out"), "--threads", "1", "-q"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "marker").exists()
    result = json.loads((tmp_path / "out" / "shop" / "sequential" / "popularity.json").read_text())
    assert result["model"]["plugin"] == "popularity"
    assert result["model"]["version"] == regen_bench.__version__
    warnings = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert any("'a-takeover'" in w and "first-party plugin 'popularity'" in w for w in warnings)
    assert "Traceback" not in proc.stderr


def test_a_plugin_calling_sys_exit_at_import_is_one_failed_plugin(
    site: Path, tmp_path: Path
) -> None:
    proc = _cli(site, "plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("exiter "))
    assert "(sneaky-pkg 1.2.3)" in lines[at]
    assert lines[at + 1] == "  FAILED: import failed: called sys.exit(3)"
    # the first-party popularity is listed, loaded, with its model
    own = rf"popularity +entry point \(regen-bench {re.escape(regen_bench.__version__)}\)"
    at = next(i for i, line in enumerate(lines) if re.fullmatch(own, line))
    assert lines[at + 1].split()[:2] == ["model", "popularity"]
    exits = [line for line in proc.stderr.splitlines() if "'exiter'" in line]
    assert exits == [
        "regen-bench: warning: plugin 'exiter' (sneaky-pkg 1.2.3) skipped: import failed: "
        "called sys.exit(3) (see `regen-bench plugins`)"
    ]
    assert "Traceback" not in proc.stderr
    # and another command works as well
    proc = _cli(site, "plugins", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    rows = {(r["name"], r["distribution"]): r for r in json.loads(proc.stdout)}
    assert rows["exiter", "sneaky-pkg"]["error"] == "import failed: called sys.exit(3)"
    assert rows["popularity", "regen-bench"]["error"] is None
    assert rows["popularity", "regen-bench"]["first_party"] is True
    assert rows["exiter", "sneaky-pkg"]["first_party"] is False
    assert rows["popularity", "sneaky-pkg"]["error"].startswith("entry-point name 'popularity'")


def test_keyboard_interrupt_at_import_still_stops_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C while plugins load cannot be told from a plugin raising it: it stops the program.
    _fake_distribution(
        tmp_path, "ctrl-c-pkg", {"tp_ctrl_c": "raise KeyboardInterrupt\n"}, {"ctrl-c": "tp_ctrl_c"}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REGEN_BENCH_PLUGINS", "ctrl-c")
    try:
        with pytest.raises(KeyboardInterrupt):
            PluginManager().load_entry_points()
    finally:
        sys.modules.pop("tp_ctrl_c", None)
