"""The ``narrative`` task (history -> item + narrative, no critique anywhere) and the one user
partition behind every text training (LUMEN's text loss, the narrator's fine-tuning)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from regen_bench import Dataset
from regen_bench.cli import main
from regen_bench.data.regen import write_records
from regen_bench.finetune import UserPartition, build_pairs
from regen_bench.leaderboard.tables import task_label
from regen_bench.narrator import NarratorConfig
from regen_bench.plugins import get_plugin_manager
from regen_bench.runner import supports
from regen_bench.tasks import TASKS, build_task
from tests.conftest import make_record
from tests.test_conversational import ScriptedBackend, scripted  # noqa: F401 - fixture

#: Critiques at several purchases of every user: none may reach a prompt of the task.
CRITIQUES = {1: "Something in blue please", 3: "A cheaper one please", 4: "Smaller please"}
NARRATIVE = "product_endorsement"
#: The tiny backbone's vocabulary (LUMEN tests): the prompts' fixed text.
TEXT = (
    "this is the summary of a user's purchase history . first next item is start id : title "
    "category description price rating user review critique end and product endorsement are "
    "text great pen for my desk in black please none unknown office products school supplies "
    "writing pens leaf about acme"
)
WORDS = TEXT.split()


def _records(users: int = 12) -> list[Any]:
    return [
        make_record(
            f"U{u:02d}",
            [f"B{(u + k * 3) % 9:02d}" for k in range(5)],
            CRITIQUES,
            product_endorsement=f"great pen for my desk {u}",
        )
        for u in range(users)
    ]


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.jsonl"
    write_records(_records(), path)
    return path


def _run(toy: Path, out: Path, model: str, task: str, *options: str) -> dict[str, Any]:
    args = ["run", "--model", model, "--task", task, "--narrative", NARRATIVE]
    args += ["--dataset", str(toy), "--output", str(out), "-q", "--threads", "1"]
    args += ["--embedder", "none", "--bertscore-model", "none"]
    for kv in options:
        args += ["--set", kv]
    assert main(args) == 0
    result: dict[str, Any] = json.loads(
        (out / "toy" / task / f"{model}__{NARRATIVE}.json").read_text()
    )
    return result


def _samples(out: Path, model: str, task: str) -> list[dict[str, Any]]:
    path = out / "toy" / task / f"{model}__{NARRATIVE}.samples.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- (a) the task, its label, and the narrator ---------------------------------------------------


def test_the_task_is_registered_versioned_and_labelled_as_in_the_paper() -> None:
    task = TASKS["narrative"]
    assert task.version == 1 and task.generates and not task.uses_critique
    assert task_label("narrative") == "Hist. → ID + Narrative"
    assert task_label("conversational") == "Hist. + Critique → ID + Narrative"
    # Every model ranking on `sequential` runs it with the narrator; LUMEN declares it itself.
    plugins = get_plugin_manager()
    for name in plugins.names("model"):
        meta = plugins.get("model", name).meta
        assert supports(meta, "narrative") == ("sequential" in meta.get("tasks", ())), name
    assert "narrative" in plugins.get("model", "lumen").meta["tasks"]
    # No critique in what any model is given: training sequences, histories, targets.
    data = build_task(Dataset.from_records("toy", _records()), "narrative", NARRATIVE)
    assert all(c is None for u in data.train for c in u.critiques)
    for ex in data.valid + data.test:
        assert ex.critique is None and set(ex.history_critiques) == {None}
        assert ex.references[NARRATIVE]


def test_the_narrator_never_sees_a_critique(
    toy: Path,
    tmp_path: Path,
    scripted: type[ScriptedBackend],  # noqa: F811 - fixture
) -> None:
    result = _run(toy, tmp_path, "popularity", "narrative", "narrator.backend=scripted")
    assert result["task"] == {"name": "narrative", "version": 1, "narrative_type": NARRATIVE}
    assert "|task:narrative.v1|" in result["signature"]
    assert result["narration"]["generator"] == "narrator"
    assert result["narration"]["scored"] == 12
    assert scripted.prompts  # (users with the same purchases share a cached answer)
    for prompt in scripted.prompts:
        assert "Critique" not in prompt
        assert not any(c in prompt for c in CRITIQUES.values())
        assert prompt.count("START ID:") == 4  # the history is there, without its critiques
    # The same run on `conversational` shows them: the check above can fail.
    scripted.prompts.clear()
    _run(tmp_path / "toy.jsonl", tmp_path / "conv", "popularity", "conversational",
         "narrator.backend=scripted")  # fmt: skip
    assert all(CRITIQUES[1] in p and CRITIQUES[4] in p for p in scripted.prompts)


# -- LUMEN: no critique in its prompts, its text trained outside the held-out users --------------


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama (hidden 32) with a word-level tokenizer, built offline."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from tests.tiny_lm import chat_tokenizer, save_tiny_llama

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(WORDS)))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = chat_tokenizer(
        raw, chat=False, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    return save_tiny_llama(tmp_path_factory.mktemp("lumen-backbone"), tok, len(vocab))


def _lumen_options(backbone_dir: Path) -> list[str]:
    """Tiny settings, as ``--set KEY=VALUE``."""
    return [
        f"backbone={backbone_dir}",
        "device=cpu",
        f"narrative={NARRATIVE}",
        "epochs=1",
        "max_new_tokens=2",
        "max_history=3",
        "batch_size=4",
        "micro_batch=2",
    ]


class _Spy:
    """Records the prompts LUMEN's encoder builds and the batches its losses see."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from regen_bench_plugins.lumen import prompt, train

        self.texts: list[str] = []
        self.text_loss_users: list[str] = []
        self.item_loss_users: list[str] = []
        encode, collate = prompt.PromptEncoder.prompt, train.collate

        def spy_prompt(encoder: Any, segs: Sequence[str | int]) -> Any:
            self.texts.append("".join(s for s in segs if isinstance(s, str)))
            return encode(encoder, segs)

        def spy_collate(batch: Sequence[Any], pad: int, *, every_slot: bool) -> Any:
            for enc in batch:
                self.item_loss_users.append(enc.user_id)
                if any(v != -100 for v in enc.labels):
                    self.text_loss_users.append(enc.user_id)
            return collate(batch, pad, every_slot=every_slot)

        monkeypatch.setattr(prompt.PromptEncoder, "prompt", spy_prompt)
        monkeypatch.setattr(train, "collate", spy_collate)


