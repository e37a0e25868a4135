"""``hf`` LLM backend: a local transformers causal LM, batched, greedy by default.

``model`` is a hub id (on a machine that can download), a local checkpoint folder, a ``.gguf``
file, or an offline alias (``smollm2``, ``gemma3-270m``; see the sibling
module ``local_models``). Prompts go through the tokenizer's chat template when
it has one. Batches are left-padded so every row continues from its last real token; greedy
answers do not depend on the batch they were in. Sampled requests (``temperature > 0``) run one
at a time under their own seed so they are reproducible too. ``timeout_s`` is not applied: a
local generation is bounded by ``max_tokens`` instead.

Requests with a ``json_schema`` are decoded under the schema with ``lm-format-enforcer`` (in the
``local-llm`` extra): at every step only the tokens that keep the answer a valid prefix of a JSON
value following the schema may be chosen, so even a 135M model answers parseable JSON. Without
the library the schema is only described in the prompt (one warning says so).

Small models loop and copy their prompt's few-shot examples; ``repetition_penalty``,
``no_repeat_ngram_size`` (both on the answer only) and ``no_copy_ngram_size`` (prompt runs) are
the counter-measures, applied in the same logits processor as the schema masks (see
:class:`_AnswerLogits`). All are off by default, which keeps earlier answers and cache keys.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from regen_bench import Register, hookimpl
from regen_bench.llm import BackendError, LLMRequest, LLMResponse

log = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICES = ("auto", "cpu", "cuda")
#: Integer ranges up to this many values become an ``enum`` for the enforcer (see _for_enforcer).
_MAX_ENUM_RANGE = 100
_warned_no_enforcer = False
#: Characters no token may bring into a constrained answer (see _build_enforcer_data).
_BAD_IN_JSON = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\ufffd]")


def _for_enforcer(schema: Any) -> Any:
    """``schema`` with small bounded integer ranges written as an ``enum``.

    lm-format-enforcer checks the type of a number but not ``minimum``/``maximum``; a rater's
    ``{"type": "integer", "minimum": 1, "maximum": 7}`` would still let a model write ``42``.
    An equivalent ``enum`` (which it does enforce) closes that gap. Exclusive bounds and
    ``multipleOf`` are honoured too; anything else is passed through untouched.
    """
    if isinstance(schema, list):
        return [_for_enforcer(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: _for_enforcer(v) for k, v in schema.items()}
    if out.get("type") != "integer" or "enum" in out:
        return out
    lo = out.get("minimum", out.get("exclusiveMinimum"))
    hi = out.get("maximum", out.get("exclusiveMaximum"))
    step = out.get("multipleOf", 1)
    numbers = [b for b in (lo, hi, step) if isinstance(b, (int, float)) and not isinstance(b, bool)]
    if len(numbers) < 3 or not isinstance(step, int) or step < 1:
        return out  # unbounded, draft-4 boolean exclusive bounds, or a fractional multipleOf
    assert lo is not None and hi is not None  # (for mypy: checked just above)
    first = math.ceil(lo) + (1 if "minimum" not in out and lo == math.ceil(lo) else 0)
    last = math.floor(hi) - (1 if "maximum" not in out and hi == math.floor(hi) else 0)
    if 0 <= last - first < _MAX_ENUM_RANGE:
        values = [v for v in range(first, last + 1) if v % step == 0]
        if values:
            out["enum"] = values
    return out


class _AnswerLogits:
    """A logits processor for a batch: repetition controls, then each row's JSON schema mask.

    Repetition controls look at the answer only (the tokens after ``prompt_len``, the padded
    prompt width, the same for every row of a left-padded batch): transformers' own
    ``repetition_penalty`` and ``no_repeat_ngram_size`` count the prompt too, so they would push
    a model away from the item names and the JSON keys it has to repeat. The penalty and the
    n-gram ban are the library's processors applied to that slice.

    Schema masks: one ``TokenEnforcer`` per row (``None`` = unconstrained row); each sees its
    own full input ids, left padding and prompt included, and the library takes the first
    sequence it is shown as the prompt, so rows of different prompts and schemas in one batch
    do not mix. Written here because lm-format-enforcer's transformers integration (0.11.3)
    does not import under transformers 5 (it imports the removed
    ``transformers.tokenization_utils``); the grammar and the token walk stay the library's.
    A step where the n-gram ban would leave a row no token the schema allows keeps the schema's
    choice (the ban is lifted for that row and step): the JSON must be finished.
    """

    def __init__(
        self,
        enforcers: Sequence[Any],
        prompt_len: int,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        no_copy_ngram_size: int = 0,
    ):
        self.enforcers = list(enforcers)
        self.prompt_len = prompt_len
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.no_copy_ngram_size = no_copy_ngram_size

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch
        from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

        answer = input_ids[:, self.prompt_len :]
        if self.repetition_penalty != 1.0 and answer.shape[1] > 0:
            scores = RepetitionPenaltyLogitsProcessor(self.repetition_penalty)(answer, scores)
        if any(e is not None for e in self.enforcers):
            allowed = torch.zeros_like(scores, dtype=torch.bool)
            for row, enforcer in enumerate(self.enforcers):
                if enforcer is None:
                    allowed[row] = True
                    continue
                tokens = enforcer.get_allowed_tokens(input_ids[row].tolist()).allowed_tokens
                ids = torch.tensor(tokens, dtype=torch.long, device=scores.device)
                allowed[row, ids[ids < scores.shape[-1]]] = True
            scores = scores.masked_fill(~allowed, -math.inf)
        # (ids, n): the answer alone (no repeats), then prompt + answer (no copies either).
        for ids, n in ((answer, self.no_repeat_ngram_size), (input_ids, self.no_copy_ngram_size)):
            if n > 0 and answer.shape[1] >= 1:
                banned = NoRepeatNGramLogitsProcessor(n)(ids, scores.clone())
                keep = torch.isfinite(banned).any(dim=1, keepdim=True)
                scores = torch.where(keep, banned, scores)
        return scores


def render_prompt(tokenizer: Any, system: str, prompt: str, use_chat_template: bool) -> str:
    """The text a causal LM is fed for a (system, user) turn: the tokenizer's chat template with
    a generation prompt, or plain text. Fine-tuning uses it too, so training and inference see
    the same text."""
    if not use_chat_template:
        return f"{system}\n\n{prompt}\n" if system else f"{prompt}\n"
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # some templates refuse a system turn: fold it into the user turn
        merged = f"{system}\n\n{prompt}" if system else prompt
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
        )
    return str(text)


class HFBackend:
    """Local generation with ``transformers``.

    Options: ``model`` (default ``smollm2``), ``device`` (auto/cpu/cuda or ``cuda:N``),
    ``dtype`` (auto = float32 on CPU, bfloat16 on GPU; float32/bfloat16/float16),
    ``batch_size`` (rows per ``generate`` call), ``max_new_tokens`` (a cap over each request's
    ``max_tokens``), ``chat_template`` (None = use it when the tokenizer has one),
    ``cache_dir`` (where converted GGUF checkpoints are kept), ``num_threads`` (CPU threads of
    torch, process-wide; 1 is several times faster on a machine other jobs keep busy, where
    torch's spinning worker threads fight over the cores), ``repetition_penalty`` (1.0 = off;
    above 1 lowers the score of tokens already in the answer, the prompt not counted),
    ``no_repeat_ngram_size`` (0 = off; no run of this many tokens appears twice in an answer),
    ``schema_in_prompt`` (append the JSON schema to the prompt; default True. Under constrained
    decoding the schema is enforced anyway, and a small model reads fewer tokens without it).
    Small models loop ("The customer likes pens. The customer likes pens. ..."); the two
    repetition options stop that (see docs/llm-backends.md for measured settings).
    """

    name = "hf"
    price_per_mtok = None

    def __init__(
        self,
        model: str = "smollm2",
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        chat_template: bool | None = None,
        cache_dir: str | None = None,
        num_threads: int | None = None,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        no_copy_ngram_size: int = 0,
        schema_in_prompt: bool = True,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from regen_bench_plugins.llm_backends.local_models import (
            ALIASES,
            folder_fingerprint,
            is_local_model_ref,
            resolve_local_model,
        )

        if dtype not in _DTYPES:
            raise ValueError(
                f"hf backend: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}"
            )
        if device not in _DEVICES and not str(device).startswith("cuda:"):
            raise ValueError(
                f"hf backend: device must be auto, cpu, cuda or cuda:N, got {device!r}"
            )
        if int(batch_size) < 1:
            raise ValueError(f"hf backend: batch_size must be >= 1, got {batch_size}")
        if max_new_tokens is not None and int(max_new_tokens) < 1:
            raise ValueError(f"hf backend: max_new_tokens must be >= 1, got {max_new_tokens}")
        penalty = repetition_penalty
        if (
            isinstance(penalty, bool)
            or not isinstance(penalty, (int, float))
            or not (0 < penalty < math.inf)
        ):
            raise ValueError(
                f"hf backend: repetition_penalty must be a number > 0 (1.0 = off), "
                f"got {repetition_penalty!r}"
            )
        for name, value in (
            ("no_repeat_ngram_size", no_repeat_ngram_size),
            ("no_copy_ngram_size", no_copy_ngram_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"hf backend: {name} must be an integer >= 0 (0 = off), got {value!r}"
                )
        if num_threads is not None:
            if int(num_threads) < 1:
                raise ValueError(f"hf backend: num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(int(num_threads))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "float32"
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.batch_size = int(batch_size)
        self.max_new_tokens = None if max_new_tokens is None else int(max_new_tokens)
        if not isinstance(schema_in_prompt, bool):
            raise ValueError(
                f"hf backend: schema_in_prompt must be true or false, got {schema_in_prompt!r}"
            )
        self.repetition_penalty = float(penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        self.no_copy_ngram_size = int(no_copy_ngram_size)
        self.schema_in_prompt = bool(schema_in_prompt)
        # Answers depend on the numeric precision and the decoding options; keep caches of
        # different settings apart (options at their defaults keep the older cache keys).
        extra = [f"dtype={dtype}"]
        if penalty != 1.0:
            extra.append(f"repetition_penalty={float(penalty):g}")
        if self.no_repeat_ngram_size:
            extra.append(f"no_repeat_ngram_size={self.no_repeat_ngram_size}")
        if self.no_copy_ngram_size:
            extra.append(f"no_copy_ngram_size={self.no_copy_ngram_size}")
        if not self.schema_in_prompt:
            extra.append("schema_in_prompt=false")
        self.cache_extra = ";".join(extra)

        start = time.perf_counter()
        source = (
            str(resolve_local_model(self.model, cache_dir=cache_dir))
            if is_local_model_ref(self.model)
            else self.model
        )
        self.source = source
        if self.model not in ALIASES and Path(source).is_dir():
            # A user's own folder may be retrained in place: key cached answers to its files.
            self.cache_extra += f";weights={folder_fingerprint(source)}"
        self._torch = torch
        tok = AutoTokenizer.from_pretrained(source)
        tok.padding_side = "left"  # generation continues from the right end of every row
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        net = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
        net.to(device)  # type: ignore[arg-type]  # (transformers wraps .to; stubs are off)
        self.net = net.eval()
        self.use_chat_template = bool(tok.chat_template) if chat_template is None else chat_template
        if self.use_chat_template and not tok.chat_template:
            raise ValueError(f"hf backend: the tokenizer of {self.model} has no chat template")
        eos = net.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        self._eos_ids = sorted(eos_ids)
        self._enforcer_data: Any = None  # lm-format-enforcer's view of the vocabulary, built once
        self.load_s = time.perf_counter() - start

    # -- prompts ---------------------------------------------------------------------------
    def render(self, request: LLMRequest) -> str:
        """The exact text fed to the model for ``request``."""
        user = request.prompt_with_schema() if self.schema_in_prompt else request.prompt
        return render_prompt(self.tokenizer, request.system, user, self.use_chat_template)

    # -- generation ------------------------------------------------------------------------
    def complete(self, request: LLMRequest, *, timeout_s: float | None = None) -> LLMResponse:
        return self.complete_batch([request], timeout_s=timeout_s)[0]

    def complete_batch(
        self, requests: Sequence[LLMRequest], *, timeout_s: float | None = None
    ) -> list[LLMResponse]:
        """Greedy requests with equal settings share ``generate`` calls; sampled ones run alone."""
        out: list[LLMResponse | None] = [None] * len(requests)
        greedy: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i, req in enumerate(requests):
            if req.temperature == 0:
                greedy.setdefault((self._limit(req), req.stop), []).append(i)
            else:
                out[i] = self._generate([req])[0]
        for positions in greedy.values():
            for s in range(0, len(positions), self.batch_size):
                rows = positions[s : s + self.batch_size]
                for i, resp in zip(rows, self._generate([requests[i] for i in rows]), strict=True):
                    out[i] = resp
        return [r for r in out if r is not None]

    def _answer_logits(self, reqs: Sequence[LLMRequest], prompt_len: int) -> _AnswerLogits | None:
        """The processor for repetition options and each row's ``json_schema``; None if idle."""
        enforcers = self._enforcers(reqs)
        idle = self.repetition_penalty == 1.0 and not (
            self.no_repeat_ngram_size or self.no_copy_ngram_size
        )
        if idle and all(e is None for e in enforcers):
            return None
        return _AnswerLogits(
            enforcers,
            prompt_len,
            self.repetition_penalty,
            self.no_repeat_ngram_size,
            self.no_copy_ngram_size,
        )

    def _enforcers(self, reqs: Sequence[LLMRequest]) -> list[Any]:
        """One lm-format-enforcer ``TokenEnforcer`` per row with a ``json_schema``, else None."""
        global _warned_no_enforcer
        if all(r.json_schema is None for r in reqs):
            return [None] * len(reqs)
        try:
            from lmformatenforcer import JsonSchemaParser, TokenEnforcer
        except ImportError:
            if not _warned_no_enforcer:
                _warned_no_enforcer = True
                log.warning(
                    "hf backend: lm-format-enforcer is not installed, so json_schema answers are "
                    "not constrained (small models then often answer prose): "
                    "pip install 'regen-bench[local-llm]'"
                )
            return [None] * len(reqs)
        if self._enforcer_data is None:
            self._enforcer_data = self._build_enforcer_data()
        return [
            None
            if r.json_schema is None
            else TokenEnforcer(self._enforcer_data, JsonSchemaParser(_for_enforcer(r.json_schema)))
            for r in reqs
        ]

    def _build_enforcer_data(self) -> Any:
        """lm-format-enforcer's tokenizer data, as its transformers integration builds it.

        Each regular token is decoded after a ``"0"`` token: a longer text than the token alone
        means the token starts a word (sentencepiece's leading space). Batched decoding keeps
        this to about a second for a 50k vocabulary. Two kinds of token are left out, so the
        model can never pick them under a schema: control characters other than newlines (the
        library lets them into strings, where JSON forbids them) and byte pieces of a character
        (they decode to U+FFFD alone; the library would count them as characters, and a model
        can leave the character unfinished). Non-ASCII text is then written with whole-character
        tokens only.
        """
        from lmformatenforcer import TokenEnforcerTokenizerData

        tok = self.tokenizer
        vocab_size = len(tok)
        zero = tok.encode("0", add_special_tokens=False)[-1]
        special = set(tok.all_special_ids)
        ids = [i for i in range(vocab_size) if i not in special]
        alone = tok.batch_decode([[i] for i in ids])
        after_zero = [t[1:] for t in tok.batch_decode([[zero, i] for i in ids])]
        regular = [
            (i, text, len(text) > len(one))
            for i, text, one in zip(ids, after_zero, alone, strict=True)
            if text and not _BAD_IN_JSON.search(text)
        ]

        def decode(tokens: list[int]) -> str:
            return str(tok.decode(tokens)).rstrip("\ufffd")  # drop half a multi-byte character

        return TokenEnforcerTokenizerData(regular, decode, self._eos_ids, False, vocab_size)

    def _limit(self, req: LLMRequest) -> int:
        return min(req.max_tokens, self.max_new_tokens or req.max_tokens)

    def _generate(self, reqs: Sequence[LLMRequest]) -> list[LLMResponse]:
        torch = self._torch
        from transformers import GenerationConfig, LogitsProcessorList

        first = reqs[0]
        sample = first.temperature > 0
        settings: dict[str, Any] = {
            "max_new_tokens": self._limit(first),
            "do_sample": sample,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids or None,
        }
        if sample:
            settings["temperature"] = first.temperature
            settings["top_p"] = 1.0 if first.top_p is None else first.top_p
            settings["top_k"] = 0  # plain temperature/top-p sampling, as the API backends do
        if first.stop:
            settings["stop_strings"] = list(first.stop)
        # A fresh config: the checkpoint's defaults (top_k, repetition penalty...) do not leak in.
        gen_config = GenerationConfig(**settings)
        texts = [self.render(r) for r in reqs]
        enc = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=not self.use_chat_template,  # templates write their own BOS
        ).to(self.device)
        start = time.perf_counter()
        constraint = self._answer_logits(reqs, int(enc["input_ids"].shape[1]))
        extra: dict[str, Any] = {}
        if constraint is not None:
            extra["logits_processor"] = LogitsProcessorList([constraint])
        try:
            with torch.inference_mode(), torch.random.fork_rng(devices=[]):
                if sample:
                    seed = first.seed if first.seed is not None else int(time.time_ns() % 2**31)
                    torch.manual_seed(seed)
                generated = self.net.generate(
                    **enc, generation_config=gen_config, tokenizer=self.tokenizer, **extra
                )
        except torch.OutOfMemoryError as exc:
            raise BackendError(f"out of memory generating {len(reqs)} rows: {exc}") from exc
        latency = time.perf_counter() - start
        new = generated[:, enc["input_ids"].shape[1] :].tolist()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        answers = []
        for req, ids, n_prompt in zip(reqs, new, prompt_lens, strict=True):
            cut = next((k for k, t in enumerate(ids) if t in self._eos_ids), len(ids))
            text = str(self.tokenizer.decode(ids[:cut], skip_special_tokens=True))
            for stop in req.stop:  # API semantics: the answer ends before the stop string
                text = text.split(stop, 1)[0]
            answers.append(
                LLMResponse(
                    text=text.strip(),
                    prompt_tokens=int(n_prompt),
                    completion_tokens=min(cut + 1, len(ids)),  # the EOS token counts as output
                    latency_s=latency,
                    model=self.model,
                )
            )
        return answers


@hookimpl
def register_llm_backends(register: Register) -> None:
    register(
        "hf",
        HFBackend,
        summary="local transformers causal LM (hub id, folder, .gguf, or smollm2 / gemma3-270m)",
    )
