"""Leaderboards: validated submissions in, deterministic Markdown and HTML tables out.

Layout of a submissions folder (``submissions/`` by default)::

    submissions/<dataset>/leaderboard.json                    the leaderboard's spec
    submissions/<dataset>/<task>/<model>[__<narrative>].json  an accepted result file
    submissions/<dataset>/<task>/<model>[__<narrative>].samples.jsonl

Every file is data only: JSON is parsed, never executed or imported, and every text that
reaches a table is escaped. A submission is accepted only when it passes
:func:`regen_bench.results.load_result` (schema, known task and metric names, finite values in
range, signature equal to its fields, per-sample hash and metrics recomputed from the
per-sample file), sits at exactly the path its own fields give, is no symlink, stays under
the size limits, and agrees with its leaderboard's spec (dataset fingerprint, split, ranking
protocol).

**Comparability key.** Two numbers go into one table only when the parts of their signature
that define the measurement agree: harness major version, dataset name and fingerprint, split,
ranking, tie policy, history policy and evaluated subset (the *protocol key*), and, for
narrative metrics, the text-metric variants (sacreBLEU signature, ROUGE stemmer, embedder,
BERTScore model: the *text key*). The parts that describe *what* is compared — model, task and
task version, narrative type, and how narratives were generated (backend, LLM, condition,
prompt version) — label rows and columns instead. Ranking-only results (no text key) join every
table of their protocol key; narrative results with different text keys get separate tables.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regen_bench.data.schema import NARRATIVE_TYPES
from regen_bench.fileio import atomic_write
from regen_bench.metrics.text import text_signature
from regen_bench.results import CRITIQUED_PREFIX, Result, ResultError, load_result
from regen_bench.tasks import SPLIT, TASKS

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SUBMISSIONS = "submissions"
DEFAULT_OUT = "leaderboards"
SPEC_FILE = "leaderboard.json"
RESULT_SUFFIX = ".json"
SAMPLES_SUFFIX = ".samples.jsonl"
#: Names that become path parts (dataset, task, model): no separators, no dot-dot, no hidden
#: files; ``__`` is reserved as the model/narrative separator of file names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")
DEFAULT_MAX_RESULT_BYTES = 5_000_000
DEFAULT_MAX_SAMPLES_BYTES = 200_000_000
PANDAS_HINT = "leaderboards need pandas and tabulate: pip install 'regen-bench[leaderboard]'"


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
    """(protocol key, text key); the text key is "" for results without narratives."""
    text = text_signature(result.narration.text_config) if result.narration else ""
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


def _load(path: Path, spec: LeaderboardSpec | None) -> Result:
    """Size checks first (nothing big is read), then the full result validation."""
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
    return result


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
    path: str | os.PathLike[str], root: str | os.PathLike[str], spec: LeaderboardSpec | None = None
) -> Submission:
    """Validate one accepted result file inside the submissions folder ``root``."""
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
    result = _load(path, spec)
    expected = (result.dataset.name, result.task.name, result_stem(result) + RESULT_SUFFIX)
    if parts != expected:
        raise SubmissionError(
            f"{path}: the result's own fields put it at {'/'.join(expected)}, not {rel.as_posix()}"
        )
    return Submission(path, result)


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
            results = {p.name for p in task_dir.iterdir() if p.name.endswith(RESULT_SUFFIX)}
            for file in entries(task_dir):
                name = file.name
                if name.endswith(SAMPLES_SUFFIX):
                    if name.removesuffix(SAMPLES_SUFFIX) + RESULT_SUFFIX not in results:
                        errors.append(f"{file}: per-sample file without its result file")
                    continue
                if not name.endswith(RESULT_SUFFIX):
                    errors.append(f"{file}: unexpected file (results and per-sample files only)")
                    continue
                try:
                    subs.append(validate_submission(file, root, spec))
                except SubmissionError as exc:
                    errors.append(str(exc))
    return subs, errors


def submit(
    result_path: str | os.PathLike[str],
    root: str | os.PathLike[str] = DEFAULT_SUBMISSIONS,
    *,
    replace: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Validate a result file (and its per-sample file) and copy both into ``root``.

    A dataset's first submission creates its leaderboard spec from the result's protocol.
    """
    src, root = Path(result_path), Path(root)
    result = _load(src, None)
    ds_dir = root / result.dataset.name
    spec_path = ds_dir / SPEC_FILE
    if spec_path.exists() or spec_path.is_symlink():
        spec = load_spec(ds_dir)
        result = _load(src, spec)
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
    # Per-sample file first: the result file never points at a missing one.
    with samples_src.open("rb") as fh:
        atomic_write(dest_dir / result.samples_file, iter(lambda: fh.read(1 << 20), b""))
    atomic_write(dest, [src.read_bytes()])
    validate_submission(dest, root, spec)
    return dest


