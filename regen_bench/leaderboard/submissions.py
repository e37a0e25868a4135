"""Submissions: validating result files and accepting them into the submissions folder.

Layout of a submissions folder (``submissions/`` by default)::

    submissions/<dataset>/leaderboard.json                    the leaderboard's spec
    submissions/<dataset>/<task>/<model>[__<narrative>].json  an accepted result file
    submissions/<dataset>/<task>/<model>[__<narrative>].samples.jsonl

Every file is data only: JSON is parsed, never executed or imported. A submission is accepted
only when it passes :func:`regen_bench.results.load_result` (schema, known task and metric names,
finite values in range, signature equal to its fields, per-sample hash and metrics recomputed
from the per-sample file), sits at exactly the path its own fields give, is no symlink, stays
under the size limits, agrees with its leaderboard's spec (dataset fingerprint, split,
ranking protocol) and, where its dataset is available here (the embedded ``mini`` always is),
with the data: the test users, targets and critique flags it claims
(:mod:`~regen_bench.leaderboard.dataset_check`).

**Comparability key.** Two numbers go into one table only when the parts of their signature
that define the measurement agree: harness major version, dataset name and fingerprint, split,
ranking, tie policy, history policy and evaluated subset (the *protocol key*), and, for
narrative metrics, the users the text is scored on (every test user, or the held-out bucket
of a recorded partition) and the text-metric variants (sacreBLEU signature, ROUGE stemmer,
embedder, BERTScore model): the *text key*. The parts that describe *what* is compared —
model, task and task version, narrative type, and how narratives were generated (backend, LLM,
condition, prompt version) — label rows and columns instead. Ranking-only results (no text
key) join every table of their protocol key; narrative results with different text keys get
separate tables.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.fileio import atomic_write, publish_pair, remove_stale_temps, write_temp
from regen_bench.leaderboard.verify import (
    VERIFIED_SUFFIX,
    VerificationRecord,
    load_record,
    record_path,
)
from regen_bench.metrics.text import text_signature
from regen_bench.results import Result, ResultError, load_result, text_users_part
from regen_bench.tasks import SPLIT, TASKS

if TYPE_CHECKING:
    from regen_bench.leaderboard.dataset_check import DatasetCheck

DEFAULT_SUBMISSIONS = "submissions"
SPEC_FILE = "leaderboard.json"
RESULT_SUFFIX = ".json"
SAMPLES_SUFFIX = ".samples.jsonl"
#: Names that become path parts (dataset, task, model): no separators, no dot-dot, no hidden
#: files; ``__`` is reserved as the model/narrative separator of file names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")
DEFAULT_MAX_RESULT_BYTES = 5_000_000
DEFAULT_MAX_SAMPLES_BYTES = 200_000_000


class SubmissionError(ValueError):
    """A submission (or the submissions folder) is invalid; the message names file and problem."""


class LeaderboardSpec(BaseModel):
    """``submissions/<dataset>/leaderboard.json``: what every result of that leaderboard shares."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    split: str = SPLIT
    ranking: Literal["full"] = "full"
    tie_policy: str = "pessimistic"
    exclude_history: bool = False
    #: Accept ``--limit N`` runs (shown in their own tables: the subset is in the key).
    allow_subsets: bool = False
    max_result_bytes: int = Field(default=DEFAULT_MAX_RESULT_BYTES, ge=1)
    max_samples_bytes: int = Field(default=DEFAULT_MAX_SAMPLES_BYTES, ge=1)

    @classmethod
    def for_result(cls, result: Result) -> LeaderboardSpec:
        """The spec a new leaderboard gets from its first submission."""
        return cls(
            dataset=result.dataset.name,
            fingerprint=result.dataset.fingerprint,
            split=result.dataset.split,
            tie_policy=result.protocol.tie_policy,
            exclude_history=result.protocol.exclude_history,
        )


@dataclass(frozen=True)
class Submission:
    """An accepted result file and its place in the submissions folder."""

    path: Path
    result: Result
    #: Whether it was checked against its dataset (None: not asked for).
    dataset_check: DatasetCheck | None = None
    #: Its reproduction by ``leaderboard verify --record`` (None: not reproduced yet).
    reproduction: VerificationRecord | None = None

    @property
    def key(self) -> tuple[str, str]:
        return comparability_key(self.result)


