"""Reproduction checks: re-run the command a result file records and compare what comes out.

Validation (:mod:`~regen_bench.leaderboard.submissions`) proves that a result file is
*consistent*: its metrics follow from its per-sample file, its signature from its fields. It
cannot prove that the per-sample file came from running the model: anyone can edit the samples,
recompute the metrics and redo the hash. Only running the model again can. :func:`verify` does
that: it rebuilds the ``regen-bench run`` command from the result (model, every model option,
task, dataset, narrative type, seed, torch threads, subset, tie and history policies, the
narrator and text-metric settings), runs it with this installation into a scratch folder and
compares

- the per-sample file, byte for byte (``identical``: what the deterministic models give on the
  same kind of CPU), else
- every metric within ``tolerance`` (``within_tolerance``: float kernels differ between CPU
  instruction sets, so a trained model may move in the last digits elsewhere), else ``differs``.

Both runs must have loaded the same weights (their ``weights`` pins,
:mod:`regen_bench.weights`): other weights (a hub model that moved on, a retrained folder) make
the outcome ``not_run``, naming each role that differs, since nothing about the model is tested.

A successful check can be recorded next to the submission (``<stem>.verified.json``), bound to
the exact bytes of the result file by their sha256, so the leaderboard shows the row as
reproduced and by which harness version. A record is only as good as whoever ran the check:
the maintainers re-run it themselves before trusting a row (README, "What validation can and
cannot detect").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regen_bench.fileio import atomic_write, field_error, read_json
from regen_bench.results import Result, load_result

VERIFIED_SUFFIX = ".verified.json"
Outcome = Literal["identical", "within_tolerance", "differs", "not_run"]
#: Metric difference allowed by default when the per-sample files differ (0: exact only).
DEFAULT_TOLERANCE = 0.0


class VerifyError(ValueError):
    """A result cannot be verified here (the message says why); nothing was compared."""


def _config_arg(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def narrator_command(result: Result, folder: Path | str) -> list[str] | None:
    """The recorded ``narrator finetune`` command of the result's fine-tuned narrator, writing
    ``folder``; None when the result has none (no fine-tuned narrator, or an older record)."""
    from regen_bench.finetune_manifest import NARRATOR_PLACEHOLDER

    ft = result.narration.finetune if result.narration is not None else None
    if ft is None or not ft.command:
        return None
    return [str(folder) if arg == NARRATOR_PLACEHOLDER else arg for arg in ft.command]


def narrator_folder_name(result: Result) -> str:
    """The name to fine-tune a result's narrator anew under: the one it had when the result was
    made, read from its weights pin (``<name>@sha256:<digest>``), since a local folder is
    pinned by its name and content and a re-run under another name would record other weights;
    ``narrator`` where the pin names none that is a plain file name."""
    label = (result.weights or {}).get("narrator", "").partition("@")[0]
    return label if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", label) else "narrator"


def _declared_options(model: str) -> frozenset[str] | None:
    """The option names ``model`` declares in its schema; None where it declares none or is
    not installed here (every recorded key is then given, and the run says what it refuses)."""
    from regen_bench.plugins import UnknownNameError, get_plugin_manager

    try:
        schema = get_plugin_manager().get("model", model).options
    except UnknownNameError:
        return None
    return None if schema is None else frozenset(schema.model_fields)


def recorded_command(
    result: Result, output: Path | str, narrator: Path | str | None = None
) -> list[str]:
    """The ``regen-bench run`` arguments the result records (``regen-bench`` first).

    Where the result records how its fine-tuned narrator was made, ``narrator.model`` names
    ``narrator`` (default: the placeholder its fine-tuning command writes), not the folder it
    happened to sit in on the machine that made the result."""
    from regen_bench.finetune_manifest import NARRATOR_PLACEHOLDER

    folder = str(narrator if narrator is not None else NARRATOR_PLACEHOLDER)
    made = narrator_command(result, folder) is not None
    task, protocol = result.task, result.protocol
    cmd = ["regen-bench", "run", "--model", result.model.name, "--task", task.name]
    cmd += ["--dataset", result.dataset.name, "--seed", str(result.seeds.get("seed", 0))]
    if result.environment.threads:
        cmd += ["--threads", str(result.environment.threads)]
    if task.narrative_type:
        cmd += ["--narrative", task.narrative_type]
    if protocol.limit is not None:
        cmd += ["--limit", str(protocol.limit)]
    cmd += ["--tie-policy", protocol.tie_policy]
    if protocol.exclude_history:
        cmd.append("--exclude-history")
    options = _declared_options(result.model.name)
    for key, value in sorted(result.model.config.items()):
        if options is not None and key not in options:
            continue  # a fact the model recorded (where its backbone was found...), not an option
        cmd += ["--set", f"{key}={_config_arg(value)}"]
    n = result.narration
    if n is not None:
        if n.generator == "narrator":
            # The recorded narrator config names backend and condition, its backend options
            # the model as given (e.g. the fine-tuned folder); the summary fields fill in only
            # what they lack, so no option is given twice.
            options = n.config.get("backend_options")
            given = {**n.config, **(options if isinstance(options, dict) else {})}
            if n.backend and "backend" not in given:
                cmd += ["--set", f"narrator.backend={n.backend}"]
            if "model" not in given and (made or n.llm_model):
                cmd += ["--set", f"narrator.model={folder if made else n.llm_model}"]
            if "condition" not in given:
                cmd += ["--set", f"narrator.condition={n.condition}"]
            for key, value in sorted(n.config.items()):
                if key == "backend_options" and isinstance(value, dict):
                    # Recorded as one block, given as narrator.<option> like any other.
                    for opt, setting in sorted(value.items()):
                        shown = folder if made and opt == "model" else _config_arg(setting)
                        cmd += ["--set", f"narrator.{opt}={shown}"]
                else:
                    cmd += ["--set", f"narrator.{key}={_config_arg(value)}"]
        text = n.text_config
        cmd += ["--embedder", text.get("embedder", "none")]
        cmd += ["--bertscore-model", text.get("bertscore_model", "none")]
    return [*cmd, "-q", "--output", str(output)]


def command_line(result: Result) -> str:
    """The recorded command as one shell line (output folder ``OUT``), after the fine-tuning
    of its narrator where the result records it (``narrator finetune ... && run ...``)."""
    from regen_bench.finetune_manifest import NARRATOR_PLACEHOLDER

    run = shlex.join(recorded_command(result, "OUT"))
    ft = narrator_command(result, NARRATOR_PLACEHOLDER)
    return run if ft is None else f"{shlex.join(ft)} && {run}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Verification:
    """What one re-run showed."""

    path: Path
    outcome: Outcome
    detail: str
    command: str
    tolerance: float
    samples_sha256: str | None = None
    max_metric_diff: float | None = None
    #: Metrics whose re-run value differs by more than the tolerance (name -> (published, new)).
    differing: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def reproduced(self) -> bool:
        return self.outcome in ("identical", "within_tolerance")


class VerificationRecord(BaseModel):
    """``<stem>.verified.json``: a reproduction of one exact result file."""

    model_config = ConfigDict(extra="forbid")

    result_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    outcome: Literal["identical", "within_tolerance"]
    tolerance: float = Field(ge=0)
    max_metric_diff: float = Field(ge=0)
    samples_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    verified_with: str = Field(max_length=64)
    python: str = Field(max_length=64)
    platform: str = Field(max_length=200)
    date: str = Field(max_length=40)
    command: str = Field(max_length=20_000)


def _compare_metrics(
    old: dict[str, float], new: dict[str, float], tolerance: float
) -> tuple[float, dict[str, tuple[float, float]]]:
    worst, differing = 0.0, {}
    # Headline metrics first, so a one-line report names the ones a reader looks at.
    headline = ("ndcg@10", "recall@10", "mrr")
    names = sorted(set(old) | set(new), key=lambda m: (m not in headline, "/" in m, m))
    for name in names:
        if name not in old or name not in new:
            differing[name] = (old.get(name, float("nan")), new.get(name, float("nan")))
            worst = float("inf")
            continue
        diff = abs(old[name] - new[name])
        worst = max(worst, diff)
        if diff > tolerance:
            differing[name] = (old[name], new[name])
    return worst, differing


def _rank_rows(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    rows = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            rows[(rec["user_id"], rec["target"])] = (rec["greater"], rec["ties"])
    return rows


def _compare_samples(published: Path, rerun: Path) -> tuple[bool, float]:
    """(same (user, target) pairs, share of them whose target's rank counts agree)."""
    old, new = _rank_rows(published), _rank_rows(rerun)
    if old.keys() != new.keys():
        return False, 0.0
    agree = sum(old[k] == new[k] for k in old)
    return True, agree / max(len(old), 1)


def _abbreviated(pinned: str | None) -> str:
    if pinned is None:
        return "none"
    ref, _, rev = pinned.rpartition("@")
    kind, _, digits = rev.rpartition(":")
    return f"{ref}@{kind + ':' if kind else ''}{digits[:12]}{'...' if len(digits) > 12 else ''}"


def weights_difference(published: dict[str, str], here: dict[str, str]) -> str:
    """Each role whose pin differs: ``role <published pin> here <this machine's pin>``
    (revisions cut to 12 digits; ``none``: the run did not load that role)."""
    parts = [
        f"{role} {_abbreviated(published.get(role))} here {_abbreviated(here.get(role))}"
        for role in sorted(set(published) | set(here))
        if published.get(role) != here.get(role)
    ]
    return "; ".join(parts)


def _check_versions(result: Result) -> None:
    from regen_bench import __version__

    if result.harness_version.split(".")[0] != __version__.split(".")[0]:
        raise VerifyError(
            f"made with regen-bench {result.harness_version}, this is {__version__}: "
            "another major version measures differently; verify with the same major version"
        )


def _run(cmd: list[str], log: Callable[[str], None]) -> subprocess.CompletedProcess[str]:
    # The same interpreter as this process: the installation being trusted is this one.
    argv = [sys.executable, "-m", "regen_bench", *cmd[1:]]
    log("re-running: " + shlex.join(cmd))
    return subprocess.run(argv, capture_output=True, text=True)


def verify(
    path: str | os.PathLike[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    workdir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> Verification:
    """Re-run ``path``'s recorded command and compare (see the module docstring).

    Raises :class:`VerifyError` when the result cannot be re-run here (invalid file, another
    major version); a run that fails gives outcome ``not_run``.
    """
    from regen_bench.results import ResultError

    path = Path(path)
    if tolerance < 0:
        raise VerifyError(f"tolerance must be >= 0, got {tolerance}")
    try:
        result = load_result(path)
    except ResultError as exc:
        raise VerifyError(str(exc)) from None
    _check_versions(result)
    with tempfile.TemporaryDirectory(prefix="regen-verify-", dir=workdir) as scratch:
        out = Path(scratch) / "out"
        folder = Path(scratch) / narrator_folder_name(result)
        shown = command_line(result)
        ft = narrator_command(result, folder)
        if ft is not None:  # the narrator first, fine-tuned anew as recorded
            proc = _run(ft, log)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                return Verification(
                    path,
                    "not_run",
                    f"fine-tuning the narrator failed ({proc.returncode}): {last}",
                    shown,
                    tolerance,
                )
        cmd = recorded_command(result, out, folder if ft is not None else None)
        proc = _run(cmd, log)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            return Verification(
                path, "not_run", f"the re-run failed ({proc.returncode}): {last}", shown, tolerance
            )
        stem = path.name.removesuffix(".json")
        new_files = sorted(out.glob(f"*/*/{stem}.json")) or sorted(out.glob("*/*/*.json"))
        if len(new_files) != 1:
            return Verification(path, "not_run", "the re-run wrote no result", shown, tolerance)
        new = load_result(new_files[0])
        if (result.weights or {}) != (new.weights or {}):
            detail = "weights differ, not compared: " + weights_difference(
                result.weights or {}, new.weights or {}
            )
            return Verification(path, "not_run", detail, shown, tolerance)
        new_samples = new_files[0].parent / new.samples_file
        new_sha = file_sha256(new_samples)
        same_users, agree = _compare_samples(path.parent / result.samples_file, new_samples)
    worst, differing = _compare_metrics(result.metrics, new.metrics, tolerance)
    if not same_users:
        return Verification(
            path,
            "differs",
            "the re-run scored other (user, target) pairs than the published per-sample file",
            shown,
            tolerance,
            new_sha,
            worst,
            differing,
        )
    if new_sha == result.samples_sha256 and not differing:
        outcome: Outcome = "identical"
        detail = f"per-sample file {new_sha[:12]} identical to the published one"
    elif not differing:
        outcome = "within_tolerance"
        detail = (
            f"per-sample file {new_sha[:12]} != published {result.samples_sha256[:12]}; "
            f"every metric within {tolerance:g} (largest difference {worst:.2g}); "
            f"{agree:.1%} of samples rank their target identically"
        )
    else:
        outcome = "differs"
        shown_diffs = ", ".join(
            f"{name} {old:.4f} -> {now:.4f}" for name, (old, now) in list(differing.items())[:4]
        )
        detail = (
            f"per-sample file {new_sha[:12]} != published {result.samples_sha256[:12]}; "
            f"{len(differing)} metric(s) beyond {tolerance:g}: {shown_diffs}"
        )
    return Verification(path, outcome, detail, shown, tolerance, new_sha, worst, differing)


def record_path(result_path: Path) -> Path:
    return result_path.with_name(result_path.name.removesuffix(".json") + VERIFIED_SUFFIX)


def write_record(verification: Verification) -> Path:
    """Record a successful check next to its result file; return the record's path."""
    from regen_bench import __version__

    if not verification.reproduced or verification.samples_sha256 is None:
        raise VerifyError(f"{verification.path}: not reproduced, nothing to record")
    rec = VerificationRecord(
        result_sha256=file_sha256(verification.path),
        outcome=verification.outcome,  # type: ignore[arg-type]
        tolerance=verification.tolerance,
        max_metric_diff=verification.max_metric_diff or 0.0,
        samples_sha256=verification.samples_sha256,
        verified_with=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        command=verification.command,
    )
    dest = record_path(verification.path)
    text = json.dumps(rec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    atomic_write(dest, [text.encode()])
    return dest


def load_record(result_path: Path) -> VerificationRecord | None:
    """The record of ``result_path`` if there is one and it is for these exact bytes.

    A record whose ``result_sha256`` is not the result file's (the result was replaced or
    edited after the check) is stale and counts as no record. Raises ``ValueError`` for a
    record that is not valid JSON of the right shape.
    """
    path = record_path(result_path)
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_symlink() or not path.is_file():
        raise ValueError(f"{path}: a verification record must be a regular file")
    try:
        rec = VerificationRecord.model_validate(read_json(path))
    except ValidationError as exc:
        raise ValueError(f"{path}: {field_error(exc)}") from None
    return rec if rec.result_sha256 == file_sha256(result_path) else None


def describe(rec: VerificationRecord | None) -> str:
    """How a leaderboard cell names a row's reproduction state."""
    if rec is None:
        return "not yet"
    how = "exact" if rec.outcome == "identical" else f"within {rec.tolerance:g}"
    return f"yes ({how}, v{rec.verified_with})"
