"""The code blocks of the Markdown docs: parsing, the marker convention, and running them.

Used by ``tests/test_docs_examples.py`` (whose docstring states the convention); run as a
script it is the ``pip`` stand-in of the shell blocks (``python docs_examples.py pip ...``).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest needs tomli below 3.11, so the dev install has it
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC_GLOBS = ("README.md", "CONTRIBUTING.md", "docs/*.md", "examples/*/README.md")

EXECUTABLE = {"bash", "python"}  # run unless marked
DATA = {"text", "toml", "json"}  # layouts, file contents, output: never run (but see transcripts)
MARKERS = {"skip", "slow", "file", "excerpt", "ci"}
NEEDS_REASON = {"skip", "slow"}
NEEDS_PATH = {"file", "excerpt"}

FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`]*)")
MARKER = re.compile(r"^<!--\s*doctest:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->$")
# Timings vary from run to run: "fit 26.0s" and "fit 31.2s" are the same line of a transcript.
# Seconds ("113.5s") and progress clocks ("elapsed 0:09, eta 7:35") vary run to run.
DURATION = re.compile(r"\b\d+(?:\.\d+)?s\b|\b\d+:\d{2}(?::\d{2})?\b")

FAST_TIMEOUT_S = 180
SLOW_TIMEOUT_S = 900


class DocExampleError(AssertionError):
    """A docs example failed: the message names the file, line, command and output."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language tag, its text and its marker."""

    doc: str  # path relative to the repository root
    line: int  # line of the opening fence (1-based)
    lang: str
    code: str
    marker: str | None = None  # skip, slow, file, excerpt, ci
    arg: str = ""  # the reason (skip, slow) or the path (file, excerpt)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def is_transcript(self) -> bool:
        """A ``text`` block whose first line is a ``$ command``: the command and its output."""
        first = next((x for x in self.code.splitlines() if x.strip()), "")
        return self.lang == "text" and first.startswith("$ ")

    @property
    def runs(self) -> bool:
        """Whether the block is executed (possibly only in the slow suite)."""
        executable = self.lang in EXECUTABLE or self.is_transcript
        return executable and self.marker in (None, "slow")


@dataclass(frozen=True)
class Document:
    path: str
    blocks: tuple[Block, ...]
    problems: tuple[str, ...]  # stray or malformed markers, unclosed fences


def documents() -> list[str]:
    """The Markdown files whose code blocks are checked, relative to the repository root."""
    found = {p for pattern in DOC_GLOBS for p in ROOT.glob(pattern)}
    return sorted(p.relative_to(ROOT).as_posix() for p in found)


def parse(path: str, text: str | None = None) -> Document:
    """The fenced blocks of ``path`` (or of ``text``, named ``path``) with their markers."""
    lines = (ROOT / path).read_text().splitlines() if text is None else text.splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    pending: tuple[int, str, str] | None = None  # (line, kind, arg) of a marker
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            marker = pending if pending and pending[0] == i else None  # marker on the line before
            if pending and not marker:
                problems.append(f"{path}:{pending[0]}: doctest marker not directly before a fence")
            pending = None
            close = fence["fence"]
            end = i + 1
            while end < len(lines) and not (
                lines[end].strip().startswith(close[0] * len(close))
                and not lines[end].strip().strip(close[0])
            ):
                end += 1
            if end == len(lines):
                problems.append(f"{path}:{i + 1}: unclosed code fence")
            blocks.append(
                Block(
                    doc=path,
                    line=i + 1,
                    lang=fence["lang"].lower(),
                    code="\n".join(lines[i + 1 : end]) + "\n",
                    marker=marker[1] if marker else None,
                    arg=marker[2] if marker else "",
                )
            )
            i = end + 1
            continue
        if "doctest" in line and line.lstrip().startswith("<!--"):
            m = MARKER.match(line.strip())
            if not m:
                problems.append(f"{path}:{i + 1}: malformed doctest marker: {line.strip()}")
            else:
                if pending:
                    problems.append(f"{path}:{pending[0]}: doctest marker not before a fence")
                pending = (i + 1, m["kind"], m["arg"])
        i += 1
    if pending:
        problems.append(f"{path}:{pending[0]}: doctest marker not before a fence")
    return Document(path, tuple(blocks), tuple(problems))


