"""``regen-bench data export --format recbole``: atomic files that import back as exported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from regen_bench.cli import main
from regen_bench.data.dataset import Dataset
from regen_bench.data.export_recbole import INTER_HEADER, ITEM_HEADER, export_recbole, keeps_order
from regen_bench.data.recbole import TIME_KEYS, import_recbole
from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.synth import iter_synthetic
from tests.conftest import make_record

TRICKY = 'A 12" ruler\twith "quotes",\na line break\r\nand  two  spaces '


def _sequences(ds: Dataset) -> dict[str, list[str]]:
    return {u.user_id: ds.catalog.ids(u.items) for u in ds.users}


def _imported(folder: Path, out: Path, time_key: str = "exact") -> Dataset:
    import_recbole(folder, out, time_key=time_key)
    return Dataset.from_file(out, cache=False)


def _levels(categories: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c.replace(" ", "_") for c in categories)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("world") / "world.jsonl.gz"
    write_records(iter_synthetic(60, 200, 3), path)
    return Dataset.from_file(path, cache=False)


def test_round_trip_through_the_import(world: Dataset, tmp_path: Path) -> None:
    written = export_recbole(world, tmp_path / "world")
    assert (written.users, written.items) == (len(world.users), len(world.catalog))
    assert written.interactions == int(world.lengths().sum())
    assert written.timestamps == "original"  # the synth's times strictly increase
    lines = (tmp_path / "world" / "world.inter").read_text().splitlines()
    assert lines[0].split("\t") == list(INTER_HEADER)
    item_header = (tmp_path / "world" / "world.item").read_text().splitlines()[0]
    assert item_header.split("\t") == list(ITEM_HEADER)
    back = _imported(tmp_path / "world", tmp_path / "back.jsonl")
    assert [u.user_id for u in back.users] == [u.user_id for u in world.users]
    assert _sequences(back) == _sequences(world)
    for mine, theirs in zip(world.users, back.users, strict=True):
        assert mine.timestamps.tolist() == theirs.timestamps.tolist()
        assert mine.ratings.tolist() == theirs.ratings.tolist()
    items = {item.asin: item for item in back.catalog}
    for item in world.catalog:
        # Categories are the one field that changes: a token_seq token holds no space.
        assert items[item.asin] == replace(item, categories=_levels(item.categories))
    # Every sort key RecBole may use (float32, normalised or not) gives the same order.
    for how in TIME_KEYS[1:]:
        assert _sequences(_imported(tmp_path / "world", tmp_path / f"{how}.jsonl", how)) == (
            _sequences(world)
        )


def test_times_that_do_not_order_the_sequence_are_written_as_positions(tmp_path: Path) -> None:
    records = [make_record("u1", ["A1", "A2", "A3"]), make_record("u2", ["A3", "A1", "A2"])]
    day = 1_500_000_000
    times = {"u1": [day, day, day + 86_400], "u2": [day + 2, day + 1, day]}
    for record in records:
        record.interactions = [
            replace(i, timestamp=t)
            for i, t in zip(record.interactions, times[record.user_id], strict=True)
        ]
    ds = Dataset.from_records("odd", records)
    assert export_recbole(ds, tmp_path / "odd").timestamps == "position"
    rows = (tmp_path / "odd" / "odd.inter").read_text().splitlines()[1:]
    assert [r.split("\t")[3] for r in rows] == ["0", "1", "2", "0", "1", "2"]
    for how in TIME_KEYS:
        back = _imported(tmp_path / "odd", tmp_path / f"{how}.jsonl", how)
        assert _sequences(back) == {"u1": ["A1", "A2", "A3"], "u2": ["A3", "A1", "A2"]}


def test_keeps_order_asks_for_strict_steps_under_recboles_float32_keys() -> None:
    day = 1_500_000_000
    assert keeps_order(np.array([day, day + 86_400, day, day + 1_000]), np.array([2, 2]))
    assert keeps_order(np.array([day + 5, day]), np.array([1, 1]))  # a new user may go back
    assert not keeps_order(np.array([day, day]), np.array([2]))  # a tie
    assert not keeps_order(np.array([day, day + 10]), np.array([2]))  # a float32 tie
    assert keeps_order(np.array([day]), np.array([0, 1, 0]))


def test_text_with_tabs_quotes_and_line_breaks_survives(tmp_path: Path) -> None:
    record = make_record("u\t1", ["A1", "A2"])
    record.items["A1"] = replace(
        record.items["A1"], title=TRICKY, description=TRICKY, brand='"Acme"\tInc', price=None
    )
    record.items["A2"] = replace(record.items["A2"], categories=('Pens "fine"', "a\tb"))
    ds = Dataset.from_records("tricky", [record])
    export_recbole(ds, tmp_path / "tricky")
    back = _imported(tmp_path / "tricky", tmp_path / "back.jsonl")
    assert [u.user_id for u in back.users] == ["u\t1"]
    assert back.catalog[0] == replace(ds.catalog[0], categories=_levels(ds.catalog[0].categories))
    assert back.catalog[1].categories == ('Pens_"fine"', "a\tb")
    # RecBole's own reader: pandas' python engine, as Dataset._load_feat calls it.
    pd = pytest.importorskip("pandas")
    path = tmp_path / "tricky" / "tricky.item"
    dtype = {h: float if h.endswith(":float") else str for h in ITEM_HEADER}
    frame = pd.read_csv(path, delimiter="\t", dtype=dtype, encoding="utf-8", engine="python")
    assert frame["title:token"].tolist()[0] == TRICKY
    assert frame["brand:token"].tolist()[0] == '"Acme"\tInc'


def test_non_empty_output_is_refused_and_left_alone(world: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("keep me")
    with pytest.raises(ValueError, match=f"output '{out}' exists and is not empty"):
        export_recbole(world, out)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temporary folder left
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_recbole(world, tmp_path / "file")


def test_cli(world: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "world"
    assert main(["data", "export", "--format", "recbole", world.source, str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (recbole): dataset world: users 60, items {len(world.catalog)}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["world.inter", "world.item"]
    # The import is the way back, as the CLI spells it.
    argv = ["data", "import", "--format", "recbole", str(out), "--out", str(tmp_path / "b.jsonl")]
    assert main([*argv, "--time-key", "exact"]) == 0
    back = [r.user_id for r in iter_records(tmp_path / "b.jsonl")]
    assert back == [u.user_id for u in world.users]
    assert main(["data", "export", "--format", "recbole", world.source, str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_parity_script_sees_the_export_as_the_harness_does(world: Dataset, tmp_path: Path) -> None:
    from tests.scripts import load_script

    parity = load_script("benchmarks/recbole_parity.py")
    assert parity.parse_args([]).dataset is None  # RecBole's own ML-100K
    assert parity.parse_args(["--dataset", "mini"]).dataset == "mini"
    export_recbole(world, tmp_path / "world")
    import_recbole(tmp_path / "world", tmp_path / "back.jsonl")
    assert parity.dataset_view(world) == parity.harness_view(tmp_path / "back.jsonl")
