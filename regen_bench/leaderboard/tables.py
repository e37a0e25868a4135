"""Leaderboard tables: grouping results by comparability key, the paper-style and ranking
tables (pandas DataFrames), and the Markdown page of one dataset."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regen_bench.data.schema import NARRATIVE_TYPES, PAPER_NARRATIVES
from regen_bench.leaderboard.submissions import Submission, SubmissionError, comparability_key
from regen_bench.leaderboard.verify import describe
from regen_bench.results import CRITIQUED_PREFIX, Result
from regen_bench.tasks import TASKS

if TYPE_CHECKING:
    import pandas as pd

PANDAS_HINT = "leaderboards need pandas and tabulate: pip install 'regen-bench[leaderboard]'"
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
#: The note under every paper-style table (Markdown and HTML pages).
MAIN_TABLE_NOTE = (
    "Rows: task x metric; columns: narrative type x model (as in the paper's Tables 4 and 5). "
    "Ranking metrics of a model do not depend on the narrative type. A fine-tuned narrator is "
    "trained for each task and narrative type: its column names the base model, and the "
    "ranking tables below name each narrator by its weights digest."
)


def _fmt(metric: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    base = metric.removeprefix(CRITIQUED_PREFIX)
    if base in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "bertscore_f1"):
        return f"{value:.2f}"
    if base == "semantic_similarity":
        return f"{value:.3f}"
    return f"{value:.4f}"


def task_label(name: str) -> str:
    """The paper's row label of a task, read from its definition in the task registry
    (``Hist. + Critique → ID + Narrative``), so a new task is labelled without an edit here."""
    task = TASKS[name]
    critique = " + Critique" if task.uses_critique else ""
    narrative = " + Narrative" if task.generates else ""
    return f"Hist.{critique} → ID{narrative}"


def model_label(result: Result) -> str:
    """Column label: the model, plus the LLM that wrote its narratives (``sasrec + hf/x``)."""
    n = result.narration
    if n is None or n.backend is None:
        return result.model.name
    return f"{result.model.name} + {n.backend}/{n.llm_model}"


def column_label(result: Result) -> str:
    """Paper-table column label: :func:`model_label`, with a fine-tuned narrator named by its
    base model (``flare + hf/smollm2 (fine-tuned)``) rather than by its weights digest.

    Each task and narrative type fine-tunes its own narrator, so the digests of one column's
    blocks (with and without the critique) differ; the ranking tables keep the digest.
    """
    n = result.narration
    if n is None or n.backend is None or n.finetune is None:
        return model_label(result)
    return f"{result.model.name} + {n.backend}/{n.finetune.base_model} (fine-tuned)"


def _column_labels(convo: list[Result]) -> dict[int, str]:
    """:func:`column_label` of each narrating result (by ``id``), or its :func:`model_label`
    where two results of one task and narrative type would share a short label (two fine-tuned
    narrators of one base model): a cell never silently hides another."""
    short = {id(r): column_label(r) for r in convo}
    seen: dict[tuple[str, str, str], set[str]] = {}
    for r in convo:
        key = (r.task.name, r.task.narrative_type or "", short[id(r)])
        seen.setdefault(key, set()).add(model_label(r))
    clash = {(narr, label) for (_t, narr, label), full in seen.items() if len(full) > 1}
    return {
        id(r): model_label(r)
        if (r.task.narrative_type or "", short[id(r)]) in clash
        else short[id(r)]
        for r in convo
    }


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


def _paper_order(narrative_type: str) -> tuple[int, int]:
    """Column order: the paper's narrative types first, other types after in schema order."""
    if narrative_type in PAPER_NARRATIVES:
        return (0, PAPER_NARRATIVES.index(narrative_type))
    return (1, NARRATIVE_TYPES.index(narrative_type))


def main_table(group: Group) -> pd.DataFrame:
    """The paper's layout: rows task x metric, columns narrative type x model.

    Every narrating task (with and without the critique) is one block of rows; a column is
    one model (with its narrator) for one narrative type, its cells taken from the result of
    each block's task.
    """
    pd = _pandas()
    ranking = {(r.task.name, r.model.name): r for r in group.results if r.narration is None}
    convo = [r for r in group.results if r.narration is not None]
    labels = _column_labels(convo)
    cells = {(r.task.name, r.task.narrative_type or "", labels[id(r)]): r for r in convo}
    narratives = sorted({r.task.narrative_type or "" for r in convo}, key=_paper_order)
    columns: list[tuple[str, str, str]] = []  # narrative type, model, label
    for narr in narratives:
        pairs = {(r.model.name, labels[id(r)]) for r in convo if r.task.narrative_type == narr}
        columns += [(narr, model, label) for model, label in sorted(pairs)]
    with_text = {r.model.name for r in convo}
    for model in sorted({m for _, m in ranking} - with_text):
        columns.append(("", model, model))
    text_metrics = [m for m in MAIN_TEXT if any(m in r.metrics for r in convo)]
    rows: list[tuple[str, str, str]] = []  # task, metric, label
    for task in TASKS:
        generates = TASKS[task].generates
        present = (
            any(r.task.name == task for r in convo)
            if generates
            else any(t == task for t, _ in ranking)
        )
        if not present:
            continue
        metrics = list(MAIN_RANKING) + (text_metrics if generates else [])
        rows += [(task, m, METRIC_LABELS[m]) for m in metrics]
    data = []
    for task, metric, label in rows:
        line = [f"{task} ({task_label(task)})", label]
        for narr, model, col_label in columns:
            if TASKS[task].generates:
                source = cells.get((task, narr, col_label))
            else:
                source = ranking.get((task, model))
            line.append(_fmt(metric, source.metrics.get(metric) if source else None))
        data.append(line)
    header = ["Task", "Metric"] + [
        f"{NARRATIVE_LABELS[n] if n else RANKING_ONLY} · {label}" for n, _m, label in columns
    ]
    return pd.DataFrame(data, columns=header)