def _reason(arg: str) -> str:
    return arg.strip().strip("()").strip(" :-").strip()


def block_problems(block: Block) -> list[str]:
    """Why ``block`` is not accounted for (empty when it is)."""
    where, kind = block.where, block.marker
    if kind is not None and kind not in MARKERS:
        return [f"{where}: unknown doctest marker '{kind}' (one of {', '.join(sorted(MARKERS))})"]
    if not block.lang and kind is None:
        return [
            f"{where}: untagged code block: tag it ({', '.join(sorted(EXECUTABLE | DATA))}) "
            "or mark it <!-- doctest: skip (reason) -->"
        ]
    if block.lang and block.lang not in EXECUTABLE | DATA:
        return [
            f"{where}: code block language '{block.lang}' is not one of "
            f"{', '.join(sorted(EXECUTABLE | DATA))}"
        ]
    if kind in NEEDS_REASON and not _reason(block.arg):
        return [f"{where}: '{kind}' needs a reason: <!-- doctest: {kind} (why) -->"]
    if kind == "slow" and not block.runs:
        return [f"{where}: 'slow' marks a bash, python or transcript block, not '{block.lang}'"]
    if kind in NEEDS_PATH:
        rel = Path(block.arg)
        if not block.arg or rel.is_absolute() or ".." in rel.parts:
            return [f"{where}: '{kind}' needs a relative path: <!-- doctest: {kind} PATH -->"]
    if kind == "excerpt":
        return excerpt_problems(block)
    if kind == "ci":
        return ci_problems(block)
    return []


def problems(path: str) -> list[str]:
    """Everything wrong with the code blocks of one document."""
    doc = parse(path)
    return [*doc.problems, *(p for b in doc.blocks for p in block_problems(b))]


# --- excerpts ----------------------------------------------------------------------------------


class _Clean(ast.NodeTransformer):
    """Drops what an excerpt may leave out: annotations, docstrings, ``__future__`` imports."""

    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = _no_docstring(node.body)
        return self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = _no_docstring(node.body)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.returns = None
        node.body = _no_docstring(node.body)
        return self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        node.body = _no_docstring(node.body)
        return self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        return None if node.module == "__future__" else node


def _no_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0].value if body and isinstance(body[0], ast.Expr) else None
    return body[1:] if isinstance(first, ast.Constant) and isinstance(first.value, str) else body


def _is_elision(node: object) -> bool:
    """``...`` in an excerpt: as an expression it stands for any expression, as a statement
    for any run of statements (comments are not in the syntax tree)."""
    if isinstance(node, ast.Expr):
        node = node.value
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _match(part: object, whole: object) -> bool:
    if isinstance(part, ast.expr) and _is_elision(part):
        return True
    if type(part) is not type(whole):
        return False
    if not isinstance(part, ast.AST):
        return part == whole
    for field in part._fields:
        a, b = getattr(part, field, None), getattr(whole, field, None)
        if isinstance(a, list) and isinstance(b, list):
            if any(isinstance(x, ast.stmt) for x in a + b):
                ok = _match_body(a, b)
            else:
                ok = len(a) == len(b) and all(_match(x, y) for x, y in zip(a, b, strict=True))
        else:
            ok = _match(a, b)
        if not ok:
            return False
    return True


def _match_body(part: Sequence[ast.stmt], whole: Sequence[ast.stmt]) -> bool:
    if not part:
        return not whole
    if _is_elision(part[0]):
        return any(_match_body(part[1:], whole[k:]) for k in range(len(whole) + 1))
    return bool(whole) and _match(part[0], whole[0]) and _match_body(part[1:], whole[1:])


