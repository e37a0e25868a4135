"""The published leaderboard page in a real browser, as a visitor would see it.

The page is built from the repository's own submissions and opened in headless Chromium at a
desktop (1280 px) and a phone (390 px) width, with a small injected script that measures the
layout, sorts a ranking table by a header click, and reports what it saw. Headless Chromium
keeps its window at least 500 px wide, so the page is shown in a frame of the exact width (its
viewport, media queries included, is then that width), and the frame posts its findings to the
outer page, read back with ``--dump-dom``. Skipped, with the reason, where no Chromium is
installed (CI installs it).
"""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from regen_bench.cli import main
from regen_bench.leaderboard import Submission, build, collect, group_results
from regen_bench.leaderboard.html import render_html, svg_scatter
from regen_bench.leaderboard.tables import main_table, ranking_tables
from regen_bench.leaderboard.verify import command_line
from regen_bench.results import load_result
from regen_bench.tasks import TASKS, Task
from tests.test_conversational import _args, scripted, toy  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
SUBMISSIONS = REPO / "submissions"
PUBLISHED = REPO / "leaderboards" / "index.html"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

#: Runs once the page has loaded: measures the page and every scroll box, clicks a ranking
#: table's NDCG@10 header twice (ascending), and leaves the findings as JSON in the DOM.
PROBE = """
<script>
window.addEventListener("load", function () {
  var doc = document.documentElement;
  var out = {
    width: window.innerWidth,
    pageScrollWidth: doc.scrollWidth,
    boxes: Array.prototype.map.call(document.querySelectorAll(".scroll, .fig"), function (b) {
      return {overflowX: getComputedStyle(b).overflowX, scrollWidth: b.scrollWidth,
              clientWidth: b.clientWidth, right: b.getBoundingClientRect().right};
    }),
    navPosition: getComputedStyle(document.querySelector("nav")).position,
    bodyFontPx: parseFloat(getComputedStyle(document.body).fontSize),
    tableFontPx: parseFloat(getComputedStyle(document.querySelector("td")).fontSize)
  };
  var table = document.querySelectorAll("table.sortable")[1];
  var heads = Array.prototype.map.call(table.tHead.rows[0].cells, function (h) {
    return h.textContent.trim();
  });
  function column(name) {
    var i = heads.indexOf(name);
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return r.cells[i].textContent.trim();
    });
  }
  out.before = column("Model");
  var th = table.tHead.rows[0].cells[heads.indexOf("NDCG@10")];
  th.click();
  th.click();
  out.sortedBy = th.getAttribute("aria-sort");
  out.after = column("Model");
  out.ndcgAfter = column("NDCG@10");
  out.commands = Array.prototype.map.call(table.tBodies[0].rows, function (r) {
    var code = r.querySelector("code.cmd");
    return [r.cells[heads.indexOf("Model")].textContent.trim(), code ? code.textContent : null];
  });
  parent.postMessage(JSON.stringify(out), "*");
});
</script>
"""
#: The outer page: a frame of the width under test, and the findings it posts, kept in the DOM.
FRAME = """<!DOCTYPE html>
<html><body style="margin:0">
<script>
window.addEventListener("message", function (e) {
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = e.data;
  document.body.appendChild(pre);
});
</script>
<iframe style="border:0;display:block;width:%(width)dpx;height:900px" srcdoc="%(page)s"></iframe>
</body></html>
"""


