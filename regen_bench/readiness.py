"""Whether a registered plugin (or a core step) can load here, and what to install if not.

Plugins import their heavy libraries (torch, transformers...) lazily, inside the code that
needs them, so a missing library used to surface only when that code ran: after training.
:func:`code_imports` finds those imports without running anything: it reads the source of
the code a factory reaches (for a class, the methods a run calls, see :data:`ENTRY_METHODS`;
then the functions, classes and ``self.`` methods they use, within the plugin's own package)
and keeps the imports that always run there, leaving out those under ``if TYPE_CHECKING``
and optional ones (an ``ImportError`` handler that does not raise). :func:`missing` checks
them with ``importlib.util.find_spec`` (no import), and :func:`install_hint` names the extras
of the plugin's distribution that provide them, read from its metadata.

What code loads beyond its imports (a file a model needs, a library another library imports
for one feature) is not seen; the check only ever fails on imports that would fail.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distribution of the core (and of the first-party plugins).
DIST = "regen-bench"
#: Methods a run calls on what a factory returns, by registry kind (other kinds: the
#: constructor and ``__call__``). A function factory is read whole.
ENTRY_METHODS: dict[str, tuple[str, ...]] = {
    "model": ("__init__", "fit", "score"),
    "llm_backend": ("__init__", "complete", "complete_batch"),
    "embedder": ("__init__", "embed"),
}
_DEFAULT_METHODS = ("__init__", "__call__")
#: Exceptions whose handler makes an import optional (when the handler does not raise).
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
#: Always installed with the core: never reported.
_BASE = {"regen_bench", "numpy", "pluggy", "pydantic", "tqdm", "__future__"}


class MissingExtraError(ImportError):
    """Something a command needs is not installed; the message names what and how to install.

    ``needs``: (what, missing modules) pairs; ``extras``: the extras that provide them
    (distribution -> extras); ``packages``: missing modules that no extra provides.
    """

    def __init__(
        self,
        needs: Sequence[tuple[str, Sequence[str]]],
        extras: dict[str, list[str]],
        packages: Sequence[str] = (),
    ) -> None:
        self.needs = [(what, list(mods)) for what, mods in needs]
        self.extras, self.packages = extras, list(packages)
        what = "; ".join(f"{w} needs {', '.join(map(_pip_name, m))}" for w, m in self.needs)
        super().__init__(f"{what}: {install_hint(extras, packages)}")


# -- what to install ------------------------------------------------------------------------


def _squash(name: str) -> str:
    """A module or distribution name without case and separators (``lm-format-enforcer`` ==
    ``lmformatenforcer``, ``bert-score`` == ``bert_score``)."""
    return re.sub(r"[-_.]+", "", name).lower()


@cache
def distribution_extras(dist: str = DIST) -> dict[str, frozenset[str]]:
    """Extras of ``dist`` (in declaration order) -> the squashed names they install.

    Extras that include ``dist`` itself (``dev``: every other extra and the tools) are left
    out: an install hint names the extras that provide a library, not a bundle of them.
    """
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return {}
    extras: dict[str, set[str]] = {}
    bundles: set[str] = set()
    for req in requires:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if not name or not extra:
            continue
        extras.setdefault(extra.group(1), set()).add(_squash(name.group(1)))
        if _squash(name.group(1)) == _squash(dist):
            bundles.add(extra.group(1))
    return {e: frozenset(names) for e, names in extras.items() if e not in bundles}


def _providers(module: str, extras: dict[str, frozenset[str]]) -> list[str]:
    """Extras installing ``module`` (``google.genai`` is also tried as ``google-genai``)."""
    parts = module.split(".")
    names = {_squash(".".join(parts[:n])) for n in range(1, len(parts) + 1)}
    return [e for e, provides in extras.items() if names & provides]


def choose_extras(
    modules: Iterable[str], dist: str = DIST, uses: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """The extras of ``dist`` that provide ``modules`` (what one component lacks), and the
    modules no extra provides.

    Greedy: the extra providing most of what is still missing first; on a tie the one that
    provides more of everything the component ``uses`` (installed or not: the embedder
    ``minilm`` uses transformers and the MiniLM package, both in ``text``), then the larger
    one, whose other libraries are the likelier to be loaded beyond the imports seen (the
    ``hf`` backend imports transformers only, in ``text`` and ``local-llm``, and loads GGUF
    checkpoints with the latter's).
    """
    extras = distribution_extras(dist)
    order = list(extras)
    left = {m: set(_providers(m, extras)) for m in modules}
    used = [set(_providers(m, extras)) for m in set(uses)]
    unknown = sorted(m for m, by in left.items() if not by)
    todo = {m for m, by in left.items() if by}
    chosen: list[str] = []
    while todo:
        best = max(
            order,
            key=lambda e: (
                sum(e in left[m] for m in todo),
                sum(e in by for by in used),
                len(extras[e]),
            ),
        )
        chosen.append(best)
        todo = {m for m in todo if best not in left[m]}
    return sorted(chosen, key=order.index), unknown


def install_hint(extras: dict[str, list[str]], packages: Sequence[str] = ()) -> str:
    """The install command, spelled for a clone and for an installed package, e.g.
    ``pip install -e '.[text]' (in a clone) or pip install 'regen-bench[text]'``."""
    clone, installed = [], []
    for dist, names in extras.items():
        if not names:
            continue
        spec = ",".join(names)
        where = "" if dist == DIST else f" of {dist}"
        clone.append(f"-e '.[{spec}]'{where}")
        installed.append(f"'{dist}[{spec}]'")
    plain = [_pip_name(p) for p in packages]
    if not clone:
        return f"pip install {' '.join(plain)}"
    tail = "".join(f" {p}" for p in plain)
    return (
        f"pip install {' '.join(clone)}{tail} (in a clone) or "
        f"pip install {' '.join(installed)}{tail}"
    )


def _pip_name(module: str) -> str:
    return module.replace("_", "-").replace(".", "-")


# -- what code imports ------------------------------------------------------------------------


@dataclass
class _Module:
    name: str
    tree: ast.Module
    is_package: bool
    defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]
    #: Module-level names bound by imports: name -> (module, attribute or None).
    bound: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def _source_path(module: str) -> Path | None:
    """The ``.py`` file of ``module``, found from its top-level package without importing
    anything below it."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for base in spec.submodule_search_locations or ():
        stem = Path(base, *rest)
        for path in (stem.with_suffix(".py"), stem / "__init__.py"):
            if path.is_file():
                return path
    return None


@cache
def _parse(module: str) -> _Module | None:
    path = _source_path(module)
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    mod = _Module(module, tree, path.name == "__init__.py", {})
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            mod.defs[node.name] = node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    mod.bound[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    mod.bound[top] = (top, None)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, mod.is_package, node)
            for alias in node.names:
                mod.bound[alias.asname or alias.name] = (source, alias.name)
    return mod


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _optional_try(node: ast.Try) -> bool:
    """Imports in this try block are optional: an import-error handler swallows the failure."""
    for handler in node.handlers:
        types = (
            []
            if handler.type is None
            else handler.type.elts
            if isinstance(handler.type, ast.Tuple)
            else [handler.type]
        )
        names = {t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in types}
        catches = handler.type is None or bool(names & _IMPORT_ERRORS)
        if catches and not any(isinstance(n, ast.Raise) for n in ast.walk(handler)):
            return True
    return False


#: A piece of code to read: (module, qualified name or None for the module's top level,
#: the class ``self`` is an instance of, whether its imports are optional).
_Item = tuple[str, str | None, tuple[str, str] | None, bool]


class _Reader:
    """Reads the code reachable from one factory and collects its imports."""

    def __init__(self, root: str) -> None:
        self.root = root  # the package whose code is followed (the factory's)
        self.required: set[str] = set()
        self.seen: set[_Item] = set()
        self.todo: list[_Item] = []

    def add(self, item: _Item) -> None:
        if item not in self.seen:
            self.seen.add(item)
            self.todo.append(item)

    def run(self) -> set[str]:
        while self.todo:
            module, qual, self_cls, optional = self.todo.pop()
            mod = _parse(module)
            if mod is None:
                continue
            if qual is None:
                self.top_level(mod.tree.body, mod, optional)
                continue
            self.add((module, None, None, optional))
            name, _, method = qual.partition(".")
            node = mod.defs.get(name)
            if node is None:
                continue
            if isinstance(node, ast.ClassDef) and method:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                        item.name == method
                    ):
                        self.walk_body(item, mod, name, self_cls, optional)
            elif isinstance(node, ast.ClassDef):
                for expr in [*node.bases, *node.decorator_list]:
                    self.walk(expr, mod, None, None, optional)
                for stmt in node.body:
                    if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                        self.walk(stmt, mod, name, self_cls, optional)
            elif not method:
                self.walk_body(node, mod, None, None, optional)
        return self.required

    def top_level(self, stmts: Sequence[ast.stmt], mod: _Module, optional: bool) -> None:
        """What importing ``mod`` runs: its imports and the calls in its statements (a name
        only referenced there, as in a table of functions, runs later if at all)."""
        for stmt in stmts:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if isinstance(stmt, ast.If):
                if not _is_type_checking(stmt.test):
                    self.top_level(stmt.body, mod, optional)
                self.top_level(stmt.orelse, mod, optional)
            elif isinstance(stmt, ast.Try):
                self.top_level(stmt.body, mod, optional or _optional_try(stmt))
                for handler in stmt.handlers:
                    self.top_level(handler.body, mod, optional)
                self.top_level([*stmt.orelse, *stmt.finalbody], mod, optional)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    self.imported(alias.name, None, optional, use=False)
            elif isinstance(stmt, ast.ImportFrom):
                source = _absolute(mod.name, mod.is_package, stmt)
                for alias in stmt.names:
                    self.imported(source, alias.name, optional, use=False)
            else:
                for node in ast.walk(stmt):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                        self.name(node.func.id, mod, optional)

    def walk_body(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        mod: _Module,
        cls: str | None,
        self_cls: tuple[str, str] | None,
        optional: bool,
    ) -> None:
        for stmt in [*node.decorator_list, *node.body]:
            self.walk(stmt, mod, cls, self_cls, optional)

    def walk(
        self,
        node: ast.AST,
        mod: _Module,
        cls: str | None,
        self_cls: tuple[str, str] | None,
        optional: bool,
    ) -> None:
        """Collect the imports under ``node`` and queue the local code it uses."""
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                self.walk(stmt, mod, cls, self_cls, optional)
            return
        if isinstance(node, ast.Try):
            inner = optional or _optional_try(node)
            for stmt in node.body:
                self.walk(stmt, mod, cls, self_cls, inner)
            for part in (*node.handlers, *node.orelse, *node.finalbody):
                self.walk(part, mod, cls, self_cls, optional)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.imported(alias.name, None, optional)
            return
        if isinstance(node, ast.ImportFrom):
            source = _absolute(mod.name, mod.is_package, node)
            for alias in node.names:
                self.imported(source, alias.name, optional)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            self.name(node.id, mod, optional)
        elif isinstance(node, ast.Attribute):
            self.attribute(node, mod, cls, self_cls, optional)
        for child in ast.iter_child_nodes(node):
            self.walk(child, mod, cls, self_cls, optional)

    def imported(self, module: str, attr: str | None, optional: bool, use: bool = True) -> None:
        """An import statement: a third-party module is required (unless optional); a local
        one runs its top level, and its imported names are read when ``use`` (an import in
        a function is there to be used; at module level, names are read once referenced)."""
        top = module.split(".")[0]
        if top == self.root:
            self.add((module, None, None, optional))
            if attr is not None and _resolve(module, attr) is not None:
                if use:
                    self.use(module, attr, optional)
                return
            sub = module if attr is None else f"{module}.{attr}"
            self.add((sub, None, None, optional))
            if use and (mod := _parse(sub)) is not None:
                # A module imported in a function is there to be used: read all of it.
                for name in mod.defs:
                    self.use(sub, name, optional)
            return
        if top in _BASE or top in sys.stdlib_module_names or optional:
            return
        self.required.add(module if attr is None else f"{module}.{attr}")

    def name(self, name: str, mod: _Module, optional: bool) -> None:
        if name in mod.defs:
            self.use(mod.name, name, optional)
        elif name in mod.bound:
            source, attr = mod.bound[name]
            if attr is not None and source.split(".")[0] == self.root:
                self.use(source, attr, optional)

    def use(self, module: str, name: str, optional: bool) -> None:
        """A local function or class is used: read it (a class: its body and constructor)."""
        target = _resolve(module, name)
        if target is None:
            return
        self.add((*target, None, optional))
        node = _parse(target[0])
        if node is not None and isinstance(node.defs.get(target[1]), ast.ClassDef):
            self.method(target, "__init__", target, optional)

    def attribute(
        self,
        node: ast.Attribute,
        mod: _Module,
        cls: str | None,
        self_cls: tuple[str, str] | None,
        optional: bool,
    ) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls") and self_cls is not None:
            self.method(self_cls, node.attr, self_cls, optional)
        elif (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
            and cls is not None
        ):
            for base in _bases((mod.name, cls)):
                self.method(base, node.attr, self_cls, optional)
        elif isinstance(value, ast.Name) and value.id in mod.bound:
            source, attr = mod.bound[value.id]
            full = source if attr is None else f"{source}.{attr}"
            if full.split(".")[0] == self.root and _parse(full) is not None:
                self.use(full, node.attr, optional)

    def method(
        self,
        cls: tuple[str, str],
        method: str,
        self_cls: tuple[str, str] | None,
        optional: bool,
    ) -> None:
        owner = _find_method(cls, method)
        if owner is not None:
            self.add((owner[0], f"{owner[1]}.{method}", self_cls, optional))


