"""Render an HTML report in real headless Chromium and measure its layout.

A copy of the page gets a probe script that, once the page has loaded and its charts are drawn,
writes what it measured (viewport and document widths, the elements wider than the viewport,
how many plotly charts rendered, the images' natural widths) into the DOM; Chromium's
``--dump-dom`` hands the DOM back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

_PROBE = """
<script>
window.addEventListener('load', function () {
  setTimeout(function () {
    var root = document.documentElement;
    var wide = [];
    document.querySelectorAll('body *').forEach(function (el) {
      var box = el.getBoundingClientRect();
      if (box.right > window.innerWidth + 1 && wide.length < 10) {
        wide.push(el.tagName + '.' + el.className + ' right=' + Math.round(box.right));
      }
    });
    var out = document.createElement('pre');
    out.id = 'layout-probe';
    out.textContent = JSON.stringify({
      viewport: window.innerWidth,
      scroll_width: root.scrollWidth,
      charts: document.querySelectorAll('.js-plotly-plot .main-svg').length,
      images: Array.from(document.images).map(function (i) { return i.naturalWidth; }),
      details: document.querySelectorAll('details').length,
      open_details: document.querySelectorAll('details[open]').length,
      wide: wide
    });
    document.body.appendChild(out);
  }, 1500);
});
</script>
"""


def chromium() -> str:
    """The Chromium binary, or skip (fail under CI=true) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def screenshot(page: Path, png: Path, *, width: int, height: int, budget_ms: int = 8000) -> Path:
    """A PNG of ``page`` rendered at ``width`` x ``height`` in headless Chromium."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-shot-") as profile:
        subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", page.as_uri()],
            check=True,
            capture_output=True,
            timeout=120,
        )  # fmt: skip
    return png


def measure_layout(page: Path, *, width: int = 1400, height: int = 1000) -> dict[str, Any]:
    """Load ``page`` at ``width`` px in headless Chromium; returns what the probe measured."""
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-probe-") as tmp:
        probed = Path(tmp) / "page.html"
        probed.write_text(
            page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
        )
        profile = Path(tmp) / "profile"
        done = subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probed.as_uri(),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
    dom = done.stdout
    start = dom.find('<pre id="layout-probe">')
    assert start >= 0, f"the probe did not run (page did not load?): {done.stderr[-2000:]}"
    body = dom[start + len('<pre id="layout-probe">') : dom.index("</pre>", start)]
    return json.loads(
        body.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )
