"""The options of ``sasrec`` (no torch import: registered as metadata for help texts).

Where each default comes from: docs/models.md, section ``sasrec``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from regen_bench.options import redefault
from regen_bench_plugins.torchrec.options import TorchRecOptions


class SASRecOptions(TorchRecOptions):
    """SASRec's options: the shared ones with its defaults, plus the loss and history masking."""

    #: The paper's value for its sparse Amazon sets; better on MovieLens-100K and on the
    #: calibrated mini than 0.2 (docs/models.md).
    dropout: float = redefault(TorchRecOptions, "dropout", 0.5)
    lr: float = redefault(TorchRecOptions, "lr", 2e-3)
    #: Stronger dropout learns more slowly: patience 5 stopped it early.
    patience: int = redefault(TorchRecOptions, "patience", 20)
    loss: Literal["ce", "bce"] = Field(
        default="ce",
        description="ce: softmax over the catalog; bce: the paper's one sampled negative",
    )
    mask_history: bool = Field(
        default=False, description="score the items of the history -inf (also in validation)"
    )