_DEFS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _culprit(stmt: ast.stmt, candidates: Sequence[ast.stmt]) -> ast.stmt:
    """The innermost statement of a mismatching class or function that matches nothing."""
    same = [c for c in candidates if isinstance(c, _DEFS) and c.name == getattr(stmt, "name", 0)]
    if not isinstance(stmt, _DEFS) or not same:
        return stmt
    inner = same[0].body
    for child in stmt.body:
        if not _is_elision(child) and not any(_match(child, c) for c in inner):
            return _culprit(child, inner)
    return stmt  # every part matches: the signature, decorators or order differ


def excerpt_problems(block: Block) -> list[str]:
    """An ``excerpt PATH`` block must agree with the repository file it quotes.

    Python: each top-level statement of the block matches a later top-level statement of the
    file, exactly but for annotations, docstrings and ``...`` elisions. Other languages: the
    block's non-blank lines appear in the file in order.
    """
    target = ROOT / block.arg
    if not target.is_file():
        return [f"{block.where}: excerpt of {block.arg}: no such file"]
    if block.lang != "python":
        lines = [x.rstrip() for x in target.read_text().splitlines()]
        at = 0
        for n, want in enumerate(block.code.splitlines(), start=block.line + 1):
            if not want.strip() or want.strip() == "...":
                continue
            try:
                at = lines.index(want.rstrip(), at) + 1
            except ValueError:
                return [f"{block.doc}:{n}: not in {block.arg} (in this order): {want.strip()}"]
        return []
    try:
        part = _Clean().visit(ast.parse(block.code))
    except SyntaxError as exc:
        return [f"{block.doc}:{block.line + (exc.lineno or 0)}: excerpt is not Python: {exc.msg}"]
    whole = _Clean().visit(ast.parse(target.read_text())).body
    at = 0
    for stmt in part.body:
        found = next((k for k in range(at, len(whole)) if _match(stmt, whole[k])), None)
        if found is None:
            stmt = _culprit(stmt, whole)
            first = block.code.splitlines()[stmt.lineno - 1].strip()
            return [
                f"{block.doc}:{block.line + stmt.lineno}: '{first}' does not match "
                f"{block.arg} (compared without annotations and docstrings; '...' elides)"
            ]
        at = found + 1
    return []


def ci_problems(block: Block) -> list[str]:
    """A ``ci`` block shows the checks CI runs: its command must be in ``.ci/run``."""
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [x.strip() for x in block.code.splitlines() if x.strip() and x[0] != "#"]
    missing = [c for c in commands if c not in ci]
    if block.lang != "bash" or not commands:
        return [f"{block.where}: 'ci' marks a bash block holding CI's command"]
    return [f"{block.where}: not what .ci/run runs: {c}" for c in missing]


# --- running -----------------------------------------------------------------------------------

BASH_PRELUDE = """\
set -o pipefail
# `pip install` checks the environment instead of changing it (see docs_examples.pip).
pip() { "$DOCTEST_PYTHON" "$DOCTEST_HELPER" pip "$@" || return 1; _doctest_path; }
_doctest_path() {
    if [ -s "$DOCTEST_STATE/pythonpath" ]; then
        PYTHONPATH="$(cat "$DOCTEST_STATE/pythonpath")"; export PYTHONPATH
    fi
}
_doctest_path
"""


