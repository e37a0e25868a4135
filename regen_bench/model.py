"""The fixed model interface every model plugin implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench.data.dataset import Catalog, UserSequence
from regen_bench.tasks import Example


class Model(abc.ABC):
    """A recommender (and optionally narrator) over a fixed catalog.

    The runner builds it as ``factory(catalog, seed=seed, **config)``, calls :meth:`fit` once
    and then :meth:`score` on batches of test examples. ``score`` must give the same row for an
    example whatever batch it is in (eval mode, fixed padding): results may not depend on the
    evaluation batch size.
    """

    #: True for models that also write narratives (conversational task); the registration's
    #: ``generates_text`` must say the same (``regen_bench.testing`` checks that they agree).
    generates_text: bool = False

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        self.catalog = catalog
        self.seed = seed
        if config:
            raise ValueError(
                f"unknown option(s) for {type(self).__name__}: {', '.join(sorted(config))}"
            )

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Train on ``train`` (early-stop on ``valid``); return a small log (epochs, best...)."""
        return {}

    @abc.abstractmethod
    def score(self, examples: Sequence[Example]) -> np.ndarray:
        """Scores over the whole catalog, shape (len(examples), len(catalog)); higher is better."""

    def generate(self, examples: Sequence[Example], narrative_type: str) -> list[str]:
        """Narrative text per example (generating models only)."""
        raise NotImplementedError(f"{type(self).__name__} does not generate text")

    def config(self) -> dict[str, Any]:
        """The hyperparameters that define this model (recorded in the result file).

        Every declared option belongs here; facts worth recording beside them (where a
        backbone was found, a prompt version) may too: the command a result records
        (``leaderboard verify``, the leaderboard page) gives only the declared options."""
        return {}

    def num_parameters(self) -> int | None:
        """Number of trainable parameters, or None when the notion does not apply."""
        return None

    def weights(self) -> dict[str, str]:
        """Option -> pin of every pretrained weight the model loaded (by hub id or from disk).

        Give each with :func:`regen_bench.weights.pin` (``pin(option value, resolved path)``):
        the run records them under ``model.<option>`` in the result and its signature, so
        runs on other weights are never compared. Models trained from scratch load none.
        """
        return {}
