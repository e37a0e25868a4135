"""Tidy score rows, the negative-sampling bias table, the paper-style figures and a report.

Figures follow the paper: score distributions per attribute (Figures 2 and 3: the share of
each 1-7 score, one bar series per narrative type) and the bias check (Figure 4: the share of
scores >= 6 for real samples and the negatives A and B). matplotlib is imported lazily with the
non-interactive Agg backend, so the rating itself needs no plotting library.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from regen_bench.fileio import atomic_write
from regen_bench.rating.aggregate import SCALE
from regen_bench.rating.ensemble import SubjectRating
from regen_bench.rating.subjects import VARIANTS

#: Columns of the tidy score table: one row per (subject, variant, text, attribute).
COLUMNS: tuple[str, ...] = (
    "user_id",
    "variant",
    "source_user",
    "rater",
    "group",
    "position",
    "text",
    "attribute",
    "score",
    "runs_ok",
    "run_scores",
)
#: A score counted as high in the bias check (the paper's Figure 4).
HIGH_SCORE = 6


def score_rows(rater: str, ratings: Iterable[SubjectRating]) -> list[dict[str, Any]]:
    """The tidy rows of ``ratings`` (score is None where no run answered)."""
    rows = []
    for rating in ratings:
        s = rating.subject
        for (text, attr), values in rating.runs.items():
            rows.append(
                {
                    "user_id": s.user_id,
                    "variant": s.variant,
                    "source_user": s.source_user,
                    "rater": rater,
                    "group": s.group,
                    "position": s.position,
                    "text": text,
                    "attribute": attr,
                    "score": rating.final[(text, attr)],
                    "runs_ok": len(values),
                    "run_scores": " ".join(str(v) for v in values),
                }
            )
    return rows


def write_table(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Write ``rows`` as csv (atomically); an empty score is written as an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
    atomic_write(path, [buf.getvalue().encode("utf-8")])


def _attributes(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["attribute"] for r in rows))


def bias_table(
    rows: Iterable[dict[str, Any]],
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """attribute -> variant -> {"high": share of scores >= 6 (None if none), "n": scored}.

    One pass over ``rows`` (a merge streams them from the shards' tables)."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    attributes: dict[str, None] = {}
    for r in rows:
        attributes.setdefault(r["attribute"], None)
        if r["score"] is None:
            continue
        c = counts[(r["attribute"], r["variant"])]
        c[0] += int(r["score"] >= HIGH_SCORE)
        c[1] += 1
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for attr in attributes:
        out[attr] = {}
        for variant in VARIANTS:
            high, n = counts.get((attr, variant), [0, 0])
            out[attr][variant] = {"high": high / n if n else None, "n": n}
    return out


def format_bias_table(table: dict[str, dict[str, dict[str, float | int | None]]]) -> list[str]:
    """The bias table as aligned text lines (share of scores >= 6, count in brackets)."""
    width = max([len("attribute"), *(len(a) for a in table)])
    lines = [f"{'attribute':<{width}}  " + "  ".join(f"{v:>14}" for v in VARIANTS)]
    for attr, by_variant in table.items():
        cells = []
        for v in VARIANTS:
            cell = by_variant[v]
            share = "-" if cell["high"] is None else f"{cell['high']:.1%}"
            cells.append(f"{share + ' (' + str(cell['n']) + ')':>14}")
        lines.append(f"{attr:<{width}}  " + "  ".join(cells))
    return lines


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plots needs matplotlib: pip install 'regen-bench[plots]'") from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, [buf.getvalue()])


def plot_distributions(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Share of each score 1-7 per attribute (one panel each), one bar series per text."""
    plt = _pyplot()
    real = [r for r in rows if r["variant"] == "real" and r["score"] is not None]
    attrs = _attributes(real) or _attributes(rows)
    scores = list(range(SCALE[0], SCALE[1] + 1))
    fig, axes = plt.subplots(1, max(len(attrs), 1), figsize=(4.2 * max(len(attrs), 1), 3.4))
    axes = list(axes) if len(attrs) > 1 else [axes]
    for ax, attr in zip(axes, attrs, strict=False):
        mine = [r for r in real if r["attribute"] == attr]
        texts = list(dict.fromkeys(r["text"] for r in mine))
        width = 0.8 / max(len(texts), 1)
        for k, text in enumerate(texts):
            values = [r["score"] for r in mine if r["text"] == text]
            shares = [100 * values.count(s) / len(values) for s in scores]
            ax.bar([s - 0.4 + width * (k + 0.5) for s in scores], shares, width, label=text)
        ax.set_title(attr)
        ax.set_xticks(scores)
        ax.set_xlabel("score")
        ax.set_ylabel("% of outputs")
        if texts:
            ax.legend(fontsize=7)
    fig.suptitle(title, y=1.04)  # above the panel titles
    out = Path(path)
    _save(fig, out)
    plt.close(fig)
    return out


def plot_bias(
    table: dict[str, dict[str, dict[str, float | int | None]]], path: str | Path, title: str
) -> Path:
    """Share of scores >= 6 per attribute for real samples and negatives A and B."""
    plt = _pyplot()
    attrs = list(table)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(attrs) + 2), 3.4))
    labels = {"real": "real (H, C, I)", "A": "A: other history", "B": "B: other history + item"}
    width = 0.8 / len(VARIANTS)
    for k, variant in enumerate(VARIANTS):
        # None (nothing scored) draws no bar
        shares = [100 * float(table[a][variant]["high"] or 0.0) for a in attrs]
        ax.bar(
            [i - 0.4 + width * (k + 0.5) for i in range(len(attrs))],
            shares,
            width,
            label=labels[variant],
        )
    ax.set_xticks(range(len(attrs)))
    ax.set_xticklabels(attrs)
    ax.set_ylabel(f"% of scores >= {HIGH_SCORE}")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title(title)
    out = Path(path)
    _save(fig, out)
    plt.close(fig)
    return out


def write_report(
    plots_dir: str | Path,
    rater: str,
    rows: Sequence[dict[str, Any]],
    header: Sequence[str],
    bias: dict[str, dict[str, dict[str, float | int | None]]] | None,
) -> list[Path]:
    """Figures plus ``<rater>-report.md`` embedding them; returns the files written."""
    folder = Path(plots_dir)
    folder.mkdir(parents=True, exist_ok=True)
    what = "Narratives" if rater == "narrative" else "Critiques"
    written = [
        plot_distributions(rows, folder / f"{rater}-scores.png", f"{what}: score distributions")
    ]
    lines = [f"# {what}: auto-rater report", "", *header, ""]
    lines += [f"![{what} score distributions]({written[0].name})", ""]
    if bias is not None:
        written.append(
            plot_bias(bias, folder / f"{rater}-bias.png", f"{what}: bias check (negatives)")
        )
        lines += ["## Bias check: share of scores >= 6", "", "```", *format_bias_table(bias)]
        lines += ["```", "", f"![{what} bias check]({written[-1].name})", ""]
    report = folder / f"{rater}-report.md"
    atomic_write(report, ["\n".join(lines).encode("utf-8")])
    return [*written, report]


__all__ = [
    "COLUMNS",
    "HIGH_SCORE",
    "bias_table",
    "format_bias_table",
    "plot_bias",
    "plot_distributions",
    "score_rows",
    "write_report",
    "write_table",
]
