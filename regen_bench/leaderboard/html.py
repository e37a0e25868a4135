"""The leaderboard web page: every dataset's tables in the paper's layout, a ranking per task,
a figure per table, and the submissions behind them, each with its result file, date, harness
version and the command that reproduces it.

The page's CSS and JavaScript are package data (``static/page.css``, ``static/page.js``); the
script sorts a table by a header click, numbers numerically ("–" last), stably across clicks.
Without JavaScript the page is the same sections, unsorted. A sticky bar of anchors reaches
every table; wide tables scroll inside their own box, so a phone-width page never does.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import quote

from regen_bench.leaderboard.submissions import Submission
from regen_bench.leaderboard.tables import (
    MAIN_TABLE_NOTE,
    NARRATIVE_LABELS,
    Group,
    column_label,
    group_results,
    main_table,
    model_label,
    ranking_rows,
    ranking_tables,
    task_label,
)
from regen_bench.leaderboard.verify import command_line, describe

if TYPE_CHECKING:
    import pandas as pd

    from regen_bench.results import Result


@cache
def _static(name: str) -> str:
    """A file of ``static/``, read once."""
    return (resources.files("regen_bench.leaderboard") / "static" / name).read_text("utf-8")


def _esc(value: object) -> str:
    return html.escape(str(value))


def _table(
    head: Sequence[str], rows: Sequence[Sequence[str]], nosort: Sequence[int] = (), cls: str = ""
) -> str:
    """A sortable table in its own horizontal scroll box; ``rows`` hold ready HTML cells (the
    caller escapes), ``nosort`` the columns whose header does not sort."""
    ths = "".join(
        f"<th data-nosort>{_esc(h)}</th>" if i in nosort else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(head)
    )
    trs = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    classes = f"dataframe sortable {cls}".strip()
    return (
        f'<div class="scroll"><table class="{classes}">\n<thead><tr>{ths}</tr></thead>\n'
        f"<tbody>\n{trs}\n</tbody>\n</table></div>"
    )


def _df_table(
    df: pd.DataFrame,
    extra_head: Sequence[str] = (),
    extra: Sequence[Sequence[str]] = (),
    cls: str = "",
    links: Sequence[str] = (),
) -> str:
    """``df`` (escaped, "–" for missing) with optional extra columns of ready HTML cells;
    ``links`` (one href per row) turn the "Model" column's cells into links."""
    model = list(df.columns).index("Model") if links else -1
    rows = []
    for i, values in enumerate(df.itertuples(index=False, name=None)):
        cells = [_esc("–" if v is None else v) for v in values]
        if links:
            cells[model] = f'<a href="{links[i]}">{cells[model]}</a>'
        rows.append(cells + list(extra[i] if extra else []))
    nosort = [len(df.columns) + i for i, h in enumerate(extra_head) if h in _NOSORT]
    return _table([str(c) for c in df.columns] + list(extra_head), rows, nosort, cls)


#: Extra columns of a model's row (its name links the result file); the command is no value
#: to sort by.
_ROW_HEAD = ("Date", "Harness", "Command")
_NOSORT = {"Command"}


def _href(sub: Submission) -> str:
    """The result file's link, relative to the page.

    Published pages sit in a folder next to the submissions folder (``leaderboards/`` beside
    ``submissions/``), so the link is ``../<submissions>/<dataset>/<task>/<file>``; it depends
    only on those names, so a build elsewhere gives the same bytes.
    """
    return "../" + _esc(quote("/".join(sub.path.parts[-4:])))


def _file(sub: Submission) -> str:
    """The result file as a link showing its path."""
    return f'<a href="{_href(sub)}"><code>{_esc("/".join(sub.path.parts[-4:]))}</code></a>'


def _command(result: Result) -> str:
    return (
        "<details><summary>show</summary>"
        f'<code class="cmd">{_esc(command_line(result))}</code></details>'
    )


def _row_cells(sub: Submission) -> list[str]:
    """Date (of ``created``), harness version and command of one model's row."""
    r = sub.result
    return [_esc(r.created[:10]), _esc(r.harness_version), _command(r)]