class Sandbox:
    """The temporary working folder of one document: its blocks run there, in order, sharing
    files and whatever their ``pip install`` lines exposed. ``examples/`` links to the
    repository's, as the docs address a reader in a clone."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.state = workdir / ".doctest"
        self.state.mkdir(parents=True, exist_ok=True)
        (workdir / "examples").symlink_to(ROOT / "examples", target_is_directory=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # A user's plugin selection or API keys must not change what the docs do; network
        # model downloads fail fast instead of making an offline example depend on them.
        for key in (
            "REGEN_BENCH_PLUGINS",
            "REGEN_BENCH_STRICT_PLUGINS",
            "OPENAI_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "PYTHONPATH",
            "PYTEST_ADDOPTS",
        ):
            env.pop(key, None)
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONDONTWRITEBYTECODE="1",  # nothing written into the repository's examples/
            PYTEST_ADDOPTS="-p no:cacheprovider",
            DOCTEST_PYTHON=sys.executable,
            DOCTEST_HELPER=str(Path(__file__).resolve()),
            DOCTEST_STATE=str(self.state),
        )
        path_file = self.state / "pythonpath"
        if path_file.is_file() and path_file.read_text():
            env["PYTHONPATH"] = path_file.read_text()
        return env

    def _run(self, block: Block, argv: list[str], timeout: float) -> str:
        try:
            proc = subprocess.run(
                argv,
                cwd=self.workdir,
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise DocExampleError(
                f"{block.where}: {block.lang} block still running after {timeout:.0f} s"
            ) from exc
        if proc.returncode != 0:
            raise DocExampleError(
                f"{block.where}: {block.lang} block exited with status {proc.returncode}\n"
                f"--- block ---\n{block.code}--- output (end) ---\n{proc.stdout[-4000:]}"
            )
        return proc.stdout

    def run(self, block: Block, timeout: float) -> None:
        if block.marker == "file":
            target = self.workdir / block.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
        elif block.is_transcript:
            for command, expected in transcript(block.code):
                output = self._bash(block, command, timeout)
                check_transcript(block, command, expected, output)
        elif block.lang == "bash":
            self._bash(block, block.code, timeout)
        elif block.lang == "python":
            script = self.workdir / f"_doctest_{Path(block.doc).stem}_{block.line}.py"
            script.write_text(block.code)
            self._run(block, [sys.executable, script.name], timeout)

    def _bash(self, block: Block, code: str, timeout: float) -> str:
        script = self.state / f"block_{Path(block.doc).stem}_{block.line}.sh"
        script.write_text(BASH_PRELUDE + code)
        return self._run(block, ["bash", "-e", str(script)], timeout)


def run_document(path: str, workdir: Path, *, slow: bool, text: str | None = None) -> list[str]:
    """Run the blocks of one document in order; the slow suite runs its ``slow`` blocks too.

    Returns where each executed block is; raises :class:`DocExampleError` on the first failure.
    """
    doc = parse(path, text)
    sandbox = Sandbox(workdir)
    ran = []
    for block in doc.blocks:
        if block.marker == "file" or (block.runs and (slow or block.marker != "slow")):
            sandbox.run(block, SLOW_TIMEOUT_S if slow else FAST_TIMEOUT_S)
            ran.append(block.where)
    return ran


def has_runs(path: str, *, slow: bool) -> bool:
    """Whether the fast (or the slow) suite has anything to run in ``path``."""
    try:
        blocks = parse(path).blocks
    except OSError:
        return False
    return any(b.runs and (b.marker == "slow") == slow for b in blocks)


# --- transcripts -------------------------------------------------------------------------------


def transcript(code: str) -> Iterator[tuple[str, list[str]]]:
    """``$ command`` lines (``\\``-continued) and the output lines that follow each."""
    command: list[str] = []
    output: list[str] = []
    continued = False
    for line in code.splitlines():
        if continued:
            command.append(line)
        elif line.startswith("$ "):
            if command:
                yield "\n".join(command), output
            command, output = [line[2:]], []
        else:
            output.append(line)
        continued = bool(command) and line.endswith("\\") and not output
    if command:
        yield "\n".join(command), output


def _normal(line: str) -> str:
    return DURATION.sub("<duration>", line.rstrip())


def check_transcript(block: Block, command: str, expected: list[str], output: str) -> None:
    """Every shown output line appears in the real output, in order (durations aside; lines
    the doc leaves out, such as progress, may come between)."""
    got = [_normal(x) for x in re.split(r"[\r\n]", output)]
    at = 0
    for want in (_normal(x) for x in expected):
        if not want:
            continue
        try:
            at = got.index(want, at) + 1
        except ValueError:
            raise DocExampleError(
                f"{block.where}: `{command}` did not print, where the doc shows it:\n"
                f"  {want}\n--- real output ---\n{output[-4000:]}"
            ) from None


# --- the `pip` of shell blocks -----------------------------------------------------------------


def _satisfied(requirement: str) -> str | None:
    """None when ``requirement`` is installed, else why not."""
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate():
        return None
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{req.name} is not installed"
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return f"{req.name} {version} is installed, not {req.specifier}"
    return None


def _project_requirements(project: dict, extras: list[str]) -> list[str]:
    """Dependencies of a pyproject ``[project]`` with ``extras``, self-references expanded."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    name = canonicalize_name(project["name"])
    optional = project.get("optional-dependencies", {})
    todo, seen, out = list(extras), set(), list(project.get("dependencies", []))
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"pip: {project['name']} has no extra '{extra}'")
        seen.add(extra)
        for spec in optional[extra]:
            req = Requirement(spec)
            if canonicalize_name(req.name) == name:
                todo.extend(req.extras)
            else:
                out.append(spec)
    return out


