"""Checking a result against its dataset: the test users, targets and critique flags it claims.

:func:`regen_bench.results.load_result` checks a result file on its own (schema, signature,
per-sample hash, metrics recomputed from the per-sample counts). A consistent forgery passes
that: keep 10 of 2,000 samples and recompute the metrics, or flip ``has_critique`` flags. With
the dataset at hand, :func:`check_against_dataset` rebuilds the test examples of the result's
task (:func:`regen_bench.tasks.build_task`, the first ``protocol.limit`` of them for a
``--limit`` run, as the runner takes them) and requires, line by line, that

- the sample user ids are exactly those test users (none missing, none extra, none twice);
- each ``target`` is the user's true next item and ``has_critique`` what the data says;
- ``greater`` and ``ties`` are integers >= 0 with ``greater + ties`` below the catalog size;
- ``protocol.test_examples``, ``protocol.critiqued_examples`` and the dataset block's sizes
  agree with the samples and the data.

What it cannot see: rank counts that are consistent with the data but were not produced by
the model (that takes re-running the model).

:func:`locate_dataset` finds the dataset of a result: a ``--dataset`` given explicitly (its
fingerprint must be the result's), else the registered dataset of the result's name (the
embedded ``mini`` always is), used only when its fingerprint is the result's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regen_bench.data.dataset import Dataset
from regen_bench.leaderboard.submissions import SubmissionError, load_spec
from regen_bench.plugins import PluginError, get_plugin_manager
from regen_bench.resolve import resolve_dataset
from regen_bench.results import Result
from regen_bench.tasks import SPLIT, TASKS, build_task

#: Missing users named in a message (the count says how many there are in all).
_NAMED = 3


@dataclass(frozen=True)
class DatasetCheck:
    """Whether a result was checked against its dataset, and what with (or why not)."""

    ran: bool
    #: "dataset mini (fingerprint 4e2675047643...)" when it ran, else why it did not.
    detail: str

    def describe(self) -> str:
        """The line commands print: whether the dataset check ran."""
        if self.ran:
            return f"checked against {self.detail}"
        return f"dataset not available ({self.detail}): checked the file only"


@dataclass(frozen=True)
class Expected:
    """A user's test example as the data defines it."""

    target: str
    has_critique: bool


#: (fingerprint, task, narrative type) -> the test examples in runner order; a fingerprint is
#: the content's sha256, so an entry never goes stale. Bounded: a few per process at most.
_EXPECTED: dict[tuple[str, str, str | None], list[tuple[str, Expected]]] = {}
_EXPECTED_MAX = 4


def expected_examples(
    dataset: Dataset, task: str, narrative: str | None = None
) -> list[tuple[str, Expected]]:
    """(user id, target and critique flag) of every test example of ``task``, in the order the
    runner evaluates them (``--limit N`` takes the first N)."""
    key = (dataset.fingerprint, task, narrative)
    cached = _EXPECTED.get(key)
    if cached is not None:
        return cached
    data = build_task(dataset, task, narrative)
    catalog = dataset.catalog
    # As the runner's evaluate step: a sample is critiqued when the user's last purchase (the
    # test target) carries a critique, whatever the task shows the model.
    last_critique = {u.user_id: u.critiques[-1] is not None for u in dataset.users}
    examples = [
        (ex.user_id, Expected(catalog[ex.target].asin, last_critique[ex.user_id]))
        for ex in data.test
    ]
    if len(_EXPECTED) >= _EXPECTED_MAX:
        _EXPECTED.pop(next(iter(_EXPECTED)))
    _EXPECTED[key] = examples
    return examples


