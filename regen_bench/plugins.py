"""Plugin manager: loads entry points of group ``regen_bench`` and keeps the registries.

First-party plugins are found exactly like third-party ones, through entry points. A plugin
that fails to import or to register is reported (``regen-bench plugins``, and one warning line
on stderr) and skipped, unless ``REGEN_BENCH_STRICT_PLUGINS=1``; ``REGEN_BENCH_PLUGINS=a,b``
loads only those entry points. First-party plugins load first and keep their names: a
third-party plugin that registers one of them, or takes one of their entry-point names, is
refused (reported naming both) and the first-party one stays.
Hooks are called through pluggy, one plugin at a time, so ``specname``, ``tryfirst`` and plugin
names work as pluggy documents them; what a plugin registers is checked against
:class:`regen_bench.hookspecs.Register` before it enters a registry.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType, SimpleNamespace
from typing import Any

import pluggy

from regen_bench import hookspecs
from regen_bench.options import ModelOptions
from regen_bench.tasks import TASKS

ENTRY_POINT_GROUP = "regen_bench"
ENV_STRICT = "REGEN_BENCH_STRICT_PLUGINS"
ENV_ALLOW = "REGEN_BENCH_PLUGINS"
#: The distribution that ships the core and the first-party plugins, and their package.
FIRST_PARTY_DIST = "regen-bench"
FIRST_PARTY_PACKAGE = "regen_bench_plugins"

log = logging.getLogger(__name__)


class PluginError(RuntimeError):
    """A plugin failed to load or registered something invalid (fatal in strict mode)."""


class UnknownNameError(LookupError):
    """A name was asked for that no plugin registered; the message lists the choices."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        close = difflib.get_close_matches(name, choices, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        label = kind.replace("_", " ")
        super().__init__(
            f"unknown {label} '{name}'.{hint} "
            f"Choose from: {', '.join(choices) or '(none registered)'}"
        )


@dataclass(frozen=True)
class Entry:
    """One registered thing: its kind, name, lazy factory, owning plugin and metadata.

    ``meta`` holds the checked metadata of :class:`regen_bench.hookspecs.Register`, every key
    filled in (``summary``; for models also ``tasks``, ``generates_text`` and ``options``).
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return str(self.meta.get("summary", ""))

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks a model supports (empty for other kinds)."""
        return tuple(self.meta.get("tasks", ()))

    @property
    def generates_text(self) -> bool:
        """True for a model that writes the conversational narrative itself."""
        return bool(self.meta.get("generates_text", False))

    @property
    def options(self) -> type[ModelOptions] | None:
        """A model's option schema, when it registered one."""
        options: type[ModelOptions] | None = self.meta.get("options")
        return options


@dataclass
class PluginInfo:
    """What ``regen-bench plugins`` shows about one plugin."""

    name: str
    module: str
    source: str  # "entry point" or "manual"
    version: str = ""
    distribution: str = ""
    registered: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    #: Shipped with the harness (package ``regen_bench_plugins`` of ``regen-bench``).
    first_party: bool = False

    def describe(self) -> str:
        """``first-party plugin 'x' (regen-bench 0.1.0)``: who a message is about."""
        origin = f"{self.distribution} {self.version}".strip()
        who = "first-party plugin" if self.first_party else "plugin"
        return f"{who} '{self.name}'" + (f" ({origin})" if origin else "")


def lazy(target: str) -> Callable[..., Any]:
    """A factory that imports ``"package.module:Name"`` only when it is called.

    Registering ``lazy("my_pkg.model:MyModel")`` keeps heavy imports (torch, transformers) out
    of plugin loading, so ``regen-bench plugins`` and ``--help`` stay fast.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"lazy target must look like 'package.module:Name', got {target!r}")

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module_name), attr)(*args, **kwargs)

    factory.__qualname__ = factory.__name__ = f"lazy({target})"
    factory.target = target  # type: ignore[attr-defined]
    return factory


def _is_first_party(ep: metadata.EntryPoint) -> bool:
    """An entry point of the harness's own distribution into its plugin package."""
    dist = ep.dist.metadata["Name"] if ep.dist else ""
    module = ep.value.partition(":")[0].strip()
    return re.sub(r"[-_.]+", "-", dist or "").lower() == FIRST_PARTY_DIST and (
        module == FIRST_PARTY_PACKAGE or module.startswith(FIRST_PARTY_PACKAGE + ".")
    )


def _exception_text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})" if exc.code is not None else "called sys.exit()"
    return f"{type(exc).__name__}: {exc}"


def _env_strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