def protocol_key(result: Result) -> str:
    """The signature parts that define the ranking measurement (see the module docstring)."""
    parts = [
        f"regen-bench:{result.harness_version.split('.')[0]}",
        f"data:{result.dataset.name}@{result.dataset.fingerprint[:12]}",
        f"split:{result.dataset.split}",
        f"rank:{result.protocol.ranking}",
        f"ties:{result.protocol.tie_policy}",
        f"hist:{'excluded' if result.protocol.exclude_history else 'kept'}",
    ]
    if result.protocol.limit is not None:
        parts.append(f"subset:first{result.protocol.limit}")
    return "|".join(parts)


def comparability_key(result: Result) -> tuple[str, str]:
    """(protocol key, text key); the text key is "" for results without narratives.

    The text key names the scored users too: text metrics over other users (all of them, or
    another held-out bucket) never share a column with these."""
    n = result.narration
    text = f"{text_users_part(n)}|{text_signature(n.text_config)}" if n else ""
    return protocol_key(result), text


def result_stem(result: Result) -> str:
    """``<model>[__<narrative>]``: the file name a result must have (without suffix)."""
    narrative = result.task.narrative_type
    return result.model.name + (f"__{narrative}" if narrative else "")


# -- validation ----------------------------------------------------------------------------


def _check_name(kind: str, name: str, where: str) -> None:
    if not NAME_RE.match(name) or ".." in name or "__" in name:
        raise SubmissionError(
            f"{where}: {kind} name '{name}' is not allowed (letters, digits, '.', '_', '+', '-'; "
            "no '..' or '__', no leading dot)"
        )


