"""The docs' code examples run, so a doc that drifts from the code fails CI.

Every fenced block of ``README.md``, ``CONTRIBUTING.md``, ``docs/*.md`` and
``examples/*/README.md`` is accounted for:

- ``bash`` and ``python`` blocks **run by default**, in order, each in a fresh process in a
  temporary folder per document (bash with ``-e``; python is the venv's). The default is to run
  because then a new example is tested the day it is written: the only way out is a marker
  with a stated reason, so no example rots silently. (Opting in would let every unmarked new
  block go untested.)
- ``text``, ``toml`` and ``json`` blocks are layouts, file contents or output and do not run,
  except a ``text`` block that starts with ``$ command``: a transcript, whose command runs and
  must print every shown line, in order (durations aside).
- A block without a language tag, or with another one, fails the check: untagged, nobody can
  tell a command from its output.

An HTML comment on the line just before a fence changes that (CONTRIBUTING.md, "Docs
examples"): ``<!-- doctest: skip (why) -->`` and ``<!-- doctest: slow (why) -->`` (the reason
is required; slow blocks run under ``pytest -m slow``), ``<!-- doctest: file PATH -->`` (the
block is a file the reader creates), ``<!-- doctest: excerpt PATH -->`` (the block quotes a
repository file and must agree with it) and ``<!-- doctest: ci -->`` (the block is CI's check
command and must be what ``.ci/run`` runs). ``pip install`` lines check the environment
instead of changing it (``tests/docs_examples.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from regen_bench.cli import COMMANDS, main
from tests import docs_examples as dx

DOCS = dx.documents()


def test_the_documents_are_found() -> None:
    assert {"README.md", "CONTRIBUTING.md", "docs/plugin-tutorial.md"} <= set(DOCS)
    assert "examples/regen-bench-itemknn/README.md" in DOCS


@pytest.mark.parametrize("doc", DOCS)
def test_every_block_is_accounted_for(doc: str) -> None:
    """Tagged, marked with a reason where it does not run; excerpts and CI commands agree."""
    problems = dx.problems(doc)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", [d for d in DOCS if dx.has_runs(d, slow=False)])
def test_doc_examples_run(doc: str, tmp_path: Path) -> None:
    assert dx.run_document(doc, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if dx.has_runs(d, slow=True)])
def test_slow_doc_examples_run(doc: str, tmp_path: Path) -> None:
    """Every runnable block, slow ones included: README's first command prints exactly the
    numbers of its "What you get" block."""
    assert dx.run_document(doc, tmp_path, slow=True)


# --- the README's command table ----------------------------------------------------------------


def _command_rows() -> list[tuple[int, str]]:
    """(line, first code span) of each row of README's "Commands" table."""
    lines = (dx.ROOT / "README.md").read_text().splitlines()
    start = lines.index("## Commands")
    rows = []
    for n, line in enumerate(lines[start:], start=start + 1):
        if line.startswith("## ") and n > start + 1:
            break
        m = re.match(r"\| `(regen-bench [^`]*)` \|", line)
        if m:
            rows.append((n, m[1].replace("\\|", "|")))
    return rows


def _leaves() -> set[tuple[str, ...]]:
    """Every command path of the CLI (``("run",)``, ``("data", "synth")``...)."""
    return {
        (cmd.name, sub.name) if cmd.commands else (cmd.name,)
        for cmd in COMMANDS
        for sub in cmd.commands or (cmd,)
    }


def _help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([*path, "--help"])
    return capsys.readouterr().out


