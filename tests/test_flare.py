"""The ``flare`` plugin: resampler, text cache, critique steering, determinism, checkpoints.

A tiny randomly initialised BERT (built offline into a temp folder) stands in for MiniLM, so
these tests do not depend on the real encoder's speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regen_bench.data.dataset import Dataset
from regen_bench.data.schema import Interaction, Item, UserRecord
from regen_bench.tasks import TaskData, build_task

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from regen_bench_plugins.flare.model import FLARE
from regen_bench_plugins.flare.net import PerceiverResampler
from regen_bench_plugins.flare.options import FLAREOptions
from regen_bench_plugins.flare.text import TextEncoder, item_text

N_ITEMS = 12
CHEAPER = "Something cheaper, please."
#: The tiny tokenizer's words (anything else is [UNK]); letters and digits spell the rest.
WORDS = (
    *("item", "widget", "gadget", "cheaper", "something", "please", "black", "pack"),
    *("bigger", "price", "category", "office", "pens", "paper", "brand", "acme"),
    *"abcdefghijklmnopqrstuvwxyz0123456789.,:$>-",
)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 1-layer, 32-wide random BERT and a word-level tokenizer saved to a folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def tiny(encoder: str, **over: object) -> dict:
    cfg = {
        "hidden": 16,
        "blocks": 1,
        "heads": 2,
        "dropout": 0.0,
        "max_len": 8,
        "mask_prob": 0.4,
        "last_prob": 0.2,
        "lr": 5e-3,
        "batch_size": 16,
        "epochs": 2,
        "patience": 2,
        "latents": 2,
        "max_tokens": 12,
        "critique_tokens": 8,
        "encoder": encoder,
    }
    return {**cfg, **over}


def critique_data(task: str = "critique", n_users: int = 80, seed: int = 0) -> TaskData:
    """After item i a user buys i+1, or, after the critique CHEAPER, item i+6 (mod N)."""
    rng = np.random.default_rng(seed)
    records = []
    for u in range(n_users):
        cur, length = int(rng.integers(N_ITEMS)), int(rng.integers(4, 9))
        inter = [Interaction(f"I{cur:02d}", 1_500_000_000, 5.0)]
        for k in range(1, length):
            jump = rng.random() < 0.4 or (k == length - 1 and u % 2 == 0)
            cur = (cur + (6 if jump else 1)) % N_ITEMS
            crit = CHEAPER if jump else None
            inter.append(Interaction(f"I{cur:02d}", 1_500_000_000 + k, 5.0, critique=crit))
        items = {
            i.item_id: Item(i.item_id, f"widget {i.item_id}", ("office", "pens"), "a pen", 1.5)
            for i in inter
        }
        records.append(UserRecord(user_id=f"u{u}", interactions=inter, items=items))
    return build_task(Dataset.from_records("critiques", records), task)


@pytest.fixture(scope="module")
def data() -> TaskData:
    return critique_data()


@pytest.fixture(scope="module")
def trained(data: TaskData, tiny_encoder: str) -> FLARE:
    model = FLARE(data.catalog, seed=0, **tiny(tiny_encoder))
    model.fit(data.train, data.valid)
    return model


def test_resampler_shapes_and_padding_keys_are_masked() -> None:
    torch.manual_seed(0)
    res = PerceiverResampler(hidden=8, latents=3, heads=2, layers=2, dropout=0.0).eval()
    tokens = torch.randn(4, 5, 8)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0] * 5]).bool()
    out = res(tokens, valid)
    assert out.shape == (4, 3, 8) and torch.isfinite(out).all()  # all-padding row included
    changed = tokens.clone()
    changed[~valid] = 100.0  # padding keys take any value: nothing may change
    assert torch.equal(res(changed, valid), out)
    changed[0, 0, 0] += 1.0  # a real token does change its row, and only its row
    moved = res(changed, valid)
    assert not torch.allclose(moved[0], out[0]) and torch.equal(moved[1:], out[1:])


def test_resampler_attention_in_slices_matches_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the device caps attention's batch rows (CUDA: 65,535), slices give the same vectors
    and gradients as one call (forced here on CPU with a cap of 3 rows over 10)."""
    from regen_bench_plugins.flare import net

    torch.manual_seed(0)
    res = PerceiverResampler(hidden=8, latents=3, heads=2, layers=2, dropout=0.0)
    tokens = torch.randn(10, 5, 8)
    valid = torch.rand(10, 5) > 0.3

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        res.zero_grad()
        out = res(tokens, valid)
        out.square().sum().backward()
        return out.detach(), res.layers[0].kv.weight.grad.clone()

    assert net.attention_rows(tokens) is None  # CPU: one call, as before
    whole, whole_grad = run()
    calls: list[int] = []
    sdpa = net.F.scaled_dot_product_attention

    def counted(q: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        calls.append(q.shape[0])
        return sdpa(q, *a, **k)

    monkeypatch.setattr(net, "attention_rows", lambda q: 3)
    monkeypatch.setattr(net.F, "scaled_dot_product_attention", counted)
    sliced, sliced_grad = run()
    assert calls == [3, 3, 3, 1] * 2  # two layers, each in four slices
    torch.testing.assert_close(sliced, whole)
    torch.testing.assert_close(sliced_grad, whole_grad)


def test_item_text_has_title_category_price_description() -> None:
    item = Item("X", "Acme Pens, Black", ("Office", "Writing", "Pens"), "Smooth ink.", 4.5, "Acme")
    assert item_text(item) == "Acme Pens, Black. Category: Writing > Pens. Price: $4.50. Smooth ink"
    bare = Item("Y", "Thing", (), "", None, "Zed")
    assert item_text(bare) == "Thing. Brand: Zed"


def test_text_states_are_cached_and_batch_independent(tiny_encoder: str, tmp_path: Path) -> None:
    enc = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    texts = ["item a", "something cheaper please", "black pack"]
    states, valid = enc.encode(texts, 8)
    assert states.shape == (3, 8, 32) and valid.shape == (3, 8)
    assert valid.sum(1).tolist() == [4, 5, 4]  # [CLS] words [SEP]
    assert enc.encoded_texts == 3
    again, _ = enc.encode([texts[1], texts[0]], 8)
    assert enc.encoded_texts == 3  # served from memory
    assert torch.equal(again, states[[1, 0]])  # and independent of the other texts
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    fresh = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    from_disk, valid2 = fresh.encode(texts, 8)
    assert fresh.encoded_texts == 0 and torch.equal(from_disk, states)
    assert torch.equal(valid2, valid)


def test_unloadable_encoder_is_a_one_line_error(data: TaskData, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flare option 'encoder': cannot load"):
        FLARE(data.catalog, encoder=str(tmp_path / "nothing-here"))


def test_critique_changes_scores(data: TaskData, trained: FLARE) -> None:
    ex = next(e for e in data.test if e.critique is not None)
    plain = type(ex)(ex.user_id, ex.history, ex.history_critiques, ex.target, None, {})
    with_crit, without = trained.score([ex, plain])
    assert not np.allclose(with_crit, without)


def test_sequential_task_reads_no_critique(tiny_encoder: str) -> None:
    seq = critique_data("sequential")
    assert all(e.critique is None for e in seq.test)
    model = FLARE(seq.catalog, seed=0, **tiny(tiny_encoder, epochs=1))
    model.fit(seq.train, seq.valid)
    assert model._crit_texts == []


def test_scores_do_not_depend_on_the_batch(data: TaskData, trained: FLARE) -> None:
    batch = trained.score(data.test)
    assert batch.shape == (len(data.test), N_ITEMS) and np.isfinite(batch).all()
    with_crit = [i for i, e in enumerate(data.test) if e.critique is not None]
    without = [i for i, e in enumerate(data.test) if e.critique is None]
    for i in (with_crit[0], without[0], len(data.test) - 1):
        assert np.array_equal(trained.score([data.test[i]])[0], batch[i])
    assert np.array_equal(trained.score(data.test[::-1])[::-1], batch)


def test_same_seed_same_scores(data: TaskData, tiny_encoder: str) -> None:
    runs = []
    for seed in (3, 3, 4):
        model = FLARE(data.catalog, seed=seed, **tiny(tiny_encoder, epochs=1, dropout=0.2))
        model.fit(data.train, data.valid)
        runs.append(model.score(data.test))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_checkpoint_round_trip(data: TaskData, trained: FLARE, tmp_path: Path) -> None:
    folder = trained.save(tmp_path / "ckpt")
    restored = FLARE.from_checkpoint(folder, data.catalog)
    assert np.array_equal(restored.score(data.test), trained.score(data.test))
    assert restored.config() == trained.config()


def test_config_and_bad_options(data: TaskData, tiny_encoder: str) -> None:
    model = FLARE(data.catalog, **tiny(tiny_encoder))
    assert set(model.config()) == set(FLAREOptions.model_fields)
    assert model.num_parameters() == sum(p.numel() for p in model.net.parameters())
    # The frozen encoder is not part of the trained parameters.
    assert not any(p.requires_grad for p in model.text.model.parameters())
    for bad in ({"latents": 0}, {"align_temp": 0}, {"max_tokens": 1}, {"nope": 1}):
        with pytest.raises(ValueError):
            FLARE(data.catalog, **tiny(tiny_encoder, **bad))


@pytest.mark.slow
def test_learns_to_follow_the_critique(data: TaskData, tiny_encoder: str) -> None:
    cfg = tiny(tiny_encoder, hidden=32, epochs=300, patience=60)
    model = FLARE(data.catalog, seed=0, **cfg)
    model.fit(data.train, data.valid)
    targets = np.array([e.target for e in data.test])
    hits = model.score(data.test).argmax(axis=1) == targets
    crit = np.array([e.critique is not None for e in data.test])
    assert hits[crit].mean() > 0.9 and hits[~crit].mean() > 0.9
    # The same histories without their critique: the model now predicts the successor.
    stripped = [
        type(e)(e.user_id, e.history, e.history_critiques, e.target, None, {})
        for e in np.array(data.test, dtype=object)[crit]
    ]
    blind = model.score(stripped).argmax(axis=1) == targets[crit]
    assert blind.mean() < 0.2


def test_registered_for_sequential_and_critique() -> None:
    calls = []
    import regen_bench_plugins.flare as plugin

    plugin.register_models(lambda *a, **kw: calls.append((a, kw)))
    [(args, meta)] = calls
    assert args[0] == "flare" and set(meta["tasks"]) == {"sequential", "critique"}
    assert args[1].target == "regen_bench_plugins.flare.model:FLARE"


def test_module_import_does_not_import_torch() -> None:
    code = (
        "import sys, regen_bench_plugins.flare; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_span_weights_average_consecutive_spans_of_the_valid_tokens() -> None:
    from regen_bench_plugins.flare.text import span_weights

    mask = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]])
    w = span_weights(mask, 2)
    # 5 tokens: spans 0-1 and 2-4; 1 token: the first slot is empty, the second holds it
    assert torch.allclose(
        w[0], torch.tensor([[0.5, 0.5, 0, 0, 0, 0], [0, 0, 1 / 3, 1 / 3, 1 / 3, 0]])
    )
    assert torch.equal(w[1], torch.tensor([[0.0] * 6, [1.0, 0, 0, 0, 0, 0]]))


