"""Publishing: render every leaderboard file from the submissions, write them, or check the
published ones against a fresh render."""

from __future__ import annotations

import os
from pathlib import Path

from regen_bench.fileio import atomic_write
from regen_bench.leaderboard.html import render_html
from regen_bench.leaderboard.submissions import (
    DEFAULT_SUBMISSIONS,
    Submission,
    SubmissionError,
    collect,
)
from regen_bench.leaderboard.tables import render_markdown

DEFAULT_OUT = "leaderboards"


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
