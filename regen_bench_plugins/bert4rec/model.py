"""``bert4rec``: BERT4Rec, bidirectional masked-item sequential recommendation (Sun et al. 2019).

Network (:mod:`regen_bench_plugins.bert4rec.net`): an item table with a padding row and a
[MASK] row, learned positional embeddings, embedding LayerNorm + dropout, ``blocks``
bidirectional post-LN transformer layers (GELU, feed-forward width 4 x hidden), and BERT's
masked-item head (dense + GELU + LayerNorm) whose output is scored against the same item table
plus a per-item bias: score(item) = head(h) · E_item + b_item, a full softmax over the catalog.

Training (the Cloze task). Each training sequence (first N-2 purchases, its newest ``max_len``
items) is masked afresh every epoch: each item becomes [MASK] with probability ``mask_prob``
(at least one per sequence) and, with probability ``last_prob``, a sequence masks only its
newest item instead (the paper's extra samples that match inference). Loss: softmax
cross-entropy over the whole catalog at the masked positions (no sampled negatives). Adam.
At inference a [MASK] is appended after the history (newest ``max_len - 1`` items) and its
output ranks the catalog. Early stopping on validation NDCG@10 (full ranking, pessimistic ties)
after every epoch with ``patience``; the best epoch's weights are restored.

Critiques: ``bert4rec`` reads item ids only. It is registered for ``critique`` as well, where
it ignores the critique text, so it is the language-blind baseline next to ``flare``.

Defaults and where they come from (the paper's settings, adapted where noted; NOT tuned on
``mini`` beyond what is said here):

- ``hidden=64``, ``blocks=2``, ``heads=2``: the paper (d=64, L=2, h=2).
- ``dropout=0.1``: the paper. ``max_len=50``: the paper's N for the Amazon Beauty set.
- ``mask_prob=0.2``: the paper's ρ for the denser MovieLens sets (it used 0.6 for Beauty);
  not compared with other values on ``mini``. ``last_prob=0.1``: a share of last-item-only
  samples (the paper adds such samples without giving a share).
- ``lr=1e-3``: ten times the paper's 1e-4 (which trains for hundreds of thousands of steps
  with linear decay), so that early stopping after every epoch ends in a few hundred epochs.
- ``batch_size=128``: half the paper's 256 (2,000 sequences on ``mini`` give 16 steps/epoch).
- ``weight_decay=0.0``: the paper uses 0.01; not compared on ``mini``.
- ``epochs=300``, ``patience=10``: an upper bound and a patience long enough for the noisier
  masked-item training (validation NDCG@10 wanders more from epoch to epoch than SASRec's).
  On ``mini`` (seed 0) training stops after 200 epochs (best 190), test NDCG@10 0.133 —
  below SASRec's 0.188: masked-item training learns slowly on 2,000 short sequences.
- ``device="cpu"``: reproducible by default; ``"auto"`` takes CUDA when available.

Seeding as in ``sasrec``: ``torch.manual_seed(seed)`` before the weights are built and before
training, a ``numpy`` generator for shuffling and masking. Scores are computed in fixed-shape
chunks (``SCORE_BATCH`` rows x ``max_len`` columns), so a row never depends on its batch.
Checkpoints: :meth:`BERT4Rec.save` writes ``model.safetensors`` + ``config.json``;
:meth:`BERT4Rec.load` / :meth:`BERT4Rec.from_checkpoint` read them back (never pickle).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench.fileio import atomic_write
from regen_bench_plugins.torchrec.options import coerce_option
from regen_bench_plugins.torchrec.scoring import batched_scores, batched_valid_ndcg

TORCH_HINT = "{name} needs torch: pip install torch==2.13.0"

#: Every option with its default (documented in the module docstring).
DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "blocks": 2,
    "heads": 2,
    "dropout": 0.1,
    "max_len": 50,
    "mask_prob": 0.2,
    "last_prob": 0.1,
    "lr": 1e-3,
    "batch_size": 128,
    "epochs": 300,
    "patience": 10,
    "weight_decay": 0.0,
    "device": "cpu",
}
#: Rows per forward pass when scoring; fixed so that scores do not depend on the batch.
SCORE_BATCH = 256
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def catalog_fingerprint(catalog: Catalog) -> str:
    """sha256 of the catalog's item ids in index order (a checkpoint fits one catalog only)."""
    return hashlib.sha256("\n".join(it.asin for it in catalog).encode()).hexdigest()


