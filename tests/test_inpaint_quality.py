"""What keeps a small model's inpainting answers usable: answer length limits in the schemas,
rejection of copied few-shot examples and of loops, and re-asks that are not identical."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regen_bench.data.regen import iter_records, write_records
from regen_bench.data.schema import UserRecord
from regen_bench.inpaint import InpaintConfig, inpaint, plan_calls
from regen_bench.inpaint import prompts as P
from regen_bench.inpaint.answers import check_answer
from regen_bench.inpaint.checks import copies_example, repetition, text_problem
from regen_bench.inpaint.pipeline import FAILURES_SUFFIX, MANIFEST_SUFFIX
from regen_bench.llm import (
    LLMClient,
    LLMRequest,
    LLMResponse,
    SchemaViolation,
    reask_request,
    validate_json_answer,
)
from tests.test_inpaint import ScriptedBackend, scripted, users  # noqa: F401 - fixtures

EXAMPLE = "The customer wanted black refills for the gel pens they already liked."
LOOP = "They buy pens for school, and they buy pens for work, and they buy pens for home."


# -- the rules ---------------------------------------------------------------------------


def test_copies_of_an_example_are_found_exactly_and_nearly() -> None:
    examples = P.example_texts()
    assert EXAMPLE in examples
    assert copies_example(EXAMPLE, examples)
    assert copies_example(
        "the customer wanted BLACK refills for the gel pens they already liked", examples
    )
    # A near copy: eight words in a row from the example, then the model's own ending.
    near = "The customer wanted black refills for the gel pens and some paper."
    assert copies_example(near, examples)
    assert text_problem(near, examples) == "copies the few-shot example"
    # Seven shared words are not a copy: item words and common phrases must stay allowed.
    assert not copies_example("So the customer wanted black refills for the stapler.", examples)
    assert text_problem("A sturdy stapler for the home office.", examples) is None


def test_loops_are_found_by_phrase_and_by_sentence() -> None:
    assert repetition(LOOP) == "repeats 'they buy pens for' 3 times"
    assert repetition(LOOP.rsplit(", and", 1)[0]) is None  # twice is not yet a loop
    twice = (
        "The pens write well. The customer likes smooth ink pens. The customer likes smooth ink."
    )
    assert repetition(twice) is None
    twice = "The pens write well. " + "The customer likes smooth ink pens. " * 2
    assert repetition(twice) == "repeats the sentence 'The customer likes smooth ink pens'"
    assert text_problem(twice, P.example_texts()) == repetition(twice)


def test_answers_echoing_the_prompt_layout_are_found() -> None:
    examples = P.example_texts()
    assert text_problem("CURRENT: Filemate Classic File Folders", examples) == (
        "echoes the prompt's 'CURRENT' label"
    )
    assert (
        text_problem("[Purchase 1] Blue pens", examples) == "echoes the prompt's 'Purchase 1' label"
    )
    assert text_problem("Description", examples) == "echoes the prompt's 'Description' label"
    # The same words inside a sentence are fine.
    assert text_problem("The current folders are too thin; show me heavier ones.", examples) is None
    assert text_problem("Description matters less than a lower price here.", examples) is None


# -- the schemas ---------------------------------------------------------------------------


def test_schemas_bound_every_answer_string() -> None:
    schema = P.critique_schema(3)
    items = schema["properties"]["critiques"]
    assert (items["minItems"], items["maxItems"]) == (1, 3)
    assert (items["items"]["minLength"], items["items"]["maxLength"]) == (10, 120)
    ok = '{"critiques": ["Same stapler, but in red."]}'
    assert validate_json_answer(ok, schema) == ok
    with pytest.raises(SchemaViolation, match="is too long"):
        validate_json_answer(json.dumps({"critiques": ["x" * 121]}), schema)
    with pytest.raises(SchemaViolation, match="is too long"):  # four critiques, three asked
        validate_json_answer(json.dumps({"critiques": ["A red one please."] * 4}), schema)
    user = P.narrative_schema("user")["properties"]
    assert {k: (v["minLength"], v["maxLength"]) for k, v in user.items()} == {
        "brief_summary": (30, 300),
        "long_summary": (100, 800),
        "profile": (8, 60),
    }
    with pytest.raises(SchemaViolation, match="is too short"):  # a fragment cannot pass
        validate_json_answer(
            json.dumps(
                {"brief_summary": "[Purchase 1]", "long_summary": "x" * 100, "profile": "y" * 8}
            ),
            P.narrative_schema("user"),
        )


def test_max_tokens_follow_the_schemas_unless_given(users: list[UserRecord]) -> None:  # noqa: F811
    # 8 + 12 per field (+ 4 per critique) + half a token per allowed character.
    assert P.answer_token_budget(P.critique_schema(3)) == 8 + 12 + 12 + (360 + 1) // 2
    assert P.answer_token_budget(P.narrative_schema("user")) == 8 + 36 + (1160 + 1) // 2
    calls = plan_calls(users, InpaintConfig(candidates=2))
    tokens = {c.kind: c.request.max_tokens for c in calls}
    assert tokens == {
        "critique": 8 + 12 + 8 + 120,
        "purchase_reason": 8 + 24 + 350,
        "endorsement": 8 + 12 + 300,
        "user": 8 + 36 + 580,
    }
    schemas = [c.request.json_schema or {} for c in calls if c.kind == "critique"]
    assert [s["properties"]["critiques"]["maxItems"] for s in schemas] == [2] * len(schemas)
    given = plan_calls(users, InpaintConfig(max_tokens={"user": 99}))
    assert {c.request.max_tokens for c in given if c.kind == "user"} == {99}
    with pytest.raises(ValueError, match="max_tokens: unknown call kind"):
        InpaintConfig(max_tokens={"users": 99})
    with pytest.raises(ValueError, match="max_tokens must be integers >= 1"):
        InpaintConfig(max_tokens={"user": 0})


# -- the checks in a run -------------------------------------------------------------------


def test_check_answer_names_the_problem(users: list[UserRecord]) -> None:  # noqa: F811
    calls = {c.kind: c.request for c in plan_calls(users, InpaintConfig())}
    endorsement = json.dumps({"endorsement": LOOP})
    with pytest.raises(ValueError, match="field 'endorsement' repeats 'they buy pens for' 3 times"):
        check_answer(calls["endorsement"], endorsement)
    copied = json.dumps({"critiques": ["Same pens in black, and a bigger pack."]})
    with pytest.raises(
        ValueError, match="every critique is unusable: the first copies the few-shot"
    ):
        check_answer(calls["critique"], copied)
    # One usable critique among copies is enough.
    check_answer(
        calls["critique"],
        json.dumps({"critiques": [*json.loads(copied)["critiques"], "A red one, please."]}),
    )


def test_a_looping_answer_is_reasked_with_a_different_request(
    tmp_path: Path,
    users: list[UserRecord],  # noqa: F811
    scripted: type[ScriptedBackend],  # noqa: F811
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users[1:], data)
    out = tmp_path / "out.jsonl"
    scripted.bad = {("NEW ITEM",): [json.dumps({"endorsement": LOOP})]}
    report = inpaint(
        data, out, "scripted-inpaint", progress=False, concurrency=1, reask_temperature=0.4
    )
    assert report is not None and not report.failures and report.usage["reasks"] == 1
    asked = [r for r in scripted.requests if "NEW ITEM" in r.prompt]
    assert len(asked) == 2
    first, again = asked
    assert first.temperature == 0 and again.temperature == 0.4
    assert again.seed != first.seed and again.seed == reask_request(first, 1).seed
    assert again.prompt == first.prompt and again.json_schema == first.json_schema
    assert next(iter_records(out)).narratives.product_endorsement == "endorsement text"
    manifest = json.loads(Path(f"{out}{MANIFEST_SUFFIX}").read_text())
    assert manifest["prompt_version"] == "inpaint-v2" and manifest["reask_temperature"] == 0.4


def test_a_hopeless_copy_is_a_failure_with_its_reason(
    tmp_path: Path,
    users: list[UserRecord],  # noqa: F811
    scripted: type[ScriptedBackend],  # noqa: F811
) -> None:
    data = tmp_path / "in.jsonl"
    write_records(users[1:], data)
    out = tmp_path / "out.jsonl"
    near = json.dumps(
        {
            "reason": "The customer wanted black refills for the gel pens and paper.",
            "explanation": "x" * 60,
        }
    )
    scripted.bad = {("Explain why the customer bought",): [near] * 3}
    report = inpaint(data, out, "scripted-inpaint", progress=False, schema_retries=2)
    assert report is not None and dict(report.failures) == {"purchase_reason": 1}
    assert sum("Explain why" in r.prompt for r in scripted.requests) == 3
    seeds = {r.seed for r in scripted.requests if "Explain why" in r.prompt}
    assert len(seeds) == 3  # three different requests, not one asked three times
    rows = [json.loads(x) for x in Path(f"{out}{FAILURES_SUFFIX}").read_text().splitlines()]
    assert rows[0]["reason"] == "field 'reason' copies the few-shot example"
    assert rows[0]["answer"] == near


# -- re-asks in the client -----------------------------------------------------------------


class BatchedScript:
    """Test double of a local batched backend: greedy, so the same request gets the same answer."""

    name = "batched-script"
    model = "b-1"
    price_per_mtok: tuple[float, float] | None = None
    batch_size = 4

    def __init__(self) -> None:
        self.batches: list[list[LLMRequest]] = []
        self.single: list[LLMRequest] = []

    def answer(self, req: LLMRequest) -> LLMResponse:
        good = req.temperature > 0 or req.prompt != "loops"
        text = '{"text": "fine"}' if good else '{"text": "loop loop"}'
        return LLMResponse(text=text, completion_tokens=3)

    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        self.single.append(request)
        return self.answer(request)

    def complete_batch(self, requests: Any, *, timeout_s: float | None = None) -> list[LLMResponse]:
        self.batches.append(list(requests))
        return [self.answer(r) for r in requests]


def no_loop(request: LLMRequest, text: str) -> None:
    if "loop loop" in text:
        raise ValueError("loops")


def test_batched_reasks_start_at_the_first_varied_request() -> None:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    reqs = [LLMRequest(system="", prompt=p, json_schema=schema, seed=7) for p in ("ok", "loops")]
    backend = BatchedScript()
    client = LLMClient(backend, schema_retries=2)
    answers = client.complete_many(reqs, progress=False, check=no_loop)
    assert [a.ok for a in answers] == [True, True]
    assert [len(b) for b in backend.batches] == [2]
    # The batch was attempt 0; the one re-ask is attempt 1, sampled under a new seed.
    assert backend.single == [reask_request(reqs[1], 1, 0.7)]
    assert backend.single[0].temperature == 0.7 and backend.single[0].seed != 7
    assert client.usage()["reasks"] == 1
    # Without variation (reask_temperature=0) a greedy backend repeats itself: a failure.
    same = LLMClient(BatchedScript(), schema_retries=2, reask_temperature=0)
    failed = same.complete_many(reqs, progress=False, check=no_loop)
    assert failed[1].error == "loops" and same.usage()["reasks"] == 2


def test_reask_requests_are_reproducible_and_distinct() -> None:
    req = LLMRequest(system="s", prompt="p", seed=3, temperature=0.2)
    assert reask_request(req, 0) is req
    one, two = reask_request(req, 1), reask_request(req, 2)
    assert one == reask_request(req, 1) and len({req.seed, one.seed, two.seed}) == 3
    assert one.temperature == 0.7 and reask_request(req, 1, 0.1).temperature == 0.2
    with pytest.raises(ValueError, match="reask_temperature must be a number >= 0"):
        LLMClient(BatchedScript(), reask_temperature=-1)