def test_pooled_text_is_memory_mapped_and_read_back(tiny_encoder: str, tmp_path: Path) -> None:
    """As a Clothing-size catalog needs: pooled float16 rows written once into the cache
    folder, read back memory-mapped by the next encoder, the same as pooling the token states."""
    from regen_bench_plugins.flare.text import span_weights

    enc = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    texts = ["item a", "something cheaper please", "black pack", "a"]
    pooled, valid = enc.encode_pooled(texts, 8, 4)
    assert pooled.dtype == np.float16 and pooled.shape == (4, 4, 32)
    # "a" is 3 tokens ([CLS] a [SEP]): one of its 4 slots is empty
    assert isinstance(pooled, np.memmap) and valid.tolist()[3] == [False, True, True, True]
    states, mask = enc.encode(texts, 8)
    expected = (span_weights(mask, 4) @ states).numpy().astype(np.float16)
    assert np.allclose(pooled, expected, atol=1e-3)
    fresh = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    again, valid2 = fresh.encode_pooled(texts, 8, 4)
    assert fresh.encoded_texts == 0 and np.array_equal(again, pooled)
    assert np.array_equal(valid2, valid)
    assert not list(tmp_path.glob("*.partial"))


def test_text_slots_train_score_and_round_trip(
    data: TaskData, tiny_encoder: str, tmp_path: Path
) -> None:
    cfg = tiny(tiny_encoder, text_slots=2, text_cache=str(tmp_path / "text"), epochs=2)
    model = FLARE(data.catalog, seed=0, **cfg)
    model.fit(data.train, data.valid)
    states, _ = model._ensure_items()
    assert states.shape == (N_ITEMS, 2, 16)
    scores = model.score(data.test)
    assert np.isfinite(scores).all()
    assert np.array_equal(model.score(data.test[:3]), scores[:3])
    twin = FLARE(data.catalog, seed=0, **cfg)
    twin.fit(data.train, data.valid)
    assert np.array_equal(twin.score(data.test), scores)
    restored = FLARE.from_checkpoint(model.save(tmp_path / "ckpt"), data.catalog)
    assert np.array_equal(restored.score(data.test), scores)


