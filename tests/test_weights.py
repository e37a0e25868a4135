"""Pinning weights: hub ids to the cached commit sha (offline), local folders to their content."""

from __future__ import annotations

from pathlib import Path

import pytest

from regen_bench.weights import WeightsError, content_digest, pin, short


def _hub_cache(root: Path, repo: str, sha: str) -> Path:
    """A cache laid out as huggingface_hub lays it out: refs/main -> snapshots/<sha>/."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(sha)
    snap = folder / "snapshots" / sha
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    return snap


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("REGEN_BENCH_CACHE_DIR", str(tmp_path / "rb"))
    return cache


def test_a_hub_id_is_pinned_to_the_cached_commit_offline(offline: Path) -> None:
    _hub_cache(offline, "org/tiny-model", "0123456789abcdef" * 2 + "01234567")
    assert pin("org/tiny-model") == "org/tiny-model@0123456789abcdef0123456789abcdef01234567"


def test_the_revision_follows_refs_main(offline: Path) -> None:
    _hub_cache(offline, "org/m", "a" * 40)
    assert pin("org/m").endswith("@" + "a" * 40)
    (offline / "models--org--m" / "refs" / "main").write_text("b" * 40)
    (offline / "models--org--m" / "snapshots" / ("b" * 40)).mkdir()
    assert pin("org/m").endswith("@" + "b" * 40)


def test_an_uncached_hub_id_offline_is_a_clear_error(offline: Path) -> None:
    with pytest.raises(WeightsError, match="'org/absent' is not in the Hugging Face cache"):
        pin("org/absent")


def test_no_network_is_a_clear_error(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without network the hub client raises its HTTP library's connect error (no OSError,
    no error of huggingface_hub's own): a clear error all the same, never a traceback."""
    import huggingface_hub

    class ConnectError(Exception):  # as httpx's / httpx2's: derived from Exception only
        pass

    def unreachable(self: object, repo_id: str, **kwargs: object) -> None:
        raise ConnectError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(
        WeightsError, match=r"'org/far': cannot resolve its hub commit \(\[Errno -2\] Name"
    ):
        pin("org/far")


def test_a_local_folder_is_pinned_to_its_content(offline: Path, tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "model.safetensors").write_bytes(b"\x00" * 1000)
    (model / ".lock").write_text("ignored")
    first = pin(str(model))
    assert first.startswith("my-model@sha256:") and len(first.split(":")[-1]) == 64
    copy = tmp_path / "elsewhere" / "my-model"
    copy.parent.mkdir()
    copy.mkdir()
    for f in ("config.json", "model.safetensors"):
        (copy / f).write_bytes((model / f).read_bytes())
    assert pin(str(copy)) == first  # same bytes, same pin, wherever they live
    (model / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 999)  # retrained in place
    assert pin(str(model)) != first


def test_a_resolved_path_keeps_the_reference_name(offline: Path, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    assert pin("smollm2", tmp_path / "w.bin") == "smollm2@sha256:" + content_digest(
        tmp_path / "w.bin"
    )


def test_short_names_every_role_in_order() -> None:
    pins = {"narrator": "org/m@" + "c" * 40, "embedder": "minilm@sha256:" + "d" * 64}
    assert short(pins) == "embedder=minilm@dddddddddddd,narrator=org/m@cccccccccccc"
