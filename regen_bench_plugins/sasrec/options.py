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

    dropout: float = redefault(TorchRecOptions, "dropout", 0.2)
    lr: float = redefault(TorchRecOptions, "lr", 2e-3)
    loss: Literal["ce", "bce"] = Field(
        default="ce",
        description="ce: softmax over the catalog; bce: the paper's one sampled negative",
    )
    mask_history: bool = Field(
        default=False, description="score the items of the history -inf (also in validation)"
    )