def _resolve(module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
    """Where ``name`` of ``module`` is defined (following re-exports), if in source."""
    mod = _parse(module)
    if mod is None or depth > 10:
        return None
    if name in mod.defs:
        return module, name
    if name in mod.bound:
        source, attr = mod.bound[name]
        if attr is not None:
            return _resolve(source, attr, depth + 1)
    return None


def _bases(cls: tuple[str, str]) -> list[tuple[str, str]]:
    """The base classes of ``cls`` that are defined in source (direct bases, in order)."""
    mod = _parse(cls[0])
    node = mod.defs.get(cls[1]) if mod else None
    if mod is None or not isinstance(node, ast.ClassDef):
        return []
    out = []
    for base in node.bases:
        if isinstance(base, ast.Subscript):  # Generic[T], Base[DataT]
            base = base.value
        if isinstance(base, ast.Name):
            found = _resolve(cls[0], base.id)
            if found is not None:
                out.append(found)
    return out


def _find_method(cls: tuple[str, str], method: str, depth: int = 0) -> tuple[str, str] | None:
    """The class (of ``cls`` and its bases, depth first) that defines ``method``."""
    mod = _parse(cls[0])
    node = mod.defs.get(cls[1]) if mod else None
    if not isinstance(node, ast.ClassDef) or depth > 20:
        return None
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == method:
            return cls
    for base in _bases(cls):
        found = _find_method(base, method, depth + 1)
        if found is not None:
            return found
    return None


def _target(factory: Callable[..., Any] | str) -> tuple[str, str] | None:
    """(module, name) of what a factory builds: a ``lazy`` target, a class or a function."""
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        return (module, name) if module and name else None
    lazy_target = getattr(factory, "target", None)
    if isinstance(lazy_target, str):
        return _target(lazy_target)
    where = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if not isinstance(where, str) or not isinstance(qualname, str) or "<" in qualname:
        return None
    return _resolve(where, qualname) or (where, qualname)


def code_imports(
    factory: Callable[..., Any] | str, methods: Sequence[str] = _DEFAULT_METHODS
) -> frozenset[str]:
    """Third-party modules the code reachable from ``factory`` always imports.

    ``factory``: a registered factory (a ``lazy`` one is read without importing it), a class,
    a function, or ``"module:name"``. For a class, ``methods`` are where reading starts.
    """
    target = _target(factory)
    if target is None:
        return frozenset()
    module, name = target
    reader = _Reader(module.split(".")[0])
    reader.add((module, name, None, False))
    mod = _parse(module)
    if mod is not None and isinstance(mod.defs.get(name), ast.ClassDef):
        for method in methods:
            reader.method(target, method, target, False)
    return frozenset(reader.run())


def missing(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported here (checked without importing;
    a namespace package such as ``google`` is checked one level down)."""
    out = set()
    for dotted in set(modules):
        parts = dotted.split(".")
        name = parts[0]
        try:
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin in (None, "namespace") and len(parts) > 1:
                name = ".".join(parts[:2])
                spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            out.add(name)
    return sorted(out)


@dataclass(frozen=True)
class Readiness:
    """Whether one component can load: the modules it lacks and the extras providing them."""

    missing: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    #: Missing modules that no extra of the distribution provides.
    packages: tuple[str, ...] = ()
    dist: str = DIST

    @property
    def ready(self) -> bool:
        return not self.missing


def readiness(
    factory: Callable[..., Any] | str,
    *,
    kind: str | None = None,
    dist: str = DIST,
) -> Readiness:
    """Can the component built by ``factory`` (a plugin of registry ``kind``) load here?"""
    methods = ENTRY_METHODS.get(kind or "", _DEFAULT_METHODS)
    uses = code_imports(factory, methods)
    lacking = missing(uses)
    if not lacking:
        return Readiness(dist=dist)
    extras, packages = choose_extras(lacking, dist or DIST, uses)
    if extras:  # the rest is most likely a dependency of theirs (nltk of rouge-score)
        packages = []
    return Readiness(tuple(lacking), tuple(extras), tuple(packages), dist or DIST)


def require(components: Sequence[tuple[str, Readiness]]) -> None:
    """Raise :class:`MissingExtraError` naming every component that cannot load (if any)."""
    lacking = [(what, r) for what, r in components if not r.ready]
    if not lacking:
        return
    extras: dict[str, list[str]] = {}
    packages: list[str] = []
    for _, r in lacking:
        names = extras.setdefault(r.dist, [])
        names += [e for e in r.extras if e not in names]
        packages += [p for p in r.packages if p not in packages]
    for dist, names in extras.items():
        order = list(distribution_extras(dist))
        names.sort(key=lambda e: order.index(e) if e in order else len(order))
    raise MissingExtraError([(what, r.missing) for what, r in lacking], extras, packages)


def module_extras(module: str, dist: str = DIST) -> tuple[list[str], list[str]]:
    """The extra providing ``module`` (from an ``ImportError``'s ``name``), as for a component."""
    return choose_extras([module], dist)


__all__ = [
    "DIST",
    "ENTRY_METHODS",
    "MissingExtraError",
    "Readiness",
    "choose_extras",
    "code_imports",
    "distribution_extras",
    "install_hint",
    "missing",
    "module_extras",
    "readiness",
    "require",
]