# -- tables -------------------------------------------------------------------------------

TASK_LABELS = {
    "sequential": "Hist. → ID",
    "critique": "Hist. + Critique → ID",
    "conversational": "Hist. + Critique → ID + Narrative",
}
NARRATIVE_LABELS = {
    "purchase_reason": "Purchase Reason",
    "purchase_explanation": "Purchase Reason Expl.",
    "product_endorsement": "Product Endorsement",
    "user_summary": "User Summary",
    "user_summary_long": "Long User Summary",
    "user_profile": "User Profile",
}
METRIC_LABELS = {
    "recall@1": "Recall@1",
    "recall@5": "Recall@5",
    "recall@10": "Recall@10",
    "ndcg@5": "NDCG@5",
    "ndcg@10": "NDCG@10",
    "mrr": "MRR",
    "critiqued/ndcg@10": "NDCG@10 (critiqued)",
    "bleu": "BLEU",
    "rougeL": "ROUGE-L",
    "semantic_similarity": "Sem. Sim.",
    "bertscore_f1": "BERTScore F1",
}
#: Rows of the paper-style table (Tables 4 and 5) per task.
MAIN_RANKING = ("recall@10", "ndcg@10", "mrr")
MAIN_TEXT = ("bleu", "rougeL", "semantic_similarity", "bertscore_f1")
RANKING_COLUMNS = (
    "recall@1",
    "recall@5",
    "recall@10",
    "ndcg@5",
    "ndcg@10",
    "mrr",
    "critiqued/ndcg@10",
)
RANKING_ONLY = "ranking only"


def _fmt(metric: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    base = metric.removeprefix(CRITIQUED_PREFIX)
    if base in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "bertscore_f1"):
        return f"{value:.2f}"
    if base == "semantic_similarity":
        return f"{value:.3f}"
    return f"{value:.4f}"


def model_label(result: Result) -> str:
    """Column label: the model, plus the LLM that wrote its narratives (``sasrec + hf/x``)."""
    n = result.narration
    if n is None or n.backend is None:
        return result.model.name
    return f"{result.model.name} + {n.backend}/{n.llm_model}"


@dataclass
class Group:
    """Results sharing one comparability key: one paper-style table plus ranking tables."""

    protocol: str
    text: str
    results: list[Result]


def group_results(results: Iterable[Result]) -> list[Group]:
    """Groups by comparability key, sorted; ranking-only results join each text key's group."""
    by_protocol: dict[str, dict[str, list[Result]]] = {}
    for r in results:
        proto, text = comparability_key(r)
        by_protocol.setdefault(proto, {}).setdefault(text, [])
        by_protocol[proto][text].append(r)
    groups = []
    for proto in sorted(by_protocol):
        texts = by_protocol[proto]
        ranking_only = texts.pop("", [])
        if not texts:
            groups.append(Group(proto, "", ranking_only))
        for text in sorted(texts):
            groups.append(Group(proto, text, ranking_only + texts[text]))
    for g in groups:
        g.results.sort(key=lambda r: (r.task.name, r.task.narrative_type or "", r.model.name))
    return groups


def _pandas() -> Any:
    try:
        import pandas as pd
        import tabulate  # noqa: F401  (DataFrame.to_markdown needs it)
    except ImportError:
        raise SubmissionError(PANDAS_HINT) from None
    return pd


