"""LUMEN's variants: the tied item head, START-marker decoding and title-initialised items."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regen_bench import Dataset, Example, build_task
from regen_bench.testing import check_batch_invariance
from tests.conftest import make_record
from tests.test_lumen import _dataset, _model, backbone_dir, one_thread  # noqa: F401

torch = pytest.importorskip("torch")

from regen_bench_plugins.lumen.model import START_KEY, Lumen  # noqa: E402
from regen_bench_plugins.lumen.prompt import ID_PREFIX, START_MARKER  # noqa: E402
from regen_bench_plugins.lumen.train import collate  # noqa: E402


def _params(model: Lumen) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.net.named_parameters()}


# -- tied head ----------------------------------------------------------------------------------
def test_tied_head_scores_through_the_input_item_table(backbone_dir: Path) -> None:  # noqa: F811
    model = _model(backbone_dir, item_head="tied")
    net = model.net
    assert net.item_head is None
    assert not any(k.startswith("item_head") for k in net.state_dict())
    h = torch.randn(3, net.item_emb.weight.shape[1])
    with torch.no_grad():
        net.item_bias.copy_(torch.arange(len(model.catalog), dtype=torch.float32))
    want = net.item_scale * (h @ net.item_emb.weight.T) + net.item_bias
    torch.testing.assert_close(net.item_logits(h), want)
    # The rows at the prompt's item slots are rows of that same tensor.
    ex = build_task(_dataset(), "conversational", "product_endorsement").test[0]
    ids, mask, items = model._prompt_tensors(ex)
    emb = net.embed(ids, mask, items)[0]
    for pos, item in zip(mask[0].nonzero().flatten().tolist(), items.tolist(), strict=True):
        assert torch.equal(emb[pos], net.item_emb.weight[item])
    # The scale starts at 1/sqrt(hidden), the bias at zero.
    fresh = _model(backbone_dir, item_head="tied").net
    assert float(fresh.item_scale.detach()) == pytest.approx(1 / 32**0.5)
    assert not fresh.item_bias.any()


def test_tied_table_gets_the_head_gradient_even_when_its_input_use_is_frozen(
    backbone_dir: Path,  # noqa: F811
) -> None:
    data = build_task(_dataset(), "conversational", "product_endorsement")
    grads = {}
    for train_item_emb in (False, True):
        model = _model(backbone_dir, item_head="tied")
        model.net.freeze(train_layers=0, train_item_emb=train_item_emb)
        encs = model.training_examples(data.train[1:3])
        batch = collate(encs, model.encoder.placeholder, every_slot=False)
        model.net(**batch)["loss"].backward()
        grad = model.net.item_emb.weight.grad
        assert grad is not None
        grads[train_item_emb] = grad.clone()
        # Frozen backbone: its input embedding gets nothing.
        assert model.net.token_embeddings().weight.grad is None
    # Through the head alone, every item's row gets a gradient (softmax over the catalog)...
    assert bool((grads[False].abs().sum(1) > 0).all())
    # ...and the input use adds its own share when it trains.
    assert not torch.allclose(grads[False], grads[True])


def test_tied_training_moves_only_the_table_scale_and_bias_with_a_frozen_backbone(
    backbone_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    ds = _dataset()
    data = build_task(ds, "conversational", "product_endorsement")
    model = _model(
        backbone_dir,
        item_head="tied",
        train_layers=0,
        train_item_emb=False,
        item_lr=3e-2,
        epochs=20,
        batch_size=2,
        save_dir=str(tmp_path / "ck"),
    )
    before = _params(model)
    log = model.fit(data.train[:2], [])
    after = _params(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"item_emb.weight", "item_scale", "item_bias"}
    # It starts near ln(catalog size) = ln(6) and falls (a frozen random backbone limits it).
    assert abs(log["train_item_loss"][0] - np.log(6)) < 0.2
    assert log["train_item_loss"][-1] < 0.7 * log["train_item_loss"][0]
    # A checkpoint keeps the head kind and gives the same scores.
    loaded = Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), device="cpu")
    assert loaded.opts.item_head == "tied" and loaded.net.item_head is None
    loaded.use_users(data.train)
    model.use_users(data.train)
    assert np.array_equal(model.score(data.test), loaded.score(data.test))
    with pytest.raises(ValueError, match="'item_head'='separate' contradicts the checkpoint"):
        Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), item_head="separate")


# -- START-marker decoding ------------------------------------------------------------------------
def test_start_switch_targets_begin_with_the_marker_as_text_labels(backbone_dir: Path) -> None:  # noqa: F811
    data = build_task(_dataset(), "conversational", "product_endorsement")
    forced = _model(backbone_dir)
    switch = _model(backbone_dir, decode="start_switch")
    marker = switch.encoder.text_ids(START_MARKER)
    assert len(marker) == 3  # "start", "id", ":" in the tiny word-level vocabulary
    # U0 is held out of the text loss, U1 trains it.
    encs = switch.training_examples(data.train[:2])
    assert switch.text_users == 1 and [e.narrative for e in encs] == [False, False, False, True]
    plain = forced.training_examples(data.train[:2])
    for enc, ref in zip(encs, plain, strict=True):
        # The same prompt up to "are:", then the marker (trained) instead of a forced " ID:".
        head = ref.item_pos - len(forced.encoder.text_ids(ID_PREFIX))
        assert enc.ids[:head] == ref.ids[:head]
        assert enc.ids[enc.item_pos - 3 : enc.item_pos] == marker
        assert enc.labels[enc.item_pos - 3 : enc.item_pos] == marker
        assert all(v == -100 for v in enc.labels[: enc.item_pos - 3])
        assert enc.item_target == ref.item_target and enc.slot_items == ref.slot_items
    # The decoding prompt stops at "are:" (no forced " ID:").
    ex = data.test[0]
    n_forced = forced._prompt_tensors(ex)[0].shape[1]
    assert switch._prompt_tensors(ex)[0].shape[1] == n_forced - len(
        forced.encoder.text_ids(ID_PREFIX)
    )


def _script(model: Lumen, tokens: list[int]) -> list[int]:
    """Make the text vocabulary emit ``tokens`` in order (one-hot logits); returns the list of
    how many tokens each call saw so far (for checks)."""
    calls: list[int] = []
    vocab = int(model.net.backbone.get_output_embeddings().weight.shape[0])

    def text_logits(h: Any) -> Any:
        out = torch.full((h.shape[0], vocab), -1.0)
        out[:, tokens[min(len(calls), len(tokens) - 1)]] = 1.0
        calls.append(len(calls))
        return out

    model.net.text_logits = text_logits  # type: ignore[method-assign]
    return calls


def _item_logits_after(model: Lumen, ex: Example, extra: list[int]) -> Any:
    """Item logits at the end of the prompt followed by the text tokens ``extra`` (no cache)."""
    ids, mask, items = model._prompt_tensors(ex)
    full = torch.cat([ids, torch.tensor([extra], dtype=torch.long)], 1)
    pad = torch.zeros((1, len(extra)), dtype=torch.bool)
    with torch.no_grad():
        h, _ = model.net.hidden(model.net.embed(full, torch.cat([mask, pad], 1), items))
        return model.net.item_logits(h[:, -1])[0].numpy()


def test_start_switch_scores_items_exactly_after_the_marker(backbone_dir: Path) -> None:  # noqa: F811
    model = _model(backbone_dir, decode="start_switch", start_max_tokens=8)
    ex = build_task(_dataset(), "conversational", "product_endorsement").test[0]
    marker = model.encoder.text_ids(START_MARKER)
    words = model.encoder.text_ids(" great pen")
    # "start" alone, then "great pen", then the whole marker: the switch comes only after it.
    lead = [marker[0], *words, *marker]
    _script(model, [*lead, *words])
    scores, steps = model.trace_steps(ex, max_new_tokens=0)
    assert steps == [*(("lead", t) for t in lead), ("item", int(np.argmax(scores)))]
    np.testing.assert_allclose(scores, _item_logits_after(model, ex, lead), rtol=1e-5, atol=1e-5)
    # The prompt's own end is a different state: the item step really moved.
    assert not np.allclose(scores, _item_logits_after(model, ex, []), atol=1e-4)
    assert model.start_counts == {"decoded": 0, "forced": 0}  # trace_steps does not count
    for _ in range(2):
        _script(model, [*lead, *words])  # the script plays once per example
        model.score([ex])
    assert model.start_counts == {"decoded": 2, "forced": 0}
    assert model.config()[START_KEY] == {"decoded": 2, "forced": 0}


def test_a_marker_that_never_comes_is_forced_and_counted(backbone_dir: Path) -> None:  # noqa: F811
    model = _model(backbone_dir, decode="start_switch", start_max_tokens=3)
    ex = build_task(_dataset(), "conversational", "product_endorsement").test[0]
    marker = model.encoder.text_ids(START_MARKER)
    pen = model.encoder.text_ids(" pen")[0]
    _script(model, [pen])
    scores, steps = model.trace_steps(ex, max_new_tokens=0)
    assert steps[:3] == [("lead", pen)] * 3
    assert steps[3:6] == [("forced", t) for t in marker] and steps[6][0] == "item"
    np.testing.assert_allclose(
        scores, _item_logits_after(model, ex, [pen] * 3 + marker), rtol=1e-5, atol=1e-5
    )
    # An EOS before the marker forces it at once.
    _script(model, [next(iter(model.eos_ids))])
    scores, steps = model.trace_steps(ex, max_new_tokens=0)
    assert [k for k, _ in steps] == ["forced"] * 3 + ["item"]
    np.testing.assert_allclose(scores, _item_logits_after(model, ex, marker), rtol=1e-5, atol=1e-5)
    model.score([ex])
    assert model.start_counts == {"decoded": 1, "forced": 1}


def test_a_trained_model_writes_the_marker_and_ranks_the_same_in_any_batch(
    backbone_dir: Path,  # noqa: F811
) -> None:
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(
        backbone_dir,
        decode="start_switch",
        lr=1e-2,
        item_lr=3e-2,
        epochs=30,
        batch_size=2,
        valid_examples=2,
        patience=100,
    )
    log = model.fit(data.train, data.valid[:2])
    # Validation decoding is counted in the fit log (every valid example once per evaluation).
    assert log[START_KEY]["decoded"] == 2 * len(log["valid"])
    marker = model.encoder.text_ids(START_MARKER)
    for ex in data.test:
        _, steps = model.trace_steps(ex)
        assert [t for k, t in steps if k == "lead"] == marker  # written, not forced
        assert [k for k, _ in steps][3] == "item"
    # Exact and deterministic ranking: the same scores in any batch, and twice in a row.
    check_batch_invariance(model, data.test)
    assert np.array_equal(model.score(data.test), model.score(data.test))
    assert model.start_counts["forced"] == 0 and model.start_counts["decoded"] > 0


# -- title-initialised items ----------------------------------------------------------------------
TITLES = {
    "A1": "great pen",
    "A2": "black pen for my desk",
    "A3": "office school supplies",
    "A4": "writing pens",
    "A5": "",
    "A6": "acme leaf",
}


def _titled_dataset() -> Dataset:
    records = []
    for u in range(6):
        rec = make_record(f"U{u}", [f"A{(u + k) % 6 + 1}" for k in range(5)])
        rec.items = {a: dataclasses.replace(i, title=TITLES[a]) for a, i in rec.items.items()}
        records.append(rec)
    return Dataset.from_records("titled", records)


def test_title_init_rows_are_the_scaled_mean_title_embeddings(backbone_dir: Path) -> None:  # noqa: F811
    ds = _titled_dataset()
    kw: dict[str, Any] = {"backbone": str(backbone_dir), "device": "cpu"}
    random_init = Lumen(ds.catalog, seed=0, **kw)
    model = Lumen(ds.catalog, seed=0, item_init="title", **kw)
    table = model.net.item_emb.weight.detach()
    emb = model.net.token_embeddings()
    tok = model.tokenizer
    rows, means = [], []
    for i in range(len(ds.catalog)):
        title = ds.catalog[i].title
        if title:
            ids = tok(" " + title, add_special_tokens=False)["input_ids"]
            means.append(emb(torch.tensor(ids)).detach().mean(0))
            rows.append(i)
        else:  # no title: the random row stays
            assert torch.equal(table[i], random_init.net.item_emb.weight[i])
    assert len(rows) == 5
    stacked = torch.stack(means)
    factor = model.net.init_std / float(stacked.std())
    torch.testing.assert_close(table[rows], stacked * factor)
    assert float(table[rows].std()) == pytest.approx(model.net.init_std, rel=1e-5)
    # Items with title words in common are closer than in the random table.
    pens = [ds.catalog.index[a] for a in ("A1", "A2")]
    other = ds.catalog.index["A6"]

    def cos(t: Any, a: int, b: int) -> float:
        return float(torch.nn.functional.cosine_similarity(t[a], t[b], dim=0))

    assert cos(table, *pens) > cos(table, pens[0], other)
    assert model.config()["item_init"] == "title"


@pytest.mark.slow
def test_the_paper_variants_honour_the_plugin_contracts(backbone_dir: Path) -> None:  # noqa: F811
    from regen_bench.testing import check_model_plugin

    config = {
        "backbone": str(backbone_dir),
        "device": "cpu",
        "narrative": "purchase_reason",
        "item_head": "tied",
        "decode": "start_switch",
        "item_init": "title",
        "max_new_tokens": 4,
        "max_train_users": 20,
        "max_prefixes": 1,
        "epochs": 1,
        "max_history": 3,
        "max_field_chars": 20,
        "valid_examples": 8,
        "batch_size": 4,
        "micro_batch": 2,
    }
    check_model_plugin("lumen", config=config, tasks=["sequential"])
