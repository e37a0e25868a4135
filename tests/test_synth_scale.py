"""The scale engine of the simulated store (``regen_bench.data.synth.scale``)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from regen_bench.cli import main
from regen_bench.data.dataset import Dataset
from regen_bench.data.profile import profile
from regen_bench.data.regen import ReadReport, iter_records
from regen_bench.data.schema import NARRATIVE_TYPES, Item, UserRecord
from regen_bench.data.synth import CRITIQUE_LEVELS, scale, scale_shoppers
from regen_bench.data.synth.vocabulary import NARRATIVES
from regen_bench.data.synth.writer import SynthStats

USERS, ITEMS = 20_000, 6_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthStats, list[UserRecord]]:
    path = tmp_path_factory.mktemp("scale") / "world.jsonl.gz"
    stats = scale.write_scale(path, USERS, ITEMS, seed=0, workers=1)
    return path, stats, list(iter_records(path))


def _pairs(records: list[UserRecord]):
    for rec in records:
        for a, b in itertools.pairwise(rec.interactions):
            yield rec.items[a.item_id], rec.items[b.item_id], b.critique


def _shared_levels(a: Item, b: Item) -> int:
    return next(
        (k for k, (x, y) in enumerate(zip(a.categories, b.categories, strict=True)) if x != y),
        len(a.categories),
    )


def test_length_decay_gives_clothing_mean() -> None:
    extra = np.arange(scale_shoppers.MAX_LENGTH - scale_shoppers.MIN_LENGTH + 1)
    weights = scale_shoppers.LENGTH_DECAY**extra
    mean = scale_shoppers.MIN_LENGTH + (extra * weights).sum() / weights.sum()
    assert mean == pytest.approx(9.21, abs=1e-4)


def test_same_args_same_bytes_any_workers_other_seed_other_bytes(monkeypatch, tmp_path) -> None:
    # Small blocks, so that two workers make blocks out of order and the file has several.
    monkeypatch.setattr(scale, "BLOCK_USERS", 700)
    a = scale.write_scale(tmp_path / "a.jsonl.gz", 2_000, 400, seed=3, workers=1)
    b = scale.write_scale(tmp_path / "b.jsonl.gz", 2_000, 400, seed=3, workers=2)
    c = scale.write_scale(tmp_path / "c.jsonl.gz", 2_000, 400, seed=4, workers=1)
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert a.fingerprint == b.fingerprint != c.fingerprint
    ids = [r.user_id for r in iter_records(tmp_path / "a.jsonl.gz")]
    assert len(set(ids)) == 2_000 and all(re.fullmatch(r"A[0-9A-Z]{13}", u) for u in ids)


def test_loads_as_a_dataset_with_the_written_statistics(world) -> None:
    path, stats, _ = world
    ds = Dataset.from_file(path, cache=False)
    assert len(ds.users) == stats.users == USERS
    assert len(ds.catalog) == stats.items == ITEMS
    assert int(ds.lengths().sum()) == stats.interactions
    assert ds.fingerprint == stats.fingerprint
    assert ds.critique_coverage() == pytest.approx(stats.critique_coverage, abs=1e-12)


def test_lengths_and_critique_coverage_are_clothing_like(world) -> None:
    _, stats, records = world
    lengths = np.array([len(r.interactions) for r in records])
    assert abs(lengths.mean() - 9.21) < 0.2
    assert lengths.min() == 5 and lengths.max() <= scale_shoppers.MAX_LENGTH
    assert (lengths > 20).sum() > 100  # a tail, not a cut at the mini's 20
    assert abs(stats.critique_coverage - 0.186) < 0.01


def test_critiques_exactly_on_refinements(world) -> None:
    _, _, records = world
    kinds = set()
    for prev, cur, critique in _pairs(records):
        if _shared_levels(prev, cur) >= CRITIQUE_LEVELS:
            assert critique, (prev.title, cur.title)
            assert prev.categories == cur.categories  # refinements stay in the leaf
            # The title is "brand line noun, colour, pack": exactly one of brand, colour,
            # pack or price changed, and the critique names a new colour or brand.
            (b0, c0, p0), (b1, c1, p1) = (
                (x.brand, *x.title.rsplit(", ", 2)[1:]) for x in (prev, cur)
            )
            changed = [b0 != b1, c0 != c1, p0 != p1]
            assert sum(changed) <= 1 and (any(changed) or prev.price != cur.price)
            if c0 != c1:
                assert c1.lower() in critique.lower(), (c1, critique)
                kinds.add("colour")
            elif b0 != b1:
                assert b1 in critique, (b1, critique)
                kinds.add("brand")
            else:
                kinds.add("pack" if p0 != p1 else "price")
        else:
            assert critique is None, (prev.title, cur.title, critique)
    assert kinds == {"colour", "brand", "pack", "price"}
    assert all(r.interactions[0].critique is None for r in records)


def test_no_repeats_and_every_item_bought(world) -> None:
    _, _, records = world
    for rec in records:
        ids = [i.item_id for i in rec.interactions]
        assert len(set(ids)) == len(ids), rec.user_id
        times = [i.timestamp for i in rec.interactions]
        assert all(t0 < t1 for t0, t1 in itertools.pairwise(times))
    assert len({i.item_id for r in records for i in r.interactions}) == ITEMS


def test_text_is_present_and_as_long_as_the_minis(world) -> None:
    _, _, records = world
    for rec in records:
        for name in NARRATIVE_TYPES:
            value = rec.narratives.get(name)
            assert value and value.strip(), (rec.user_id, name)
        assert all(i.summary and i.text for i in rec.interactions)
    p = profile(records)
    # docs/data-format.md's table of the mini: 19.9, 6.8, 12.1, 55.4, 50.1, 82.1 words.
    assert 17 < p.review_words < 23
    assert 5.5 < p.critique_words < 8.5
    assert 10 < p.reason_words < 14.5
    assert 48 < p.explanation_words < 63
    assert 44 < p.endorsement_words < 57
    assert 72 < p.long_summary_words < 93
    assert 4.1 < p.rating < 4.45


def test_narratives_tell_the_last_purchase_as_it_happened(world) -> None:
    _, _, records = world
    refine_reasons = NARRATIVES.keyed("reasons.refine").values()
    refined = 0
    for rec in records:
        last, prev = (rec.items[i.item_id] for i in rec.interactions[:-3:-1])
        n = rec.narratives
        assert last.title in (n.product_endorsement or "")
        assert f"they had bought the {prev.title}." in (n.purchase_explanation or "")
        if rec.interactions[-1].critique is not None:
            assert last.brand is not None
            colour = last.title.rsplit(", ", 2)[1].lower()
            noun = last.categories[-1].lower()
            told = {t.format(noun=noun, colour=colour, brand=last.brand) for t in refine_reasons}
            assert n.purchase_reason in told, (n.purchase_reason, last.title)
            refined += 1
    assert refined > 0.1 * len(records)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupted_write_leaves_no_file(monkeypatch, tmp_path, workers) -> None:
    monkeypatch.setattr(scale, "BLOCK_USERS", 500)
    out = tmp_path / "world.jsonl.gz"
    seen: list[int] = []

    def stop(done: int) -> None:
        seen.append(done)
        if done >= 1_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scale.write_scale(out, 2_000, 300, workers=workers, on_progress=stop)
    assert seen == [500, 1_000]
    assert list(tmp_path.iterdir()) == []


def test_bare_world_has_the_same_purchases_and_reviews_only(tmp_path) -> None:
    full = scale.write_scale(tmp_path / "full.jsonl", 1_000, 300, workers=1)
    bare = scale.write_scale(tmp_path / "bare.jsonl", 1_000, 300, workers=1, bare=True)
    assert bare.critique_coverage == 0 and full.critique_coverage > 0.1
    full_records = iter_records(tmp_path / "full.jsonl")
    for a, b in zip(full_records, iter_records(tmp_path / "bare.jsonl"), strict=True):
        assert [(i.item_id, i.text) for i in a.interactions] == [
            (i.item_id, i.text) for i in b.interactions
        ]
        assert all(v is None for v in b.narratives.as_dict().values())


@pytest.mark.parametrize(
    ("users", "items", "seed", "message"),
    [
        (100, 300, 0, "every item is introduced by its own user"),
        (1_000, 50, 0, "items >= 110"),
        (0, 300, 0, "users >= 1"),
        (1_000, 300, -1, "seed must be >= 0"),
    ],
)
def test_bad_sizes_are_refused(tmp_path, users, items, seed, message) -> None:
    with pytest.raises(ValueError, match=message):
        scale.write_scale(tmp_path / "x.jsonl.gz", users, items, seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_cli_engine_and_preset(tmp_path, capsys) -> None:
    out = tmp_path / "s.jsonl.gz"
    args = ["data", "synth", "--engine", "scale", "--users", "400", "--items", "200"]
    assert main([*args, "--out", str(out), "-q", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "users:             400" in printed and "items:             200" in printed
    report = ReadReport()
    assert sum(1 for _ in iter_records(out, report)) == 400
    assert f"sha256:{report.sha256}" in printed
    bad = ["data", "synth", "--out", str(tmp_path / "x.gz")]
    assert main([*bad, "--preset", "clothing", "--engine", "mini"]) == 2
    assert main([*bad, "--engine", "scale", "--shopper-set", "noise=0.1"]) == 2
    assert "apply to --engine mini only" in capsys.readouterr().err
    assert not (tmp_path / "x.gz").exists()