class BERT4Rec(Model):
    """BERT4Rec over the catalog; ignores critique text. Subclassed by FLARE."""

    NAME: ClassVar[str] = "bert4rec"
    DEFAULTS: ClassVar[dict[str, Any]] = DEFAULTS

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        known = {k: config.pop(k) for k in list(config) if k in self.DEFAULTS}
        super().__init__(catalog, seed=seed, **config)  # raises on unknown keys
        opts = {
            k: coerce_option(self.NAME, k, v, self.DEFAULTS[k])
            for k, v in {**self.DEFAULTS, **known}.items()
        }
        self._check(opts)
        if len(catalog) < 1:
            raise ValueError(f"{self.NAME} needs a non-empty catalog")
        torch, net_mod = self._import_torch()
        self._torch, self._net_mod = torch, net_mod
        if opts["device"] == "auto":
            opts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(opts["device"])
        except RuntimeError as exc:
            raise ValueError(f"{self.NAME} option 'device': {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{self.NAME} option 'device': CUDA is not available here")
        self.opts = opts
        self.mask_id = len(catalog) + 1
        torch.manual_seed(seed)
        self.net = self._build_net().to(self.device)

    # -- construction (overridden by FLARE) -------------------------------------------------

    def _check(self, opts: dict[str, Any]) -> None:
        name = self.NAME
        for key in ("hidden", "blocks", "heads", "batch_size", "epochs"):
            if opts[key] < 1:
                raise ValueError(f"{name} option '{key}' must be at least 1, got {opts[key]}")
        if opts["max_len"] < 2:
            raise ValueError(f"{name} option 'max_len' must be at least 2, got {opts['max_len']}")
        if opts["patience"] < 0 or opts["weight_decay"] < 0 or opts["lr"] <= 0:
            raise ValueError(
                f"{name} options 'patience' and 'weight_decay' must be >= 0 and 'lr' > 0"
            )
        if not 0.0 <= opts["dropout"] < 1.0:
            raise ValueError(f"{name} option 'dropout' must be in [0, 1), got {opts['dropout']}")
        if not 0.0 < opts["mask_prob"] <= 1.0:
            raise ValueError(
                f"{name} option 'mask_prob' must be in (0, 1], got {opts['mask_prob']}"
            )
        if not 0.0 <= opts["last_prob"] <= 1.0:
            raise ValueError(
                f"{name} option 'last_prob' must be in [0, 1], got {opts['last_prob']}"
            )
        if opts["hidden"] % opts["heads"]:
            raise ValueError(
                f"{name}: hidden ({opts['hidden']}) must be divisible by heads ({opts['heads']})"
            )

    def _import_torch(self) -> tuple[Any, Any]:
        try:
            import torch

            from regen_bench_plugins.bert4rec import net as bert4rec_net
        except ImportError as exc:
            if (exc.name or "").split(".")[0] == "torch":
                raise ImportError(TORCH_HINT.format(name=self.NAME)) from None
            raise
        return torch, bert4rec_net

    def _build_net(self) -> Any:
        o = self.opts
        return self._net_mod.BERT4RecNet(
            len(self.catalog), o["hidden"], o["blocks"], o["heads"], o["dropout"], o["max_len"]
        )

    # -- model-specific pieces (overridden by FLARE) ------------------------------------------

    def _prepare(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> None:
        """Work before the first epoch (FLARE: encode texts once)."""

    def _critique_rows(self, seqs: list[tuple[str | None, ...]], length: int) -> Any:
        """Critique ids aligned with the item columns, or None (BERT4Rec reads no text)."""
        return None

    def _train_logits(self, inputs: Any, crits: Any, labels: Any) -> tuple[Any, Any]:
        """(logits at the masked positions, auxiliary loss or None) in training mode."""
        states = self.net(inputs)
        return self.net.logits(states[labels > 0]), None

    def _last_logits(self, inputs: Any, crits: Any) -> Any:
        """Scores of every item at the last ([MASK]) column, eval mode, no grad."""
        return self.net.logits(self.net(inputs)[:, -1])

    def _invalidate(self) -> None:
        """Drop anything cached from the weights (FLARE: item vectors)."""

    # -- training ---------------------------------------------------------------------------

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Masked-item training with early stopping on validation NDCG@10; best weights kept."""
        from tqdm.auto import tqdm

        torch, net_mod, opts = self._torch, self._net_mod, self.opts
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        users = [u for u in train if len(u) >= 2]
        if not users:
            return {"epochs": 0, "best_epoch": 0, "note": "no training sequence of length >= 2"}
        self._prepare(users, valid)
        prep_s = time.perf_counter() - start
        n = opts["max_len"]
        items = net_mod.left_pad([u.items for u in users], n)
        crits = self._critique_rows([u.critiques for u in users], n)
        optim = torch.optim.Adam(
            self.net.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"]
        )
        bs = opts["batch_size"]
        best_ndcg, best_epoch, best_state = -1.0, 0, None
        losses: list[float] = []
        ndcgs: list[float] = []
        epoch_s: list[float] = []
        bar = tqdm(range(1, opts["epochs"] + 1), desc=self.NAME, unit="epoch", disable=None)
        for epoch in bar:
            t0 = time.perf_counter()
            self.net.train()
            self._invalidate()
            order = rng.permutation(len(items))
            total, steps = 0.0, 0
            for lo in range(0, len(order), bs):
                rows = order[lo : lo + bs]
                width = net_mod.trim(items[rows])
                seq = items[rows][:, -width:]
                inp, lab = net_mod.mask_items(
                    rng, seq, opts["mask_prob"], opts["last_prob"], self.mask_id
                )
                crit = None if crits is None else torch.from_numpy(crits[rows][:, -width:])
                lab_t = torch.from_numpy(lab).to(self.device)
                logits, aux = self._train_logits(
                    torch.from_numpy(inp).to(self.device),
                    None if crit is None else crit.to(self.device),
                    lab_t,
                )
                loss = net_mod.masked_ce(logits, lab_t[lab_t > 0])
                if aux is not None:
                    loss = loss + aux
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += float(loss.detach())
                steps += 1
            epoch_s.append(time.perf_counter() - t0)
            losses.append(round(total / steps, 5))
            ndcg = self.valid_ndcg(valid) if valid else float("nan")
            ndcgs.append(round(ndcg, 5))
            if not valid or ndcg > best_ndcg:
                best_ndcg, best_epoch = ndcg, epoch
                best_state = copy.deepcopy(self.net.state_dict())
            bar.set_postfix(loss=f"{losses[-1]:.4f}", ndcg10=f"{ndcg:.4f}", best=best_epoch)
            if valid and epoch - best_epoch >= opts["patience"]:
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
            "train_sequences": len(items),
            "device": str(self.device),
            "prepare_s": round(prep_s, 3),
            "train_s_per_epoch": round(float(np.mean(epoch_s)), 3),
            "fit_s": round(time.perf_counter() - start, 3),
        }

    # -- scoring ----------------------------------------------------------------------------

    def _inputs(self, examples: Sequence[Example], fixed: bool) -> tuple[Any, Any]:
        """History + [MASK] (and critique ids) of the examples, as tensors on the device.

        ``fixed`` pads to SCORE_BATCH rows x max_len columns: BLAS picks kernels (and so
        rounding) by shape, and only a fixed shape makes a row's scores bit-identical whatever
        batch it came in. Filler rows hold a lone [MASK] (all-padding rows are undefined).
        Otherwise (per-epoch validation, where speed matters more) all-padding columns are
        dropped: the same numbers up to float rounding.
        """
        torch, n = self._torch, self.opts["max_len"]
        seq = self._net_mod.left_pad([ex.history for ex in examples], n, append=self.mask_id)
        crit = self._critique_rows([(*ex.history_critiques, ex.critique) for ex in examples], n)
        if fixed:
            fill = SCORE_BATCH - len(seq)
            seq = np.concatenate([seq, np.zeros((fill, n), dtype=seq.dtype)])
            seq[len(examples) :, -1] = self.mask_id
            if crit is not None:
                crit = np.concatenate([crit, np.zeros((fill, n), dtype=crit.dtype)])
        else:
            width = self._net_mod.trim(seq)
            seq = seq[:, -width:]
            crit = None if crit is None else crit[:, -width:]
        crit_t = None if crit is None else torch.from_numpy(crit).to(self.device)
        return torch.from_numpy(seq).to(self.device), crit_t

    def _scores(self, examples: Sequence[Example], fixed: bool) -> Any:
        with self._torch.no_grad():
            seq, crit = self._inputs(examples, fixed)
            return self._last_logits(seq, crit)[: len(examples)]

    def valid_ndcg(self, examples: Sequence[Example]) -> float:
        """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties) in eval mode."""
        self.net.eval()
        return batched_valid_ndcg(lambda b: self._scores(b, fixed=False), examples, SCORE_BATCH)

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        self.net.eval()
        return batched_scores(
            lambda b: self._scores(b, fixed=True), examples, len(self.catalog), SCORE_BATCH
        )

    def config(self) -> dict[str, Any]:
        return {**self.opts, "device": str(self.device)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    # -- checkpoints ------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """JSON-serialisable state beyond the weights (FLARE: critique vocabulary)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` wrote (before the weights are loaded)."""

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into the folder ``path``."""
        from safetensors.torch import save

        folder = Path(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        meta = {
            "model": self.NAME,
            "seed": self.seed,
            "config": self.config(),
            "catalog_sha256": catalog_fingerprint(self.catalog),
            "n_items": len(self.catalog),
            "extra": self._extra_state(),
        }
        atomic_write(folder / WEIGHTS_FILE, [save(state, metadata={"model": self.NAME})])
        atomic_write(folder / CONFIG_FILE, [json.dumps(meta, indent=2).encode()])
        return folder

    @staticmethod
    def read_checkpoint_config(path: str | os.PathLike[str]) -> dict[str, Any]:
        """The ``config.json`` of a checkpoint folder, with a one-line error when unusable."""
        file = Path(path) / CONFIG_FILE
        try:
            meta = json.loads(file.read_text())
        except FileNotFoundError:
            raise ValueError(f"{file}: no such checkpoint config") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
        for key in ("model", "config", "catalog_sha256"):
            if key not in meta:
                raise ValueError(f"{file}: missing field '{key}'")
        return meta

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load weights saved by :meth:`save` into this model (same kind, config and catalog)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        meta = self.read_checkpoint_config(path)
        file = Path(path) / CONFIG_FILE
        if meta["model"] != self.NAME:
            raise ValueError(f"{file}: field 'model' is {meta['model']!r}, not {self.NAME!r}")
        if meta["catalog_sha256"] != catalog_fingerprint(self.catalog):
            raise ValueError(f"{file}: field 'catalog_sha256' does not match this catalog")
        mine = {k: v for k, v in self.config().items() if k != "device"}
        theirs = {k: v for k, v in meta["config"].items() if k != "device"}
        if mine != theirs:
            diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise ValueError(f"{file}: field 'config' differs from this model's in {diff}")
        self._load_extra_state(meta.get("extra", {}))
        weights = Path(path) / WEIGHTS_FILE
        try:
            state = load_file(str(weights), device=str(self.device))
        except (FileNotFoundError, SafetensorError, OSError) as exc:
            raise ValueError(f"{weights}: cannot read weights ({exc})") from None
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(f"{weights}: weights do not fit this model ({first})") from None
        self.net.eval()
        self._invalidate()

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], catalog: Catalog, **overrides: Any
    ) -> BERT4Rec:
        """Build a model from a checkpoint's ``config.json`` and load its weights."""
        meta = cls.read_checkpoint_config(path)
        model = cls(catalog, seed=int(meta.get("seed", 0)), **{**meta["config"], **overrides})
        model.load(path)
        return model