def main_table(group: Group) -> pd.DataFrame:
    """The paper's layout: rows task x metric, columns narrative type x model."""
    pd = _pandas()
    ranking = {(r.task.name, r.model.name): r for r in group.results if r.narration is None}
    convo = [r for r in group.results if r.narration is not None]
    narratives = sorted({r.task.narrative_type or "" for r in convo}, key=NARRATIVE_TYPES.index)
    columns: list[tuple[str, str, str, Result | None]] = []  # narrative, model, label, convo
    with_text = {r.model.name for r in convo}
    for narr in narratives:
        for r in sorted(
            (r for r in convo if r.task.narrative_type == narr), key=lambda r: r.model.name
        ):
            columns.append((NARRATIVE_LABELS[narr], r.model.name, model_label(r), r))
    for model in sorted({m for _, m in ranking} - with_text):
        columns.append((RANKING_ONLY, model, model, None))
    text_metrics = [m for m in MAIN_TEXT if any(m in r.metrics for r in convo)]
    rows: list[tuple[str, str, str]] = []  # task, metric, label
    for task in TASKS:
        present = any(t == task for t, _ in ranking) or (TASKS[task].generates and bool(convo))
        if not present:
            continue
        metrics = list(MAIN_RANKING) + (text_metrics if TASKS[task].generates else [])
        rows += [(task, m, METRIC_LABELS[m]) for m in metrics]
    data = []
    for task, metric, label in rows:
        line = [f"{task} ({TASK_LABELS[task]})", label]
        for _narr, model, _label, conv in columns:
            source = conv if TASKS[task].generates else ranking.get((task, model))
            line.append(_fmt(metric, source.metrics.get(metric) if source else None))
        data.append(line)
    header = ["Task", "Metric"] + [f"{n} · {label}" for n, _m, label, _c in columns]
    return pd.DataFrame(data, columns=header)


def ranking_tables(group: Group) -> list[tuple[str, pd.DataFrame]]:
    """One plain ranking per task (and narrative type), sorted by NDCG@10, then MRR, name."""
    pd = _pandas()
    keys = sorted(
        {(r.task.name, r.task.narrative_type or "") for r in group.results},
        key=lambda k: (list(TASKS).index(k[0]), k[1]),
    )
    tables = []
    for task, narr in keys:
        rows = [
            r for r in group.results if (r.task.name, r.task.narrative_type or "") == (task, narr)
        ]
        rows.sort(key=lambda r: (-r.metrics["ndcg@10"], -r.metrics["mrr"], model_label(r)))
        has_text = any(r.narration is not None for r in rows)
        metric_cols = list(RANKING_COLUMNS) + (
            [m for m in MAIN_TEXT if any(m in r.metrics for r in rows)] if has_text else []
        )
        data = []
        for rank, r in enumerate(rows, start=1):
            line: list[Any] = [rank, model_label(r)]
            line += [_fmt(m, r.metrics.get(m)) for m in metric_cols]
            if has_text:
                assert r.narration is not None
                line.append(r.narration.condition)
            line += [
                "–" if r.model.parameters is None else f"{r.model.parameters:,}",
                f"{r.model.plugin} {r.model.version}".strip(),
                r.seeds.get("seed", "–"),
            ]
            data.append(line)
        header = ["#", "Model"] + [METRIC_LABELS.get(m, m) for m in metric_cols]
        header += (["Narrated item"] if has_text else []) + ["Params", "Plugin", "Seed"]
        title = f"{task} ({TASK_LABELS[task]})" + (f", {NARRATIVE_LABELS[narr]}" if narr else "")
        tables.append((title, pd.DataFrame(data, columns=header)))
    return tables


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _markdown_table(df: pd.DataFrame) -> str:
    df = df.copy()
    df.columns = [_md_escape(str(c)) for c in df.columns]
    for col in df.columns:
        df[col] = [_md_escape(str(v)) for v in df[col]]
    return str(df.to_markdown(index=False, disable_numparse=True))