def _regular_size(path: Path, limit: int, what: str) -> int:
    """Size of ``path``; it must be a regular file (no symlink) within ``limit`` bytes."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SubmissionError(f"{path}: {what} is missing") from None
    if stat.S_ISLNK(info.st_mode):
        raise SubmissionError(f"{path}: {what} is a symlink (only plain files are accepted)")
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError(f"{path}: {what} is not a plain file")
    if info.st_size > limit:
        raise SubmissionError(
            f"{path}: {what} is {info.st_size} bytes, over the limit of {limit} bytes"
        )
    return info.st_size


def _check_content(result: Result, where: str, spec: LeaderboardSpec | None) -> None:
    """Names, task, narrative and protocol of an already schema-valid result."""
    task = TASKS.get(result.task.name)
    if task is None:
        raise SubmissionError(f"{where}: unknown task '{result.task.name}'")
    if result.task.version != task.version:
        raise SubmissionError(
            f"{where}: task '{task.name}' version {result.task.version}, this harness defines "
            f"version {task.version}"
        )
    narrative = result.task.narrative_type
    if narrative is not None and narrative not in NARRATIVE_TYPES:
        raise SubmissionError(f"{where}: unknown narrative type '{narrative}'")
    if task.generates != (narrative is not None):
        raise SubmissionError(f"{where}: task '{task.name}' and narrative type do not agree")
    _check_name("dataset", result.dataset.name, where)
    _check_name("model", result.model.name, where)
    expected_samples = result_stem(result) + SAMPLES_SUFFIX
    if result.samples_file != expected_samples:
        raise SubmissionError(
            f"{where}: samples_file is '{result.samples_file}', expected '{expected_samples}'"
        )
    if spec is None:
        return
    checks = [
        ("dataset name", result.dataset.name, spec.dataset),
        ("dataset fingerprint", result.dataset.fingerprint, spec.fingerprint),
        ("split", result.dataset.split, spec.split),
        ("ranking", result.protocol.ranking, spec.ranking),
        ("tie policy", result.protocol.tie_policy, spec.tie_policy),
        ("exclude_history", result.protocol.exclude_history, spec.exclude_history),
    ]
    for label, got, want in checks:
        if got != want:
            raise SubmissionError(
                f"{where}: {label} '{got}' differs from the leaderboard's '{want}' "
                f"(signature '{result.signature}')"
            )
    if result.protocol.limit is not None and not spec.allow_subsets:
        raise SubmissionError(
            f"{where}: a --limit {result.protocol.limit} subset run; this leaderboard accepts "
            "full test-split runs only"
        )


def _load(
    path: Path,
    spec: LeaderboardSpec | None,
    *,
    against_data: bool = True,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> tuple[Result, DatasetCheck | None]:
    """Size checks first (nothing big is read), then the full result validation, then (with
    ``against_data``) the check against the dataset where it is available."""
    max_result = spec.max_result_bytes if spec else DEFAULT_MAX_RESULT_BYTES
    max_samples = spec.max_samples_bytes if spec else DEFAULT_MAX_SAMPLES_BYTES
    _regular_size(path, max_result, "result file")
    try:
        result = load_result(path, check_samples=False)
    except ResultError as exc:
        raise SubmissionError(str(exc)) from None
    _check_content(result, str(path), spec)
    _regular_size(path.parent / result.samples_file, max_samples, "per-sample file")
    try:
        load_result(path, check_samples=True)
    except ResultError as exc:
        raise SubmissionError(str(exc)) from None
    if not against_data:
        return result, None
    # Imported here: it imports this module (SubmissionError) and loads datasets.
    from regen_bench.leaderboard.dataset_check import check_result_dataset

    return result, check_result_dataset(path, result, dataset, data_dir)


def validate_result(
    path: str | os.PathLike[str], *, dataset: str | None = None, data_dir: str | None = None
) -> tuple[Result, DatasetCheck]:
    """Validate a result file wherever it is (as ``submit`` does before copying it), and
    against its dataset where that is available: ``dataset`` (a registered name or a file)
    given explicitly, else the registered dataset of the result's name.

    Returns the result and whether the dataset check ran; SubmissionError on any problem.
    """
    result, checked = _load(Path(path), None, dataset=dataset, data_dir=data_dir)
    assert checked is not None
    return result, checked


def load_spec(dataset_dir: Path) -> LeaderboardSpec:
    """Read ``<dataset_dir>/leaderboard.json``; SubmissionError naming the problem."""
    path = dataset_dir / SPEC_FILE
    _regular_size(path, 100_000, "leaderboard spec")
    try:
        spec = LeaderboardSpec.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise SubmissionError(f"{path}: field '{where}': {first['msg']}") from None
    if spec.dataset != dataset_dir.name:
        raise SubmissionError(
            f"{path}: dataset '{spec.dataset}' but the folder is '{dataset_dir.name}'"
        )
    return spec


def validate_submission(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    spec: LeaderboardSpec | None = None,
    *,
    against_data: bool = True,
) -> Submission:
    """Validate one accepted result file inside the submissions folder ``root`` (and against
    its dataset, where that is registered here, unless ``against_data`` is False)."""
    path, root = Path(path), Path(root)
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise SubmissionError(f"{path}: not inside the submissions folder {root}") from None
    parts = rel.parts
    for part in parts:
        if part in ("", ".", "..") or part.startswith(".") or "/" in part or "\\" in part:
            raise SubmissionError(f"{path}: path part '{part}' is not allowed")
    if len(parts) != 3 or not parts[2].endswith(RESULT_SUFFIX):
        raise SubmissionError(
            f"{path}: expected <dataset>/<task>/<model>[__<narrative>].json under {root}"
        )
    for depth in (1, 2):
        folder = root.joinpath(*parts[:depth])
        if folder.is_symlink():
            raise SubmissionError(f"{folder}: folder is a symlink (only plain folders)")
    if spec is None:
        spec = load_spec(root / parts[0])
    result, checked = _load(path, spec, against_data=against_data)
    expected = (result.dataset.name, result.task.name, result_stem(result) + RESULT_SUFFIX)
    if parts != expected:
        raise SubmissionError(
            f"{path}: the result's own fields put it at {'/'.join(expected)}, not {rel.as_posix()}"
        )
    return Submission(path, result, checked)


def collect(root: str | os.PathLike[str]) -> tuple[list[Submission], list[str]]:
    """Every submission under ``root`` (sorted) and one message per invalid file or folder."""
    root = Path(root)
    subs: list[Submission] = []
    errors: list[str] = []
    if not root.is_dir() or root.is_symlink():
        return subs, [f"{root}: submissions folder is missing (or a symlink)"]

    def entries(folder: Path) -> list[Path]:
        return sorted(folder.iterdir(), key=lambda p: p.name)

    for ds_dir in entries(root):
        if ds_dir.is_symlink() or not ds_dir.is_dir():
            if ds_dir.name not in ("README.md", ".gitkeep"):
                errors.append(f"{ds_dir}: unexpected entry (one folder per dataset)")
            continue
        try:
            spec = load_spec(ds_dir)
        except SubmissionError as exc:
            errors.append(str(exc))
            continue
        for task_dir in entries(ds_dir):
            if task_dir.name == SPEC_FILE:
                continue
            if task_dir.is_symlink() or not task_dir.is_dir():
                errors.append(f"{task_dir}: unexpected entry (one folder per task)")
                continue
            results = {
                p.name
                for p in task_dir.iterdir()
                if p.name.endswith(RESULT_SUFFIX) and not p.name.endswith(VERIFIED_SUFFIX)
            }
            for file in entries(task_dir):
                name = file.name
                if name.endswith(VERIFIED_SUFFIX):
                    if name.removesuffix(VERIFIED_SUFFIX) + RESULT_SUFFIX not in results:
                        errors.append(f"{file}: verification record without its result file")
                    continue
                if name.endswith(SAMPLES_SUFFIX):
                    if name.removesuffix(SAMPLES_SUFFIX) + RESULT_SUFFIX not in results:
                        errors.append(f"{file}: per-sample file without its result file")
                    continue
                if not name.endswith(RESULT_SUFFIX):
                    errors.append(f"{file}: unexpected file (results and per-sample files only)")
                    continue
                try:
                    sub = validate_submission(file, root, spec)
                    subs.append(replace(sub, reproduction=load_record(file)))
                except SubmissionError as exc:
                    errors.append(str(exc))
                except ValueError as exc:  # an invalid verification record
                    errors.append(str(exc))
    return subs, errors


def submit(
    result_path: str | os.PathLike[str],
    root: str | os.PathLike[str] = DEFAULT_SUBMISSIONS,
    *,
    replace: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> Path:
    """Validate a result file (and its per-sample file) and copy both into ``root``.

    The result is checked against its dataset where that is available (``dataset``, a
    registered name or a file, else the registered dataset of the result's name); ``log``
    says whether it was. A dataset's first submission creates its leaderboard spec from the
    result's protocol.
    """
    src, root = Path(result_path), Path(root)
    result, checked = _load(src, None, dataset=dataset, data_dir=data_dir)
    assert checked is not None
    ds_dir = root / result.dataset.name
    spec_path = ds_dir / SPEC_FILE
    if spec_path.exists() or spec_path.is_symlink():
        spec = load_spec(ds_dir)
        result, _ = _load(src, spec, against_data=False)  # the data was checked just above
    else:
        spec = LeaderboardSpec.for_result(result)
        text = json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        atomic_write(spec_path, [text.encode()])
        log(f"created {spec_path} (a new leaderboard for dataset '{spec.dataset}')")
    dest_dir = ds_dir / result.task.name
    dest = dest_dir / (result_stem(result) + RESULT_SUFFIX)
    if dest.is_symlink() or dest_dir.is_symlink():
        raise SubmissionError(f"{dest}: destination is a symlink")
    if dest.exists() and not replace:
        raise SubmissionError(f"{dest} already exists (use --replace to overwrite it)")
    samples_src = src.parent / result.samples_file
    # Written as a pair (see publish_pair): an interrupted submit never leaves an old result
    # beside new samples, nor a result whose samples are missing.
    samples_dest = dest_dir / result.samples_file
    for path in (samples_dest, dest):
        remove_stale_temps(path)
    with samples_src.open("rb") as fh:
        samples_tmp, _ = write_temp(samples_dest, iter(lambda: fh.read(1 << 20), b""), durable=True)
    try:
        result_tmp, _ = write_temp(dest, [src.read_bytes()], durable=True)
    except BaseException:
        samples_tmp.unlink(missing_ok=True)
        raise
    stale = record_path(dest)
    if stale.is_file() and not stale.is_symlink():
        # A reproduction of the result this one replaces says nothing about the new bytes.
        stale.unlink()
    publish_pair((samples_tmp, samples_dest), (result_tmp, dest))
    # The copy, byte for byte what was checked against the data above.
    validate_submission(dest, root, spec, against_data=False)
    log(checked.describe())
    return dest