def test_token_states_too_large_for_memory_are_refused_before_encoding(
    data: TaskData, tiny_encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FLARE(data.catalog, seed=0, **tiny(tiny_encoder))
    before = model.text.encoded_texts  # the encoder is shared within the process
    monkeypatch.setattr("os.sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 10)
    with pytest.raises(ValueError, match="text_slots=4"):
        model._ensure_items()
    assert model.text.encoded_texts == before


def test_critique_states_grow_in_order(data: TaskData, tiny_encoder: str) -> None:
    """New critiques met batch after batch are appended (the buffer doubles, no full copy)."""
    model = FLARE(data.catalog, seed=0, **tiny(tiny_encoder))
    texts = [f"pack {c}" for c in "abcde"]
    assert [model.critique_ids([t]) for t in texts] == [[1], [2], [3], [4], [5]]
    assert model.critique_ids([None, texts[2]]) == [0, 3]
    states, valid = model._crit_states
    expected, expected_valid = model.text.encode(texts, 8)
    assert torch.equal(states, expected) and torch.equal(valid, expected_valid)
    assert len(model._crit_buf[0]) == 8  # 1, 2, 4, 8: doubled


def test_pooled_encoding_resumes_where_it_stopped(
    tiny_encoder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a 377k-item encoding killed at a session's end would: the next run goes on from the
    last resume point and writes the same bytes as an uninterrupted run."""
    from regen_bench_plugins.flare import text as flare_text

    texts = [f"item {i} pack" for i in range(5 * flare_text.CHUNK + 3)]
    whole, whole_valid = TextEncoder(tiny_encoder, torch.device("cpu")).encode_pooled(texts, 8, 2)
    monkeypatch.setattr(flare_text, "RESUME_EVERY", 2)
    enc = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    original, calls = enc.model.forward, []

    def dies_on_the_fifth_chunk(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(enc.model, "forward", dies_on_the_fifth_chunk)
    with pytest.raises(KeyboardInterrupt):
        enc.encode_pooled(texts, 8, 2)
    assert [p.name.split(".", 1)[1] for p in sorted(tmp_path.iterdir())] == [
        "slots2.npy.partial",
        "slots2.npy.partial.done",
        "slots2.valid.npy.partial",
    ]
    fresh = TextEncoder(tiny_encoder, torch.device("cpu"), cache_dir=str(tmp_path))
    pooled, valid = fresh.encode_pooled(texts, 8, 2)
    assert fresh.encoded_texts == len(texts) - 4 * flare_text.CHUNK  # 4 chunks were kept
    assert np.array_equal(pooled, whole) and np.array_equal(valid, whole_valid)
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir()) == [
        "slots2.npy",
        "slots2.valid.npy",
    ]