#: Metadata keys a model may register besides ``summary`` (see hookspecs.Register).
_MODEL_META: tuple[str, ...] = ("tasks", "generates_text", "options")


def _check_meta(kind: str, name: str, meta: Mapping[str, object]) -> dict[str, object]:
    """The checked metadata of one registration, defaults filled in; PluginError if bad."""
    where = f"{kind} '{name}'"
    allowed = ("summary", *_MODEL_META) if kind == "model" else ("summary",)
    unknown = sorted(set(meta) - set(allowed))
    if unknown:
        raise PluginError(
            f"{where}: unknown metadata {', '.join(unknown)} (allowed: {', '.join(allowed)})"
        )
    summary = meta.get("summary", "")
    if not isinstance(summary, str):
        raise PluginError(f"{where}: summary must be a string, got {type(summary).__name__}")
    if kind != "model":
        return {"summary": summary}
    tasks = meta.get("tasks", ())
    if not isinstance(tasks, tuple | list) or not all(isinstance(t, str) for t in tasks):
        raise PluginError(f"{where}: tasks must be a tuple of task names, got {tasks!r}")
    unknown_tasks = [t for t in tasks if t not in TASKS]
    if unknown_tasks:
        raise PluginError(f"{where}: unknown task(s) {unknown_tasks} (known: {', '.join(TASKS)})")
    generates_text = meta.get("generates_text", False)
    if not isinstance(generates_text, bool):
        raise PluginError(f"{where}: generates_text must be True or False, got {generates_text!r}")
    options = meta.get("options")
    if options is not None and not (
        isinstance(options, type) and issubclass(options, ModelOptions)
    ):
        raise PluginError(
            f"{where}: options must be a regen_bench.ModelOptions subclass, got {options!r}"
        )
    return {
        "summary": summary,
        "tasks": tuple(tasks),
        "generates_text": generates_text,
        "options": options,
    }


def _plain_hookimpl_opts() -> pluggy.HookimplOpts:
    """The options pluggy gives a bare ``@hookimpl`` (read through pluggy, whatever version)."""

    @hookspecs.hookimpl
    def probe() -> None: ...

    opts = pluggy.PluginManager(hookspecs.PROJECT).parse_hookimpl_opts(
        SimpleNamespace(probe=probe), "probe"
    )
    assert opts is not None
    return opts


_PLAIN_OPTS = _plain_hookimpl_opts()


class _Pluggy(pluggy.PluginManager):
    """pluggy's manager that also takes an unmarked function named like a hook as its
    implementation, as pytest does for ``pytest_*`` functions: before hooks were called through
    pluggy they were looked up by name, so a plugin that forgot ``@hookimpl`` still worked."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        unmarked_hook = name in hookspecs.KINDS.values() and inspect.isroutine(
            inspect.getattr_static(plugin, name, None)
        )
        if opts is None and unmarked_hook:
            opts = pluggy.HookimplOpts(**_PLAIN_OPTS)  # a copy: pluggy normalises it in place
        return opts


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hooks ``plugin`` implements that no spec declares (a typo; ``optionalhook`` exempts)."""
    return sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    )


def _stager(kind: str, plugin: str, staged: list[Entry]) -> Callable[..., None]:
    """The ``register`` callback of one hook call: checks each registration and stages it."""

    def register(name: str, factory: Callable[..., Any], **meta: object) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"{kind} name must be a non-empty string")
        if not callable(factory):
            raise PluginError(f"{kind} '{name}': factory is not callable")
        staged.append(Entry(kind, name, factory, plugin, _check_meta(kind, name, meta)))

    return register


