"""The columnar cache behind Dataset.from_file (regen_bench.data.store, .store_cache)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from regen_bench.data import store as store_mod
from regen_bench.data import store_cache
from regen_bench.data.dataset import Dataset
from regen_bench.data.regen import write_records


@pytest.fixture
def data_file(tmp_path, records) -> Path:
    path = tmp_path / "toy.jsonl.gz"
    write_records(records, path)
    return path


def _cache_dirs(path: Path) -> list[Path]:
    root = store_cache.cache_root(path)
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_cold_and_warm_loads_match_records(data_file, records):
    cold = Dataset.from_file(data_file)
    (folder,) = _cache_dirs(data_file)
    assert folder.parent == data_file.parent / "toy.jsonl.gz.regen-cache"
    assert folder.name == cold.fingerprint
    warm = Dataset.from_file(data_file)
    assert warm.store is not None and warm.store.path == folder
    # memory-mapped, not read into memory (a plain ndarray view of the map)
    assert isinstance(warm.store.items.base, np.memmap) and not warm.store.items.flags.owndata
    memory = Dataset.from_records("toy", records)
    for ds in (cold, warm):
        assert ds.fingerprint == cold.report.sha256 != ""
        assert len(ds.users) == 3 and len(ds.catalog) == 5
        assert [u.user_id for u in ds.users] == ["u1", "u2", "u3"]
        assert ds.users[0].critiques == (None, None, "In black, please", None)
        assert ds.users[0].reviews[1] == ("s1", "t1")
        assert ds.users[0].narratives.purchase_reason == "needed pens"
        assert ds.users[1].narratives.product_endorsement == "great pen"
        assert ds.users[-1].items.tolist() == [0, 4]
        assert ds.catalog[0] == records[0].items["A1"]  # price None, brand, categories kept
        assert ds.catalog.index["A5"] == 4 and ds.catalog.ids([4, 0]) == ["A5", "A1"]
        assert ds.critique_coverage() == pytest.approx(1 / 6)
        assert ds.lengths().tolist() == [4, 3, 2]
        assert ds.report.users == 3 and ds.report.critiques == 1
    assert [u.items.tolist() for u in memory.users] == [u.items.tolist() for u in warm.users]


def test_warm_load_trusts_stat_and_does_not_rehash(data_file, monkeypatch):
    Dataset.from_file(data_file)

    def no_hash(path):
        raise AssertionError("re-hashed a file whose size and mtime did not change")

    monkeypatch.setattr(store_cache, "file_sha256", no_hash)
    monkeypatch.setattr(store_cache, "build_store", no_hash)
    assert len(Dataset.from_file(data_file).users) == 3


def test_touched_file_is_rehashed_and_cache_reused(data_file, monkeypatch):
    first = Dataset.from_file(data_file)
    st = data_file.stat()
    os.utime(data_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def no_build(*a, **k):
        raise AssertionError("rebuilt a cache for unchanged content")

    monkeypatch.setattr(store_cache, "build_store", no_build)
    again = Dataset.from_file(data_file)
    assert again.fingerprint == first.fingerprint
    meta = json.loads((again.store.path / "meta.json").read_text())
    assert meta["source"]["mtime_ns"] == st.st_mtime_ns + 10**9


def test_changed_content_rebuilds_and_drops_old_cache(data_file, records):
    old = Dataset.from_file(data_file)
    write_records(records[:2], data_file)
    new = Dataset.from_file(data_file)
    assert new.fingerprint != old.fingerprint and len(new.users) == 2
    assert [p.name for p in _cache_dirs(data_file)] == [new.fingerprint]


@pytest.mark.parametrize("damage", ["truncate_blob", "drop_file", "bad_meta", "bad_version"])
def test_corrupt_cache_is_rebuilt_not_trusted(data_file, damage):
    Dataset.from_file(data_file)
    (folder,) = _cache_dirs(data_file)
    if damage == "truncate_blob":
        (folder / "title.bin").write_bytes(b"x")
    elif damage == "drop_file":
        (folder / "items.npy").unlink()
    elif damage == "bad_meta":
        (folder / "meta.json").write_text("{not json")
    else:
        meta = json.loads((folder / "meta.json").read_text())
        meta["version"] = -1
        (folder / "meta.json").write_text(json.dumps(meta))
    ds = Dataset.from_file(data_file)
    assert ds.catalog[1].title == "Item A2"
    store_mod.open_store(folder)  # whole again


def test_unknown_fields_survive_the_cache(tmp_path, records):
    path = tmp_path / "x.jsonl"
    write_records(records, path)
    lines = path.read_text().splitlines()
    obj = json.loads(lines[0])
    obj["shiny"] = 1
    lines[0] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")
    cold = Dataset.from_file(path)
    warm = Dataset.from_file(path)
    assert warm.store is not None and warm.store.path is not None
    assert cold.report.unknown_fields == warm.report.unknown_fields == {"shiny": 1}


def test_cache_env_and_no_cache(data_file, tmp_path, monkeypatch):
    monkeypatch.setenv(store_cache.CACHE_ENV, str(tmp_path / "elsewhere"))
    ds = Dataset.from_file(data_file)
    assert ds.store is not None and ds.store.path is not None
    assert ds.store.path.parent.parent == tmp_path / "elsewhere"
    monkeypatch.delenv(store_cache.CACHE_ENV)
    plain = Dataset.from_file(data_file, cache=False)
    assert plain.store is not None and plain.store.path is None
    assert not (data_file.parent / "toy.jsonl.gz.regen-cache").exists()
    assert plain.fingerprint == ds.fingerprint


def test_read_only_folder_falls_back_to_home_cache(data_file, tmp_path, monkeypatch):
    monkeypatch.setattr(store_cache.os, "access", lambda p, mode: False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ds = Dataset.from_file(data_file)
    assert ds.store is not None and ds.store.path is not None
    assert (tmp_path / "home" / ".cache" / "regen-bench") in ds.store.path.parents


def test_bad_file_leaves_no_cache(tmp_path, records):
    path = tmp_path / "bad.jsonl"
    write_records(records, path)
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:4"):
        Dataset.from_file(path)
    root = store_cache.cache_root(path)
    assert not root.exists() or not any(root.iterdir())


def test_skip_bad_lines_cache_is_separate_from_strict(tmp_path, records):
    path = tmp_path / "bad.jsonl"
    write_records(records, path)
    path.write_text(path.read_text() + "{oops\n")
    lenient = Dataset.from_file(path, skip_bad_lines=True)
    warm = Dataset.from_file(path, skip_bad_lines=True)
    assert len(lenient.users) == len(warm.users) == 3
    assert warm.store is not None and warm.store.path is not None
    assert warm.store.path.name.endswith("-lenient")
    assert warm.report.bad_lines == lenient.report.bad_lines == 1
    with pytest.raises(ValueError, match=r"bad.jsonl:4"):
        Dataset.from_file(path)  # a strict load never trusts a lenient cache
