"""Fine-tuning the narrator: partition, pairs, label masking, training, folder, held-out scoring.

A tiny random Llama (2 layers, word-level tokenizer built from the toy data, chat template) is
built offline, as in test_llm.py; it trains in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.finetune import (
    LOG_FILE,
    MANIFEST_FILE,
    FinetuneSpec,
    Hyperparameters,
    Pair,
    UserPartition,
    build_pairs,
    read_manifest,
)
from regen_bench.narrator import SYSTEM_PROMPT, NarratorConfig, build_prompt
from regen_bench.results import load_result
from tests.conftest import make_record
from tests.tiny_lm import chat_tokenizer, save_tiny_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

NARR = "product_endorsement"
PROMPT_OPTS = ["--max-history", "2", "--max-field-chars", "40"]


def _endorsement(asin: str) -> str:
    # No punctuation: a word-level tokenizer then decodes it back to exactly this text.
    return f"meet the item {asin.lower()} made for your desk at work"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 users of 4 purchases among 9 items; templated endorsements of the last one."""
    records = []
    for u in range(40):
        asins = [f"B{(u + k * 3) % 9:02d}" for k in range(4)]
        records.append(
            make_record(
                f"U{u:02d}",
                asins,
                {3: "Something cheaper please"} if u % 2 else None,
                product_endorsement=_endorsement(asins[-1]),
                purchase_reason=f"needed item {asins[-1]}",
            )
        )
    path = tmp_path_factory.mktemp("toy") / "toy.jsonl"
    write_records(records, path)
    return path


def _all_text(toy: Path) -> list[str]:
    from regen_bench.data.dataset import Dataset

    ds = Dataset.from_file(toy)
    cfg = NarratorConfig(max_history=2, max_field_chars=40)
    texts = [SYSTEM_PROMPT]
    for user in ds.users:
        n = len(user) - 1
        texts.append(
            build_prompt(ds.catalog, user, n, int(user.items[n]), user.critiques[n], NARR, cfg)
        )
        texts.append(user.narratives.product_endorsement or "")
    return texts