def render_markdown(dataset: str, subs: list[Submission], root: Path) -> str:
    """``leaderboards/<dataset>.md``."""
    groups = group_results(s.result for s in subs)
    lines = [
        f"# Leaderboard: {dataset}",
        "",
        "<!-- Generated by `regen-bench leaderboard build` from "
        f"{root.name}/{dataset}/; do not edit. -->",
        "",
        f"{len(subs)} accepted result file(s). Numbers in one table share a comparability key "
        "(harness major version, dataset fingerprint, split, ranking protocol, tie and history "
        "policy, subset, and for narrative metrics the text-metric variants); results with "
        "different keys are never mixed.",
    ]
    for i, g in enumerate(groups, start=1):
        lines += ["", f"## Table {i}", "", f"Protocol key: `{g.protocol}`"]
        if g.text:
            lines += ["", f"Text-metric key: `{g.text}`"]
        lines += [
            "",
            "Rows: task x metric; columns: narrative type x model (as in the paper's Tables 4 "
            "and 5). Ranking metrics of a model do not depend on the narrative type.",
            "",
            _markdown_table(main_table(g)),
        ]
        for title, df in ranking_tables(g):
            lines += ["", f"### Ranking: {title}", "", _markdown_table(df)]
    lines += ["", "## Submissions", ""]
    for s in subs:
        rel = s.path.relative_to(root).as_posix()
        # Names are restricted (NAME_RE) and a code span shows the signature verbatim.
        lines.append(f"- `{rel}`: `{s.result.signature}`")
    return "\n".join(lines) + "\n"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#1d1d1f}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}code{font-size:.85em;
