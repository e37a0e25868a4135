"""The shared torch sequence recommender: what SASRec, BERT4Rec and FLARE have in common.

:class:`TorchRecommender` parses the model's option schema, resolves the device, builds the
network under ``torch.manual_seed(seed)``, trains with a seeded early-stopping loop (Adam;
validation NDCG@10 after every epoch, full ranking, pessimistic ties; the best epoch's weights
are restored), scores in fixed-shape batches, and saves/loads safetensors checkpoints. A model
supplies the network, the loss and the scoring:

- ``_build_net()``: the network (called once, seeded);
- ``_training_data(users)``: arrays built once before the first epoch;
- ``_batch_loss(data, rows, rng)``: the loss of one training batch (``rows`` of ``data``);
- ``_score_rows(examples, fixed)``: scores of at most ``SCORE_BATCH`` examples, under no_grad.

and, where it needs them, ``_prepare`` (work before training), ``_invalidate`` (drop what is
cached from the weights) and ``_extra_state`` / ``_load_extra_state`` (checkpoint extras).

:attr:`~TorchRecommender.epoch_callback` (None unless a caller sets it, as ``regen-bench tune``
does to prune) is called after each epoch's validation with ``(epoch, ndcg@10)``; when it
returns True, training stops there (the best epoch so far is kept, as on early stopping).

torch is imported when a model is built, not when this module is, so that plugin listing
never needs it and a missing torch is reported with the install command.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import importlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench.data.schema import Narratives
from regen_bench_plugins.torchrec.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    catalog_fingerprint,
    read_checkpoint_config,
    read_weights,
    write_checkpoint,
)
from regen_bench_plugins.torchrec.device import resolve_device
from regen_bench_plugins.torchrec.options import TorchRecOptions
from regen_bench_plugins.torchrec.scoring import batched_scores, batched_valid_ndcg
from regen_bench_plugins.torchrec.sequences import training_windows

if TYPE_CHECKING:
    import torch

TORCH_HINT = "{name} needs torch: pip install torch==2.13.0"
#: What a model's training data is (its ``_training_data`` result).
DataT = TypeVar("DataT")
_Self = TypeVar("_Self", bound="TorchRecommender[Any]")


class TorchRecommender(Model, Generic[DataT]):
    """A torch recommender over the catalog; subclasses supply network, loss and scoring."""

    #: The model's registered name (used in messages, the progress bar and checkpoints).
    NAME: ClassVar[str]
    #: The model's option schema.
    OPTIONS: ClassVar[type[TorchRecOptions]]
    #: The module holding the network (imported with torch when a model is built).
    NET_MODULE: ClassVar[str]
    #: Adam's betas (torch's default unless the model's reference code says otherwise).
    BETAS: ClassVar[tuple[float, float]] = (0.9, 0.999)
    #: Rows per forward pass when scoring; fixed so that scores do not depend on the batch.
    SCORE_BATCH: ClassVar[int] = 256
    #: Purchases a training window holds beyond ``max_len`` (SASRec's shifted targets: 1).
    WINDOW_EXTRA: ClassVar[int] = 0

    options: TorchRecOptions
    net: Any  # the model's torch.nn.Module, with the methods its subclass calls
    #: Called after each epoch's validation with (epoch, NDCG@10); True stops training.
    epoch_callback: Callable[[int, float], bool] | None = None

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: object):
        super().__init__(catalog, seed=seed)
        self.options = self.OPTIONS.parse(config, model=self.NAME)
        if len(catalog) < 1:
            raise ValueError(f"{self.NAME} needs a non-empty catalog")
        self._torch, self._net_mod = self._import_torch()
        self.device = resolve_device(self.NAME, self.options.device)
        self._torch.manual_seed(seed)
        self.net = self._build_net().to(self.device)

    def _import_torch(self) -> tuple[ModuleType, ModuleType]:
        """torch and :attr:`NET_MODULE`, or an ImportError that says how to install torch."""
        try:
            import torch

            net_mod = importlib.import_module(self.NET_MODULE)
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "torch":
                raise ImportError(TORCH_HINT.format(name=self.NAME)) from None
            raise
        return torch, net_mod

    # -- what a model supplies --------------------------------------------------------------

    @abc.abstractmethod
    def _build_net(self) -> torch.nn.Module:
        """The network, on the CPU (the caller seeds torch first and moves it to the device)."""

    @abc.abstractmethod
    def _training_data(self, users: Sequence[UserSequence]) -> DataT:
        """Training arrays of ``users`` (each of length >= 2), built once before training."""

    @abc.abstractmethod
    def _batch_loss(self, data: DataT, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """The loss of the training batch ``rows`` (indices into the users of ``data``)."""

    @abc.abstractmethod
    def _score_rows(self, examples: Sequence[Example], fixed: bool) -> torch.Tensor:
        """Scores (on the device) of at most SCORE_BATCH examples; eval mode, no grad.

        ``fixed`` (:meth:`score`) pads every forward pass to SCORE_BATCH rows x ``max_len``
        columns: BLAS picks kernels, and so rounding, by matrix shape, so only a fixed shape
        makes a row's scores bit-identical whatever batch it came in. Otherwise (per-epoch
        validation, where speed matters more) padding rows and columns may be dropped: the
        same numbers up to float rounding. Rows beyond ``len(examples)`` are ignored.
        """

    def _prepare(self, users: Sequence[UserSequence], valid: Sequence[Example]) -> None:
        """Work before the first epoch (FLARE: encode texts once)."""

    def _invalidate(self) -> None:
        """Drop anything cached from the weights (FLARE: item vectors)."""

    def _extra_state(self) -> dict[str, object]:
        """JSON-serialisable checkpoint state beyond the weights."""
        return {}

    def _load_extra_state(self, extra: dict[str, object]) -> None:
        """Restore what :meth:`_extra_state` wrote (before the weights are loaded)."""

    # -- training ---------------------------------------------------------------------------

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Train with early stopping on validation NDCG@10; restore the best epoch's weights."""
        from regen_bench.progress import Progress

        torch, opts = self._torch, self.options
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        # Items and critiques are all a sequence model reads: dropping the reviews and
        # narratives keeps a Clothing-size training set at ~1 KB a user instead of ~9 KB.
        users = [_sequence_only(u) for u in train if len(u) >= 2]
        if not users:
            return {"epochs": 0, "best_epoch": 0, "note": "no training sequence of length >= 2"}
        valid = self._valid_sample(valid)
        self._prepare(users, valid)
        prep_s = time.perf_counter() - start
        rows = (
            training_windows(
                users, opts.max_len + self.WINDOW_EXTRA, opts.max_len, opts.window_overlap
            )
            if opts.train_windows
            else users
        )
        data = self._training_data(rows)
        optim = torch.optim.Adam(
            self.net.parameters(), lr=opts.lr, betas=self.BETAS, weight_decay=opts.weight_decay
        )
        best_ndcg, best_epoch, best_state = -1.0, 0, None
        losses: list[float] = []
        ndcgs: list[float] = []
        epoch_s: list[float] = []
        stopped = 0  # the epoch after which epoch_callback stopped training (0: it did not)
        steps_per_epoch = -(-len(rows) // opts.batch_size)
        all_steps, step_s = 0, 0.0
        bar = Progress(self.NAME, opts.epochs)
        for epoch in range(1, opts.epochs + 1):
            t0 = time.perf_counter()
            self.net.train()
            self._invalidate()
            order = rng.permutation(len(rows))
            total, steps = 0.0, 0
            for lo in range(0, len(order), opts.batch_size):
                loss = self._batch_loss(data, order[lo : lo + opts.batch_size], rng)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += float(loss.detach())
                steps += 1
                all_steps += 1
                if opts.max_steps and all_steps >= opts.max_steps:
                    break
            epoch_s.append(time.perf_counter() - t0)
            step_s += epoch_s[-1]
            losses.append(round(total / steps, 5))
            ndcg = self.valid_ndcg(valid) if valid else float("nan")
            ndcgs.append(round(ndcg, 5))
            if not valid or ndcg > best_ndcg:
                best_ndcg, best_epoch = ndcg, epoch
                best_state = copy.deepcopy(self.net.state_dict())
            bar.update(
                1, {"loss": f"{losses[-1]:.4f}", "valid ndcg@10": f"{ndcg:.4f}", "best": best_epoch}
            )
            if valid and self.epoch_callback is not None and self.epoch_callback(epoch, ndcg):
                stopped = epoch
                break
            if valid and epoch - best_epoch >= opts.patience:
                break
            if opts.max_steps and all_steps >= opts.max_steps:
                break
        bar.close()
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        self._invalidate()
        return {
            "epochs": len(losses),
            "best_epoch": best_epoch,
            "best_valid_ndcg@10": round(best_ndcg, 5) if valid else None,
            "train_loss": losses,
            "valid_ndcg@10": ndcgs,
            "train_sequences": len(users),
            "train_windows": len(rows),
            "device": str(self.device),
            "prepare_s": round(prep_s, 3),
            "train_s_per_epoch": round(float(np.mean(epoch_s)), 3),
            **(
                {
                    "max_steps": opts.max_steps,
                    "steps": all_steps,
                    "steps_per_epoch": steps_per_epoch,
                    # What one whole epoch takes at the measured pace (the benchmark's figure).
                    "epoch_s_projected": round(step_s / all_steps * steps_per_epoch, 3),
                }
                if opts.max_steps
                else {}
            ),
            **({"valid_users": len(valid)} if opts.valid_users else {}),
            "fit_s": round(time.perf_counter() - start, 3),
            **({"stopped_by_callback": stopped} if stopped else {}),
        }

    def _valid_sample(self, valid: Sequence[Example]) -> Sequence[Example]:
        """The validation users of ``valid_users`` (a fixed sample from the seed, in order)."""
        n = self.options.valid_users
        if not n or n >= len(valid):
            return valid
        # Its own generator: the sample must not shift the training draws.
        keep = np.sort(np.random.default_rng([self.seed, 1]).choice(len(valid), n, replace=False))
        return [valid[int(i)] for i in keep]

    # -- scoring ----------------------------------------------------------------------------

    def _scores(self, examples: Sequence[Example], fixed: bool) -> torch.Tensor:
        with self._torch.no_grad():
            return self._score_rows(examples, fixed)[: len(examples)]

    def valid_ndcg(self, examples: Sequence[Example]) -> float:
        """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties) in eval mode."""
        self.net.eval()
        return batched_valid_ndcg(
            lambda b: self._scores(b, fixed=False), examples, self.SCORE_BATCH
        )

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        self.net.eval()
        return batched_scores(
            lambda b: self._scores(b, fixed=True), examples, len(self.catalog), self.SCORE_BATCH
        )

    def config(self) -> dict[str, Any]:
        return {**self.options.as_dict(), "device": str(self.device)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    # -- checkpoints ------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into the folder ``path``."""
        meta = {
            "model": self.NAME,
            "seed": self.seed,
            "config": self.config(),
            "catalog_sha256": catalog_fingerprint(self.catalog),
            "n_items": len(self.catalog),
            "extra": self._extra_state(),
        }
        return write_checkpoint(path, self.net.state_dict(), meta, self.NAME)

    read_checkpoint_config = staticmethod(read_checkpoint_config)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load weights saved by :meth:`save` into this model (same kind, config and catalog)."""
        meta = read_checkpoint_config(path)
        file = Path(path) / CONFIG_FILE
        if meta["model"] != self.NAME:
            raise ValueError(f"{file}: field 'model' is {meta['model']!r}, not {self.NAME!r}")
        if meta["catalog_sha256"] != catalog_fingerprint(self.catalog):
            raise ValueError(f"{file}: field 'catalog_sha256' does not match this catalog")
        mine = {k: v for k, v in self.config().items() if k != "device"}
        # An option added since the checkpoint was written reads as its default there.
        defaults = type(self.options)().as_dict()
        theirs = {
            k: v
            for k, v in {**defaults, **meta["config"]}.items()
            if k != "device" and (k in meta["config"] or k in mine)
        }
        if mine != theirs:
            diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise ValueError(f"{file}: field 'config' differs from this model's in {diff}")
        self._load_extra_state(meta.get("extra", {}))
        state = read_weights(path, self.device)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(
                f"{Path(path) / WEIGHTS_FILE}: weights do not fit this model ({first})"
            ) from None
        self.net.eval()
        self._invalidate()

    @classmethod
    def from_checkpoint(
        cls: type[_Self], path: str | os.PathLike[str], catalog: Catalog, **overrides: object
    ) -> _Self:
        """Build a model from a checkpoint's ``config.json`` and load its weights."""
        meta = read_checkpoint_config(path)
        model = cls(catalog, seed=int(meta.get("seed", 0)), **{**meta["config"], **overrides})
        model.load(path)
        return model


def _sequence_only(user: UserSequence) -> UserSequence:
    """``user`` without its reviews and narratives (what the sequence models never read)."""
    return dataclasses.replace(user, reviews=(), narratives=Narratives())
