"""``hf`` LLM backend: a local transformers causal LM, batched, greedy by default.

``model`` is a hub id (on a machine that can download), a local checkpoint folder, a ``.gguf``
file, or an offline alias (``smollm2``, ``gemma3-270m``; see
:mod:`regen_bench_plugins.local_models`). Prompts go through the tokenizer's chat template when
it has one. Batches are left-padded so every row continues from its last real token; greedy
answers do not depend on the batch they were in. Sampled requests (``temperature > 0``) run one
at a time under their own seed so they are reproducible too. ``timeout_s`` is not applied: a
local generation is bounded by ``max_tokens`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from regen_bench import hookimpl
from regen_bench.llm import BackendError, LLMRequest, LLMResponse

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICES = ("auto", "cpu", "cuda")


class HFBackend:
    """Local generation with ``transformers``.

    Options: ``model`` (default ``smollm2``), ``device`` (auto/cpu/cuda or ``cuda:N``),
    ``dtype`` (auto = float32 on CPU, bfloat16 on GPU; float32/bfloat16/float16),
    ``batch_size`` (rows per ``generate`` call), ``max_new_tokens`` (a cap over each request's
    ``max_tokens``), ``chat_template`` (None = use it when the tokenizer has one),
    ``cache_dir`` (where converted GGUF checkpoints are kept), ``num_threads`` (CPU threads of
    torch, process-wide; 1 is several times faster on a machine other jobs keep busy, where
    torch's spinning worker threads fight over the cores).
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
    ):
        import torch
        from regen_bench_plugins.local_models import is_local_model_ref, resolve_local_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

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
        # Answers depend on the numeric precision; keep caches of different dtypes apart.
        self.cache_extra = f"dtype={dtype}"

        start = time.perf_counter()
        source = (
            str(resolve_local_model(self.model, cache_dir=cache_dir))
            if is_local_model_ref(self.model)
            else self.model
        )
        self.source = source
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
        self.load_s = time.perf_counter() - start

    # -- prompts ---------------------------------------------------------------------------
    def render(self, request: LLMRequest) -> str:
        """The exact text fed to the model for ``request``."""
        user = request.prompt_with_schema()
        if not self.use_chat_template:
            return f"{request.system}\n\n{user}\n" if request.system else f"{user}\n"
        messages = [{"role": "user", "content": user}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # some templates refuse a system turn: fold it into the user turn
            merged = f"{request.system}\n\n{user}" if request.system else user
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": merged}], tokenize=False, add_generation_prompt=True
            )
        return str(text)

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

    def _limit(self, req: LLMRequest) -> int:
        return min(req.max_tokens, self.max_new_tokens or req.max_tokens)

    def _generate(self, reqs: Sequence[LLMRequest]) -> list[LLMResponse]:
        torch = self._torch
        from transformers import GenerationConfig

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
        try:
            with torch.inference_mode(), torch.random.fork_rng(devices=[]):
                if sample:
                    seed = first.seed if first.seed is not None else int(time.time_ns() % 2**31)
                    torch.manual_seed(seed)
                generated = self.net.generate(
                    **enc, generation_config=gen_config, tokenizer=self.tokenizer
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
def register_llm_backends(register: Any) -> None:
    register(
        "hf",
        HFBackend,
        summary="local transformers causal LM (hub id, folder, .gguf, or smollm2 / gemma3-270m)",
    )
