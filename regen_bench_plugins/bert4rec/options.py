"""The options of ``bert4rec`` (no torch import: registered as metadata for help texts).

Where each default comes from: docs/models.md, section ``bert4rec``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from regen_bench.options import Choice, SearchSpace, Uniform, redefault
from regen_bench_plugins.torchrec.options import TorchRecOptions


class BERT4RecOptions(TorchRecOptions):
    """BERT4Rec's options: the shared ones with its defaults, plus the Cloze masking rates."""

    heads: int = redefault(TorchRecOptions, "heads", 2)
    max_len: int = Field(
        default=50, ge=2, description="newest items of a sequence read (at inference: + [MASK])"
    )
    mask_prob: float = Field(
        default=0.2, gt=0, le=1, description="share of a training sequence's items masked"
    )
    last_prob: float = Field(
        default=0.1, ge=0, le=1, description="share of sequences that mask only their newest item"
    )
    last_cut: Literal["end", "random"] = Field(
        default="end",
        description="where a last-item-only sample ends: the sequence's newest purchase (end) "
        "or a random one, the rest dropped (random: every position in turn, as RecBole's "
        "every-prefix training)",
    )
    init: Literal["unit", "bert"] = Field(
        default="bert",
        description="weight initialisation: unit (N(0, 1) tables, Xavier matrices, logits / "
        "sqrt(hidden)) or bert (truncated N(0, 0.02) everywhere, as BERT and RecBole)",
    )
    epochs: int = redefault(TorchRecOptions, "epochs", 300)
    #: Masked-item training first sits ten or more epochs on a popularity plateau, and on long
    #: sequences its noisy validation still gains after 30 flat epochs: patience 50 (see
    #: docs/models.md).
    patience: int = redefault(TorchRecOptions, "patience", 50)

    #: The shared ranges plus the Cloze masking rates and the initialisation (hidden choices are
    #: divisible by heads=2).
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        **TorchRecOptions.SEARCH_SPACE,
        "mask_prob": Uniform(0.1, 0.6),
        "last_prob": Uniform(0.0, 0.3),
        "init": Choice("unit", "bert"),
    }
