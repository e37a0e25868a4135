"""LUMEN with a tiny random Llama backbone: slots, vocabulary switch, training, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from regen_bench import Dataset, Example, build_task
from regen_bench.cli import main
from regen_bench.data.regen import write_records
from tests.conftest import make_record
from tests.tiny_lm import chat_tokenizer, save_tiny_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from regen_bench_plugins.lumen.model import Lumen  # noqa: E402
from regen_bench_plugins.lumen.prompt import ID_PREFIX, TEXT_PREFIX  # noqa: E402
from regen_bench_plugins.lumen.train import collate  # noqa: E402

TEXT = (
    "this is the summary of a user's purchase history . first next item is start id : title "
    "category description price rating user review critique end and product endorsement are "
    "text great pen for my desk in black please none unknown office products school supplies "
    "writing pens leaf about acme"
)
WORDS = TEXT.split()


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One torch thread: on a busy 2-core machine more threads spin and run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama (hidden 32) with a word-level tokenizer, built offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = chat_tokenizer(
        raw, chat=False, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    return save_tiny_llama(tmp_path_factory.mktemp("lumen-backbone"), tok, len(vocab))


def _dataset() -> Dataset:
    records = [
        make_record(
            f"U{u}",
            [f"A{(u + k) % 6 + 1}" for k in range(5)],
            {3: "in black please"},
            product_endorsement="great pen for my desk",
        )
        for u in range(6)
    ]
    return Dataset.from_records("toy", records)


def _model(backbone_dir: Path, **kw: Any) -> Lumen:
    opts: dict[str, Any] = {
        "backbone": str(backbone_dir),
        "device": "cpu",
        "max_history": 3,
        "max_field_chars": 40,
        "max_new_tokens": 8,
        "batch_size": 4,
        "micro_batch": 2,
        **kw,
    }
    return Lumen(_dataset().catalog, seed=0, **opts)


def test_item_embeddings_sit_exactly_at_the_id_slots(backbone_dir: Path) -> None:
    model = _model(backbone_dir)
    data = build_task(_dataset(), "conversational", "product_endorsement")
    # (U0 is in the held-out bucket of the text partition: its narrative trains nothing.)
    enc = model.training_examples(data.train[1:2])[-1]
    batch = collate([enc], model.encoder.placeholder, every_slot=False)
    emb = model.net.embed(batch["ids"], batch["slot_mask"], batch["slot_items"])[0]
    tokens = model.net.backbone.get_input_embeddings()(batch["ids"])[0]
    slots = set(enc.slot_pos)
    assert len(slots) == len(enc.slot_items) == 3  # 2 history items (N-2 = 3) + the target
    for pos in range(len(enc.ids)):
        if pos in slots:
            item = enc.slot_items[enc.slot_pos.index(pos)]
            assert torch.equal(emb[pos], model.net.item_emb.weight[item])
        else:
            assert torch.equal(emb[pos], tokens[pos])
    # The target slot follows the forced " ID:" and is followed by " Text: <narrative></s>".
    id_ids = model.encoder.text_ids(ID_PREFIX)
    assert enc.ids[enc.item_pos - len(id_ids) : enc.item_pos] == id_ids
    text_ids = model.encoder.text_ids(TEXT_PREFIX)
    assert enc.ids[enc.item_pos + 1 : enc.item_pos + 1 + len(text_ids)] == text_ids
    assert enc.labels[enc.item_pos] == -100 and enc.labels[-1] == 3  # EOS is trained
    assert enc.item_target == int(data.train[1].items[-1])


def test_decoding_switches_to_the_item_vocabulary_at_the_id_step(backbone_dir: Path) -> None:
    model = _model(backbone_dir)
    ex = build_task(_dataset(), "conversational", "product_endorsement").test[0]
    scores, steps = model.trace_steps(ex)
    n_items = len(model.catalog)
    assert scores.shape == (n_items,)
    # Step 0 (right after the prompt's " ID:") is an item; every later step is text.
    assert steps[0] == ("item", int(np.argmax(scores)))
    assert len(steps) > 1 and all(kind == "text" for kind, _ in steps[1:])
    assert all(0 <= t < model.tokenizer.vocab_size + 4 for _, t in steps[1:])
    # The item step's scores are the ranking scores.
    np.testing.assert_allclose(model.score([ex])[0], scores, rtol=1e-5, atol=1e-6)
    # The item fed back changes the text that follows (it is in the context).
    ids, mask, items = model._prompt_tensors(ex)
    h, cache = model.net.hidden(model.net.embed(ids, mask, items), cache=model.net.new_cache())
    prefix = model.encoder.text_ids(TEXT_PREFIX)
    outs = []
    for item in (0, 1):
        feed = torch.cat(
            [
                model.net.item_emb(torch.tensor([[item]])),
                model.net.backbone.get_input_embeddings()(torch.tensor([prefix])),
            ],
            1,
        )
        c = model.net.new_cache()
        model.net.hidden(model.net.embed(ids, mask, items), cache=c)
        outs.append(model.net.text_logits(model.net.hidden(feed, cache=c)[0][:, -1]))
    assert not torch.allclose(outs[0], outs[1])
    del h, cache


def test_overfitting_lowers_the_loss_and_ranks_the_trained_item_first(
    backbone_dir: Path, tmp_path: Path
) -> None:
    ds = _dataset()
    data = build_task(ds, "conversational", "product_endorsement")
    train = data.train[:2]
    model = _model(
        backbone_dir,
        lr=1e-2,
        item_lr=3e-2,
        epochs=50,
        batch_size=2,
        save_dir=str(tmp_path / "ckpt"),
    )
    # No validation set: the last weights are kept (early stopping would restore an earlier
    # step, which is tested below).
    log = model.fit(train, [])
    # U0 is held out of the text loss (the partition of docs/models.md), U1 trains it.
    assert log["train_examples"] == 4 and log["narrative_targets"] == 1 and log["steps"] == 100
    first, last = log["train_loss"][0], log["train_loss"][-1]
    assert last < 0.05 * first and first > 2.0
    # The near-zero item head starts at about ln(catalog size) = ln(6) = 1.79.
    assert abs(log["train_item_loss"][0] - np.log(6)) < 0.1 and log["train_item_loss"][-1] < 0.15
    for user in train:
        for j in range(1, len(user)):  # every trained prefix: its target ranks first
            ex = Example(
                user.user_id,
                user.items[:j],
                user.critiques[:j],
                int(user.items[j]),
                user.critiques[j],
                {},
            )
            assert int(np.argmax(model.score([ex])[0])) == int(user.items[j])
    assert (tmp_path / "ckpt" / "lumen.json").is_file()


def test_early_stopping_restores_the_best_validation_step(backbone_dir: Path) -> None:
    data = build_task(_dataset(), "conversational", "product_endorsement")
    model = _model(backbone_dir, lr=1e-2, item_lr=3e-2, epochs=30, batch_size=2, patience=1)
    log = model.fit(data.train[:2], data.valid)
    ndcgs = [e["ndcg@10"] for e in log["valid"]]
    assert log["best_valid_ndcg@10"] == max(ndcgs) and log["epochs"] == len(ndcgs) < 30
    best_at = ndcgs.index(max(ndcgs))
    assert len(ndcgs) - 1 - best_at == 1  # stopped after `patience` evaluations without gain
    assert model.valid_ndcg(data.valid) == pytest.approx(max(ndcgs), abs=1e-5)


def test_checkpoint_round_trip_gives_identical_scores_and_text(
    backbone_dir: Path, tmp_path: Path
) -> None:
    ds = _dataset()
    data = build_task(ds, "conversational", "product_endorsement")
    model = _model(backbone_dir, epochs=1, save_dir=str(tmp_path / "ck"), item_lr=1e-2)
    model.fit(data.train, data.valid)
    loaded = Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), device="cpu", max_new_tokens=8)
    loaded.use_users(data.train)
    assert np.array_equal(model.score(data.test), loaded.score(data.test))
    assert model.generate(data.test[:2], "product_endorsement") == loaded.generate(
        data.test[:2], "product_endorsement"
    )
    # No two items share a score (a zero-initialised head would tie every never-seen item).
    assert len(np.unique(loaded.score(data.test[:1])[0])) == len(ds.catalog)
    assert loaded.config()["max_history"] == 3  # model-defining options come from the folder
    assert loaded.fit(data.train, data.valid)["trained"] is False
    # Batch size does not change scores.
    assert np.array_equal(loaded.score(data.test[:1])[0], loaded.score(data.test)[0])


def test_bad_options_and_foreign_checkpoints_are_refused(
    backbone_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="narrative"):
        _model(backbone_dir, narrative="poem")
    with pytest.raises(ValueError, match="multiple of micro_batch"):
        _model(backbone_dir, batch_size=3, micro_batch=2)
    with pytest.raises(ValueError, match="unknown option"):
        _model(backbone_dir, layers=3)
    model = _model(backbone_dir, epochs=0)
    model.save(tmp_path / "ck")
    other = Dataset.from_records("o", [make_record("V", ["Z1", "Z2", "Z3"])])
    with pytest.raises(ValueError, match="another catalog"):
        Lumen(other.catalog, checkpoint=str(tmp_path / "ck"))
    with pytest.raises(ValueError, match="trained to write"):
        model.generate([], "purchase_reason")


def test_run_and_trace_from_the_command_line(
    backbone_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        make_record(
            f"U{u}",
            [f"A{(u + k) % 6 + 1}" for k in range(5)],
            {4: "in black please"},
            product_endorsement="great pen for my desk",
        )
        for u in range(6)
    ]
    path = tmp_path / "toy.jsonl"
    write_records(records, path)
    ck = tmp_path / "ck"
    args = ["run", "--model", "lumen", "--task", "conversational", "--narrative"]
    args += ["product_endorsement", "--dataset", str(path), "--output", str(tmp_path / "out")]
    args += ["-q", "--embedder", "none", "--bertscore-model", "none", "--threads", "1"]
    for kv in (
        f"backbone={backbone_dir}",
        "device=cpu",
        "epochs=1",
        "max_new_tokens=4",
        "max_history=3",
        f"save_dir={ck}",
    ):
        args += ["--set", kv]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["trace", "--model", str(ck), "--user", "U2", "--dataset", str(path)]) == 0
    out = capsys.readouterr().out
    assert "History:" in out and "Critique: in black please" in out
    assert "Recommended:" in out and "Generated product_endorsement:" in out
    assert main(["trace", "--model", str(tmp_path), "--user", "U2", "--dataset", str(path)]) == 2
    assert "no regen-bench-model.json" in capsys.readouterr().err


@pytest.mark.slow
def test_lumen_honours_the_plugin_contracts(backbone_dir: Path) -> None:
    from regen_bench.testing import check_model_plugin

    config = {
        "backbone": str(backbone_dir),
        "device": "cpu",
        "narrative": "purchase_reason",
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


def test_a_kept_fit_resumes_a_run_with_the_numbers_of_training_anew(
    backbone_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A LUMEN run killed after training starts again from its kept fit (``--fit-cache``):
    the same samples, narratives, metrics and records as training anew; another narrative
    type never reuses it (its text loss trained on other references)."""
    records = [
        make_record(
            f"U{u}",
            [f"A{(u + k) % 6 + 1}" for k in range(5)],
            {2: "in black please"},
            product_endorsement=f"great pen for my desk {u % 3}",
            purchase_reason="about my desk",
        )
        for u in range(12)
    ]
    path = tmp_path / "toy.jsonl"
    write_records(records, path)
    # Frozen bottom layer, trained top layer: the kept fit must also restore what trains.
    options = [f"backbone={backbone_dir}", "device=cpu", "epochs=2", "max_new_tokens=4"]
    options += ["max_history=3", "train_layers=1", "text_heldout_fraction=0.5"]

    def run(out: str, narrative: str = "product_endorsement", cache: bool = True) -> Any:
        args = ["run", "--model", "lumen", "--task", "conversational", "--narrative", narrative]
        args += ["--dataset", str(path), "--output", str(tmp_path / out), "-q"]
        args += ["--embedder", "none", "--bertscore-model", "none", "--threads", "1"]
        args += ["--set", f"narrative={narrative}"]
        if cache:
            args += ["--fit-cache", str(tmp_path / "fits")]
        for kv in options:
            args += ["--set", kv]
        assert main(args) == 0
        folder = tmp_path / out / "toy" / "conversational"
        result = json.loads((folder / f"lumen__{narrative}.json").read_text())
        return result, (folder / f"lumen__{narrative}.samples.jsonl").read_bytes()

    first, first_samples = run("a")
    [entry] = sorted((tmp_path / "fits").iterdir())
    assert "fit cache: kept" in capsys.readouterr().err
    reused, reused_samples = run("b")
    assert "fit cache: reused" in capsys.readouterr().err
    fresh, fresh_samples = run("c", cache=False)
    assert reused_samples == fresh_samples == first_samples
    assert any(json.loads(line)["generated"] for line in reused_samples.splitlines())
    for key in ("metrics", "signature", "narration"):
        assert reused[key] == fresh[key], key
    assert reused["model"] == fresh["model"]  # options, backbone source, trainable parameters
    assert reused["fit_log"] == first["fit_log"] and reused["fit_reused"]["file"] == entry.name
    other, _ = run("d", narrative="purchase_reason")
    assert "fit_reused" not in other and len(list((tmp_path / "fits").iterdir())) == 2