def _browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@functools.cache
def _probe(browser: str, page: Path, width: int) -> dict[str, Any]:
    """What the probe saw at ``width`` (one browser run per page and width)."""
    framed = page.with_name(f"framed-{width}.html")
    text = page.read_text(encoding="utf-8")
    framed.write_text(FRAME % {"width": width, "page": html.escape(text)}, encoding="utf-8")
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--window-size={max(width, 500) + 20},1000",
        "--virtual-time-budget=3000",
        "--dump-dom",
        framed.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run at {width} px:\n{dom[-2000:]}"
    data: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``index.html`` built from the committed submissions."""
    out = tmp_path_factory.mktemp("page") / "leaderboards"
    build(SUBMISSIONS, out)
    return out / "index.html"


@pytest.fixture(scope="module")
def page(built: Path) -> Path:
    """The built page with the probe injected."""
    probed = built.with_name("probed.html")
    text = built.read_text(encoding="utf-8")
    probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return probed


@pytest.fixture(scope="module")
def browser() -> str:
    found = _browser()
    if found is None:
        pytest.skip(
            "no Chromium binary (chromium, chromium-browser or google-chrome) on PATH: "
            "apt-get install -y chromium to run the browser test"
        )
    return found


@pytest.mark.parametrize("width", [1280, 390])
def test_page_fits_the_screen_and_sorts(browser: str, page: Path, width: int) -> None:
    seen = _probe(browser, page, width)
    assert seen["width"] == width
    # the page itself never scrolls sideways: wide tables scroll inside their own box
    assert seen["pageScrollWidth"] <= width, seen
    assert seen["boxes"], "no table boxes found"
    for box in seen["boxes"]:
        assert box["overflowX"] == "auto", box
        assert box["right"] <= width + 0.5, box
    assert seen["navPosition"] == "sticky"
    assert seen["bodyFontPx"] >= 14 and seen["tableFontPx"] >= 12
    # two clicks on NDCG@10 sort ascending; the page ships best-first (descending)
    ndcg = [float(v) for v in seen["ndcgAfter"]]
    assert seen["sortedBy"] == "ascending" and ndcg == sorted(ndcg)
    assert sorted(seen["after"]) == sorted(seen["before"])
    assert len(set(ndcg)) > 1 and seen["after"] != seen["before"]


def test_each_row_shows_the_command_that_reproduces_it(browser: str, page: Path) -> None:
    seen = _probe(browser, page, 1280)
    subs, errors = collect(SUBMISSIONS)
    assert not errors
    # the first ranking table of the page is the sequential task's
    expected = {command_line(s.result) for s in subs if s.result.task.name == "sequential"}
    assert seen["commands"] and all(cmd in expected for _model, cmd in seen["commands"])
    for model, cmd in seen["commands"]:
        assert cmd.startswith(f"regen-bench run --model {model} --task sequential "), cmd


def test_links_reach_the_result_files(built: Path) -> None:
    """Every link resolves from where the page is published (``leaderboards/`` beside
    ``submissions/``): each result file, and each anchor of the nav."""
    text = built.read_text(encoding="utf-8")
    hrefs = re.findall(r'href="([^"]*)"', text)
    ids = set(re.findall(r' id="([^"]*)"', text))
    files = [html.unescape(h) for h in hrefs if not h.startswith("#")]
    subs, _ = collect(SUBMISSIONS)
    # every submission is linked from its ranking row and from the submissions list
    expected = {f"../{s.path.relative_to(REPO).as_posix()}" for s in subs}
    assert set(files) == expected and all(files.count(f) >= 2 for f in expected)
    for href in files:
        assert (PUBLISHED.parent / href).is_file(), href
    anchors = [h[1:] for h in hrefs if h.startswith("#")]
    assert anchors and set(anchors) <= ids


def test_paper_layout_labels_every_narrating_task_from_the_registry(
    toy: Path,  # noqa: F811 - fixture
    scripted: Any,  # noqa: F811 - fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A narrating task without the critique, registered beside ``conversational``, gets its
    own block of rows with the paper's label, in the same narrative x model columns."""
    monkeypatch.setitem(
        TASKS,
        "plain_narrative",
        Task(
            name="plain_narrative",
            version=1,
            uses_critique=False,
            generates=True,
            description="history -> next item and a narrative (test task)",
        ),
    )
    assert main(_args(toy, tmp_path / "run")) == 0
    with_critique = load_result(
        tmp_path / "run" / "toy" / "conversational" / "popularity__purchase_reason.json"
    )
    without = with_critique.model_copy(
        update={
            "task": with_critique.task.model_copy(update={"name": "plain_narrative"}),
            "metrics": {**with_critique.metrics, "recall@10": 0.123456},
        }
    )
    (group,) = group_results([with_critique, without])
    table = main_table(group)
    # one column per narrative type x model: the two tasks share it, each in its own block
    assert list(table.columns)[2:] == [f"Purchase Reason · {table.columns[2].split(' · ')[1]}"]
    blocks = dict.fromkeys(table["Task"])
    assert list(blocks) == [
        "conversational (Hist. + Critique → ID + Narrative)",
        "plain_narrative (Hist. → ID + Narrative)",
    ]
    recall = table[table["Metric"] == "Recall@10"].set_index("Task").iloc[:, -1]
    assert recall["plain_narrative (Hist. → ID + Narrative)"] == "0.1235"
    assert recall["conversational (Hist. + Critique → ID + Narrative)"] == (
        f"{with_critique.metrics['recall@10']:.4f}"
    )
    titles = [title for title, _ in ranking_tables(group)]
    assert titles == [
        "conversational (Hist. + Critique → ID + Narrative), Purchase Reason",
        "plain_narrative (Hist. → ID + Narrative), Purchase Reason",
    ]
    root = tmp_path / "submissions" / "toy"
    subs = [
        Submission(root / r.task.name / "popularity__purchase_reason.json", r)
        for r in (with_critique, without)
    ]
    page = render_html({"toy": subs})
    assert 'href="#toy-t1-plain_narrative-purchase_reason"' in page
    assert "Ranking: plain_narrative (Hist. → ID + Narrative), Purchase Reason" in page
    for sub in subs:  # each row: its file, date, harness version and command
        assert f'href="../submissions/toy/{sub.result.task.name}/popularity__' in page
        assert html.escape(command_line(sub.result)) in page
        assert f"<td>{sub.result.created[:10]}</td><td>{sub.result.harness_version}</td>" in page


