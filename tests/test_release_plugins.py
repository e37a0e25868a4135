"""The `office` and `clothing` dataset plugins: where they look and what they say when the
Kaggle files are not there, as a new user would meet it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.plugins import get_plugin_manager
from regen_bench.results import load_result
from regen_bench_plugins.datasets.regen_release import (
    ENV_DATA_DIR,
    KAGGLE_DATASET,
    ReleaseFileNotFoundError,
    release_path,
)
from tests.conftest import make_record


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No data directory from the machine running the tests; HOME points at an empty folder."""
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _place(folder: Path, name: str = "office.jsonl", users: int = 30) -> Path:
    """A small REGEN-format file where the release would be."""
    records = [
        make_record(f"U{u:03d}", [f"B{(u + k) % 9}" for k in range(3 + u % 4)])
        for u in range(users)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    write_records(records, folder / name)
    return folder / name


def test_registered_through_entry_point() -> None:
    manager = get_plugin_manager(refresh=True)
    assert {"office", "clothing"} <= set(manager.names("dataset"))
    assert manager.get("dataset", "office").plugin == "regen_release"


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _place(tmp_path / "explicit" / "REGEN")
    from_env = _place(tmp_path / "env" / "REGEN", "office.jsonl.gz")
    cached = _place(tmp_path / "xdg" / "regen-bench" / "data" / "REGEN", "clothing.jsonl")
    home = _place(tmp_path / "home" / ".cache" / "regen-bench" / "data" / "REGEN")

    assert release_path("office") == home  # the documented default
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert release_path("clothing") == cached  # XDG_CACHE_HOME respected
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env"))
    assert release_path("office") == from_env  # the env var beats the default, .gz accepted
    assert release_path("office", str(tmp_path / "explicit")) == explicit  # --data-dir first
    # a data directory that is the REGEN folder itself works too
    assert release_path("office", str(tmp_path / "explicit" / "REGEN")) == explicit


def test_missing_file_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(ReleaseFileNotFoundError) as info:
        release_path("clothing", str(tmp_path / "data"))
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    expected = tmp_path / "data" / "REGEN" / "clothing.jsonl"
    assert f"needs the REGEN release file {expected} (or {expected}.gz)" in message
    assert f"kaggle datasets download -d {KAGGLE_DATASET} -p {tmp_path / 'data'} --unzip" in (
        message
    )
    assert "from --data-dir" in message and "\n" not in message


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "info", "office"],
        ["run", "--model", "popularity", "--task", "sequential", "--dataset", "office", "-q"],
    ],
)
def test_cli_without_the_file(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("regen-bench: error: dataset 'office' needs the REGEN release file ")
    assert str(tmp_path / "data" / "REGEN" / "office.jsonl") in err
    assert f"from ${ENV_DATA_DIR}" in err and KAGGLE_DATASET in err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_cli_with_the_file(tmp_path: Path, capsys) -> None:
    _place(tmp_path / "data" / "REGEN", users=30)
    assert main(["data", "info", "office", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "dataset        office (" in out and "users          30" in out
    argv = ["run", "--model", "popularity", "--task", "sequential", "--dataset", "office"]
    argv += ["--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "res"), "-q"]
    assert main(argv) == 0
    result = load_result(tmp_path / "res" / "office" / "sequential" / "popularity.json")
    assert result.dataset.name == "office" and result.dataset.users == 30
