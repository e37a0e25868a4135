"""Generation options of the ``hf`` backend for small models: repetition penalty, n-gram bans,
the schema left out of the prompt. Tiny random Llamas built offline (fixtures of the hf tests).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from regen_bench.llm import LLMRequest, make_client
from tests.test_hf_json import STRING_SCHEMA, byte_model_dir  # noqa: F401 - fixture
from tests.test_llm import tiny_model_dir  # noqa: F401 - fixture

pytest.importorskip("torch")

PROMPTS = [
    "the customer bought pens and paper for the office desk",
    "likes blue ink and a notebook for school",
    "stapler",
    "cheap sturdy desk for home work because the customer needed more office paper",
]


def hf(model_dir: Path, **options: Any) -> Any:
    from regen_bench_plugins.llm_backends.hf import HFBackend

    return HFBackend(str(model_dir), device="cpu", **options)


_backends: dict[str, Any] = {}


def hf_backend_cache(model_dir: Path) -> Any:
    """A default backend for ``model_dir``, loaded once for the module."""
    if str(model_dir) not in _backends:
        _backends[str(model_dir)] = hf(model_dir)
    return _backends[str(model_dir)]


def answer_ids(backend: Any, max_tokens: int = 16, prompts: list[str] = PROMPTS) -> list[list[int]]:
    """The token ids each answer was generated as (up to its end token), as ``generate`` made
    them: decoding drops special tokens, so the text alone would hide some."""
    reqs = [LLMRequest(system="be brief", prompt=p, max_tokens=max_tokens) for p in prompts]
    seen: list[list[int]] = []
    generate = backend.net.generate

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = generate(*args, **kwargs)
        width = kwargs["input_ids"].shape[1]
        seen.extend(out[:, width:].tolist())
        return out

    backend.net.generate = spy
    try:
        backend.complete_batch(reqs)
    finally:
        backend.net.generate = generate
    eos = backend._eos_ids
    return [ids[: next((k for k, t in enumerate(ids) if t in eos), len(ids))] for ids in seen]


def prompt_ids(backend: Any, prompt: str) -> list[int]:
    return list(backend.tokenizer.encode(prompt, add_special_tokens=False))


def ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0"),
        ({"repetition_penalty": "high"}, "repetition_penalty must be a number > 0"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size must be an integer >= 0"),
        ({"no_repeat_ngram_size": 2.5}, "no_repeat_ngram_size must be an integer >= 0"),
        ({"no_copy_ngram_size": True}, "no_copy_ngram_size must be an integer >= 0"),
        ({"schema_in_prompt": "no"}, "schema_in_prompt must be true or false"),
    ],
)
def test_bad_generation_options_are_one_line_errors(
    tiny_model_dir: Path,  # noqa: F811
    options: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message) as err:
        make_client("hf", model=str(tiny_model_dir), **options)
    assert "\n" not in str(err.value) and str(err.value).startswith("hf backend: ")


def test_no_repeat_ngram_size_stops_loops_in_the_answer(tiny_model_dir: Path) -> None:  # noqa: F811
    plain = answer_ids(hf(tiny_model_dir))
    # The control: a random model greedily loops, repeating word pairs within an answer.
    assert any(len(set(ngrams(a, 2))) < len(ngrams(a, 2)) for a in plain)
    banned = answer_ids(hf(tiny_model_dir, no_repeat_ngram_size=2))
    assert all(len(a) >= 8 for a in banned)
    for a in banned:
        assert len(set(ngrams(a, 2))) == len(ngrams(a, 2)), a


def test_repetition_penalty_counts_the_answer_not_the_prompt(tiny_model_dir: Path) -> None:  # noqa: F811
    plain = answer_ids(hf(tiny_model_dir))
    assert any(len(set(a)) < len(a) for a in plain)  # control: words repeat
    penalised = answer_ids(hf(tiny_model_dir, repetition_penalty=1e6), max_tokens=6)
    for a in penalised:
        assert len(set(a)) == len(a), a  # no answer word twice
    # Words of the prompt are not penalised: some answer still uses one.
    prompt_words = [set(prompt_ids(hf_backend_cache(tiny_model_dir), p)) for p in PROMPTS]
    assert any(set(a) & words for a, words in zip(penalised, prompt_words, strict=True))


def test_no_copy_ngram_size_keeps_prompt_runs_out_of_the_answer(tiny_model_dir: Path) -> None:  # noqa: F811
    b = hf_backend_cache(tiny_model_dir)
    # Each prompt holds words this random model tends to write, as a few-shot example would.
    prompts = [f"{p} desk needed because for home likes notebook work" for p in PROMPTS]
    rendered = [prompt_ids(b, b.render(LLMRequest(system="be brief", prompt=p))) for p in prompts]
    plain = answer_ids(b, prompts=prompts)
    # Control: unconstrained, the answers copy word pairs of their prompt.
    assert all(set(ngrams(a, 2)) & set(ngrams(p, 2)) for a, p in zip(plain, rendered, strict=True))
    copy_free = answer_ids(hf(tiny_model_dir, no_copy_ngram_size=2), prompts=prompts)
    for a, p in zip(copy_free, rendered, strict=True):
        assert len(a) >= 4  # (the bans may steer a random model to its end token early)
        # No pair of the prompt, none repeated within the answer, none across the boundary.
        assert not set(ngrams(a, 2)) & set(ngrams(p, 2))
        assert len(set(ngrams(a, 2))) == len(ngrams(a, 2))
        assert tuple(p[-1:] + a[:1]) not in set(ngrams(p, 2))


def test_options_keep_answers_independent_of_the_batch(tiny_model_dir: Path) -> None:  # noqa: F811
    options = {"repetition_penalty": 1.3, "no_repeat_ngram_size": 3, "no_copy_ngram_size": 4}
    one = answer_ids(hf(tiny_model_dir, batch_size=1, **options))
    four = answer_ids(hf(tiny_model_dir, batch_size=4, **options))
    assert one == four


def test_bans_never_break_the_json_schema(byte_model_dir: Path) -> None:  # noqa: F811
    """Under a schema the bans give way when they would leave no allowed token."""
    pytest.importorskip("lmformatenforcer")
    jsonschema = pytest.importorskip("jsonschema")
    b = hf(byte_model_dir, batch_size=2, no_repeat_ngram_size=2, no_copy_ngram_size=3)
    reqs = [
        LLMRequest(system="rate", prompt=p, json_schema=STRING_SCHEMA, max_tokens=120)
        for p in ("rate the pens", "a stapler")
    ]
    for r in b.complete_batch(reqs):
        jsonschema.validate(json.loads(r.text), STRING_SCHEMA)


def test_schema_in_prompt_false_sends_the_prompt_alone(tiny_model_dir: Path) -> None:  # noqa: F811
    schema = {"type": "object", "properties": {"pens": {"type": "string"}}}
    req = LLMRequest(system="", prompt="stapler", json_schema=schema)
    assert "JSON schema" in hf_backend_cache(tiny_model_dir).render(req)
    lean = hf(tiny_model_dir, schema_in_prompt=False)
    assert "JSON schema" not in lean.render(req) and "stapler" in lean.render(req)


def test_options_separate_cache_keys(tiny_model_dir: Path) -> None:  # noqa: F811
    from regen_bench_plugins.llm_backends.local_models import folder_fingerprint

    weights = f";weights={folder_fingerprint(tiny_model_dir)}"
    default = hf_backend_cache(tiny_model_dir).cache_extra
    assert default == "dtype=float32" + weights
    tuned = hf(
        tiny_model_dir,
        repetition_penalty=1.2,
        no_repeat_ngram_size=4,
        no_copy_ngram_size=8,
        schema_in_prompt=False,
    ).cache_extra
    assert tuned == (
        "dtype=float32;repetition_penalty=1.2;no_repeat_ngram_size=4;"
        "no_copy_ngram_size=8;schema_in_prompt=false" + weights
    )


def test_retrained_folder_gets_a_new_cache_key(tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """Weights rewritten in place must not be answered from the old weights' cache."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    before = hf(folder).cache_extra
    assert hf(folder).cache_extra == before  # same files, same key
    weights = next(folder.glob("*.safetensors"))
    st = weights.stat()  # "retrained": the weights file is written again later
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert hf(folder).cache_extra != before