word-break:break-all;background:#f4f4f6;padding:1px 3px;border-radius:3px}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d0d7;padding:3px 8px;text-align:right}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
th{background:#eef0f6;cursor:pointer;user-select:none;white-space:nowrap}
th:hover{background:#dfe3f0}th[aria-sort=ascending]::after{content:" ▲"}
th[aria-sort=descending]::after{content:" ▼"}tbody tr:nth-child(even){background:#fafafc}
.fig{margin:.5em 0 1.5em}.note{color:#555}
"""

# Sorting by header click, numbers numerically ("–" last), stable across clicks.
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var desc = th.getAttribute("aria-sort") !== "descending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
        var text = row.cells[col].textContent.trim().replace(/,/g, "");
        var num = parseFloat(text);
        return {row: row, i: i, text: text, num: /^-?[0-9.]+$/.test(text) ? num : null};
      });
      rows.sort(function (a, b) {
        if (a.num === null && b.num !== null) return 1;
        if (b.num === null && a.num !== null) return -1;
        var c = a.num !== null ? a.num - b.num : a.text.localeCompare(b.text);
        return (desc ? -c : c) || a.i - b.i;
      });
      rows.forEach(function (r) { body.appendChild(r.row); });
    });
  });
});
"""


def _html_table(df: pd.DataFrame) -> str:
    return str(
        df.to_html(index=False, escape=True, border=0, classes="sortable", na_rep="–")
    ).replace(' style="text-align: right;"', "")


def figure_points(group: Group) -> tuple[str, str, list[tuple[str, float, float]]]:
    """(x label, y label, points): Recall@10 vs ROUGE-L of narrative results, else vs MRR."""
    convo = [r for r in group.results if r.narration is not None and "rougeL" in r.metrics]
    if convo:
        pts = [
            (
                f"{model_label(r)} ({r.task.narrative_type})",
                r.metrics["recall@10"],
                r.metrics["rougeL"],
            )
            for r in convo
        ]
        return "Recall@10", "ROUGE-L", pts
    pts = [
        (f"{r.model.name} ({r.task.name})", r.metrics["recall@10"], r.metrics["mrr"])
        for r in group.results
    ]
    return "Recall@10", "MRR", pts


def svg_scatter(xlabel: str, ylabel: str, points: list[tuple[str, float, float]]) -> str:
    """A small labelled scatter plot as inline SVG.

    Hand-written rather than matplotlib: a few dozen lines give byte-identical output with no
    embedded dates or random ids, and no plotting dependency.
    """
    w, h, left, right, top, bottom = 640, 360, 60, 200, 20, 45
    xs = [p[1] for p in points] or [0.0]
    ys = [p[2] for p in points] or [0.0]
    xmax = max(max(xs) * 1.1, 1e-9)
    ymax = max(max(ys) * 1.1, 1e-9)

    def sx(v: float) -> float:
        return left + (w - left - right) * v / xmax

    def sy(v: float) -> float:
        return h - bottom - (h - top - bottom) * v / ymax

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{html.escape(ylabel)} vs '
        f'{html.escape(xlabel)}" font-size="11" font-family="system-ui,sans-serif">',
        f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
        'fill="#fafafc" stroke="#999"/>',
    ]
    for i in range(5):
        xv, yv = xmax * i / 4, ymax * i / 4
        out.append(
            f'<text x="{sx(xv):.1f}" y="{h - bottom + 14}" text-anchor="middle">{xv:.3g}</text>'
        )
        out.append(f'<text x="{left - 5}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    out.append(
        f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>"
    )
    out.append(
        f'<text transform="translate(14 {(top + h - bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>'
    )
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
    for i, (label, x, y) in enumerate(sorted(points)):
        color = palette[i % len(palette)]
        out.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}">'
            f"<title>{html.escape(label)}: {x:.4f}, {y:.4f}</title></circle>"
        )
        out.append(
            f'<text x="{w - right + 10}" y="{top + 14 * (i + 1)}" fill="{color}">'
            f"● {html.escape(label)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def render_html(by_dataset: dict[str, list[Submission]]) -> str:
    """``leaderboards/index.html``: every dataset, sortable tables, one figure per table."""
    body = [
        "<h1>REGEN benchmark leaderboards</h1>",
        '<p class="note">Generated by <code>regen-bench leaderboard build</code>. Click a '
        "column header to sort. Numbers in one table share a comparability key; results with "
        "different keys are never mixed.</p>",
    ]
    for dataset in sorted(by_dataset):
        subs = by_dataset[dataset]
        body.append(f'<h2 id="{html.escape(dataset)}">{html.escape(dataset)}</h2>')
        for i, g in enumerate(group_results(s.result for s in subs), start=1):
            body.append(f"<h3>Table {i}</h3>")
            body.append(f"<p>Protocol key: <code>{html.escape(g.protocol)}</code></p>")
            if g.text:
                body.append(f"<p>Text-metric key: <code>{html.escape(g.text)}</code></p>")
            body.append(_html_table(main_table(g)))
            xlabel, ylabel, pts = figure_points(g)
            body.append(f"<h4>{html.escape(ylabel)} vs {html.escape(xlabel)}</h4>")
            body.append(f'<div class="fig">{svg_scatter(xlabel, ylabel, pts)}</div>')
            for title, df in ranking_tables(g):
                body.append(f"<h4>Ranking: {html.escape(title)}</h4>")
                body.append(_html_table(df))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>REGEN benchmark leaderboards</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def render(root: str | os.PathLike[str]) -> tuple[dict[str, str], list[str]]:
    """All generated files (name -> text) and the submission errors; nothing is written."""
    root = Path(root)
    subs, errors = collect(root)
    by_dataset: dict[str, list[Submission]] = {}
    for s in subs:
        by_dataset.setdefault(s.result.dataset.name, []).append(s)
    files = {
        f"{dataset}.md": render_markdown(dataset, by_dataset[dataset], root)
        for dataset in sorted(by_dataset)
    }
    files["index.html"] = render_html(by_dataset)
    return files, errors


def _generated(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.suffix in (".md", ".html") and p.is_file())


def build(
    root: str | os.PathLike[str] = DEFAULT_SUBMISSIONS, out: str | os.PathLike[str] = DEFAULT_OUT
) -> list[Path]:
    """Write the leaderboards; refuses (writes nothing) when any submission is invalid."""
    files, errors = render(root)
    if errors:
        raise SubmissionError(
            f"{len(errors)} invalid submission(s), nothing written:\n" + "\n".join(errors)
        )
    out = Path(out)
    written = []
    for name, text in files.items():
        atomic_write(out / name, [text.encode("utf-8")])
        written.append(out / name)
    for stale in _generated(out):
        if stale.name not in files:
            stale.unlink()
    return written


def check(
    root: str | os.PathLike[str] = DEFAULT_SUBMISSIONS, out: str | os.PathLike[str] = DEFAULT_OUT
) -> list[str]:
    """Problems: invalid submissions, and published files that differ from a fresh build."""
    files, problems = render(root)
    out = Path(out)
    for name, text in files.items():
        path = out / name
        try:
            current = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            state = "missing" if current is None else "out of date"
            problems.append(f"{path} is {state}; run `regen-bench leaderboard build`")
    for extra in _generated(out):
        if extra.name not in files:
            problems.append(
                f"{extra} has no submissions any more; run `regen-bench leaderboard build`"
            )
    return problems


__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SUBMISSIONS",
    "Group",
    "LeaderboardSpec",
    "Submission",
    "SubmissionError",
    "build",
    "check",
    "collect",
    "comparability_key",
    "group_results",
    "protocol_key",
    "render",
    "result_stem",
    "submit",
    "validate_submission",
]
