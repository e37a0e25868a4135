"""Sentence embedders: the small protocol every embedder plugin satisfies, and its lookup.

Embedders are plugins (hook ``register_embedders``); the core never names one. An embedder
has a ``name`` (its registry name, e.g. ``minilm``), a ``model`` (what actually produced the
vectors, recorded next to every number it helps compute) and ``embed(texts, batch_size=...)``
returning an ``(n, d)`` float32 array of L2-normalised rows, so a dot product is a cosine.

Empty or whitespace-only texts embed to the zero vector in every embedder (API embedders
reject empty input, and a failed generation must not earn similarity by chance), so any
cosine involving one is 0. :func:`embed_in_batches` implements this once for plugin authors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from regen_bench.plugins import PluginError, get_plugin_manager

DEFAULT_EMBEDDER = "minilm"


class MissingAPIKeyError(RuntimeError):
    """An API embedder was asked for but its key is not in the environment."""


@runtime_checkable
class Embedder(Protocol):
    """What :func:`get_embedder` returns: ``name``, ``model`` and ``embed``."""

    name: str
    model: str

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """``(len(texts), d)`` float32, rows L2-normalised; empty texts give zero rows."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; all-zero rows stay zero (never NaN)."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)):
        raise ValueError("embeddings contain NaN or infinite values")
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32)


def is_blank(text: str) -> bool:
    """True for the texts every embedder maps to the zero vector."""
    return not text.strip()


def embed_in_batches(
    texts: Sequence[str],
    encode: Callable[[list[str]], Any],
    *,
    batch_size: int,
    dim: int | None = None,
    progress: bool = False,
    desc: str = "embedding",
) -> np.ndarray:
    """Run ``encode`` on batches of the non-blank texts (by length) and assemble the result.

    ``encode(batch)`` returns one vector per text (any array-like of shape ``(len(batch), d)``).
    Blank texts get zero rows without reaching ``encode``. When every text is blank and ``dim``
    is unknown the result has shape ``(n, 0)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, expected str")
    # Shortest first (stable): batches of similar lengths waste little on padding.
    keep = sorted((i for i, t in enumerate(texts) if not is_blank(t)), key=lambda i: len(texts[i]))
    parts: list[np.ndarray] = []
    starts = range(0, len(keep), batch_size)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch")
    for s in starts:
        batch = [texts[i] for i in keep[s : s + batch_size]]
        out = np.asarray(encode(batch), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(batch):
            raise ValueError(
                f"embedder returned shape {out.shape} for a batch of {len(batch)} texts"
            )
        parts.append(out)
    if parts:
        dim = parts[0].shape[1]
        if any(p.shape[1] != dim for p in parts):
            raise ValueError("embedder returned vectors of different dimensions")
    result = np.zeros((len(texts), dim or 0), dtype=np.float32)
    if parts:
        result[keep] = l2_normalize(np.concatenate(parts))
    return result


def _accepts(factory: Callable[..., Any], option: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: do not guess
        return False
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


def embedder_names() -> list[str]:
    """Names of the registered embedders."""
    return get_plugin_manager().names("embedder")


def get_embedder(name: str = DEFAULT_EMBEDDER, **config: Any) -> Embedder:
    """Build the embedder registered as ``name`` with ``config`` (its factory's options).

    Unknown names raise :class:`regen_bench.plugins.UnknownNameError` with the choices. A
    ``progress`` option is dropped for factories that do not take it.
    """
    entry = get_plugin_manager().get("embedder", name)
    if "progress" in config and not _accepts(entry.factory, "progress"):
        config.pop("progress")
    embedder = entry.factory(**config)
    if not isinstance(embedder, Embedder):
        raise PluginError(
            f"embedder '{name}' (plugin '{entry.plugin}') does not provide name, model and embed()"
        )
    return embedder


__all__ = [
    "DEFAULT_EMBEDDER",
    "Embedder",
    "MissingAPIKeyError",
    "embed_in_batches",
    "embedder_names",
    "get_embedder",
    "is_blank",
    "l2_normalize",
]
