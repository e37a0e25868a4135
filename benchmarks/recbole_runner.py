"""Train and test one RecBole model as ``run_recbole`` does, timed; write the figures as JSON.

Run by ``benchmarks/recbole_parity.py`` with the interpreter of RecBole's own venv (RecBole
1.2.1 needs numpy < 1.24), never imported by the harness:

    .recbole-venv/bin/python benchmarks/recbole_runner.py SPEC.json OUT.json

SPEC holds ``model``, ``dataset``, ``threads`` and ``config`` (RecBole's ``config_dict``), and
``data_only`` to stop after the split (the data check, seconds instead of an hour). The
steps and their order are ``recbole.quick_start.run_recbole``'s (seeding, dataset, split,
model, FLOPs count, fit, evaluate on the best checkpoint), so the random streams and figures
are those of a plain RecBole run; only timers and the data dump are added. Besides the test
metrics, OUT records what the parity script checks against the harness's view of the same
data: counts, each user's validation and test target, and a digest of every user's ordered
sequence as RecBole's split saw it.

A full run takes hours on two cores, longer than a working session, so it resumes: with
``resume`` in SPEC (a file path), the state after every validated epoch (weights, optimizer,
early-stopping counters, the best result so far, every random stream RecBole draws from:
torch's, numpy's, Python's and the training loader's generator) is written there, and a
restarted run loads it and goes on with the next epoch, so an interrupted and a straight run
give the same figures. ``fit_s`` adds up the training time of every part; ``parts`` says how
many processes it took.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any

# RecBole 1.2.1 loads its best checkpoint with torch.load's pre-2.6 default.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def sequences_digest(sequences: dict[str, list[str]]) -> str:
    """sha256 of ``user<TAB>item item ...`` lines in user order (the parity script's twin)."""
    digest = hashlib.sha256()
    for user in sorted(sequences):
        digest.update(f"{user}\t{' '.join(sequences[user])}\n".encode())
    return digest.hexdigest()


def _targets(data: Any, dataset: Any) -> dict[str, str]:
    """user token -> target item token of an evaluation split."""
    feat = data._dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, feat[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, feat[dataset.iid_field].numpy())
    return {str(u): str(i) for u, i in zip(users, items, strict=True)}


def _sequences(dataset: Any) -> dict[str, list[str]]:
    """Every user's items in RecBole's order, from the time-sorted rows the split read.

    A sequential dataset's rows are (prefix, target) pairs, one per interaction but each
    user's first (``data_augmentation``), so a user's sequence is the prefix of their first row
    followed by the targets of all their rows.
    """
    feat = dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    users = dataset.id2token(uid, feat[uid].numpy())
    targets = dataset.id2token(iid, feat[iid].numpy())
    prefixes = feat[iid + dataset.config["LIST_SUFFIX"]].numpy()
    lengths = feat[dataset.config["ITEM_LIST_LENGTH_FIELD"]].numpy()
    out: dict[str, list[str]] = {}
    for user, target, prefix, length in zip(users, targets, prefixes, lengths, strict=True):
        seq = out.get(str(user))
        if seq is None:
            seq = out[str(user)] = [str(t) for t in dataset.id2token(iid, prefix[:length])]
        seq.append(str(target))
    return out


def data_summary(dataset: Any, valid_data: Any, test_data: Any) -> dict[str, Any]:
    """What the parity script compares with the harness's view of the same data."""
    sequences = _sequences(dataset)
    return {
        "users": len(sequences),
        "items": dataset.item_num - 1,  # RecBole's id 0 is padding
        "interactions": sum(len(s) for s in sequences.values()),
        "sequences_sha256": sequences_digest(sequences),
        "valid_targets": _targets(valid_data, dataset),
        "test_targets": _targets(test_data, dataset),
    }


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from logging import getLogger

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.transform import construct_transform
    from recbole.utils import get_flops, get_model, get_trainer, init_logger, init_seed

    config = Config(model=spec["model"], dataset=spec["dataset"], config_dict=spec["config"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data = data_summary(dataset, valid_data, test_data)
    if spec.get("data_only"):
        return {"recbole_version": recbole.__version__, "data": data}

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    transform = construct_transform(config)
    get_flops(model, dataset, config["device"], logger, transform)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    epochs, valid_s = [0], [0.0]
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def counted_train(*args: Any, **kwargs: Any) -> Any:
        epochs[0] += 1
        return train_epoch(*args, **kwargs)

    def timed_valid(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return valid_epoch(*args, **kwargs)
        finally:
            valid_s[0] += time.perf_counter() - start

    trainer._train_epoch, trainer._valid_epoch = counted_train, timed_valid
    resume = spec.get("resume")
    before: dict[str, Any] = {"fit_s": 0.0, "valid_s": 0.0, "parts": 0, "stopped": False}
    if resume and os.path.exists(resume):
        before = _load_resume(resume, trainer, train_data, epochs, logger)
        valid_s[0] = before["valid_s"]
    start = time.perf_counter()

    def save_state(epoch_idx: int, valid_score: float) -> None:
        if resume:
            stopped = trainer.cur_step > trainer.stopping_step  # RecBole's early_stopping test
            fit_s = before["fit_s"] + time.perf_counter() - start
            _save_resume(
                resume,
                trainer,
                train_data,
                epoch_idx,
                epochs[0],
                fit_s,
                valid_s[0],
                before["parts"] + 1,
                stopped,
            )

    if before["stopped"] or trainer.start_epoch >= trainer.epochs:
        # Finished before the interruption: fit() would overwrite the best checkpoint.
        best_valid_score, best_valid = trainer.best_valid_score, trainer.best_valid_result
    else:
        best_valid_score, best_valid = trainer.fit(
            train_data,
            valid_data,
            saved=True,
            show_progress=config["show_progress"],
            callback_fn=save_state,
        )
    fit_s = before["fit_s"] + time.perf_counter() - start
    start = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    evaluate_s = time.perf_counter() - start
    logger.info(f"test result: {test}")
    return {
        "recbole_version": recbole.__version__,
        "torch_version": torch.__version__,
        "model": spec["model"],
        "test": {k: float(v) for k, v in test.items()},
        "best_valid": {k: float(v) for k, v in best_valid.items()},
        "best_valid_score": float(best_valid_score),
        "epochs": epochs[0],
        "fit_s": round(fit_s, 3),
        "parts": before["parts"] + 1,
        "valid_s": round(valid_s[0], 3),
        "evaluate_s": round(evaluate_s, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": data,
    }


def _save_resume(
    path: str,
    trainer: Any,
    train_data: Any,
    epoch_idx: int,
    epochs: int,
    fit_s: float,
    valid_s: float,
    parts: int,
    stopped: bool,
) -> None:
    """Everything a restarted run needs to continue after ``epoch_idx`` (atomic write)."""
    import random

    import numpy as np
    import torch

    state = {
        "epoch": epoch_idx,
        "epochs": epochs,
        "cur_step": trainer.cur_step,
        "best_valid_score": trainer.best_valid_score,
        "best_valid_result": trainer.best_valid_result,
        "saved_model_file": trainer.saved_model_file,
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "loader_rng": train_data.generator.get_state(),
        "fit_s": fit_s,
        "valid_s": valid_s,
        "parts": parts,
        "stopped": stopped,
    }
    torch.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)


def _load_resume(
    path: str, trainer: Any, train_data: Any, epochs: list[int], logger: Any
) -> dict[str, Any]:
    """Restore what :func:`_save_resume` wrote; returns the timing and stop fields."""
    import random

    import numpy as np
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(state["state_dict"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.start_epoch = state["epoch"] + 1
    trainer.cur_step = state["cur_step"]
    trainer.best_valid_score = state["best_valid_score"]
    trainer.best_valid_result = state["best_valid_result"]
    trainer.saved_model_file = state["saved_model_file"]
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    train_data.generator.set_state(state["loader_rng"])
    epochs[0] = state["epochs"]
    logger.info(
        f"resumed after epoch {state['epoch']} (part {state['parts'] + 1}, "
        f"{state['fit_s']:.0f} s of training so far)"
    )
    return {k: state[k] for k in ("fit_s", "valid_s", "parts", "stopped")}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        spec = json.load(fh)
    result = run(spec)
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