class PluginManager:
    """Registries of models, datasets, LLM backends, raters and embedders.

    Each plugin is registered with pluggy (``self.pm``) under its entry-point name, and its
    hooks are called through pluggy for that plugin alone, so one plugin's failure is its own.
    """

    def __init__(self, strict: bool | None = None):
        self.strict = _env_strict() if strict is None else strict
        self.pm: pluggy.PluginManager = _Pluggy(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in hookspecs.KINDS}

    # -- loading -------------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every entry point of ``group`` (restricted by ``REGEN_BENCH_PLUGINS``).

        First-party entry points load first, so their names are taken before any third
        party's: a clash is then the third party's failure (see :meth:`_add`).
        """
        allow_env = os.environ.get(ENV_ALLOW, "").strip()
        allow = {a.strip() for a in allow_env.split(",") if a.strip()} if allow_env else None
        taken: dict[str, tuple[PluginInfo, str]] = {}  # entry-point name -> (info, value)
        eps = [(not _is_first_party(ep), ep.name, ep) for ep in metadata.entry_points(group=group)]
        for _, _, ep in sorted(eps, key=lambda t: t[:2]):
            if allow is not None and ep.name not in allow:
                continue
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                source="entry point",
                version=dist.version if dist else "",
                distribution=dist.metadata["Name"] if dist else "",
                first_party=_is_first_party(ep),
            )
            if ep.name in taken:
                owner, value = taken[ep.name]
                if (owner.distribution, value) != (info.distribution, ep.value):
                    self._fail(
                        info,
                        f"entry-point name '{ep.name}' is already taken by {owner.describe()}; "
                        "not imported",
                    )
                continue  # else the same entry point listed twice
            taken[ep.name] = info, ep.value
            try:
                module = ep.load()
            except KeyboardInterrupt:
                # Not a plugin failure we could tell from the user's Ctrl-C during loading,
                # which must stop the program as it would anywhere else.
                raise
            except (Exception, SystemExit) as exc:
                # Any import failure is the plugin's own, reported and skipped; SystemExit
                # too (a module calling sys.exit() at import must not end every command).
                self._fail(info, f"import failed: {_exception_text(exc)}", exc)
                continue
            self._add(module, info)

    def register_plugin(self, plugin: ModuleType | object, name: str | None = None) -> None:
        """Register an in-process plugin object (used by tests and notebooks)."""
        label = str(name or getattr(plugin, "__name__", type(plugin).__name__))
        self._add(plugin, PluginInfo(name=label, module=label, source="manual"))

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.error = message
        self.infos.append(info)
        if self.strict:
            detail = "".join(traceback.format_exception(exc)) if exc else ""
            raise PluginError(f"plugin '{info.name}' ({info.module}): {message}\n{detail}")
        log.warning(
            "regen-bench: warning: %s skipped: %s (see `regen-bench plugins`)",
            info.describe(),
            message,
        )

    def _loaded(self, name: str) -> PluginInfo | None:
        """The loaded (not failed) plugin named ``name``."""
        return next((p for p in self.infos if p.name == name and p.error is None), None)

    def _add(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._fail(info, f"invalid plugin: {exc}", exc)
            return
        staged: list[Entry] = []
        try:
            unknown = _unknown_hooks(self.pm, plugin)
            if unknown:
                raise PluginError(
                    f"no hook named {', '.join(unknown)} "
                    f"(hooks: {', '.join(hookspecs.KINDS.values())})"
                )
            for kind, hook_name in hookspecs.KINDS.items():
                self._call_hook(plugin, hook_name, _stager(kind, info.name, staged))
            for entry in staged:
                owner = self.entries[entry.kind].get(entry.name)
                owner_info = self._loaded(owner.plugin) if owner else None
                if owner_info is not None and owner_info.first_party and not info.first_party:
                    raise PluginError(
                        f"{entry.kind} '{entry.name}' belongs to {owner_info.describe()}; "
                        "a third-party plugin may not take it over"
                    )
                if (
                    owner is not None
                    or sum(e.kind == entry.kind and e.name == entry.name for e in staged) > 1
                ):
                    who = owner.plugin if owner else info.name
                    raise PluginError(
                        f"duplicate {entry.kind} name '{entry.name}' "
                        f"(already registered by '{who}')"
                    )
        except KeyboardInterrupt:
            raise  # the user's Ctrl-C, as at import
        except (Exception, SystemExit) as exc:
            self.pm.unregister(plugin)
            reason = _exception_text(exc) if isinstance(exc, SystemExit) else str(exc)
            self._fail(info, f"registration failed: {reason}", exc)
            return
        for entry in staged:
            self.entries[entry.kind][entry.name] = entry
            info.registered.append((entry.kind, entry.name))
        self.infos.append(info)

    def _call_hook(self, plugin: object, hook_name: str, register: Callable[..., None]) -> None:
        """Call ``plugin``'s implementations of ``hook_name`` (and no other plugin's)."""
        caller = getattr(self.pm.hook, hook_name)
        if not any(impl.plugin is plugin for impl in caller.get_hookimpls()):
            return
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        self.pm.subset_hook_caller(hook_name, others)(register=register)

    # -- lookup --------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """The entry ``name`` of ``kind``; UnknownNameError with choices if there is none."""
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownNameError(kind, name, self.names(kind)) from None


_DEFAULT: PluginManager | None = None


def get_plugin_manager(refresh: bool = False) -> PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        manager = PluginManager()
        manager.load_entry_points()
        _DEFAULT = manager
    return _DEFAULT