def test_lumen_leaves_critiques_out_and_scores_text_on_heldout_users_only(
    backbone_dir: Path, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    result = _run(toy, tmp_path, "lumen", "narrative", *_lumen_options(backbone_dir))
    # (b) no critique in any prompt, in training (collated batches) or evaluation
    assert spy.texts and spy.text_loss_users
    assert all("Critique" not in t for t in spy.texts)
    assert not any(c in t for t in spy.texts for c in CRITIQUES.values())
    assert result["fit_log"]["critiques_in_prompt"] is False
    # (c) the text loss saw the narratives of the users outside `heldout` only; the item
    # loss trained on every user
    rule = UserPartition()
    users = [f"U{u:02d}" for u in range(12)]
    heldout = {u for u in users if rule.bucket(u) == "heldout"}
    assert 0 < len(heldout) < len(users)
    assert set(spy.text_loss_users) == set(users) - heldout
    assert set(spy.item_loss_users) == set(users)
    assert result["fit_log"]["text_users"] == len(users) - len(heldout)
    # ranking on every test user, text metrics on the held-out ones only
    samples = _samples(tmp_path, "lumen", "narrative")
    assert result["protocol"]["test_examples"] == len(samples) == 12
    scored = {s["user_id"] for s in samples if "text_excluded" not in s}
    assert scored == heldout
    assert all(s["generated"] is None for s in samples if "text_excluded" in s)
    narration = result["narration"]
    assert narration["generator"] == "model"
    assert narration["excluded"] == len(users) - len(heldout)
    assert narration["scored"] == len(heldout)
    assert narration["text_users"] == {
        "method": "sha256(salt + '\\0' + user_id), first 8 bytes / 2**64",
        "salt": "regen-narrator-v1",
        "heldout_fraction": 0.5,
        "trained_users": len(users) - len(heldout),
    }
    assert "|text-users:heldout@regen-narrator-v1/0.5|" in result["signature"]
    assert "|task:narrative.v1|" in result["signature"]
    path = tmp_path / "toy" / "narrative" / f"lumen__{NARRATIVE}.json"
    assert main(["validate", str(path)]) == 0


def test_lumen_shows_critiques_on_the_conversational_task(backbone_dir: Path) -> None:
    """The contrast: where the task reveals critiques, LUMEN's prompts carry them."""
    from regen_bench_plugins.lumen.model import Lumen

    ds = Dataset.from_records("toy", _records())
    opts: dict[str, Any] = dict(o.split("=", 1) for o in _lumen_options(backbone_dir))
    for task, shown in (("conversational", True), ("narrative", False)):
        data = build_task(ds, task, NARRATIVE)
        model = Lumen(ds.catalog, seed=0, **{**opts, "epochs": 0})
        model.fit(data.train, data.valid)
        assert model.show_critiques is shown
        train_text = "".join(
            str(model.encoder.tok.decode(e.ids)) for e in model.training_examples(data.train)
        )
        assert ("critique" in train_text.lower()) is shown


def test_a_checkpoint_trained_with_critiques_cannot_run_the_task_without(
    backbone_dir: Path, tmp_path: Path
) -> None:
    from regen_bench_plugins.lumen.model import Lumen

    ds = Dataset.from_records("toy", _records())
    opts: dict[str, Any] = dict(o.split("=", 1) for o in _lumen_options(backbone_dir))
    conv = build_task(ds, "conversational", NARRATIVE)
    Lumen(ds.catalog, **{**opts, "epochs": 0, "save_dir": str(tmp_path / "ck")}).fit(
        conv.train, conv.valid
    )
    plain = build_task(ds, "narrative", NARRATIVE)
    loaded = Lumen(ds.catalog, checkpoint=str(tmp_path / "ck"), device="cpu")
    with pytest.raises(ValueError, match="trained with critiques"):
        loaded.fit(plain.train, plain.valid)


# -- (d) one partition ---------------------------------------------------------------------------


def test_the_narrator_fine_tune_and_lumen_put_every_user_in_the_same_bucket() -> None:
    from regen_bench_plugins.lumen.options import LumenOptions
    from regen_bench_plugins.lumen.prompt import training_encodings

    ids = [f"user-{i}" for i in range(2000)] + [f"U{u:02d}" for u in range(12)]
    for given, rule in (
        ({}, UserPartition()),
        ({"text_salt": "other", "text_heldout_fraction": 0.3}, UserPartition("other", 0.3)),
    ):
        own = LumenOptions.parse(given, model="lumen").text_partition
        assert type(own) is UserPartition  # the narrator fine-tune's class, not a copy
        assert [own.bucket(u) for u in ids] == [rule.bucket(u) for u in ids]
    # On data: the users whose narratives train LUMEN's text are exactly those that give the
    # narrator's fine-tuning pairs (train + valid buckets).
    ds = Dataset.from_records("toy", _records(80))
    train, valid, counts = build_pairs(ds, NARRATIVE, UserPartition(), NarratorConfig())
    assert min(counts.values()) > 0

    class _Encoder:  # counts what would be tokenized; no tokenizer needed
        def training(self, segs: Any, target: int, narrative: str | None) -> Any:
            from regen_bench_plugins.lumen.prompt import Encoded

            return Encoded(ids=[], labels=[] if narrative is None else [1])

    opts = LumenOptions.parse({"narrative": NARRATIVE}, model="lumen")
    data = build_task(ds, "narrative", NARRATIVE)
    encs = training_encodings(_Encoder(), ds.catalog, opts, data.train)  # type: ignore[arg-type]
    lumen_users = {e.user_id for e in encs if e.labels}
    assert lumen_users == {p.user_id for p in train + valid}
