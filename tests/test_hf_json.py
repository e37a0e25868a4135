"""JSON-schema constrained decoding of the ``hf`` backend (lm-format-enforcer).

A tiny random Llama with a byte-level tokenizer, built offline: unconstrained it writes noise,
constrained it must write JSON that follows the schema, whatever the batch it is in.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from regen_bench.llm import LLMRequest, SchemaViolation, make_client, validate_json_answer
from tests.tiny_lm import chat_tokenizer, save_tiny_llama

pytest.importorskip("lmformatenforcer")
jsonschema = pytest.importorskip("jsonschema")

RATER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "veracity": {"type": "integer", "minimum": 1, "maximum": 7},
        "personalization": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["veracity", "personalization"],
}
STRING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 12},
        "score": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["reason", "score"],
}
PROMPTS = ["rate the pens", "a stapler", "blue ink, for school", "gift for home"]


@pytest.fixture(scope="module")
def byte_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random Llama whose byte-level BPE vocabulary can spell any JSON text."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    specials = ["<pad>", "<s>", "</s>", "<|user|>", "<|system|>", "<|assistant|>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    # A few merged tokens so multi-character tokens (and their word starts) are exercised too.
    merges = [("v", "e"), ("ve", "r"), ("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e")]
    words = ["ve", "ver", "Ġt", "Ġth", "Ġthe"]
    vocab = {t: i for i, t in enumerate(specials + alphabet + words)}
    raw = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.add_special_tokens(specials)
    tok = chat_tokenizer(raw, sep="", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    return save_tiny_llama(
        tmp_path_factory.mktemp("byte-llama"), tok, len(vocab), bos_token_id=1, eos_token_id=2
    )


def backend(model_dir: Path, batch_size: int = 1) -> Any:
    from regen_bench_plugins.llm_backends.hf import HFBackend

    return HFBackend(str(model_dir), device="cpu", batch_size=batch_size)


@pytest.fixture(scope="module")
def one_row(byte_model_dir: Path) -> Any:
    """The backend answering one request per ``generate`` call (loaded once: loads dominate)."""
    return backend(byte_model_dir, batch_size=1)


@pytest.fixture(scope="module")
def three_rows(byte_model_dir: Path) -> Any:
    return backend(byte_model_dir, batch_size=3)


def requests(schema: dict[str, Any] | None, max_tokens: int = 120) -> list[LLMRequest]:
    return [
        LLMRequest(system="rate", prompt=p, json_schema=schema, max_tokens=max_tokens)
        for p in PROMPTS
    ]


def assert_valid(text: str, schema: dict[str, Any]) -> Any:
    value = json.loads(text)  # the whole answer, not some JSON inside prose
    jsonschema.validate(value, schema)
    return value


@pytest.mark.parametrize("schema", [RATER_SCHEMA, STRING_SCHEMA], ids=["integers", "string"])
def test_answers_follow_the_schema_whatever_the_batch(
    one_row: Any, three_rows: Any, schema: Any
) -> None:
    one = one_row.complete_batch(requests(schema))
    for r in one:
        assert_valid(r.text, schema)
    assert all(r.ok and r.completion_tokens > 5 for r in one)
    batched = three_rows.complete_batch(requests(schema))
    assert [r.text for r in batched] == [r.text for r in one]


def test_without_a_schema_the_random_model_writes_no_json(one_row: Any) -> None:
    """The control: the same model unconstrained fails the schema, so the test above can fail."""
    answers = one_row.complete_batch(requests(None, max_tokens=40))
    assert all(r.ok and r.text for r in answers)
    for r in answers:
        with pytest.raises(SchemaViolation):
            validate_json_answer(r.text, RATER_SCHEMA)


def test_constrained_and_free_rows_share_a_batch(one_row: Any, three_rows: Any) -> None:
    mixed = [
        requests(RATER_SCHEMA)[0],
        requests(None, max_tokens=40)[1],
        requests(STRING_SCHEMA)[2],
    ]
    together = three_rows.complete_batch(mixed)
    alone = [one_row.complete(r) for r in mixed]
    assert [r.text for r in together] == [r.text for r in alone]
    assert_valid(together[0].text, RATER_SCHEMA)
    assert_valid(together[2].text, STRING_SCHEMA)
    with pytest.raises(SchemaViolation):
        validate_json_answer(together[1].text, RATER_SCHEMA)


def test_through_the_client_answers_are_valid_first_time(byte_model_dir: Path) -> None:
    client = make_client("hf", model=str(byte_model_dir), device="cpu", schema_retries=0)
    answers = client.complete_many(requests(RATER_SCHEMA), progress=False)
    assert all(r.ok for r in answers), [r.error for r in answers]
    assert all(1 <= v <= 7 for r in answers for v in r.json().values())


def test_sampled_answers_follow_the_schema_too(one_row: Any) -> None:
    """The raters sample (temperature 0.7, a seed per run): masks come before the warpers."""
    reqs = [
        LLMRequest(system="rate", prompt="pens", json_schema=RATER_SCHEMA, temperature=t, seed=s)
        for t, s in ((0.7, 1), (1.5, 2), (1.5, 2))
    ]
    answers = [one_row.complete(r) for r in reqs]
    for r in answers:
        assert_valid(r.text, RATER_SCHEMA)
    assert answers[1].text == answers[2].text  # same seed, same answer


def test_without_the_library_falls_back_with_one_warning(
    one_row: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import regen_bench_plugins.llm_backends.hf.constrained as constrained

    monkeypatch.setitem(sys.modules, "lmformatenforcer", None)  # import now raises ImportError
    monkeypatch.setattr(constrained, "_warned_no_enforcer", False)
    with caplog.at_level(logging.WARNING, logger=constrained.__name__):
        answers = [one_row.complete(r) for r in requests(RATER_SCHEMA, max_tokens=40)[:2]]
    assert [m for m in caplog.messages if "lm-format-enforcer" in m] == [caplog.messages[0]]
    assert len(caplog.messages) == 1
    for r in answers:
        with pytest.raises(SchemaViolation):
            validate_json_answer(r.text, RATER_SCHEMA)


def test_bounded_integers_become_an_enum() -> None:
    from regen_bench_plugins.llm_backends.hf.constrained import for_enforcer

    assert for_enforcer(RATER_SCHEMA)["properties"]["veracity"]["enum"] == list(range(1, 8))
    exclusive = {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 4}
    assert for_enforcer(exclusive)["enum"] == [1, 2, 3]
    even = {"type": "integer", "minimum": 1, "maximum": 9, "multipleOf": 2}
    assert for_enforcer({"items": [even]})["items"][0]["enum"] == [2, 4, 6, 8]
    wide = {"type": "integer", "minimum": 0, "maximum": 10_000}
    assert "enum" not in for_enforcer(wide)
    assert for_enforcer({"type": "number", "minimum": 1, "maximum": 7}) == {
        "type": "number",
        "minimum": 1,
        "maximum": 7,
    }


@pytest.mark.slow
def test_smollm2_answers_rater_prompts_with_valid_json() -> None:
    """The packaged SmolLM2 (offline alias), greedy, five rater-like prompts."""
    b = backend_smollm2()
    reqs = [
        LLMRequest(system=SMOLLM2_SYSTEM, prompt=p, json_schema=RATER_SCHEMA, max_tokens=40)
        for p in SMOLLM2_PROMPTS
    ]
    answers = b.complete_batch(reqs)
    for r in answers:
        value = assert_valid(r.text, RATER_SCHEMA)
        assert set(value) == {"veracity", "personalization"}


SMOLLM2_SYSTEM = (
    "You are a strict, impartial rater of texts written for an online shop. You score each "
    "attribute on a 7-point Likert scale: 1 = very poor, 4 = acceptable, 7 = excellent. "
    "Reply with one JSON object of integers and nothing else."
)
SMOLLM2_PROMPTS = [
    "Purchases: 1. Blue gel pens, review: smooth ink. 2. Spiral notebook, review: good paper.\n"
    "Purchase reason: The customer needed more pens for note taking at school.\n"
    "Rate veracity and personalization.",
    "Purchases: 1. Heavy-duty stapler, review: jams often.\n"
    "Purchase reason: The customer loves staplers that jam.\n"
    "Rate veracity and personalization.",
    "Purchases: 1. Desk lamp, review: too dim. 2. LED bulb, review: bright enough now.\n"
    "Purchase reason: A brighter bulb for the dim desk lamp.\nRate veracity and personalization.",
    "Purchases: 1. Printer paper, review: fine.\nPurchase reason: Everyone needs paper.\n"
    "Rate veracity and personalization.",
    "Purchases: 1. Fountain pen, review: a gift for my father. 2. Black ink, review: refills.\n"
    "Purchase reason: Refill ink for the fountain pen bought as a gift.\n"
    "Rate veracity and personalization.",
]


def backend_smollm2() -> Any:
    from regen_bench_plugins.llm_backends.hf import HFBackend

    return HFBackend("smollm2", device="cpu", batch_size=5, num_threads=1)
