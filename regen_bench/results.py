"""Result files: the pydantic schema, the signature, atomic writing and validation.

A run writes ``<name>.json`` (this schema) and ``<name>.samples.jsonl`` (one line per test
example, from which every ranking metric can be recomputed without re-running the model).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from regen_bench.fileio import (
    atomic_write,
    field_error,
    publish_pair,
    read_json,
    remove_stale_temps,
    write_temp,
)
from regen_bench.metrics.ranking import METRIC_NAMES, TIE_POLICIES, metrics_from_counts
from regen_bench.metrics.text import ROUGE_TYPES, lexical_metrics, text_signature
from regen_bench.weights import short

SCHEMA_VERSION: Literal[1] = 1
#: Prefix of metrics computed on the test examples whose target purchase carries a critique.
CRITIQUED_PREFIX = "critiqued/"
#: C0 and C1 control characters (newline, CR, tab, NUL, ...) and DEL.
_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        # Names, versions and keys reach leaderboard pages and one-line messages, where a
        # newline or NUL would split a table row or a line; none is ever legitimate there.
        # Free-form dicts (configs, logs) are not checked: only str, list[str], dict[str, str].
        annotation = cls.model_fields[info.field_name or ""].annotation
        texts: list[tuple[str, str]]  # (where in the field, text)
        if isinstance(value, str):
            texts = [("", value)]
        elif isinstance(value, list) and annotation == list[str]:
            texts = [(f"item {i} ", text) for i, text in enumerate(value)]
        elif isinstance(value, dict) and annotation in (dict[str, str], dict[str, str] | None):
            texts = [(f"key {k!r} ", k) for k in value]
            texts += [(f"value of {k!r} ", v) for k, v in value.items()]
        else:
            return value
        for where, text in texts:
            bad = _CONTROL_CHAR.search(text)
            if bad is not None:
                raise ValueError(
                    f"{where}contains the control character {bad.group()!r}; "
                    "names, versions and keys must be one line of printable text"
                )
        return value


class ModelInfo(_Strict):
    name: str
    plugin: str
    version: str
    config: dict[str, Any]
    parameters: int | None = None


class TaskInfo(_Strict):
    name: str
    version: int
    narrative_type: str | None = None


class DatasetInfo(_Strict):
    name: str
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    split: str
    users: int = Field(ge=0)
    items: int = Field(ge=1)
    interactions: int = Field(ge=0)
    skipped_users: int = Field(ge=0)
    critique_coverage: float = Field(ge=0, le=1)


class Protocol(_Strict):
    ranking: Literal["full"] = "full"
    tie_policy: str
    exclude_history: bool
    test_examples: int = Field(ge=1)
    critiqued_examples: int = Field(ge=0)
    #: Only the first ``limit`` test users were evaluated (a quick-check subset); None = all.
    limit: int | None = Field(default=None, ge=1)

    @field_validator("tie_policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in TIE_POLICIES:
            raise ValueError(f"unknown tie policy '{value}' (one of {', '.join(TIE_POLICIES)})")
        return value


class Environment(_Strict):
    python: str
    platform: str
    numpy: str
    torch: str | None = None
    transformers: str | None = None
    device: str = "cpu"
    #: torch intra-op threads of the run (speed only; numbers do not depend on it).
    threads: int | None = None


class NarratorFinetune(_Strict):
    """The fine-tuned narrator of a run, from its ``narrator-finetune.json``.

    Only users of its ``heldout`` bucket (see :mod:`regen_bench.finetune`) are scored.
    """

    base_model: str
    trainer: str
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    dataset_fingerprint: str
    #: Whether it was fine-tuned on the dataset of this run.
    same_dataset: bool
    salt: str
    heldout_fraction: float = Field(gt=0, lt=1)
    valid_fraction: float = Field(gt=0, lt=1)
    trained_users: int = Field(ge=0)
    valid_users: int = Field(ge=0)
    best_valid_loss: float
    #: The ``narrator finetune`` command that made it (``--out NARRATOR``), when recorded:
    #: with the run's own command, what reproduces the result on another machine.
    command: list[str] | None = None


class TextUsers(_Strict):
    """The user partition of a model that writes narratives itself and trained its text on
    some users' reference narratives (LUMEN's text loss).

    The rule is the fine-tuned narrator's (:class:`regen_bench.finetune.UserPartition`, the
    same salt and fractions give the same buckets): the model's text trained only on users
    outside ``heldout``, and only ``heldout`` users are scored (the others' samples carry
    ``text_excluded``). Ranking metrics stay on every test user.
    """

    method: str
    salt: str
    heldout_fraction: float = Field(gt=0, lt=1)
    #: Training users whose reference narrative reached the text loss.
    trained_users: int = Field(ge=0)


#: Text-metric config keys every narrated result records (see ``text_signature``).
LEXICAL_CONFIG_KEYS = ("bleu", "rouge_headline", "rouge_stemmer", "rouge_version")


class Narration(_Strict):
    """How the narratives of a narrating run (``narrative``, ``conversational``) were produced
    and scored."""

    #: "narrator": a ranking model + an LLM backend; "model": the model writes them itself.
    generator: Literal["narrator", "model"]
    #: Which item each narrative is about: the true next item or the model's top-1.
    condition: Literal["target", "top1"]
    backend: str | None = None
    llm_model: str | None = None
    prompt_version: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    #: Text-metric variants (sacreBLEU signature, ROUGE stemmer, embedder, BERTScore layer).
    text_config: dict[str, str]
    #: Test examples with a reference narrative of this type (only those are scored).
    scored: int = Field(ge=1)
    #: Generations that failed and were scored as empty text.
    failed: int = Field(ge=0)
    usage: dict[str, Any] = Field(default_factory=dict)
    #: Test examples left out of the text metrics: their users trained the narrator, or the
    #: text of a model writing its own (their samples carry ``text_excluded``; nothing was
    #: generated for them).
    excluded: int = Field(default=0, ge=0)
    finetune: NarratorFinetune | None = None
    #: The partition of a model that writes its own narratives (absent: it trained no text on
    #: the dataset's narratives, or it predates the partition).
    text_users: TextUsers | None = None

    @field_validator("text_config")
    @classmethod
    def _text_config_complete(cls, value: dict[str, str]) -> dict[str, str]:
        # The keys text_signature reads: the lexical ones always, the others with their metric.
        needed = list(LEXICAL_CONFIG_KEYS)
        if "embedder" in value:
            needed.append("embedder_model")
        if "bertscore_model" in value:
            needed += ["bertscore_layer", "bertscore_version"]
        missing = [k for k in needed if k not in value]
        if missing:
            raise ValueError(f"lacks {', '.join(repr(k) for k in missing)}")
        return value

    @model_validator(mode="after")
    def _partition_matches_generator(self) -> Narration:
        if self.finetune is not None and self.generator != "narrator":
            raise ValueError("'finetune' describes a narrator: generator must be 'narrator'")
        if self.text_users is not None and self.generator != "model":
            raise ValueError("'text_users' describes a model's own text: generator must be 'model'")
        return self


#: Allowed range of each text metric (BLEU/ROUGE/BERTScore x100, cosine as is).
TEXT_METRIC_RANGES: dict[str, tuple[float, float]] = {
    "bleu": (0.0, 100.0),
    "rouge1": (0.0, 100.0),
    "rouge2": (0.0, 100.0),
    "rougeL": (0.0, 100.0),
    "rougeLsum": (0.0, 100.0),
    "semantic_similarity": (-1.0, 1.0),
    "bertscore_f1": (-100.0, 100.0),
}


class FitReuse(_Strict):
    """Where a run's trained model came from when it reused a stored fit (``run --fit-cache``):
    the entry's file name, when and in how many seconds it was trained, and how long loading
    took. Absent when the run trained its model."""

    file: str
    trained: str
    fit_s: float = Field(ge=0)
    load_s: float = Field(ge=0)


class Tuning(_Strict):
    """How a run's model options were found: ``regen-bench tune`` on the validation split.

    Present only on runs made with ``regen-bench run --config FILE`` where FILE came from
    ``regen-bench tune``, so a reader sees which baselines were tuned and how hard.
    """

    study: str
    #: The searched ranges (option -> {"type": ..., ...}) and the options held fixed.
    search_space: dict[str, dict[str, Any]]
    fixed: dict[str, Any] = Field(default_factory=dict)
    #: Finished trials (complete + pruned); trials killed mid-way are not counted.
    trials: int = Field(ge=1)
    complete_trials: int = Field(ge=1)
    pruned_trials: int = Field(ge=0)
    best_trial: int = Field(ge=0)
    #: The best trial's best-epoch NDCG@10 on the validation split (test targets never read).
    best_valid_ndcg: float = Field(ge=0, le=1)
    sampler: str
    pruner: str
    seed: int
    dataset_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    timeout_min: float | None = None
    optuna_version: str
    #: Options of the tuned config that this run changed with ``--set`` (empty: as tuned).
    overridden: list[str] = Field(default_factory=list)


class Result(_Strict):
    """One (model, task, dataset, narrative type) evaluation."""

    schema_version: Literal[1] = SCHEMA_VERSION
    harness_version: str
    git_commit: str | None = None
    created: str
    model: ModelInfo
    task: TaskInfo
    dataset: DatasetInfo
    protocol: Protocol
    metrics: dict[str, float]
    timings: dict[str, float]
    seeds: dict[str, int]
    environment: Environment
    fit_log: dict[str, Any] = Field(default_factory=dict)
    #: Set when the trained model was reused from the fit cache (absent otherwise).
    fit_reused: FitReuse | None = None
    narration: Narration | None = None
    #: Set when the model options came from ``regen-bench tune`` (absent otherwise).
    tuning: Tuning | None = None
    #: Role (``model.<option>``, ``narrator``, ``embedder``, ``bertscore``) -> the exact
    #: weights it loaded (:func:`regen_bench.weights.pin`); absent when the run loaded none.
    weights: dict[str, str] | None = None
    samples_file: str
    samples_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str

    @field_validator("metrics")
    @classmethod
    def _finite_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        # Every run computes the ranking metrics and the leaderboard reads them; one missing
        # means an edited file, which would otherwise break the leaderboard for everyone.
        missing = [m for m in METRIC_NAMES if m not in value]
        if missing:
            raise ValueError(f"lacks {', '.join(repr(m) for m in missing)}")
        for name, number in value.items():
            base = name.removeprefix(CRITIQUED_PREFIX)
            if base in METRIC_NAMES:
                low, high = 0.0, 1.0
            elif name in TEXT_METRIC_RANGES:
                low, high = TEXT_METRIC_RANGES[name]
            else:
                raise ValueError(f"unknown metric '{name}'")
            # Float slack: sacreBLEU gives 100.00000000000004 for identical texts.
            if not math.isfinite(number) or not low - 1e-9 <= number <= high + 1e-9:
                raise ValueError(
                    f"metric '{name}' = {number} is not a finite value in [{low:g}, {high:g}]"
                )
        return value

    @field_validator("weights")
    @classmethod
    def _pins_well_formed(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # A run that loaded no weights writes no key at all (see _result_bytes).
        if value is not None and not value:
            raise ValueError("is empty (leave the key out when a run loaded no weights)")
        for role, pinned in (value or {}).items():
            ref, _, rev = pinned.rpartition("@")
            if not role or not ref or not rev:
                raise ValueError(f"value of {role!r} = {pinned!r} is not 'reference@revision'")
        return value

    @model_validator(mode="after")
    def _narration_matches_task(self) -> Result:
        if (self.narration is None) != (self.task.narrative_type is None):
            raise ValueError(
                "a result has a 'narration' block exactly when it has a narrative type"
            )
        return self

    @model_validator(mode="after")
    def _required_metrics(self) -> Result:
        # The text metrics a narrated run always computes (ranking ones: see _finite_in_range).
        missing = [m for m in required_metrics(self.narration) if m not in self.metrics]
        if missing:
            raise ValueError(f"metrics lack {', '.join(repr(m) for m in missing)}")
        return self


def required_metrics(narration: Narration | None) -> list[str]:
    """The metrics every result with this narration block (None: ranking only) carries."""
    names = list(METRIC_NAMES)
    if narration is not None:
        names += ["bleu", *ROUGE_TYPES]
        if "embedder" in narration.text_config:
            names.append("semantic_similarity")
        if "bertscore_model" in narration.text_config:
            names.append("bertscore_f1")
    return names


#: :func:`text_users_part` of a narration that scores every test user with a reference.
TEXT_USERS_ALL = "text-users:all"


def text_users_part(narration: Narration) -> str:
    """Which users the text metrics score: ``text-users:heldout@<salt>/<fraction>`` for the
    held-out bucket of a partition (the same part for a fine-tuned narrator and a model that
    trained its own text, so their columns compare), else :data:`TEXT_USERS_ALL`."""
    users = narration.finetune or narration.text_users
    if users is None:
        return TEXT_USERS_ALL
    return f"text-users:heldout@{users.salt}/{users.heldout_fraction:g}"


def signature(result: Result) -> str:
    """sacreBLEU-style string naming everything that must agree for two numbers to compare."""
    major = result.harness_version.split(".")[0]
    parts = [
        f"regen-bench:{major}",
        f"data:{result.dataset.name}@{result.dataset.fingerprint[:12]}",
        f"split:{result.dataset.split}",
        f"task:{result.task.name}.v{result.task.version}",
        f"rank:{result.protocol.ranking}",
        f"ties:{result.protocol.tie_policy}",
        f"hist:{'excluded' if result.protocol.exclude_history else 'kept'}",
    ]
    if result.protocol.limit is not None:
        parts.append(f"subset:first{result.protocol.limit}")
    if result.task.narrative_type:
        parts.append(f"narr:{result.task.narrative_type}")
    if result.narration is not None:
        n = result.narration
        gen = n.generator if n.backend is None else f"{n.backend}/{n.llm_model}"
        prompt = f"|prompt:v{n.prompt_version}" if n.prompt_version is not None else ""
        parts.append(f"gen:{gen}|cond:{n.condition}{prompt}")
        users = text_users_part(n)
        if users != TEXT_USERS_ALL:
            parts.append(users)
        parts.append(text_signature(n.text_config))
    if result.weights:
        parts.append(f"weights:{short(result.weights)}")
    return "|".join(parts)


def _samples_lines(samples: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for s in samples:
        yield (json.dumps(s, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


def _result_bytes(result: Result) -> bytes:
    # Pretty, sorted keys: stable diffs. An untuned run writes no "tuning" key and a run that
    # loaded no weights no "weights" key, so its file reads as it did before they existed.
    exclude = {k for k in ("tuning", "weights", "fit_reused") if getattr(result, k) is None}
    doc = result.model_dump(mode="json", exclude=exclude or None)
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_samples(path: Path, samples: Iterable[dict[str, Any]]) -> str:
    """Write the per-sample jsonl atomically; return its sha256 (alone: a run writes the pair
    with :func:`write_result_pair`)."""
    return atomic_write(path, _samples_lines(samples))


def write_result(path: Path, result: Result) -> None:
    """Write the result JSON atomically (alone: a run writes the pair with
    :func:`write_result_pair`)."""
    atomic_write(path, [_result_bytes(result)])


def write_result_pair(
    result_path: Path,
    samples_path: Path,
    samples: Iterable[dict[str, Any]],
    make_result: Callable[[str, str], Result],
) -> Result:
    """Write a result and its per-sample file so that ``validate`` passes on whatever is left.

    Both are written in full to hidden temp files first; ``make_result(samples_file,
    samples_sha256)`` builds the result once the samples' hash is known. Then the old result
    is removed, the samples renamed into place and the result last
    (:func:`~regen_bench.fileio.publish_pair`). Interrupted before that (Ctrl-C, or killed),
    the old pair stays as it was; Ctrl-C during it is held back until both are in place; a
    process killed during it leaves at most a samples file with no result, which nothing
    reads and the next run replaces. Temp files of killed runs are removed first.
    """
    for path in (samples_path, result_path):
        remove_stale_temps(path)
    samples_tmp, sha = write_temp(samples_path, _samples_lines(samples), durable=True)
    try:
        result = make_result(samples_path.name, sha)
        result_tmp, _ = write_temp(result_path, [_result_bytes(result)], durable=True)
    except BaseException:
        samples_tmp.unlink(missing_ok=True)
        raise
    publish_pair((samples_tmp, samples_path), (result_tmp, result_path))
    return result


class ResultError(ValueError):
    """A result file is invalid; the message names the file and the problem."""


def _metric_means(samples: list[dict[str, Any]], policy: str) -> dict[str, float]:
    greater = np.array([s["greater"] for s in samples], dtype=np.int64)
    ties = np.array([s["ties"] for s in samples], dtype=np.int64)
    per = metrics_from_counts(greater, ties, policy)
    return {name: float(per[name].mean()) for name in METRIC_NAMES}


def recompute_metrics(samples: list[dict[str, Any]], policy: str) -> dict[str, float]:
    """Ranking metrics from per-sample counts (all examples, and the critiqued subset)."""
    metrics = _metric_means(samples, policy)
    critiqued = [s for s in samples if s.get("has_critique")]
    if critiqued:
        metrics.update(
            {CRITIQUED_PREFIX + k: v for k, v in _metric_means(critiqued, policy).items()}
        )
    return metrics


def load_result(path: str | os.PathLike[str], check_samples: bool = True) -> Result:
    """Read and fully validate a result file; raise ResultError naming the problem."""
    path = Path(path)
    raw = read_json(path, ResultError)
    try:
        result = Result.model_validate(raw)
    except ValidationError as exc:
        raise ResultError(f"{path}: {field_error(exc)} ({exc.error_count()} problem(s))") from None
    expected = signature(result)
    if result.signature != expected:
        raise ResultError(
            f"{path}: signature '{result.signature}' does not match its fields "
            f"(expected '{expected}')"
        )
    if check_samples:
        _check_samples(path, result)
    return result


def _check_samples(path: Path, result: Result) -> None:
    samples_path = path.parent / result.samples_file
    if Path(result.samples_file).name != result.samples_file:
        raise ResultError(f"{path}: samples_file must be a plain file name")
    try:
        data = samples_path.read_bytes()
    except FileNotFoundError:
        raise ResultError(f"{path}: per-sample file {samples_path} is missing") from None
    if hashlib.sha256(data).hexdigest() != result.samples_sha256:
        raise ResultError(f"{samples_path}: sha256 differs from the result file's samples_sha256")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultError(f"{samples_path}: invalid UTF-8 at byte {exc.start}") from None
    # The target is never counted, so at most items - 1 items rank above or level with it.
    max_counted = result.dataset.items - 1
    samples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{samples_path}:{lineno}"
        try:
            sample = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResultError(f"{where}: bad sample (not valid JSON: {exc})") from None
        except RecursionError:
            # The stdlib decoder recurses per nesting level; a hostile "[[[[..." line would
            # otherwise escape as a traceback.
            raise ResultError(f"{where}: bad sample (JSON nested too deeply)") from None
        if not isinstance(sample, dict):
            raise ResultError(f"{where}: bad sample (a JSON object is expected)")
        for key in ("greater", "ties"):
            value = sample.get(key)
            if value is None:
                raise ResultError(f"{where}: bad sample (field '{key}' is missing)")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ResultError(
                    f"{where}: field '{key}' = {value!r} is not a non-negative integer"
                )
        if sample["greater"] + sample["ties"] > max_counted:
            raise ResultError(
                f"{where}: greater + ties = {sample['greater'] + sample['ties']} but the "
                f"catalog has {result.dataset.items} items (at most {max_counted} besides "
                "the target)"
            )
        samples.append(sample)
    if len(samples) != result.protocol.test_examples:
        raise ResultError(
            f"{samples_path}: {len(samples)} samples, result says {result.protocol.test_examples}"
        )
    again = recompute_metrics(samples, result.protocol.tie_policy)
    if result.narration is not None:
        _check_text_users(samples_path, result.narration, samples)
        again.update(recompute_lexical(samples_path, samples))
    for name, value in again.items():
        if name in result.metrics and abs(result.metrics[name] - value) > 1e-9:
            raise ResultError(
                f"{path}: metric '{name}' = {result.metrics[name]} but the "
                f"per-sample file gives {value}"
            )


def is_scored(sample: dict[str, Any]) -> bool:
    """Whether a per-sample record enters the text metrics: it has a reference and its user
    is not left out (``text_excluded``: the narrator's or the model's own training users)."""
    return sample.get("reference") is not None and not sample.get("text_excluded")


def _check_text_users(
    samples_path: Path, narration: Narration, samples: list[dict[str, Any]]
) -> None:
    """The users left out of the text metrics are exactly those the recorded partition puts
    outside ``heldout`` (none without a partition), and the counts say so: a file cannot
    drop the users its text scores worst on."""
    from regen_bench.finetune_manifest import UserPartition

    users = narration.finetune or narration.text_users
    # The held-out bucket is ``position < heldout_fraction`` whatever the valid fraction.
    rule = UserPartition(users.salt) if users else None
    excluded = scored = failed = 0
    for lineno, sample in enumerate(samples, start=1):
        failed += "narration_error" in sample
        where = f"{samples_path}:{lineno}"
        user = sample.get("user_id")
        out = bool(sample.get("text_excluded"))
        if rule is None:
            if out:
                raise ResultError(
                    f"{where}: 'text_excluded' but the narration records no user partition"
                )
        elif not isinstance(user, str):
            raise ResultError(f"{where}: bad sample (field 'user_id' must be text)")
        elif users is not None and out == (rule.position(user) < users.heldout_fraction):
            state = "left out of" if out else "scored in"
            raise ResultError(
                f"{where}: user '{user}' {state} the text metrics, but the partition "
                f"(salt '{users.salt}', held-out fraction {users.heldout_fraction}) puts it "
                f"{'in' if out else 'outside'} the held-out bucket"
            )
        if out:
            excluded += 1
            if sample.get("generated") is not None:
                raise ResultError(f"{where}: a left-out user has a generated text")
        scored += is_scored(sample)
    for name, recorded, found in (
        ("excluded", narration.excluded, excluded),
        ("scored", narration.scored, scored),
        ("failed", narration.failed, failed),
    ):
        if recorded != found:
            raise ResultError(
                f"{samples_path}: narration.{name} = {recorded} but the per-sample file has {found}"
            )


def recompute_lexical(samples_path: Path, samples: list[dict[str, Any]]) -> dict[str, float]:
    """BLEU and ROUGE again from the per-sample texts of the scored users (the model-based
    metrics need models); ``samples_path`` only names the file in errors."""
    pairs = [(s.get("reference"), s.get("generated")) for s in samples]
    # (``r is not None`` is part of is_scored; repeated so the type checker sees it.)
    scored = [
        (r, g) for (r, g), s in zip(pairs, samples, strict=True) if r is not None and is_scored(s)
    ]
    for lineno, (_, g) in enumerate(pairs, start=1):
        if g is not None and not isinstance(g, str):
            raise ResultError(f"{samples_path}:{lineno}: 'generated' must be text")
    if not scored:
        raise ResultError(f"{samples_path}: narration recorded but no sample has a reference")
    refs = [r for r, _ in scored]
    hyps = [g for _, g in scored]
    metrics = lexical_metrics(refs, hyps, n_jobs=1, progress=False).metrics
    return {k: v for k, v in metrics.items() if k in ("bleu", *ROUGE_TYPES)}
