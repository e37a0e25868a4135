"""LUMEN CPU-budget options: freezing, compact prompts, all-slot item loss, budget, preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regen_bench import build_task
from tests.test_lumen import _dataset, _model, backbone_dir, one_thread  # noqa: F401

torch = pytest.importorskip("torch")

from regen_bench_plugins.lumen.model import Lumen  # noqa: E402
from regen_bench_plugins.lumen.options import PRESETS, LumenOptions  # noqa: E402
from regen_bench_plugins.lumen.prompt import prompt_segments  # noqa: E402
from regen_bench_plugins.lumen.train import collate, micro_batches  # noqa: E402


def _params(model: Lumen) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.net.named_parameters()}


def test_freezing_trains_only_the_top_layers_and_the_item_head(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(backbone_dir, train_layers=1, train_item_emb=False, lr=1e-2, epochs=2)
    before = _params(model)
    log = model.fit(data.train[:4], [])
    after = _params(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = {k for k in before if k.startswith("backbone.model.layers.1.")}
    assert top and top <= changed  # every tensor of the top layer moved
    assert "backbone.model.norm.weight" in changed
    assert {"item_head.weight", "item_head.bias"} <= changed
    # Nothing below the top layer, no embedding, not the item table.
    assert changed == top | {"backbone.model.norm.weight", "item_head.weight", "item_head.bias"}
    assert log["trainable_parameters"] == sum(after[k].numel() for k in changed)


def test_frozen_backbone_leaves_every_backbone_weight_unchanged(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(backbone_dir, train_layers=0, lr=1e-2, epochs=2)
    before = _params(model)
    model.fit(data.train[:4], [])
    after = _params(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"item_emb.weight", "item_head.weight", "item_head.bias"}
    with pytest.raises(ValueError, match="exceeds the backbone's 2 layers"):
        _model(backbone_dir, train_layers=3).fit(data.train[:2], [])


def test_title_only_prompts_drop_the_other_fields_and_clip_titles() -> None:
    ds = _dataset()
    user = ds.users[0]
    kw: dict[str, Any] = {"max_history": 2, "max_field_chars": 200}
    args = (ds.catalog, user.items[:4], user.ratings[:4], user.reviews[:4], user.critiques[:4])
    full = "".join(s for s in prompt_segments(*args, "in red", None, **kw) if isinstance(s, str))
    short = prompt_segments(*args, "in red", None, fields="title", max_title_words=1, **kw)
    text = "".join(s for s in short if isinstance(s, str))
    assert "Description:" in full and "Rating:" in full and "Category:" in full
    for field in ("Description:", "Rating:", "Category:", "Price:", "User Review:"):
        assert field not in text
    # Two newest purchases (slots), their titles cut to one word ("Item"), critiques kept.
    assert [s for s in short if isinstance(s, int)] == [int(i) for i in user.items[2:4]]
    assert text.count(" Title: Item User Critique:") == 2
    assert "User Critique: in red." in text
    with pytest.raises(ValueError, match="fields must be one of"):
        prompt_segments(*args, None, None, fields="all", **kw)


def test_item_loss_all_targets_every_item_slot(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    last = _model(backbone_dir)
    every = _model(backbone_dir, item_loss="all")
    encs = every.training_examples(data.train[:2])
    encs = [encs[1], encs[3]]  # the longest prefix of each user (2 prefixes per user)
    batch = collate(encs, every.encoder.placeholder, every_slot=True)
    assert batch["item_rows"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["item_pos"].tolist() == encs[0].slot_pos + encs[1].slot_pos
    assert batch["item_target"].tolist() == encs[0].slot_items + encs[1].slot_items
    # The last target of each row is the training target; item_loss=last keeps only it.
    only = collate(encs, last.encoder.placeholder, every_slot=False)
    assert only["item_pos"].tolist() == [encs[0].item_pos, encs[1].item_pos]
    assert only["item_target"].tolist() == [e.item_target for e in encs]
    out_all = every.net(**batch)["item_loss"]
    out_last = last.net(**only)["item_loss"]
    assert float(out_all) != pytest.approx(float(out_last))


def test_bucketed_batches_cover_every_example_once_with_similar_lengths(
    backbone_dir: Path,  # noqa: F811
) -> None:
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(backbone_dir, bucket=True, micro_batch=2, max_history=10)
    examples = model.training_examples(data.train)
    batches = micro_batches(examples, np.random.default_rng(0), 2, bucket=True)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    lengths = [sorted(len(examples[i].ids) for i in b) for b in batches]
    # Sorted within one window (all 18 examples fit in it): adjacent lengths share a batch.
    flat = sorted(len(e.ids) for e in examples)
    assert sorted(lengths) == [flat[k : k + 2] for k in range(0, len(flat), 2)]


def test_time_budget_stops_training_and_is_recorded(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(backbone_dir, epochs=50, train_minutes=1e-9)
    log = model.fit(data.train, data.valid)
    assert log["stopped"] == "train_minutes" and log["steps"] == 1 and log["epochs"] == 1
    assert [e["step"] for e in log["valid"]] == [1]  # the stopped model was validated
    unlimited = _model(backbone_dir, epochs=2).fit(data.train, data.valid)
    assert unlimited["stopped"] in ("epochs", "patience") and unlimited["steps"] > 1


def test_cpu_hour_preset_sets_its_values_and_explicit_options_win(backbone_dir: Path) -> None:  # noqa: F811
    ds = _dataset()
    model = Lumen(ds.catalog, backbone=str(backbone_dir), device="cpu", preset="cpu-hour")
    preset = PRESETS["cpu-hour"]
    assert {k: model.opts.as_dict()[k] for k in preset} == preset
    assert preset["train_layers"] == 2 and preset["fields"] == "title"
    assert preset["train_minutes"] == 30.0 and preset["item_loss"] == "all"
    config = model.config()
    assert config["preset"] == "cpu-hour" and config["max_history"] == 8
    mine = Lumen(
        ds.catalog, backbone=str(backbone_dir), device="cpu", preset="cpu-hour", max_history="3"
    )
    assert mine.opts.max_history == 3 and mine.opts.fields == "title"
    # Without a preset the paper-like defaults hold.
    plain = _model(backbone_dir)
    assert plain.opts.train_layers == -1 and plain.opts.fields == "full"
    defaults = LumenOptions.defaults()
    assert defaults["item_loss"] == "last" and defaults["train_minutes"] == 0.0
    with pytest.raises(ValueError, match="'preset' must be one of cpu-hour"):
        Lumen(ds.catalog, backbone=str(backbone_dir), device="cpu", preset="fast")
    with pytest.raises(ValueError, match="item_loss"):
        _model(backbone_dir, item_loss="some")


def test_compact_checkpoint_round_trip_keeps_the_prompt_options(
    backbone_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    ds = _dataset()
    data = build_task(ds, "conversational", "product_endorsement")
    model = _model(
        backbone_dir,
        preset="cpu-hour",
        max_history=3,
        train_minutes=0.0,
        epochs=1,
        eval_every=0,
        valid_examples=4,
        save_dir=str(tmp_path / "ck"),
    )
    model.fit(data.train, data.valid)
    loaded = Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), device="cpu")
    assert loaded.opts.fields == "title" and loaded.opts.max_title_words == 6
    assert loaded.opts.max_new_tokens == 8  # the trained model's length (default: 96)
    assert (
        Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), max_new_tokens=5).opts.max_new_tokens
        == 5
    )
    loaded.use_users(data.train)
    assert np.array_equal(model.score(data.test), loaded.score(data.test))
    with pytest.raises(ValueError, match="contradicts the checkpoint"):
        Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), device="cpu", fields="full")


def test_kept_frozen_states_train_exactly_like_the_full_forward(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    kw: dict[str, Any] = {"train_layers": 1, "train_item_emb": False, "lr": 1e-2, "epochs": 3}
    kept = _model(backbone_dir, **kw)
    log = kept.fit(data.train, data.valid)
    plain = _model(backbone_dir, frozen_cache_gb=0, **kw)
    base = plain.fit(data.train, data.valid)
    assert log["frozen_cache"]["used"] and log["frozen_cache"]["checked"]
    assert log["frozen_cache"]["split"] == 1  # the 2-layer backbone's top layer trains
    assert base["frozen_cache"] == {
        "used": False,
        "gib": log["frozen_cache"]["gib"],
        "reason": "needs 0.00 GiB, over frozen_cache_gb=0",
    }
    # Epochs 2 and 3 ran only the top layer over kept states: the same numbers bit for bit.
    for key in ("train_loss", "train_item_loss", "train_text_loss", "valid", "steps"):
        assert log[key] == base[key], key
    assert log["epochs"] == 3
    after, before = _params(kept), _params(plain)
    assert all(torch.equal(after[k], before[k]) for k in after)
    # Validation through the kept prompt states scored like the test path does.
    ex = data.valid[0]
    assert np.array_equal(kept.score([ex]), plain.score([ex]))


def test_frozen_states_are_kept_only_where_the_lower_layers_cannot_change(
    backbone_dir: Path,  # noqa: F811
) -> None:
    data = build_task(_dataset(), "conversational", "product_endorsement")
    cases: dict[str, dict[str, Any]] = {
        "every layer": {"train_layers": -1, "train_item_emb": False},
        "train_item_emb=true": {"train_layers": 1, "train_item_emb": True},
        "item_head=tied": {"train_layers": 1, "train_item_emb": False, "item_head": "tied"},
    }
    for why, kw in cases.items():
        log = _model(backbone_dir, epochs=1, **kw).fit(data.train[:2], [])
        assert not log["frozen_cache"]["used"] and why in log["frozen_cache"]["reason"], why
    frozen = _model(backbone_dir, epochs=2, train_layers=0, train_item_emb=False).fit(
        data.train[:2], []
    )
    assert frozen["frozen_cache"]["used"] and frozen["frozen_cache"]["split"] == 2
