"""Screenshot ``leaderboards/index.html`` in headless Chromium before and after sorting.

    python scripts/leaderboard_screenshot.py [--html leaderboards/index.html] [--out DIR]
        [--header "Model"] [--table 1] [--clicks 2]

The "after" shot loads a copy of the page with a small injected script that clicks the chosen
column header (the page's own sorting code runs, exactly as for a mouse click), so the check
needs nothing but the Debian ``chromium`` package (``apt-get install -y chromium``): no server,
no driver, no network. Prints the two PNG paths and the first column's cells before and after,
read from the DOM with ``chromium --dump-dom``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CLICK = """
<script>
window.addEventListener("load", function () {
  var table = document.querySelectorAll("table.sortable")[%(table)d];
  var th = Array.prototype.find.call(table.querySelectorAll("thead th"), function (h) {
    return h.textContent.trim() === %(header)s;
  });
  for (var i = 0; i < %(clicks)d; i++) th.click();
  table.scrollIntoView();
});
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no chromium found: apt-get install -y chromium")


def run(browser: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def column(dom: str, table: int, col: int) -> list[str]:
    """Cells of column ``col`` of the ``table``-th sortable table, in DOM order."""
    tables = re.findall(r'<table class="dataframe sortable">(.*?)</table>', dom, re.S)
    body = tables[table].split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [html.unescape(re.findall(r"<td>(.*?)</td>", r, re.S)[col]) for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", default="leaderboards/index.html")
    parser.add_argument("--out", default="leaderboards-screens")
    parser.add_argument("--table", type=int, default=1, help="0-based sortable table index")
    parser.add_argument("--header", default="Model", help="text of the header to click")
    parser.add_argument("--clicks", type=int, default=2, help="1: descending, 2: ascending")
    parser.add_argument("--size", default="1280,1100")
    args = parser.parse_args()
    browser = chromium()
    page = Path(args.html).resolve()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    script = CLICK % {
        "table": args.table,
        "header": json.dumps(args.header),
        "clicks": args.clicks,
    }
    with tempfile.TemporaryDirectory() as tmp:
        clicked = Path(tmp) / "clicked.html"
        clicked.write_text(page.read_text().replace("</body>", script + "</body>"))
        shots = {"before": page, "after": clicked}
        for label, source in shots.items():
            png = out / f"leaderboard-{label}.png"
            run(browser, f"--window-size={args.size}", f"--screenshot={png}", source.as_uri())
            dom = run(browser, "--dump-dom", source.as_uri())
            dom_cells = column(dom, args.table, 1)
            sorted_header = re.findall(r'<th aria-sort="(\w+)">(.*?)</th>', dom)
            print(f"{label}: {png} ({png.stat().st_size} bytes)")
            print(f"  column 2 of table {args.table}: {dom_cells}; sorted header: {sorted_header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
