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


def test_specname_implementation_registers() -> None:
    class Plugin:
        @hookimpl(specname="register_models")
        def models(self, register):
            register("renamed", lambda c, **k: None, tasks=("sequential",), summary="s")

        @hookimpl(specname="register_models", tryfirst=True)
        def more_models(self, register):
            register("renamed-2", lambda c, **k: None, tasks=("critique",))

    pm = PluginManager(strict=True)
    pm.register_plugin(Plugin(), "by-specname")
    assert pm.names("model") == ["renamed", "renamed-2"]
    assert pm.get("model", "renamed").summary == "s"
    assert pm.infos[0].registered == [("model", "renamed-2"), ("model", "renamed")]


def test_plugin_name_lookup_through_pluggy() -> None:
    class Plugin:
        @hookimpl
        def register_raters(self, register):
            register("r", lambda: None, summary="a rater")

    plugin = Plugin()
    pm = PluginManager(strict=True)
    pm.register_plugin(plugin, "named")
    entry = pm.get("rater", "r")
    assert entry.plugin == "named"
    assert pm.pm.get_plugin(entry.plugin) is plugin
    assert pm.pm.get_name(plugin) == "named"
    impls = pm.pm.hook.register_raters.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["named"]


def test_hooks_of_one_plugin_are_called_once_and_alone() -> None:
    calls: list[str] = []

    def plugin(name: str) -> object:
        class Plugin:
            @hookimpl
            def register_embedders(self, register):
                calls.append(name)
                register(name, lambda: None)

        return Plugin()

    pm = PluginManager(strict=True)
    for name in ("a", "b", "c"):
        pm.register_plugin(plugin(name), name)
    assert calls == ["a", "b", "c"]
    assert [i.registered for i in pm.infos] == [[("embedder", n)] for n in "abc"]


def test_metadata_is_checked_and_filled_in() -> None:
    def manager(**meta: object) -> PluginManager:
        class Plugin:
            @hookimpl
            def register_models(self, register):
                register("m", lambda c, **k: None, **meta)

        pm = PluginManager()
        pm.register_plugin(Plugin(), "meta-plugin")
        return pm

    entry = manager(tasks=["sequential"], summary="x").get("model", "m")
    assert entry.meta == {
        "summary": "x",
        "tasks": ("sequential",),
        "generates_text": False,
        "options": None,
    }
    assert (entry.tasks, entry.generates_text, entry.options) == (("sequential",), False, None)
    for meta, message in [
        ({"homepage": "x"}, "unknown metadata homepage (allowed: summary, tasks"),
        ({"tasks": ("ranking",)}, r"unknown task(s) ['ranking']"),
        ({"tasks": "sequential"}, "tasks must be a tuple of task names"),
        ({"generates_text": "yes"}, "generates_text must be True or False"),
        ({"summary": 3}, "summary must be a string"),
        ({"options": dict}, "options must be a regen_bench.ModelOptions subclass"),
    ]:
        info = manager(**meta).infos[0]
        assert info.name == "meta-plugin"
        assert message in (info.error or ""), (meta, info.error)

    class Strict:
        @hookimpl
        def register_models(self, register):
            register("m", lambda c, **k: None, homepage="x")

    with pytest.raises(PluginError, match=r"plugin 'meta-plugin'.*unknown metadata homepage"):
        PluginManager(strict=True).register_plugin(Strict(), "meta-plugin")


def test_model_only_metadata_is_refused_for_other_kinds() -> None:
    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("d", lambda data_dir=None: "x.jsonl", tasks=("sequential",))

    pm = PluginManager()
    pm.register_plugin(Plugin(), "ds")
    assert "dataset 'd': unknown metadata tasks (allowed: summary)" in (pm.infos[0].error or "")


def test_options_schema_is_carried() -> None:
    from regen_bench import ModelOptions

    class Options(ModelOptions):
        hidden: int = 8

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("m", lambda c, **k: None, tasks=("sequential",), options=Options)

    pm = PluginManager(strict=True)
    pm.register_plugin(Plugin(), "with-options")
    assert pm.get("model", "m").options is Options


def test_old_surface_plugin_still_loads() -> None:
    # written before the Register protocol: untyped register, keyword name/factory, no marker
    # on one hook (it used to be found by attribute name)
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(name="old", factory=object, tasks=("sequential", "critique"), summary="s")

        def register_embedders(self, register):
            register("old-embedder", object)

    pm = PluginManager(strict=True)
    pm.register_plugin(Plugin(), "old-plugin")
    assert pm.infos[0].registered == [("model", "old"), ("embedder", "old-embedder")]
    assert pm.get("model", "old").tasks == ("sequential", "critique")


def test_misspelt_hook_is_reported() -> None:
    class Plugin:
        @hookimpl
        def register_model(self, register):
            register("never", object)

        @hookimpl(optionalhook=True)
        def register_future_things(self, register):
            register("later", object)

    pm = PluginManager()
    pm.register_plugin(Plugin(), "typo")
    assert "no hook named register_model " in (pm.infos[0].error or "")
    assert "register_future_things" not in (pm.infos[0].error or "")
    assert pm.pm.get_plugin("typo") is None  # unregistered again, like any failed plugin
