"""``sasrec``: SASRec, self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

The network follows the reference implementation (and its common PyTorch port): item
embeddings (index 0 = padding, items shifted by +1) scaled by sqrt(hidden) plus learned
positional embeddings, ``blocks`` causal self-attention blocks (layer-normalised queries attend
over the un-normalised sequence, residual, LayerNorm, point-wise two-layer ReLU feed-forward
with dropout, residual), a final LayerNorm, and the item embedding matrix shared as the output
layer: score(item) = h_t · E_item. Sequences are left-padded and right-aligned, so position
``max_len - 1`` is always the newest item; scoring always pads to the fixed ``max_len`` so a
row never depends on the batch it is in.

Training. Every training sequence (the first N-2 purchases) gives inputs ``seq[:-1]`` and
targets ``seq[1:]`` over its last ``max_len`` steps; every non-padding position is a target.

- ``loss="ce"`` (default): softmax cross-entropy over the whole catalog at every position.
  Not the paper's loss, but the catalogs here are small to mid size and full softmax is known
  to train SASRec markedly better than one sampled negative (Klenitskiy & Vasilev, RecSys
  2023, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?").
- ``loss="bce"``: the original objective, binary cross-entropy of the target against one
  negative per position drawn uniformly from items not in the user's training sequence.

Adam with betas (0.9, 0.98) as in the reference code. Validation NDCG@10 (full ranking over
the catalog, pessimistic ties: rank = number of items scoring >= the target, minus one) is
computed after every epoch; training stops after ``patience`` epochs without improvement and
the best epoch's weights are restored. History items are not masked at scoring time (the
harness's protocol decides that); ``mask_history=True`` sets their scores to -inf, in
validation as well.

Defaults and where they come from (measured on the embedded ``mini`` data set, 2,000 users,
800 items, sequential task, test NDCG@10 over seeds 0-2):

- ``hidden=64``: the paper uses d=50; 64 is the usual choice of later reproductions (RecBole's
  default hidden size).
- ``blocks=2``, ``heads=1``: the paper (single-head attention); 2 heads measured the same.
- ``dropout=0.2``: the paper's value for the denser MovieLens-1M (it used 0.5 for the sparse
  Amazon sets); with the full-softmax loss 0.5 was clearly worse on ``mini`` (0.167 vs 0.184).
- ``max_len=50``: the paper's value for the Amazon data sets; REGEN sequences are shorter.
- ``batch_size=128``: the paper.
- ``lr=2e-3``: twice the paper's 1e-3. With validation after every epoch it reaches the same
  test NDCG@10 on ``mini`` (0.188 mean of three seeds, vs 0.189 at 1e-3 with patience 10) in
  about half the epochs (27-45 instead of 48-77).
- ``epochs=200``: about the reference code's training length (201), here only an upper bound:
- ``patience=5``: stop after 5 epochs without a better validation NDCG@10 (the reference code
  trains a fixed number of epochs, evaluating every 20); fit + scoring on ``mini`` then take
  about 12 s on two idle CPU cores (37 epochs, seed 0).
- ``loss="ce"``: see above; the original ``bce`` reached 0.132 on ``mini`` (``ce``: 0.189,
  same settings otherwise, seed 0). ``weight_decay=0``: the reference code's default L2 of 0.
- ``mask_history=False``: the harness's protocol, not the model, decides about seen items.
- ``device="cpu"``: reproducible by default; ``"auto"`` takes CUDA when available. The device
  actually used is what :meth:`SASRec.config` records.

Seeding: ``torch.manual_seed(seed)`` before the weights are built and again before training
(dropout), and a ``numpy`` generator for shuffling and negatives, so the same seed, data and
config give identical scores on CPU. The torch thread count is left as configured.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from regen_bench import Catalog, Example, Model, UserSequence
from regen_bench_plugins.torchrec.options import coerce_option
from regen_bench_plugins.torchrec.scoring import batched_scores, batched_valid_ndcg

TORCH_HINT = "sasrec needs torch: pip install torch==2.13.0"

#: Every option with its default (documented in the module docstring).
DEFAULTS: dict[str, Any] = {
    "hidden": 64,
    "blocks": 2,
    "heads": 1,
    "dropout": 0.2,
    "max_len": 50,
    "lr": 2e-3,
    "batch_size": 128,
    "epochs": 200,
    "patience": 5,
    "loss": "ce",
    "weight_decay": 0.0,
    "mask_history": False,
    "device": "cpu",
}
LOSSES = ("ce", "bce")
#: Rows per forward pass when scoring; fixed so that scores do not depend on the batch.
SCORE_BATCH = 256


def _import_torch() -> tuple[Any, Any]:
    """torch and the network module, or an ImportError that says how to install torch."""
    try:
        import torch

        from regen_bench_plugins.sasrec import net as sasrec_net
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "torch":
            raise ImportError(TORCH_HINT) from None
        raise
    return torch, sasrec_net


def _coerce(name: str, value: Any) -> Any:
    return coerce_option("sasrec", name, value, DEFAULTS[name])


class SASRec(Model):
    """SASRec over the catalog; ignores critique text (a baseline that cannot read language)."""

    def __init__(self, catalog: Catalog, *, seed: int = 0, **config: Any):
        known = {k: config.pop(k) for k in list(config) if k in DEFAULTS}
        super().__init__(catalog, seed=seed, **config)  # raises on unknown keys
        opts = {k: _coerce(k, v) for k, v in {**DEFAULTS, **known}.items()}
        for key in ("hidden", "blocks", "heads", "max_len", "batch_size", "epochs"):
            if opts[key] < 1:
                raise ValueError(f"sasrec option '{key}' must be at least 1, got {opts[key]}")
        if opts["patience"] < 0 or opts["weight_decay"] < 0 or opts["lr"] <= 0:
            raise ValueError(
                "sasrec options 'patience' and 'weight_decay' must be >= 0 and 'lr' > 0"
            )
        if not 0.0 <= opts["dropout"] < 1.0:
            raise ValueError(f"sasrec option 'dropout' must be in [0, 1), got {opts['dropout']}")
        if opts["hidden"] % opts["heads"]:
            raise ValueError(
                f"sasrec: hidden ({opts['hidden']}) must be divisible by heads ({opts['heads']})"
            )
        if opts["loss"] not in LOSSES:
            raise ValueError(
                f"sasrec option 'loss' must be one of {', '.join(LOSSES)}, got {opts['loss']!r}"
            )
        if len(catalog) < 1:
            raise ValueError("sasrec needs a non-empty catalog")

        torch, self._net_mod = _import_torch()
        self._torch = torch
        if opts["device"] == "auto":
            opts["device"] = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(opts["device"])
        except RuntimeError as exc:
            raise ValueError(f"sasrec option 'device': {exc}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("sasrec option 'device': CUDA is not available on this machine")
        self.opts = opts
        torch.manual_seed(seed)
        self.net = self._net_mod.SASRecNet(
            len(catalog),
            opts["hidden"],
            opts["blocks"],
            opts["heads"],
            opts["dropout"],
            opts["max_len"],
        ).to(self.device)

    # -- training ---------------------------------------------------------------------------

    def _training_arrays(
        self, train: Sequence[UserSequence]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Left-padded inputs and targets (shifted ids) and each user's seen items."""
        users = [u.items for u in train if len(u) >= 2]
        n = self.opts["max_len"]
        inputs = self._net_mod.left_pad([s[:-1] for s in users], n)
        targets = self._net_mod.left_pad([s[1:] for s in users], n)
        seen = [np.unique(s) + 1 for s in users]
        return inputs, targets, seen

    def _batch_loss(self, inp: Any, tgt: Any, neg: Any | None) -> Any:
        torch = self._torch
        states = self.net(inp)
        mask = tgt > 0
        h = states[mask]
        if neg is None:
            return torch.nn.functional.cross_entropy(self.net.logits(h), tgt[mask] - 1)
        emb = self.net.item_emb
        pos_logit = (h * emb(tgt[mask])).sum(-1)
        neg_logit = (h * emb(neg[mask])).sum(-1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(pos_logit, torch.ones_like(pos_logit)) + bce(
            neg_logit, torch.zeros_like(neg_logit)
        )

    def fit(self, train: Sequence[UserSequence], valid: Sequence[Example]) -> dict[str, Any]:
        """Train with early stopping on validation NDCG@10; restore the best epoch's weights."""
        from tqdm.auto import tqdm

        torch, net_mod, opts = self._torch, self._net_mod, self.opts
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        inputs, targets, seen = self._training_arrays(train)
        if len(inputs) == 0:
            return {"epochs": 0, "best_epoch": 0, "note": "no training sequence of length >= 2"}
        optim = torch.optim.Adam(
            self.net.parameters(),
            lr=opts["lr"],
            betas=(0.9, 0.98),
            weight_decay=opts["weight_decay"],
        )
        bs = opts["batch_size"]
        best_ndcg, best_epoch, best_state = -1.0, 0, None
        losses: list[float] = []
        ndcgs: list[float] = []
        bar = tqdm(range(1, opts["epochs"] + 1), desc="sasrec", unit="epoch", disable=None)
        for epoch in bar:
            self.net.train()
            order = rng.permutation(len(inputs))
            total, steps = 0.0, 0
            for lo in range(0, len(order), bs):
                rows = order[lo : lo + bs]
                inp = net_mod.trim(inputs[rows])
                tgt = targets[rows][:, -inp.shape[1] :]
                neg = None
                if opts["loss"] == "bce":
                    neg = torch.from_numpy(
                        net_mod.sample_negatives(
                            rng, tgt, [seen[r] for r in rows], len(self.catalog)
                        )
                    ).to(self.device)
                loss = self._batch_loss(
                    torch.from_numpy(inp).to(self.device),
                    torch.from_numpy(tgt).to(self.device),
                    neg,
                )
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                total += float(loss.detach())
                steps += 1
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
        return {
            "epochs": len(losses),
            "best_epoch": best_epoch,
            "best_valid_ndcg@10": round(best_ndcg, 5) if valid else None,
            "train_loss": losses,
            "valid_ndcg@10": ndcgs,
            "train_sequences": len(inputs),
            "device": str(self.device),
            "fit_s": round(time.perf_counter() - start, 3),
        }

    # -- scoring ----------------------------------------------------------------------------

    def _scores(self, examples: Sequence[Example], trim: bool = False) -> Any:
        """Last-position scores (torch, on the device) of at most SCORE_BATCH examples.

        For :meth:`score` every forward pass has the same shape (max_len columns, SCORE_BATCH
        rows, filled up with all-padding rows): BLAS picks kernels, and so rounding, by matrix
        shape, so only a fixed shape makes a row's scores bit-identical whatever batch it came
        in. ``trim`` (per-epoch validation only, where speed matters more) drops the padding
        rows and columns instead: the same numbers up to float rounding.
        """
        torch = self._torch
        seq = self._net_mod.left_pad([ex.history for ex in examples], self.opts["max_len"])
        if trim:
            seq = self._net_mod.trim(seq)
        else:
            seq = np.concatenate(
                [seq, np.zeros((SCORE_BATCH - len(seq), seq.shape[1]), dtype=seq.dtype)]
            )
        with torch.no_grad():
            states = self.net(torch.from_numpy(seq).to(self.device))
            scores = self.net.logits(states[:, -1])[: len(examples)]
            if self.opts["mask_history"]:
                for row, ex in enumerate(examples):
                    idx = torch.as_tensor(
                        np.asarray(ex.history, dtype=np.int64), device=self.device
                    )
                    scores[row, idx] = float("-inf")
        return scores

    def valid_ndcg(self, examples: Sequence[Example]) -> float:
        """Mean NDCG@10 of ``examples`` (full ranking, pessimistic ties) in eval mode."""
        self.net.eval()
        return batched_valid_ndcg(lambda b: self._scores(b, trim=True), examples, SCORE_BATCH)

    def score(self, examples: Sequence[Example]) -> np.ndarray:
        self.net.eval()
        return batched_scores(self._scores, examples, len(self.catalog), SCORE_BATCH)

    def config(self) -> dict[str, Any]:
        return {**self.opts, "device": str(self.device)}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)