def figure_points(group: Group) -> tuple[str, str, list[tuple[str, float, float]]]:
    """(x label, y label, points): Recall@10 vs ROUGE-L of narrative results, else vs MRR."""
    convo = [r for r in group.results if r.narration is not None and "rougeL" in r.metrics]
    if convo:
        pts = [
            (
                f"{column_label(r)} ({r.task.name}, {r.task.narrative_type})",
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


def _tick_step(top: float) -> float:
    """The smallest round step (1, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) of which four reach
    ``top``: axis ticks read 0, 0.1, 0.2, ... rather than 0.0809, 0.162, ..."""
    raw = max(top, 1e-9) / 4
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= raw * (1 - 1e-12))


def svg_scatter(xlabel: str, ylabel: str, points: list[tuple[str, float, float]]) -> str:
    """A small labelled scatter plot as inline SVG: each point numbered, and a legend of
    numbered labels under the plot (a grid has dozens of points, more than colours tell apart,
    and labels too long for a side legend).

    Hand-written rather than matplotlib: a few dozen lines give byte-identical output with no
    embedded dates or random ids, and no plotting dependency.
    """
    w, plot_h, left, right, top, bottom, line = 640, 360, 60, 20, 20, 45, 15
    h = plot_h + line * len(points) + 5
    xs = [p[1] for p in points] or [0.0]
    ys = [p[2] for p in points] or [0.0]
    xmax = 4 * _tick_step(max(xs) * 1.05)
    ymax = 4 * _tick_step(max(ys) * 1.05)

    def sx(v: float) -> float:
        return left + (w - left - right) * v / xmax

    def sy(v: float) -> float:
        return plot_h - bottom - (plot_h - top - bottom) * v / ymax

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{html.escape(ylabel)} vs '
        f'{html.escape(xlabel)}" font-size="11" font-family="system-ui,sans-serif">',
        f'<rect x="{left}" y="{top}" width="{w - left - right}" '
        f'height="{plot_h - top - bottom}" fill="#fafafc" stroke="#999"/>',
    ]
    for i in range(5):
        xv, yv = round(xmax * i / 4, 12), round(ymax * i / 4, 12)
        out.append(
            f'<text x="{sx(xv):.1f}" y="{plot_h - bottom + 14}" text-anchor="middle">{xv:g}</text>'
        )
        out.append(f'<text x="{left - 5}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:g}</text>')
    out.append(
        f'<text x="{(left + w - right) / 2}" y="{plot_h - 8}" text-anchor="middle">'
        f"{html.escape(xlabel)}</text>"
    )
    out.append(
        f'<text transform="translate(14 {(top + plot_h - bottom) / 2}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>'
    )
    palette = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
    for i, (label, x, y) in enumerate(sorted(points), start=1):
        color = palette[(i - 1) % len(palette)]
        tip = f"<title>{i}. {html.escape(label)}: {x:.4f}, {y:.4f}</title>"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}">{tip}</circle>')
        out.append(f'<text x="{sx(x) + 7:.1f}" y="{sy(y) - 5:.1f}" fill="{color}">{i}</text>')
        out.append(
            f'<text x="{left}" y="{plot_h + line * i}" fill="{color}">'
            f"{i}. {html.escape(label)} ({x:.4f}, {y:.4f})</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


class _Ids:
    """Readable, unique and safe element ids (names are free text from submissions)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, *parts: str) -> str:
        slugs = (re.sub(r"[^A-Za-z0-9_]+", "-", p).strip("-") for p in parts)
        base = "-".join(s for s in slugs if s) or "x"
        base = base if base[0].isalpha() else "s-" + base
        new, n = base, 1
        while new in self.seen:
            n += 1
            new = f"{base}-{n}"
        self.seen.add(new)
        return new


def _group_section(
    g: Group, i: int, subs: dict[int, Submission], sid: str, ids: _Ids, nav: list[str]
) -> list[str]:
    """One comparability group: the paper-style table, its figure, a ranking per task."""
    out = [f'<section id="{sid}">', f"<h3>Table {i}: paper layout</h3>"]
    nav.append(f'<a href="#{sid}">Table {i}</a>')
    out.append(f"<p>Protocol key: <code>{_esc(g.protocol)}</code></p>")
    if g.text:
        out.append(f"<p>Text-metric key: <code>{_esc(g.text)}</code></p>")
    out.append(f'<p class="note">{_esc(MAIN_TABLE_NOTE)}</p>')
    out.append(_df_table(main_table(g), cls="main"))
    fid = ids(sid, "figure")
    xlabel, ylabel, pts = figure_points(g)
    out.append(f'<h4 id="{fid}">{_esc(ylabel)} vs {_esc(xlabel)}</h4>')
    out.append(f'<div class="fig">{svg_scatter(xlabel, ylabel, pts)}</div>')
    nav.append(f'<a href="#{fid}">figure</a>')
    for (task, narr, results), (title, df) in zip(ranking_rows(g), ranking_tables(g), strict=True):
        rid = ids(sid, task, narr)
        short = task + (f" · {NARRATIVE_LABELS[narr]}" if narr else "")
        nav.append(f'<a href="#{rid}">{_esc(short)}</a>')
        out.append(f'<section id="{rid}">')
        out.append(f"<h4>Ranking: {_esc(title)}</h4>")
        row_subs = [subs[id(r)] for r in results]
        cells = [_row_cells(sub) for sub in row_subs]
        out.append(_df_table(df, _ROW_HEAD, cells, links=[_href(sub) for sub in row_subs]))
        out.append("</section>")
    out.append("</section>")
    return out


def _submissions_section(subs: list[Submission], sid: str) -> list[str]:
    """Every submission of a dataset: file, task, model, date, harness, reproduction, command."""
    rows = []
    for s in subs:
        r = s.result
        rows.append(
            [
                _file(s),
                _esc(f"{r.task.name} ({task_label(r.task.name)})"),
                _esc(NARRATIVE_LABELS.get(r.task.narrative_type or "", "–")),
                _esc(model_label(r)),
                *_row_cells(s)[:2],
                _esc(describe(s.reproduction)),
                _command(r),
            ]
        )
    head = ["Result file", "Task", "Narrative", "Model", "Date", "Harness", "Reproduced"]
    return [
        f'<section id="{sid}">',
        "<h3>Submissions</h3>",
        '<p class="note">Reproduced: whether <code>regen-bench leaderboard verify '
        "--record</code> re-ran the recorded command and got the same per-sample file (exact) "
        "or metrics within a tolerance, and with which harness version. Each command writes "
        "its result into <code>OUT</code>.</p>",
        _table([*head, "Command"], rows, nosort=(0, 7), cls="list"),
        "</section>",
    ]


def render_html(by_dataset: dict[str, list[Submission]]) -> str:
    """``leaderboards/index.html``: every dataset, sortable tables, one figure per table."""
    ids = _Ids()
    nav: list[str] = []
    body: list[str] = []
    for dataset in sorted(by_dataset):
        subs = by_dataset[dataset]
        did = ids(dataset)
        nav.append(f'<a href="#{did}" class="ds">{_esc(dataset)}</a>')
        body += [f'<section id="{did}" class="dataset">', f"<h2>{_esc(dataset)}</h2>"]
        by_result = {id(s.result): s for s in subs}
        for i, g in enumerate(group_results(s.result for s in subs), start=1):
            body += _group_section(g, i, by_result, ids(dataset, f"t{i}"), ids, nav)
        sid = ids(dataset, "submissions")
        nav.append(f'<a href="#{sid}">submissions</a>')
        body += _submissions_section(subs, sid)
        body.append("</section>")
    head = [
        "<header><h1>REGEN benchmark leaderboards</h1>",
        '<p class="note">Generated by <code>regen-bench leaderboard build</code>. Click a '
        "column header to sort. Numbers in one table share a comparability key; results with "
        "different keys are never mixed. Each model's row links its result file and shows the "
        "command that reproduces it.</p></header>",
        '<nav aria-label="Tables"><ul>' + "".join(f"<li>{a}</li>" for a in nav) + "</ul></nav>",
        "<main>",
    ]
    css, js = _static("page.css"), _static("page.js")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>REGEN benchmark leaderboards</title>\n<style>\n{css}</style>\n</head>\n<body>\n"
        + "\n".join(head + body)
        + f"\n</main>\n<script>\n{js}</script>\n</body>\n</html>\n"
    )
