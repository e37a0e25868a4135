"""Plugin manager: entry points, lazy factories, duplicates, unknown names, broken plugins."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from regen_bench import hookimpl
from regen_bench.plugins import PluginError, PluginManager, UnknownNameError


def _fake_distribution(
    root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]
) -> None:
    """Install a distribution by hand: modules plus real entry-point metadata on sys.path."""
    for mod, source in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[regen_bench]\n{lines}")


GOOD = """
    from regen_bench import hookimpl
    CALLS = []

    @hookimpl
    def register_models(register):
        def factory(catalog, **config):
            CALLS.append("built")
            raise RuntimeError("heavy import happens only here")
        register("third-model", factory, tasks=("sequential",), summary="a third-party model")

    @hookimpl
    def register_embedders(register):
        register("third-embedder", lambda: None)
"""
BROKEN = "import module_that_does_not_exist\n"
DUPLICATE = """
    from regen_bench import hookimpl

    @hookimpl
    def register_models(register):
        register("third-model", lambda catalog, **c: None, tasks=())
"""


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _fake_distribution(
        tmp_path,
        "third_party_pkg",
        {"tp_good": GOOD, "tp_broken": BROKEN, "tp_dup": DUPLICATE},
        {"tp-good": "tp_good", "tp-broken": "tp_broken", "tp-zdup": "tp_dup"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REGEN_BENCH_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("REGEN_BENCH_PLUGINS", raising=False)
    yield tmp_path
    for mod in ("tp_good", "tp_broken", "tp_dup"):
        sys.modules.pop(mod, None)


def test_entry_points_load_lazily_and_report_failures(fake_site: Path) -> None:
    pm = PluginManager()
    pm.load_entry_points()
    infos = {p.name: p for p in pm.infos}
    good = infos["tp-good"]
    assert good.source == "entry point" and good.version == "1.2.3"
    assert good.distribution == "third_party_pkg"
    assert ("model", "third-model") in good.registered
    assert ("embedder", "third-embedder") in good.registered
    assert sys.modules["tp_good"].CALLS == []  # nothing built at registration time
    assert "import failed" in (infos["tp-broken"].error or "")
    assert "duplicate model name 'third-model'" in (infos["tp-zdup"].error or "")
    assert pm.get("model", "third-model").plugin == "tp-good"
    # first-party plugins come through the same entry points
    assert infos["popularity"].source == "entry point"
    assert infos["popularity"].distribution == "regen-bench"


def test_strict_mode_makes_a_broken_plugin_fatal(
    fake_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGEN_BENCH_STRICT_PLUGINS", "1")
    monkeypatch.setenv("REGEN_BENCH_PLUGINS", "tp-good,tp-broken")
    with pytest.raises(PluginError, match="tp-broken"):
        PluginManager().load_entry_points()


def test_env_var_restricts_entry_points(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGEN_BENCH_PLUGINS", "tp-good, popularity")
    pm = PluginManager()
    pm.load_entry_points()
    assert sorted(p.name for p in pm.infos) == ["popularity", "tp-good"]


def test_unknown_name_lists_choices_and_suggests() -> None:
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("sasrec", lambda c, **k: None, tasks=("sequential",))
            register("popularity", lambda c, **k: None, tasks=("sequential",))

    pm = PluginManager(strict=True)
    pm.register_plugin(Plugin(), "local")
    with pytest.raises(UnknownNameError) as info:
        pm.get("model", "sasrek")
    message = str(info.value)
    assert "unknown model 'sasrek'" in message
    assert "Did you mean 'sasrec'?" in message
    assert "popularity, sasrec" in message


def test_duplicate_within_one_plugin_is_rejected() -> None:
    class Plugin:
        @hookimpl
        def register_raters(self, register):
            register("r", lambda: None)
            register("r", lambda: None)

    pm = PluginManager()
    pm.register_plugin(Plugin(), "twice")
    assert "duplicate rater name 'r'" in (pm.infos[0].error or "")
    assert pm.names("rater") == []
    with pytest.raises(PluginError):
        PluginManager(strict=True).register_plugin(Plugin(), "twice")
