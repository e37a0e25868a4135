"""The text half of a narrating task (``narrative``, ``conversational``): one narrative per test
example, scored against REGEN's.

A model that writes text itself (``generates_text``) narrates its own first choice; any other
model is paired with the narrator (an LLM backend), on the item the narrator's ``condition``
names. A fine-tuned narrator only narrates (and is only scored on) the users of its held-out
bucket: it was trained on the others' reference narratives. A model that trained its own text
on the dataset's narratives says under which partition with an optional ``text_partition()``
(:func:`model_text_partition`); it is then scored on that partition's held-out users only, the
same rule (:class:`~regen_bench.finetune_manifest.UserPartition`) as the narrator's. On a task
without critiques the narrator's prompts carry none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from regen_bench.data.dataset import Dataset
from regen_bench.finetune_manifest import (
    PARTITION_METHOD,
    FinetuneManifest,
    UserPartition,
    manifest_sha256,
)
from regen_bench.metrics.text import compute_text_metrics, text_metric_weights
from regen_bench.model import Model
from regen_bench.narrator import PROMPT_VERSION, NarratorConfig, narrate, narrated_items
from regen_bench.results import Narration, NarratorFinetune, TextUsers, is_scored
from regen_bench.runner.config import RunConfig, RunError
from regen_bench.tasks import Example, TaskData

#: The narrator's request cache, inside the run's output folder unless ``narrator.cache`` says.
CACHE_FILE = ".llm-cache.sqlite"


@dataclass
class _Texts:
    """The narratives of one run and how they were produced (before scoring)."""

    narrated: list[int]
    texts: list[str]
    errors: list[str | None]
    condition: Literal["target", "top1"]
    backend: str | None = None
    llm_model: str | None = None
    prompt_version: int | None = None
    record: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    #: Example index -> why it was left out (the train/valid users of a fine-tuned narrator or
    #: of a model's own text).
    excluded: dict[int, str] = field(default_factory=dict)
    finetune: NarratorFinetune | None = None
    text_users: TextUsers | None = None
    #: Role -> pin of the narrator's weights (none when the model writes the texts itself).
    weights: dict[str, str] = field(default_factory=dict)


def model_text_partition(model: Model) -> tuple[UserPartition, int] | None:
    """The user partition a model writing its own narratives trained its text under, and how
    many users' narratives reached its text training: its optional ``text_partition()``
    (None, or no such method: it trained no text on the dataset's narratives)."""
    own = getattr(model, "text_partition", None)
    got = own() if model.generates_text and callable(own) else None
    if got is None:
        return None
    rule, trained = got
    if not isinstance(rule, UserPartition) or not isinstance(trained, int) or trained < 0:
        raise RunError(
            f"{type(model).__name__}.text_partition() must return (UserPartition, users >= 0) "
            f"or None, got {got!r}"
        )
    return rule, trained


def check_text_users(model: Model, examples: Sequence[Example]) -> None:
    """Before training: a model whose own text trains outside a held-out bucket must have
    held-out users among ``examples`` to be scored on."""
    got = model_text_partition(model)
    if got is not None and all(got[0].bucket(ex.user_id) != "heldout" for ex in examples):
        raise RunError(
            f"none of the {len(examples)} test users is in the held-out bucket of the model's "
            "text training (its text metrics are computed on those only); evaluate more "
            "users (--limit)"
        )


def _model_texts(
    model: Model,
    examples: Sequence[Example],
    narrative: str,
    top1: list[int],
    log: Callable[[str], None],
) -> _Texts:
    """A generating model narrates its own first choice; where it trained its text on some
    users' narratives, only for (and scored on) the others."""
    excluded: dict[int, str] = {}
    users = None
    got = model_text_partition(model)
    if got is not None:
        rule, trained = got
        excluded = {
            i: f"user in the '{bucket}' bucket the model's text trained on"
            for i, ex in enumerate(examples)
            if (bucket := rule.bucket(ex.user_id)) != "heldout"
        }
        users = TextUsers(
            method=PARTITION_METHOD,
            salt=rule.salt,
            heldout_fraction=rule.heldout_fraction,
            trained_users=trained,
        )
        log(
            f"{len(examples) - len(excluded)} held-out test users narrated and scored, "
            f"{len(excluded)} left out (the model's text trained on their narratives)"
        )
    keep = [i for i in range(len(examples)) if i not in excluded]
    made = list(model.generate([examples[i] for i in keep], narrative))
    if len(made) != len(keep):
        raise RunError(f"model returned {len(made)} narratives for {len(keep)} examples")
    texts = [""] * len(examples)
    for i, text in zip(keep, made, strict=True):
        texts[i] = text
    return _Texts(
        narrated=top1,
        texts=texts,
        errors=[None] * len(texts),
        condition="top1",
        excluded=excluded,
        text_users=users,
    )


def _narrator_texts(
    data: TaskData,
    ds: Dataset,
    top1: list[int],
    cfg: NarratorConfig,
    config: RunConfig,
    *,
    finetuned: FinetuneManifest | None,
    progress: bool,
    log: Callable[[str], None],
) -> _Texts:
    """The narrator (an LLM backend) writes about the item ``cfg.condition`` names."""
    assert config.narrative is not None
    examples = data.test
    narrated = narrated_items([ex.target for ex in examples], top1, cfg.condition)
    by_user = {u.user_id: u for u in ds.users}
    cache = cfg.cache if cfg.cache is not None else str(Path(config.output) / CACHE_FILE)
    excluded: dict[int, str] = {}
    ft_info = None
    if finetuned is not None:
        # (A folder retrained in place never hits old answers: the hf backend's cache key
        # carries a tag of the folder's files.)
        excluded, ft_info = _finetune_exclusions(examples, finetuned, cfg, ds)
        log(
            f"fine-tuned narrator: {len(examples) - len(excluded)} held-out test users "
            f"narrated and scored, {len(excluded)} left out (its train/valid users)"
        )
    keep = [i for i in range(len(examples)) if i not in excluded]
    log(f"narrating {len(keep)} examples with llm backend '{cfg.backend}'")
    out = narrate(
        data.catalog,
        [by_user[examples[i].user_id] for i in keep],
        [examples[i] for i in keep],
        [narrated[i] for i in keep],
        config.narrative,
        cfg,
        cache_path=cache or None,
        progress=progress,
        show_critiques=data.task.uses_critique,
    )
    texts: list[str] = [""] * len(examples)
    errors: list[str | None] = [None] * len(examples)
    for j, i in enumerate(keep):
        texts[i], errors[i] = out.texts[j], out.errors[j]
    llm_model = out.model
    if ft_info is not None:
        # Name a fine-tuned narrator by its weights, not by the folder it happens to sit in
        # nor by its manifest (which holds dates): the same weights compare wherever they are
        # stored and however often they are trained again; other weights never do.
        pinned = (out.weights or {}).get("narrator", "")
        digest = pinned.rpartition(":")[2] if pinned else ft_info.manifest_sha256
        llm_model = f"{ft_info.base_model}+ft.{digest[:12]}"
    return _Texts(
        narrated=narrated,
        texts=texts,
        errors=errors,
        condition=cfg.condition,
        backend=out.backend,
        llm_model=llm_model,
        prompt_version=PROMPT_VERSION,
        record=cfg.record(),
        usage=out.usage,
        excluded=excluded,
        finetune=ft_info,
        weights=out.weights,
    )


def _finetune_exclusions(
    examples: Sequence[Example], manifest: FinetuneManifest, cfg: NarratorConfig, ds: Dataset
) -> tuple[dict[int, str], NarratorFinetune]:
    """Examples whose user is in the fine-tuned narrator's train/valid bucket, and its record."""
    rule = manifest.partition.rule()
    excluded = {
        i: f"user in the narrator's fine-tuning '{bucket}' bucket"
        for i, ex in enumerate(examples)
        if (bucket := rule.bucket(ex.user_id)) != "heldout"
    }
    info = NarratorFinetune(
        base_model=manifest.base_model,
        trainer=manifest.trainer,
        manifest_sha256=manifest_sha256(str(cfg.backend_options["model"])),
        dataset_fingerprint=str(manifest.dataset.get("fingerprint", "")),
        same_dataset=manifest.dataset.get("fingerprint") == ds.fingerprint,
        salt=manifest.partition.salt,
        heldout_fraction=manifest.partition.heldout_fraction,
        valid_fraction=manifest.partition.valid_fraction,
        trained_users=manifest.pairs.get("train", 0),
        valid_users=manifest.pairs.get("valid", 0),
        best_valid_loss=manifest.best_valid_loss,
        command=manifest.command,
    )
    return excluded, info


def narrate_samples(
    model: Model,
    data: TaskData,
    ds: Dataset,
    samples: list[dict[str, Any]],
    cfg: NarratorConfig,
    config: RunConfig,
    *,
    finetuned: FinetuneManifest | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> tuple[Narration, dict[str, float], dict[str, str]]:
    """Write a narrative per test example, score it against the reference, extend ``samples``.

    Each sample gains ``narrated`` (the item's id), ``generated``, ``reference`` and, where it
    applies, ``text_excluded`` or ``narration_error``. Returns the run's narration record, its
    text metrics and the pins of the weights it loaded (narrator, embedder, BERTScore model).
    """
    narrative = config.narrative
    assert narrative is not None
    catalog = data.catalog
    top1 = [catalog.index[s["top_k"][0]] for s in samples]
    if model.generates_text:
        made = _model_texts(model, data.test, narrative, top1, log)
    else:
        made = _narrator_texts(
            data, ds, top1, cfg, config, finetuned=finetuned, progress=progress, log=log
        )
    for i, (sample, ex, item, text, err) in enumerate(
        zip(samples, data.test, made.narrated, made.texts, made.errors, strict=True)
    ):
        sample["narrated"] = catalog[item].asin
        sample["generated"] = None if i in made.excluded else text
        sample["reference"] = ex.references.get(narrative)
        if i in made.excluded:
            sample["text_excluded"] = made.excluded[i]
        if err is not None:
            sample["narration_error"] = err
    scored = [s for s in samples if is_scored(s)]
    if not scored:
        raise RunError(f"dataset '{ds.name}' has no reference '{narrative}' narratives to score")
    log(f"scoring {len(scored)} narratives (BLEU, ROUGE, semantic similarity, BERTScore)")
    embedder = None
    if config.embedder is not None:
        from regen_bench.embedding import get_embedder

        embedder = get_embedder(config.embedder, progress=progress)
    tm = compute_text_metrics(
        [s["reference"] for s in scored],
        [s["generated"] for s in scored],
        embedder=embedder,
        bertscore_model=config.bertscore_model,
        progress=progress,
    )
    weights = {**made.weights, **text_metric_weights(embedder, config.bertscore_model)}
    narration = Narration(
        generator="model" if model.generates_text else "narrator",
        condition=made.condition,
        backend=made.backend,
        llm_model=made.llm_model,
        prompt_version=made.prompt_version,
        config=made.record,
        text_config=tm.config,
        scored=len(scored),
        failed=sum(e is not None for e in made.errors),
        usage=made.usage,
        excluded=len(made.excluded),
        finetune=made.finetune,
        text_users=made.text_users,
    )
    return narration, tm.metrics, weights


__all__ = ["CACHE_FILE", "check_text_users", "model_text_partition", "narrate_samples"]
