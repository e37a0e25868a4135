"""The options every torch sequence recommender has (models add theirs and override defaults)."""

from __future__ import annotations

from typing import ClassVar

import pydantic
from pydantic import Field

from regen_bench.options import (
    Choice,
    IntRange,
    LogUniform,
    ModelOptions,
    SearchSpace,
    Uniform,
)


class TorchRecOptions(ModelOptions):
    """Network size, optimisation, early stopping and device of a torch recommender."""

    hidden: int = Field(default=64, ge=1, description="embedding and transformer width")
    blocks: int = Field(default=2, ge=1, description="transformer blocks")
    heads: int = Field(default=1, ge=1, description="attention heads (must divide hidden)")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout rate")
    max_len: int = Field(default=50, ge=1, description="newest items of a sequence read")
    lr: float = Field(default=1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(default=128, ge=1, description="training sequences per step")
    epochs: int = Field(default=200, ge=1, description="upper bound on training epochs")
    patience: int = Field(
        default=5, ge=0, description="epochs without a better validation NDCG@10 before stopping"
    )
    weight_decay: float = Field(default=0.0, ge=0, description="Adam L2 penalty")
    train_windows: bool = Field(
        default=True,
        description="cut training sequences longer than max_len into windows, so every "
        "position is a target once per epoch (false: only the newest max_len)",
    )
    window_overlap: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="share of a training window that the next (older) window repeats: each "
        "position of a long sequence is then a target about 1 / (1 - overlap) times per epoch, "
        "in different contexts (0: windows do not overlap)",
    )
    valid_users: int = Field(
        default=0,
        ge=0,
        description="validation users scored after each epoch: 0 all of them, N a fixed "
        "sample of N (drawn from the seed; on a large catalog each validation is a full "
        "ranking of every validation user)",
    )
    max_steps: int = Field(
        default=0,
        ge=0,
        description="stop training after this many optimiser steps in all, mid-epoch if need "
        "be (0: no limit; epochs and early stopping decide); the fit log then records the "
        "time a full epoch would take",
    )
    device: str = Field(
        default="cpu", description="torch device (cpu: reproducible; auto: CUDA when available)"
    )

    #: What ``regen-bench tune`` searches (epochs stays an upper bound: early stopping decides).
    SEARCH_SPACE: ClassVar[SearchSpace] = {
        "lr": LogUniform(1e-4, 1e-2),
        "hidden": Choice(32, 64, 128),
        "blocks": IntRange(1, 3),
        "dropout": Uniform(0.0, 0.5),
        "max_len": Choice(20, 50, 100, 200),
        "weight_decay": Choice(0.0, 1e-6, 1e-5, 1e-4),
        "batch_size": Choice(64, 128, 256),
    }

    @pydantic.model_validator(mode="after")
    def _heads_divide_hidden(self) -> TorchRecOptions:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self
