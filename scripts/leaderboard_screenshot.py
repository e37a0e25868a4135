"""Screenshot ``leaderboards/index.html`` in headless Chromium before and after sorting.

    python scripts/leaderboard_screenshot.py [--html leaderboards/index.html] [--out DIR]
        [--header "Model"] [--table 1] [--clicks 2] [--size 1280,1100]

    # a phone-width view: the page in a 390 px wide frame (see below)
    python scripts/leaderboard_screenshot.py --size 390,1600 --out /tmp/lb-shots

The "after" shot loads a copy of the page with a small injected script that clicks the chosen
column header (the page's own sorting code runs, exactly as for a mouse click), so the check
needs nothing but the Debian ``chromium`` package (``apt-get install -y chromium``): no server,
no driver, no network. Prints the two PNG paths and the first column's cells before and after,
read from the DOM with ``chromium --dump-dom``. Files are named ``leaderboard-<width>-before.png``
and ``...-after.png``.

Headless Chromium keeps its window at least 500 px wide; a narrower width is shown as the page
in a frame of exactly that width (its viewport and media queries are then that width), and the
shot is cropped to the frame when Pillow is installed.
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

#: Headless Chromium's narrowest window.
MIN_WINDOW = 500
FRAME = """<!DOCTYPE html>
<html><body style="margin:0;background:#888">
<iframe style="border:0;display:block;background:#fff;width:%(width)dpx;height:%(height)dpx"
 srcdoc="%(page)s"></iframe>
</body></html>
"""

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
    tables = re.findall(r'<table class="dataframe sortable[^"]*">(.*?)</table>', dom, re.S)
    body = tables[table].split("<tbody>", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td>(.*?)</td>", r, re.S)[col] for r in rows]
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells]


def shoot(browser: str, source: Path, png: Path, width: int, height: int) -> None:
    """A ``width`` x ``height`` screenshot of ``source``, always shown in a frame: headless
    Chromium paints a blank shot of a top-level page that scrolled itself (the "after" page
    scrolls its table into view), not of a scrolled frame. Cropped to the frame if Pillow is
    there when the frame is narrower than Chromium's smallest window."""
    page = html.escape(source.read_text(encoding="utf-8"))
    framed = source.with_name(f"framed-{source.name}")
    framed.write_text(FRAME % {"width": width, "height": height, "page": page}, "utf-8")
    window = max(width, MIN_WINDOW)
    run(browser, f"--window-size={window},{height}", f"--screenshot={png}", framed.as_uri())
    if width >= MIN_WINDOW:
        return
    try:
        from PIL import Image
    except ImportError:
        print(f"  (Pillow not installed: {png.name} keeps the grey margin right of the frame)")
        return
    with Image.open(png) as img:
        img.crop((0, 0, width, height)).save(png)


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
    width, height = (int(v) for v in args.size.split(","))
    page = Path(args.html).resolve()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    script = CLICK % {
        "table": args.table,
        "header": json.dumps(args.header),
        "clicks": args.clicks,
    }
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before.html"
        before.write_text(page.read_text())
        clicked = Path(tmp) / "clicked.html"
        clicked.write_text(page.read_text().replace("</body>", script + "</body>"))
        shots = {"before": before, "after": clicked}
        for label, source in shots.items():
            png = out / f"leaderboard-{width}-{label}.png"
            shoot(browser, source, png, width, height)
            dom = run(browser, "--dump-dom", source.as_uri())
            dom_cells = column(dom, args.table, 1)
            sorted_header = re.findall(r'<th[^>]*aria-sort="(\w+)"[^>]*>(.*?)</th>', dom)
            print(f"{label}: {png} ({png.stat().st_size} bytes)")
            print(f"  column 2 of table {args.table}: {dom_cells}; sorted header: {sorted_header}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
