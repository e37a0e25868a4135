"""The options of ``flare`` (no torch import: registered as metadata for help texts).

Where each default comes from: docs/models.md, section ``flare``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from regen_bench.options import Choice, SearchSpace, Uniform, redefault
from regen_bench_plugins.bert4rec.options import BERT4RecOptions


class FLAREOptions(BERT4RecOptions):
    """BERT4Rec's options (larger batches, higher rate) plus the text encoder and resampler."""

    lr: float = redefault(BERT4RecOptions, "lr", 2e-3)
    batch_size: int = redefault(BERT4RecOptions, "batch_size", 256)
    #: FLARE's item vectors add unit-scale text vectors to the ID table: ``unit`` keeps the
    #: two on one scale (``bert`` init is BERT4Rec's default, not FLARE's).
    init: Literal["unit", "bert"] = redefault(BERT4RecOptions, "init", "unit")
    #: FLARE's measured default (``bert4rec`` waits longer on its plateau).
    patience: int = redefault(BERT4RecOptions, "patience", 10)
    latents: int = Field(default=4, ge=1, description="learned queries of the Perceiver resampler")
    resampler_layers: int = Field(default=1, ge=1, description="cross-attention layers")
    max_tokens: int = Field(default=48, ge=2, description="encoder tokens read per item text")
    text_slots: int = Field(
        default=0,
        ge=0,
        description="0: the resampler reads every token of an item's text; K: it reads K "
        "averages of consecutive token spans, encoded once into a float16 file memory-mapped "
        "from text_cache (for catalogs whose token states do not fit in memory: Clothing's "
        "377k items take 28 GB with every token, 1.2 GB with K=4); training then builds the "
        "item vectors in chunks recomputed in the backward pass, so memory stays flat",
    )
    critique_tokens: int = Field(default=24, ge=2, description="encoder tokens read per critique")
    align_weight: float = Field(
        default=0.1, ge=0, description="weight of the ID/text InfoNCE alignment loss"
    )
    align_temp: float = Field(default=0.1, gt=0, description="temperature of that InfoNCE")
    encoder: str = Field(
        default="all-MiniLM-L6-v2",
        description="frozen sentence encoder: hub id, local folder or the offline MiniLM",
    )
    text_cache: str = Field(
        default="", description="folder caching the encoder's token states (empty: memory only)"
    )

    #: BERT4Rec's ranges (shorter sequences: the text encoder is the cost) plus the alignment.
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        **BERT4RecOptions.SEARCH_SPACE,
        "max_len": Choice(20, 50, 100),
        "align_weight": Uniform(0.0, 0.5),
    }