def _expose(folder: Path, project: dict, state: Path) -> None:
    """Make ``folder`` importable and its entry points visible, as an editable install does,
    without touching the environment: its sources and a dist-info go on PYTHONPATH."""
    name, version = project["name"], project.get("version", "0")
    site = state / "site"
    info = site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = project.get("entry-points", {})
    lines = [
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(lines))
    source = folder / "src" if (folder / "src").is_dir() else folder
    path_file = state / "pythonpath"
    old = [p for p in path_file.read_text().split(os.pathsep) if p] if path_file.is_file() else []
    new = [str(source.resolve()), str(site)]
    path_file.write_text(os.pathsep.join([*new, *(p for p in old if p not in new)]))


def pip(args: Sequence[str], state: Path) -> str | None:
    """``pip install ...`` of a docs example: None when done, else why it cannot be.

    The harness itself and every named requirement must already be installed (the test runs
    inside the development install); a local project folder is exposed as an editable install
    would be, so an example plugin is installed without changing the environment.
    """
    if not args or args[0] != "install":
        return "only `pip install` is supported in docs examples"
    problems: list[str] = []
    it = iter(args[1:])
    for arg in it:
        editable = arg in ("-e", "--editable")
        if editable:
            arg = next(it, "")
        elif arg.startswith("-"):
            if arg in ("-q", "--quiet", "-U", "--upgrade", "--no-deps"):
                continue
            return f"option {arg} is not supported in docs examples"
        m = re.fullmatch(r"(?P<path>[^\[\]]+?)(?:\[(?P<extras>[\w,\s-]+)\])?", arg)
        # pip's rule: an editable, or anything that looks like a path, is a local project
        local = m is not None and (editable or "/" in m["path"] or m["path"].startswith("."))
        if not local or m is None:
            if why := _satisfied(arg):
                problems.append(why)
            continue
        folder = Path(m["path"]).resolve()
        if not (folder / "pyproject.toml").is_file():
            return f"{m['path']}: no pyproject.toml"
        project = tomllib.loads((folder / "pyproject.toml").read_text()).get("project", {})
        if "name" not in project:
            return f"{m['path']}/pyproject.toml: no [project] name"
        extras = [e.strip() for e in (m["extras"] or "").split(",") if e.strip()]
        for spec in _project_requirements(project, extras):
            if why := _satisfied(spec):
                problems.append(f"{why} (needed by {arg})")
        if folder == ROOT:  # the harness itself: the test runs inside its install
            if why := _satisfied(project["name"]):
                problems.append(why)
        else:
            _expose(folder, project, state)
    return "; ".join(problems) or None


if __name__ == "__main__":
    if sys.argv[1:2] != ["pip"]:
        raise SystemExit("usage: docs_examples.py pip install ...")
    why = pip(sys.argv[2:], Path(os.environ["DOCTEST_STATE"]))
    if why:
        raise SystemExit(f"pip (docs example stand-in): {why}")