def test_the_readme_command_table_matches_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command is in the table, and every command and option the table names exists."""
    leaves = _leaves()
    groups = {p[0] for p in leaves if len(p) == 2}
    problems: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for line, span in _command_rows():
        words = span.split()[1:]
        named: list[tuple[str, ...]]
        if words[0] in groups:
            named = [(words[0], w) for w in words[1:] if (words[0], w) in leaves]
        else:
            named = [(words[0],)] if (words[0],) in leaves else []
        if not named:
            problems.append(f"README.md:{line}: no such command: {span}")
            continue
        seen.update(named)
        helps = " ".join(_help(p, capsys) for p in named)
        for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", span):
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helps):
                problems.append(f"README.md:{line}: {' '.join(named[0])} has no option {flag}")
    problems += [
        f"README.md: the Commands table lacks `regen-bench {' '.join(p)}`"
        for p in leaves
        if p not in seen
    ]
    assert not problems, "\n".join(problems)


# --- the machinery can fail ---------------------------------------------------------------------


def test_unaccounted_blocks_are_reported() -> None:
    text = "\n".join(
        [
            "```",  # untagged
            "regen-bench run",
            "```",
            "```sh",  # unknown tag
            "ls",
            "```",
            "<!-- doctest: skip -->",  # no reason
            "```bash",
            "false",
            "```",
            "<!-- doctest: skip (fine) -->",
            "",  # not directly before a fence
            "```bash",
            "true",
            "```",
            "<!-- doctest: excerpt tests/docs_examples.py -->",
            "```python",
            "def not_in_that_file(): ...",
            "```",
            "<!-- doctest: ci -->",
            "```bash",
            "pytest --no-such-flag",
            "```",
        ]
    )
    doc = dx.parse("x.md", text)
    problems = [*doc.problems, *(p for b in doc.blocks for p in dx.block_problems(b))]
    expected = [
        "x.md:11: doctest marker not directly before a fence",
        "x.md:1: untagged code block",
        "x.md:4: code block language 'sh'",
        "x.md:8: 'skip' needs a reason",
        "x.md:18: 'def not_in_that_file(): ...' does not match tests/docs_examples.py",
        "x.md:21: not what .ci/run runs: pytest --no-such-flag",
    ]
    assert len(problems) == len(expected), problems
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_python_excerpts_allow_elisions_but_not_changes() -> None:
    path = "tests/docs_examples.py"
    ok = "\n".join(
        [
            "@dataclass(frozen=True)",
            "class Block:",
            "    ...",
            "    @property",
            "    def where(self):",
            '        return f"{self.doc}:{self.line}"',
            "    ...",
        ]
    )
    changed = ok.replace("self.line", "self.lang")
    assert not dx.block_problems(dx.Block("x.md", 1, "python", ok, "excerpt", path))
    assert dx.block_problems(dx.Block("x.md", 1, "python", changed, "excerpt", path))
    no_tail = ok.rsplit("\n", 1)[0]  # the class goes on after `where`: that needs a `...`
    assert dx.block_problems(dx.Block("x.md", 1, "python", no_tail, "excerpt", path))


def test_a_failing_block_fails_with_its_place_and_output(tmp_path: Path) -> None:
    text = "```bash\necho fine\n```\n\n```bash\necho broken >&2\nfalse\necho never\n```\n"
    with pytest.raises(dx.DocExampleError, match=r"(?s)x\.md:5: bash block exited.*broken"):
        dx.run_document("x.md", tmp_path, slow=False, text=text)


def test_transcripts_compare_output_but_not_durations(tmp_path: Path) -> None:
    shown = (
        "```text\n$ printf 'epoch 4, elapsed 0:09, eta 7:35\\n"
        "recall@10 0.3575\\ntime: fit 3.1s\\n'\n"
        "epoch 4, elapsed 0:12, eta 1:07:35\nrecall@10 {}\ntime: fit 26.0s\n```\n"
    )
    assert dx.run_document("x.md", tmp_path / "a", slow=False, text=shown.format("0.3575"))
    with pytest.raises(dx.DocExampleError, match=r"recall@10 0\.3620"):
        dx.run_document("x.md", tmp_path / "b", slow=False, text=shown.format("0.3620"))


def test_slow_blocks_run_only_in_the_slow_suite(tmp_path: Path) -> None:
    text = "<!-- doctest: slow (takes long) -->\n```bash\nfalse\n```\n"
    assert dx.run_document("x.md", tmp_path / "fast", slow=False, text=text) == []
    with pytest.raises(dx.DocExampleError):
        dx.run_document("x.md", tmp_path / "slow", slow=True, text=text)


def test_pip_exposes_a_local_package_and_checks_the_rest(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "src" / "mypkg").mkdir(parents=True)
    (tmp_path / "pkg" / "src" / "mypkg" / "__init__.py").write_text("VALUE = 42\n")
    (tmp_path / "pkg" / "pyproject.toml").write_text(
        '[project]\nname = "my-pkg"\nversion = "1.2"\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\nbad = ["no-such-package-xyz"]\n'
        '[project.entry-points.regen_bench]\nmine = "mypkg"\n'
    )
    text = (
        "```bash\npip install -e 'pkg[test]' pytest\n"
        "python -c 'import mypkg, importlib.metadata as m; assert mypkg.VALUE == 42; "
        'assert [e.value for e in m.entry_points(group="regen_bench", name="mine")] '
        '== ["mypkg"]\'\n```\n'
    )
    work = tmp_path / "ok"
    work.mkdir()
    (work / "pkg").symlink_to(tmp_path / "pkg")
    assert dx.run_document("x.md", work, slow=False, text=text)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pkg").symlink_to(tmp_path / "pkg")
    with pytest.raises(dx.DocExampleError, match="no-such-package-xyz is not installed"):
        dx.run_document("x.md", bad, slow=False, text="```bash\npip install -e 'pkg[bad]'\n```\n")