def read_samples(path: Path, result: Result) -> list[dict[str, Any]]:
    """The per-sample records of a result that :func:`load_result` has already accepted.

    The bytes are hashed again, so the file checked is the file that was validated.
    """
    samples_path = path.parent / result.samples_file
    try:
        data = samples_path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"{path}: per-sample file {samples_path}: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != result.samples_sha256:
        raise SubmissionError(
            f"{samples_path}: sha256 differs from the result file's samples_sha256"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{samples_path}: invalid UTF-8 at byte {exc.start}") from None
    samples = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            sample = json.loads(line)
        except (ValueError, RecursionError):
            raise SubmissionError(f"{samples_path}:{lineno}: bad sample (not valid JSON)") from None
        if not isinstance(sample, dict):
            raise SubmissionError(
                f"{samples_path}:{lineno}: bad sample (a JSON object is expected)"
            )
        samples.append(sample)
    return samples


def _check_dataset_block(path: Path, result: Result, dataset: Dataset, skipped: int) -> None:
    """The sizes the result records for its dataset are the dataset's."""
    info = result.dataset
    if info.split != SPLIT:
        raise SubmissionError(
            f"{path}: field 'dataset.split' = '{info.split}', this harness splits '{SPLIT}'"
        )
    lengths = dataset.lengths()
    actual: list[tuple[str, int | float, int | float]] = [
        ("items", info.items, len(dataset.catalog)),
        ("users", info.users, len(dataset.users)),
        ("interactions", info.interactions, int(lengths.sum())),
        ("skipped_users", info.skipped_users, skipped),
        ("critique_coverage", info.critique_coverage, dataset.critique_coverage()),
    ]
    for field, got, want in actual:
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            raise SubmissionError(
                f"{path}: field 'dataset.{field}' = {got} but dataset '{dataset.name}' has {want}"
            )


def check_against_dataset(
    path: str | os.PathLike[str],
    result: Result,
    samples: list[dict[str, Any]],
    dataset: Dataset,
) -> None:
    """Check a result's samples against the test examples of its dataset (see the module
    docstring); raise :class:`SubmissionError`, one line naming the result file, the sample
    line and the field, at the first problem."""
    path = Path(path)
    if dataset.fingerprint != result.dataset.fingerprint:
        raise SubmissionError(
            f"{path}: the result records dataset fingerprint "
            f"{result.dataset.fingerprint[:12]}..., {dataset.source or dataset.name} has "
            f"{dataset.fingerprint[:12]}...: it is not the result's dataset (not checked "
            "against it)"
        )
    if result.task.name not in TASKS:
        raise SubmissionError(f"{path}: unknown task '{result.task.name}'")
    try:
        all_examples = expected_examples(dataset, result.task.name, result.task.narrative_type)
    except ValueError as exc:  # a narrative type the task does not take
        raise SubmissionError(f"{path}: {exc}") from None
    skipped = len(dataset.users) - len(all_examples)
    _check_dataset_block(path, result, dataset, skipped)
    limit = result.protocol.limit
    examples = all_examples if limit is None else all_examples[:limit]
    scope = "test users" if limit is None else f"first {limit} test users (--limit {limit})"
    in_split = {user_id for user_id, _ in all_examples}
    # A user id could repeat in a dataset file: the k-th sample of a user matches the k-th
    # example, as the runner writes them in order.
    wanted: dict[str, list[Expected]] = {}
    for user_id, ex in examples:
        wanted.setdefault(user_id, []).append(ex)
    seen: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    max_counted = len(dataset.catalog) - 1
    name = f"dataset '{dataset.name}'"
    samples_file = result.samples_file
    critiqued = 0
    for lineno, sample in enumerate(samples, start=1):
        where = f"{path}: {samples_file} line {lineno}"
        user = sample.get("user_id")
        if not isinstance(user, str):
            raise SubmissionError(f"{where}: field 'user_id' = {user!r} is not a user id")
        if user not in wanted:
            why = f"is beyond the {scope}" if user in in_split else f"is not a test user of {name}"
            raise SubmissionError(f"{where}: field 'user_id' = '{user}' {why}")
        occurrence = seen[user]
        if occurrence >= len(wanted[user]):
            raise SubmissionError(
                f"{where}: field 'user_id' = '{user}' repeats line {first_line[user]} "
                "(each test user has one sample)"
            )
        seen[user] += 1
        first_line.setdefault(user, lineno)
        truth = wanted[user][occurrence]
        target = sample.get("target")
        if target != truth.target:
            raise SubmissionError(
                f"{where}: field 'target' = {target!r} but the true next item of user "
                f"'{user}' in {name} is '{truth.target}'"
            )
        flag = sample.get("has_critique")
        if not isinstance(flag, bool):
            raise SubmissionError(f"{where}: field 'has_critique' = {flag!r} is not true or false")
        if flag != truth.has_critique:
            data_says = "carries a critique" if truth.has_critique else "carries no critique"
            raise SubmissionError(
                f"{where}: field 'has_critique' = {json.dumps(flag)} but the target purchase "
                f"of user '{user}' {data_says} in {name}"
            )
        critiqued += flag
        for key in ("greater", "ties"):
            value = sample.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SubmissionError(f"{where}: field '{key}' = {value!r} is not an integer >= 0")
        counted = sample["greater"] + sample["ties"]
        if counted > max_counted:
            raise SubmissionError(
                f"{where}: fields 'greater' + 'ties' = {counted} but {name} has "
                f"{len(dataset.catalog)} items (at most {max_counted} besides the target)"
            )
    missing = [user_id for user_id, _ in examples if seen[user_id] == 0]
    if missing:
        named = ", ".join(f"'{u}'" for u in missing[:_NAMED])
        more = f" and {len(missing) - _NAMED} more" if len(missing) > _NAMED else ""
        raise SubmissionError(
            f"{path}: {len(missing)} of the {len(examples)} {scope} of {name} have no sample in "
            f"{samples_file}: {named}{more}"
        )
    protocol = result.protocol
    if protocol.test_examples != len(samples):
        raise SubmissionError(
            f"{path}: field 'protocol.test_examples' = {protocol.test_examples} but "
            f"{samples_file} has {len(samples)} samples"
        )
    if protocol.critiqued_examples != critiqued:
        raise SubmissionError(
            f"{path}: field 'protocol.critiqued_examples' = {protocol.critiqued_examples} but "
            f"{critiqued} samples of {samples_file} have has_critique true"
        )


def locate_dataset(
    name: str,
    fingerprint: str,
    dataset: str | None = None,
    data_dir: str | None = None,
    *,
    where: str = "",
) -> tuple[Dataset | None, DatasetCheck]:
    """The dataset to check a result of dataset ``name`` (``fingerprint``) against, or None
    and why not.

    ``dataset`` (a registered name or a file, given on the command line) must have that
    fingerprint, else :class:`SubmissionError` (its line starts with ``where``); a name or
    file that does not resolve raises as :func:`resolve_dataset` does. Without it, the
    registered dataset ``name`` is used when it loads here and has that fingerprint (the
    embedded ``mini`` always loads).
    """
    if dataset is not None:
        ds = resolve_dataset(dataset, data_dir)
        if ds.fingerprint != fingerprint:
            raise SubmissionError(
                f"{where}--dataset {dataset}: fingerprint {ds.fingerprint[:12]}..., the result "
                f"records {fingerprint[:12]}... (dataset '{name}'): not the result's dataset, "
                "nothing checked against it"
            )
        return ds, DatasetCheck(True, _described(ds))
    plugins = get_plugin_manager()
    if name not in plugins.entries["dataset"]:
        return None, DatasetCheck(
            False, f"'{name}' is not a registered dataset; give its file with --dataset"
        )
    try:
        ds = resolve_dataset(name, data_dir, plugins)
    except FileNotFoundError:
        return None, DatasetCheck(False, f"the file of dataset '{name}' is not here")
    except (OSError, ValueError, LookupError, PluginError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, DatasetCheck(False, f"dataset '{name}' does not load: {first}")
    if ds.fingerprint != fingerprint:
        return None, DatasetCheck(
            False,
            f"dataset '{name}' here has fingerprint {ds.fingerprint[:12]}..., the result "
            f"records {fingerprint[:12]}...",
        )
    return ds, DatasetCheck(True, _described(ds))


def _described(ds: Dataset) -> str:
    return f"dataset {ds.name} (fingerprint {ds.fingerprint[:12]}...)"


def check_result_dataset(
    path: str | os.PathLike[str],
    result: Result,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> DatasetCheck:
    """Locate the dataset of an already validated result and check the result against it."""
    info = result.dataset
    ds, outcome = locate_dataset(info.name, info.fingerprint, dataset, data_dir, where=f"{path}: ")
    if ds is not None:
        path = Path(path)
        check_against_dataset(path, result, read_samples(path, result), ds)
    return outcome


def submissions_datasets(root: str | os.PathLike[str]) -> dict[str, DatasetCheck]:
    """For each leaderboard folder under ``root``: whether its submissions are checked against
    the dataset (the spec pins the fingerprint every accepted result shares)."""
    out: dict[str, DatasetCheck] = {}
    root = Path(root)
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            spec = load_spec(folder)
        except SubmissionError:
            continue  # reported by collect
        out[folder.name] = locate_dataset(spec.dataset, spec.fingerprint)[1]
    return out


__all__ = [
    "DatasetCheck",
    "Expected",
    "check_against_dataset",
    "check_result_dataset",
    "expected_examples",
    "locate_dataset",
    "read_samples",
    "submissions_datasets",
]