def ranking_rows(group: Group) -> list[tuple[str, str, list[Result]]]:
    """(task, narrative type or "", results best first) of each ranking table, in page order:
    sorted by NDCG@10, then MRR, then label."""
    keys = sorted(
        {(r.task.name, r.task.narrative_type or "") for r in group.results},
        key=lambda k: (list(TASKS).index(k[0]), k[1]),
    )
    out = []
    for task, narr in keys:
        rows = [
            r for r in group.results if (r.task.name, r.task.narrative_type or "") == (task, narr)
        ]
        rows.sort(key=lambda r: (-r.metrics["ndcg@10"], -r.metrics["mrr"], model_label(r)))
        out.append((task, narr, rows))
    return out


def ranking_title(task: str, narrative_type: str) -> str:
    """A ranking table's title: the task, its paper label, and the narrative type."""
    narr = f", {NARRATIVE_LABELS[narrative_type]}" if narrative_type else ""
    return f"{task} ({task_label(task)}){narr}"


def ranking_tables(group: Group) -> list[tuple[str, pd.DataFrame]]:
    """One plain ranking per task (and narrative type), rows as :func:`ranking_rows`."""
    pd = _pandas()
    tables = []
    for task, narr, rows in ranking_rows(group):
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
        tables.append((ranking_title(task, narr), pd.DataFrame(data, columns=header)))
    return tables


#: Line breaks of any kind (C0/C1 controls, DEL, Unicode line and paragraph separators): a
#: free-text value must stay on its line, or it could start a heading or split a table row.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Characters with an inline meaning: code, emphasis, links and images, table cells, strikes,
#: and ':' so that no scheme (``javascript:``, ``https://``) is ever autolinked.
_INLINE = re.compile(r"([\\`*_\[\]|~:])")


def _md_escape(text: str) -> str:
    """``text`` as literal Markdown inline text (a table cell, a title): on one line, HTML
    escaped, every character with an inline meaning backslash-escaped, ``www.`` defused.

    Result fields are free text written by whoever submits; plain names and numbers come out
    unchanged, so the published pages do not change for them.
    """
    text = _BREAKS.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    return re.sub(r"(?i)\b(www)\.", r"\1\\.", text)


def _md_code(text: str) -> str:
    """``text`` as a code span (shown verbatim) when plainly safe as one, else escaped text.

    A backtick would end the span; '<', '&' and brackets are literal inside one for CommonMark
    but not for every Markdown reader (nor for a raw view), so such text is escaped instead.
    """
    if _BREAKS.search(text) or any(c in text for c in "`<>&[]") or not text.strip():
        return _md_escape(text)
    return f"`{text}`"


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
        f"# Leaderboard: {_md_escape(dataset)}",
        "",
        "<!-- Generated by `regen-bench leaderboard build` from "
        f"{_md_escape(root.name)}/{_md_escape(dataset)}/; do not edit. -->",
        "",
        f"{len(subs)} accepted result file(s). Numbers in one table share a comparability key "
        "(harness major version, dataset fingerprint, split, ranking protocol, tie and history "
        "policy, subset, and for narrative metrics the text-metric variants); results with "
        "different keys are never mixed.",
    ]
    for i, g in enumerate(groups, start=1):
        lines += ["", f"## Table {i}", "", f"Protocol key: {_md_code(g.protocol)}"]
        if g.text:
            lines += ["", f"Text-metric key: {_md_code(g.text)}"]
        lines += [
            "",
            MAIN_TABLE_NOTE,
            "",
            _markdown_table(main_table(g)),
        ]
        for title, df in ranking_tables(g):
            lines += ["", f"### Ranking: {title}", "", _markdown_table(df)]
    lines += [
        "",
        "## Submissions",
        "",
        "Reproduced: whether `regen-bench leaderboard verify --record` re-ran the recorded "
        "command and got the same per-sample file (exact) or metrics within a tolerance, and "
        "with which harness version.",
        "",
    ]
    for s in subs:
        rel = s.path.relative_to(root).as_posix()
        lines.append(
            f"- {_md_code(rel)}: {_md_code(s.result.signature)}; reproduced: "
            f"{_md_escape(describe(s.reproduction))}"
        )
    return "\n".join(lines) + "\n"