def _published(task: str, name: str) -> Any:
    return load_result(SUBMISSIONS / "mini" / task / f"{name}.json")


def test_fine_tuned_narrators_of_both_blocks_share_one_column() -> None:
    """Each task and narrative type fine-tunes its own narrator (different weights digests);
    Table 4's layout still has one column per narrative type x model, holding both blocks,
    in the paper's column order; the ranking tables keep each narrator's digest."""
    plain = _published("narrative", "flare__purchase_reason")
    critiqued = _published("conversational", "flare__purchase_reason")
    summary = _published("narrative", "flare__user_summary")
    assert plain.narration and critiqued.narration
    assert plain.narration.llm_model != critiqued.narration.llm_model  # two narrators
    (group,) = group_results([summary, critiqued, plain])
    table = main_table(group)
    assert list(table.columns)[2:] == [
        "Purchase Reason · flare + hf/smollm2 (fine-tuned)",
        "User Summary · flare + hf/smollm2 (fine-tuned)",
    ]
    bleu = table[table["Metric"] == "BLEU"].set_index("Task")
    reason = bleu["Purchase Reason · flare + hf/smollm2 (fine-tuned)"]
    assert reason["narrative (Hist. → ID + Narrative)"] == f"{plain.metrics['bleu']:.2f}"
    assert reason["conversational (Hist. + Critique → ID + Narrative)"] == (
        f"{critiqued.metrics['bleu']:.2f}"
    )
    models = {m for _, df in ranking_tables(group) for m in df["Model"]}
    assert f"flare + hf/{plain.narration.llm_model}" in models


def test_two_narrators_of_one_cell_are_never_merged_into_one_label() -> None:
    """Two fine-tuned narrators of one base model for the same task and narrative type would
    share the short label; the table then names both by digest, so neither hides the other."""
    plain = _published("narrative", "flare__purchase_reason")
    assert plain.narration is not None
    other = plain.model_copy(
        update={
            "narration": plain.narration.model_copy(
                update={"llm_model": "smollm2+ft.0123456789ab"}
            ),
            "metrics": {**plain.metrics, "bleu": 1.0},
        }
    )
    (group,) = group_results([plain, other])
    table = main_table(group)
    assert sorted(table.columns[2:]) == [
        "Purchase Reason · flare + hf/smollm2+ft.0123456789ab",
        f"Purchase Reason · flare + hf/{plain.narration.llm_model}",
    ]
    bleu = table[table["Metric"] == "BLEU"].iloc[0, 2:].tolist()
    assert sorted(bleu) == sorted(["1.00", f"{plain.metrics['bleu']:.2f}"])


def test_figure_numbers_every_point_and_lists_them_under_the_plot() -> None:
    """Twenty points (a full grid) get twenty numbered marks and legend lines, with values;
    the drawing grows to hold them rather than cutting the legend off."""
    points = [(f"model {i} (task, narrative)", 0.01 * i, 2.0 * i) for i in range(1, 21)]
    svg = svg_scatter("Recall@10", "ROUGE-L", points)
    assert svg.count("<circle") == 20
    legend = re.findall(r'<text x="60" y="(\d+)" fill="[^"]+">(\d+)\. ([^<]+)</text>', svg)
    assert [int(n) for _, n, _ in legend] == list(range(1, 21))
    assert legend[0][2] == "model 1 (task, narrative) (0.0100, 2.0000)"
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert max(int(y) for y, _, _ in legend) < height
    ticks = re.findall(r'text-anchor="(?:middle|end)">([0-9.]+)</text>', svg)
    assert ticks == ["0", "0", "0.06", "20", "0.12", "40", "0.18", "60", "0.24", "80"]
