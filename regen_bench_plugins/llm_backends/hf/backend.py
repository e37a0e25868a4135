""":class:`HFBackend`: option checks, model loading, batching and generation of the ``hf``
backend (the package docstring says what it does and why)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regen_bench.finetune_manifest import NOT_WEIGHTS
from regen_bench.llm import BackendError, LLMRequest, LLMResponse
from regen_bench.weights import WeightsError, pin
from regen_bench_plugins.llm_backends.hf.constrained import AnswerLogits, SchemaEnforcers
from regen_bench_plugins.llm_backends.local_models import (
    ALIASES,
    SOURCE_FILE,
    folder_fingerprint,
    is_local_model_ref,
    resolve_local_model,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICES = ("auto", "cpu", "cuda")


def render_prompt(
    tokenizer: PreTrainedTokenizerBase, system: str, prompt: str, use_chat_template: bool
) -> str:
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


def _check_options(
    *,
    device: str,
    dtype: str,
    batch_size: int,
    max_new_tokens: int | None,
    num_threads: int | None,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    no_copy_ngram_size: int,
    schema_in_prompt: bool,
) -> None:
    """Raise ValueError naming the first option out of its range (values may come as text)."""
    if dtype not in _DTYPES:
        raise ValueError(f"hf backend: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if device not in _DEVICES and not str(device).startswith("cuda:"):
        raise ValueError(f"hf backend: device must be auto, cpu, cuda or cuda:N, got {device!r}")
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
            f"hf backend: repetition_penalty must be a number > 0 (1.0 = off), got {penalty!r}"
        )
    for name, value in (
        ("no_repeat_ngram_size", no_repeat_ngram_size),
        ("no_copy_ngram_size", no_copy_ngram_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"hf backend: {name} must be an integer >= 0 (0 = off), got {value!r}")
    if num_threads is not None and int(num_threads) < 1:
        raise ValueError(f"hf backend: num_threads must be >= 1, got {num_threads}")
    if not isinstance(schema_in_prompt, bool):
        raise ValueError(
            f"hf backend: schema_in_prompt must be true or false, got {schema_in_prompt!r}"
        )


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
    ``no_copy_ngram_size`` (0 = off; no run of this many tokens of prompt + answer appears
    twice), ``schema_in_prompt`` (append the JSON schema to the prompt; default True. Under
    constrained decoding the schema is enforced anyway, and a small model reads fewer tokens
    without it). Small models loop ("The customer likes pens. The customer likes pens. ...");
    the repetition options stop that (see docs/llm-backends.md for measured settings).
    """

    name = "hf"
    price_per_mtok: tuple[float, float] | None = None

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

        _check_options(
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            num_threads=num_threads,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            no_copy_ngram_size=no_copy_ngram_size,
            schema_in_prompt=schema_in_prompt,
        )
        if num_threads is not None:
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
        self.repetition_penalty = float(repetition_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)
        self.no_copy_ngram_size = int(no_copy_ngram_size)
        self.schema_in_prompt = bool(schema_in_prompt)
        self.cache_extra = self._decoding_key()

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
        try:
            tok = AutoTokenizer.from_pretrained(source)
            net = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
        except OSError as exc:  # not on disk, not in the hub cache offline, no network
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"hf backend option 'model': cannot load {model!r}: {first}") from None
        tok.padding_side = "left"  # generation continues from the right end of every row
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
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
        self._enforcers = SchemaEnforcers(tok, self._eos_ids)
        self.load_s = time.perf_counter() - start

    @staticmethod
    def check_weights(options: Mapping[str, Any]) -> None:
        """Before a run trains (its preflight): a hub id given as ``model`` can be pinned, i.e.
        is in the hub cache, or the hub can be asked. Local models are pinned once loaded."""
        model = str(options.get("model", "smollm2"))
        if not is_local_model_ref(model):
            try:
                pin(model)
            except WeightsError as exc:
                raise WeightsError(f"hf backend option 'model': {exc}") from None

    def weights(self) -> dict[str, str]:
        """``model`` as loaded: an alias's or a ``.gguf``'s converted folder, a folder (each by
        its name and its files' contents), or a hub id at its commit."""
        local = Path(self.source).exists()
        try:
            if local:
                # A fine-tuned folder's manifest and log hold dates and timings, not weights.
                ignore = (SOURCE_FILE, *NOT_WEIGHTS)
                return {"model": pin(self.model, self.source, ignore=ignore)}
            return {"model": pin(self.source)}
        except WeightsError as exc:
            raise WeightsError(f"hf backend option 'model': {exc}") from None

    def _decoding_key(self) -> str:
        """The cache-key part for numeric precision and decoding options: answers depend on
        them. Options at their defaults are left out, which keeps the older cache keys."""
        extra = [f"dtype={self.dtype}"]
        if self.repetition_penalty != 1.0:
            extra.append(f"repetition_penalty={self.repetition_penalty:g}")
        if self.no_repeat_ngram_size:
            extra.append(f"no_repeat_ngram_size={self.no_repeat_ngram_size}")
        if self.no_copy_ngram_size:
            extra.append(f"no_copy_ngram_size={self.no_copy_ngram_size}")
        if not self.schema_in_prompt:
            extra.append("schema_in_prompt=false")
        return ";".join(extra)

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

    def _answer_logits(self, reqs: Sequence[LLMRequest], prompt_len: int) -> AnswerLogits | None:
        """The processor for repetition options and each row's ``json_schema``; None if idle."""
        enforcers = self._enforcers(reqs)
        idle = self.repetition_penalty == 1.0 and not (
            self.no_repeat_ngram_size or self.no_copy_ngram_size
        )
        if idle and all(e is None for e in enforcers):
            return None
        return AnswerLogits(
            enforcers,
            prompt_len,
            self.repetition_penalty,
            self.no_repeat_ngram_size,
            self.no_copy_ngram_size,
        )

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
        return [
            self._response(req, ids, int(n_prompt), latency)
            for req, ids, n_prompt in zip(reqs, new, prompt_lens, strict=True)
        ]

    def _response(
        self, req: LLMRequest, ids: list[int], prompt_tokens: int, latency_s: float
    ) -> LLMResponse:
        """The answer of one row from its new token ids (up to the first end token)."""
        cut = next((k for k, t in enumerate(ids) if t in self._eos_ids), len(ids))
        text = str(self.tokenizer.decode(ids[:cut], skip_special_tokens=True))
        for stop in req.stop:  # API semantics: the answer ends before the stop string
            text = text.split(stop, 1)[0]
        return LLMResponse(
            text=text.strip(),
            prompt_tokens=prompt_tokens,
            completion_tokens=min(cut + 1, len(ids)),  # the EOS token counts as output
            latency_s=latency_s,
            model=self.model,
        )


__all__ = ["HFBackend", "render_prompt"]