@pytest.fixture(scope="module")
def tiny_lm(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama whose word-level vocabulary covers the toy prompts."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    specials = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(_all_text(toy), trainers.WordLevelTrainer(special_tokens=specials))
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    tok = chat_tokenizer(
        raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-lm"), tok, raw.get_vocab_size())


def _cli(*args: str) -> int:
    return main(["narrator", "finetune", *args])


def _finetune_args(toy: Path, tiny_lm: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        str(toy),
        "--narrative",
        NARR,
        "--model",
        str(tiny_lm),
        "--out",
        str(out),
        "--heldout-fraction",
        "0.5",
        "--valid-fraction",
        "0.2",
        "--epochs",
        "4",
        "--batch-size",
        "4",
        "--eval-every",
        "3",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "1",
        "--cpu",
        "-q",
        *PROMPT_OPTS,
        *extra,
    ]


@pytest.fixture(scope="module")
def narrator_dir(toy: Path, tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "narrator"
    assert _cli(*_finetune_args(toy, tiny_lm, out)) == 0
    return out


# -- partition and pairs ------------------------------------------------------------------------


def test_partition_is_deterministic_disjoint_and_salted() -> None:
    ids = [f"user{i}" for i in range(4000)]
    rule = UserPartition("s1", heldout_fraction=0.5, valid_fraction=0.1)
    buckets = [rule.bucket(u) for u in ids]
    assert buckets == [UserPartition("s1", 0.5, 0.1).bucket(u) for u in ids]
    counts = {b: buckets.count(b) for b in ("train", "valid", "heldout")}
    assert sum(counts.values()) == len(ids)  # every user in exactly one bucket
    assert abs(counts["heldout"] / 4000 - 0.5) < 0.03
    assert abs(counts["valid"] / 4000 - 0.1) < 0.02
    other = [UserPartition("s2", 0.5, 0.1).bucket(u) for u in ids]
    assert sum(a != b for a, b in zip(buckets, other, strict=True)) > 1000  # the salt matters
    # A user's bucket depends on nothing but its id: known values pin the hash rule.
    default = UserPartition("regen-narrator-v1", 0.5, 0.2)
    assert [default.bucket(f"U{u:02d}") for u in range(8)] == [
        "train", "heldout", "train", "train", "heldout", "train", "valid", "heldout"
    ]  # fmt: skip
    assert 0 <= rule.position("U00") < 1
    with pytest.raises(ValueError, match="must be below 1"):
        UserPartition("s", 0.6, 0.4)
    with pytest.raises(ValueError, match=r"valid-fraction must be in \(0, 1\)"):
        UserPartition("s", 0.5, 0.0)


def test_pairs_are_the_narrator_prompt_of_non_heldout_users(toy: Path) -> None:
    from regen_bench.data.dataset import Dataset

    ds = Dataset.from_file(toy)
    rule = UserPartition("regen-narrator-v1", 0.5, 0.2)
    cfg = NarratorConfig(max_history=2, max_field_chars=40)
    train, valid, counts = build_pairs(ds, NARR, rule, cfg)
    assert sum(counts.values()) == 40 and counts["train"] == len(train)
    assert counts["valid"] == len(valid) and counts["heldout"] > 0
    by_id = {u.user_id: u for u in ds.users}
    assert {p.user_id for p in train}.isdisjoint(p.user_id for p in valid)
    for pair in train + valid:
        user = by_id[pair.user_id]
        assert rule.bucket(pair.user_id) != "heldout"
        assert pair.target == user.narratives.product_endorsement
        n = len(user) - 1  # what the runner narrates for the test example (condition target)
        assert pair.prompt == build_prompt(
            ds.catalog, user, n, int(user.items[n]), user.critiques[n], NARR, cfg
        )
    first, _, _ = build_pairs(ds, NARR, rule, cfg, limit_train=3)
    assert first == train[:3]
    with pytest.raises(ValueError, match="leaves no users to fine-tune on"):
        build_pairs(ds, "user_profile", rule, cfg)  # no user has that narrative


# -- tokens ---------------------------------------------------------------------------------------


def test_labels_mask_the_prompt_and_match_the_backend(tiny_lm: Path) -> None:
    from regen_bench.llm import LLMRequest, make_client
    from regen_bench_plugins.narrator_trainer import collate, encode_pair, render_prompt

    tok = transformers.AutoTokenizer.from_pretrained(tiny_lm)
    backend = make_client("hf", model=str(tiny_lm), device="cpu").backend
    pair = Pair("U1", "This is the summary of a user's purchase history.", "meet the item b03")
    rendered = render_prompt(tok, SYSTEM_PROMPT, pair.prompt, True)
    # The exact text the hf backend feeds the model at inference.
    assert rendered == backend.render(LLMRequest(system=SYSTEM_PROMPT, prompt=pair.prompt))
    row = encode_pair(tok, SYSTEM_PROMPT, pair, True, max_length=512)
    assert row is not None
    prompt_ids = tok(rendered, add_special_tokens=False)["input_ids"]
    target_ids = tok("meet the item b03", add_special_tokens=False)["input_ids"]
    assert row["input_ids"] == prompt_ids + target_ids + [tok.eos_token_id]
    assert row["labels"] == [-100] * len(prompt_ids) + target_ids + [tok.eos_token_id]
    assert len(target_ids) == 4
    assert encode_pair(tok, SYSTEM_PROMPT, pair, True, max_length=len(prompt_ids) + 4) is None
    batch = collate([row, {"input_ids": [5, 6], "labels": [-100, 6]}], pad_id=0)
    assert batch["input_ids"].shape == (2, len(row["input_ids"]))
    assert batch["attention_mask"][1].tolist()[:3] == [1, 1, 0]
    assert batch["labels"][1].tolist()[2:] == [-100] * (len(row["input_ids"]) - 2)


# -- training -------------------------------------------------------------------------------------


def _spec(toy: Path, tiny_lm: Path, out: Path, **hyper: Any) -> FinetuneSpec:
    from regen_bench.data.dataset import Dataset

    ds = Dataset.from_file(toy)
    cfg = NarratorConfig(max_history=2, max_field_chars=40)
    train, _, _ = build_pairs(ds, NARR, UserPartition("x", 0.3, 0.1), cfg, limit_train=4)
    settings = {"epochs": 40, "batch_size": 2, "eval_every": 20, "lr": 1e-2, "patience": 0}
    return FinetuneSpec(
        base_model=str(tiny_lm),
        out_dir=out,
        narrative_type=NARR,
        system=SYSTEM_PROMPT,
        train=train,
        valid=train,  # overfit: the validation set is the training set
        hyper=Hyperparameters(**{**settings, **hyper}, cpu=True, warmup_steps=1),
        seed=0,
    )


def test_overfitting_a_handful_drops_the_valid_loss_and_the_folder_recites_it(
    toy: Path, tiny_lm: Path, tmp_path: Path
) -> None:
    from regen_bench.llm import LLMRequest, make_client
    from regen_bench_plugins.narrator_trainer import train

    spec = _spec(toy, tiny_lm, tmp_path / "a")
    manifest = train(spec, log=lambda _m: None, progress=False)
    curve = [p["valid_loss"] for p in manifest["curve"]]
    assert [p["step"] for p in manifest["curve"]] == [0, 20, 40, 60, 80]
    assert curve[-1] < 0.2 * curve[0]
    assert manifest["best_valid_loss"] == min(curve)
    # Same seed, same numbers (a short run, twice).
    short = [
        train(
            _spec(toy, tiny_lm, tmp_path / name, max_steps=6, eval_every=3),
            log=lambda _m: None,
            progress=False,
        )["curve"]
        for name in ("b", "c")
    ]
    timeless = [[{k: v for k, v in p.items() if k != "elapsed_s"} for p in c] for c in short]
    assert timeless[0] == timeless[1] and len(timeless[0]) == 3
    assert short[0][-1]["valid_loss"] < short[0][0]["valid_loss"]
    # The saved folder loads in the hf backend and writes the learnt narrative from the prompt.
    client = make_client("hf", model=str(tmp_path / "a"), device="cpu")
    for pair in spec.train:
        answer = client.complete(LLMRequest(system=SYSTEM_PROMPT, prompt=pair.prompt))
        assert answer.ok and answer.text == pair.target


def test_cli_writes_checkpoint_log_and_manifest(
    narrator_dir: Path, toy: Path, tiny_lm: Path
) -> None:
    names = {p.name for p in narrator_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", LOG_FILE, MANIFEST_FILE} <= names
    assert not list(narrator_dir.parent.glob(".*partial"))
    manifest = read_manifest(narrator_dir)
    assert manifest is not None
    raw = json.loads((narrator_dir / MANIFEST_FILE).read_text())
    log = [json.loads(x) for x in (narrator_dir / LOG_FILE).read_text().splitlines()]
    assert log == raw["curve"]
    assert log[0]["step"] == 0 and log[0]["train_loss"] is None
    assert log[-1]["valid_loss"] < log[0]["valid_loss"]  # the validation loss falls
    assert manifest.base_model == str(tiny_lm) and manifest.narrative_type == NARR
    # The default task: the conversational narrator's prompts, critiques included.
    assert raw["task"] == manifest.task == "conversational" and manifest.critiques
    assert manifest.dataset["fingerprint"] and manifest.dataset["users"] == 40
    part = manifest.partition
    assert part.salt == "regen-narrator-v1" and part.heldout_fraction == 0.5
    assert sum(part.users.values()) == 40
    assert part.used == {"train": part.users["train"], "valid": part.users["valid"]}
    assert manifest.prompt.max_history == 2 and manifest.prompt.max_field_chars == 40
    assert manifest.prompt.chat_template is True
    hp = manifest.hyperparameters
    assert hp["lr"] == 3e-3 and hp["batch_size"] == 4 and hp["epochs"] == 4
    assert hp["total_steps"] == 4 * hp["steps_per_epoch"]
    assert manifest.seed == 0 and manifest.versions["torch"] and manifest.versions["accelerate"]
    assert manifest.environment["processes"] == 1
    assert manifest.best_valid_loss == min(p["valid_loss"] for p in log)
    best = next(p for p in log if p["valid_loss"] == manifest.best_valid_loss)
    assert manifest.best_step == best["step"]
    # The kept weights are the trained ones, not the base model's.
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_lm)
    tuned = transformers.AutoModelForCausalLM.from_pretrained(narrator_dir)
    assert not torch.equal(base.lm_head.weight, tuned.lm_head.weight)


# -- a conversational run with the fine-tuned narrator --------------------------------------------


def _run_args(toy: Path, out: Path, narrator: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--model",
        "popularity",
        "--task",
        "conversational",
        "--narrative",
        NARR,
        "--dataset",
        str(toy),
        "--output",
        str(out),
        "-q",
        "--embedder",
        "none",
        "--bertscore-model",
        "none",
        "--set",
        "narrator.backend=hf",
        "--set",
        f"narrator.model={narrator}",
        "--set",
        "narrator.device=cpu",
        *extra,
    ]


def test_run_scores_only_users_held_out_from_fine_tuning(
    narrator_dir: Path, toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_run_args(toy, tmp_path, narrator_dir)) == 0
    base = tmp_path / "toy" / "conversational" / f"popularity__{NARR}"
    result = load_result(base.with_suffix(".json"))  # what `regen-bench validate` checks
    samples = [json.loads(x) for x in Path(f"{base}.samples.jsonl").read_text().splitlines()]
    manifest = read_manifest(narrator_dir)
    assert manifest is not None
    rule = manifest.partition.rule()
    held = [s for s in samples if rule.bucket(s["user_id"]) == "heldout"]
    out = [s for s in samples if rule.bucket(s["user_id"]) != "heldout"]
    assert held and out and len(held) == manifest.partition.users["heldout"]
    assert all(s["generated"] is None and "fine-tuning" in s["text_excluded"] for s in out)
    assert all(isinstance(s["generated"], str) and "text_excluded" not in s for s in held)
    narr = result.narration
    assert narr is not None and narr.scored == len(held) and narr.excluded == len(out)
    assert narr.config["max_history"] == 2 and narr.config["max_field_chars"] == 40
    ft = narr.finetune
    assert ft is not None and ft.same_dataset and ft.base_model == manifest.base_model
    assert ft.trained_users == manifest.pairs["train"]
    assert "text-users:heldout@regen-narrator-v1/0.5" in result.signature
    # Named by its manifest, not by the folder it sits in.
    # Named by its weights (not its manifest, which holds dates), and the command that made
    # it is recorded, so the row's command fine-tunes it again.
    assert result.weights is not None
    digest = result.weights["narrator"].rpartition(":")[2]
    assert f"+ft.{digest[:12]}" in result.signature
    assert ft.command is not None and ft.command[:3] == ["regen-bench", "narrator", "finetune"]
    assert ft.command == manifest.command and ft.command[-1] == "NARRATOR"
    assert str(narrator_dir) not in result.signature
    assert 0 <= result.metrics["bleu"] <= 100 and "rougeL" in result.metrics
    # BLEU over the held-out users only: the validator recomputes exactly this.
    import sacrebleu

    bleu = sacrebleu.corpus_bleu([s["generated"] for s in held], [[s["reference"] for s in held]])
    assert result.metrics["bleu"] == pytest.approx(bleu.score)
    assert f"{len(out)} left out" in capsys.readouterr().out


def test_run_refuses_a_mismatched_fine_tuned_narrator(
    narrator_dir: Path, toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _run_args(toy, tmp_path, narrator_dir, "--set", "narrator.max_history=5")
    assert main(args) == 2
    assert "narrator.max_history=5 differs" in capsys.readouterr().err
    args = _run_args(toy, tmp_path, narrator_dir)
    args[args.index(NARR)] = "purchase_reason"
    assert main(args) == 2
    assert "trained for 'product_endorsement'" in capsys.readouterr().err
    # Trained with critiques: the `narrative` task (none anywhere) refuses it in one line.
    args = _run_args(toy, tmp_path, narrator_dir)
    args[args.index("conversational")] = "narrative"
    assert main(args) == 2
    _one_line_error(capsys, "fine-tune it with --task narrative")
    # U00, the first test user, is a fine-tuning user: nobody would be scored.
    assert main(_run_args(toy, tmp_path, narrator_dir, "--limit", "1")) == 2
    assert "none of the 1 test users is held out" in capsys.readouterr().err


def test_a_narrative_task_narrator_is_trained_and_recorded_without_critiques(
    toy: Path, tiny_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain"
    args = _finetune_args(toy, tiny_lm, out, "--task", "narrative", "--max-steps", "1")
    assert _cli(*args) == 0
    assert "for --task narrative" in capsys.readouterr().out
    manifest = read_manifest(out)
    assert manifest is not None and manifest.task == "narrative" and not manifest.critiques
    # A conversational run (critiques shown) refuses it, before training.
    assert main(_run_args(toy, tmp_path / "res", out)) == 2
    _one_line_error(capsys, "without critiques (--task narrative)")


# -- bad input ------------------------------------------------------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("regen-bench: error:") and "\n" not in err and needle in err, err


def test_bad_input_is_one_line_and_exit_2(
    toy: Path, tiny_lm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    args = _finetune_args(toy, tiny_lm, out)
    bad = list(args)
    bad[bad.index(NARR)] = "product_praise"
    assert _cli(*bad) == 2
    _one_line_error(capsys, "unknown narrative type 'product_praise'")

    two = tmp_path / "two.jsonl"
    write_records(
        [make_record(f"V{i}", ["A1", "A2", "A3"], product_endorsement="x") for i in range(2)], two
    )
    small = list(args)
    small[small.index(str(toy))] = str(two)
    assert _cli(*small) == 2
    _one_line_error(capsys, "leaves no users to fine-tune on")

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert _cli(*_finetune_args(toy, tiny_lm, blocker / "sub")) == 2
    _one_line_error(capsys, "cannot create")

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert _cli(*_finetune_args(toy, tiny_lm, full)) == 2
    _one_line_error(capsys, "exists and is not empty")

    assert _cli(*_finetune_args(toy, tiny_lm, out, "--trainer", "hff")) == 2
    _one_line_error(capsys, "Did you mean 'hf'")
    assert _cli(*_finetune_args(toy, tiny_lm, out, "--heldout-fraction", "1.5")) == 2
    _one_line_error(capsys, "heldout-fraction must be in (0, 1)")
    assert _cli(*_finetune_args(toy, tiny_lm, out, "--max-length", "16")) == 2
    _one_line_error(capsys, "longer than --max-length 16")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
