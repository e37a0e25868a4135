"""Plugin manager: loads entry points of group ``regen_bench`` and keeps the registries.

First-party plugins are found exactly like third-party ones, through entry points. A plugin
that fails to import or to register is reported (``regen-bench plugins``) and skipped, unless
``REGEN_BENCH_STRICT_PLUGINS=1``; ``REGEN_BENCH_PLUGINS=a,b`` loads only those entry points.
"""

from __future__ import annotations

import difflib
import importlib
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from regen_bench import hookspecs

ENTRY_POINT_GROUP = "regen_bench"
ENV_STRICT = "REGEN_BENCH_STRICT_PLUGINS"
ENV_ALLOW = "REGEN_BENCH_PLUGINS"


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
    """One registered thing: its kind, name, lazy factory, owning plugin and metadata."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)


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


def _env_strict() -> bool:
    return os.environ.get(ENV_STRICT, "").strip().lower() in {"1", "true", "yes", "on"}


class PluginManager:
    """Registries of models, datasets, LLM backends, raters and embedders."""

    def __init__(self, strict: bool | None = None):
        self.strict = _env_strict() if strict is None else strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in hookspecs.KINDS}

    # -- loading -------------------------------------------------------------------------
    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every entry point of ``group`` (restricted by ``REGEN_BENCH_PLUGINS``)."""
        allow_env = os.environ.get(ENV_ALLOW, "").strip()
        allow = {a.strip() for a in allow_env.split(",") if a.strip()} if allow_env else None
        seen: set[str] = set()
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            if ep.name in seen or (allow is not None and ep.name not in allow):
                continue
            seen.add(ep.name)
            dist = ep.dist
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                source="entry point",
                version=dist.version if dist else "",
                distribution=dist.metadata["Name"] if dist else "",
            )
            try:
                module = ep.load()
            except Exception as exc:  # any import failure of a plugin is reported, not fatal
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
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

    def _add(self, plugin: object, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:
            self._fail(info, f"invalid plugin: {exc}", exc)
            return
        staged: list[Entry] = []
        try:
            for kind, hook_name in hookspecs.KINDS.items():
                impl = getattr(plugin, hook_name, None)
                if impl is None:
                    continue

                def register(
                    name: str, factory: Callable[..., Any], _kind: str = kind, **meta: Any
                ) -> None:
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"{_kind} name must be a non-empty string")
                    if not callable(factory):
                        raise PluginError(f"{_kind} '{name}': factory is not callable")
                    staged.append(Entry(_kind, name, factory, info.name, meta))

                impl(register=register)
            for entry in staged:
                owner = self.entries[entry.kind].get(entry.name)
                if (
                    owner is not None
                    or sum(e.kind == entry.kind and e.name == entry.name for e in staged) > 1
                ):
                    who = owner.plugin if owner else info.name
                    raise PluginError(
                        f"duplicate {entry.kind} name '{entry.name}' "
                        f"(already registered by '{who}')"
                    )
        except Exception as exc:
            self.pm.unregister(plugin)
            self._fail(info, f"registration failed: {exc}", exc)
            return
        for entry in staged:
            self.entries[entry.kind][entry.name] = entry
            info.registered.append((entry.kind, entry.name))
        self.infos.append(info)

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
