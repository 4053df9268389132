"""Headless Chromium for tests that look at an HTML page as a person would: a screenshot, and
the page's own layout figures (scroll width against the viewport) read back from the DOM."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
PROBE = (
    "<script>window.addEventListener('load', () => {"
    " document.body.setAttribute('data-probe', JSON.stringify({"
    " scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,"
    " images: Array.from(document.images).map(i => i.naturalWidth) })); });</script>"
)


def browser() -> str:
    """The Chromium binary: a failure under CI, a skip elsewhere, when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required under CI: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return found


def _run(args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser(), *FLAGS, f"--user-data-dir={profile}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.stdout


def screenshot(page: Path, png: Path, *, width: int = 1400, height: int = 1200) -> Path:
    _run(
        [
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            f"--screenshot={png}",
            page.as_uri(),
        ]
    )
    return png


def layout(page: Path, *, width: int = 1400, height: int = 1200) -> dict[str, object]:
    """The page's scroll width, viewport width and image widths, rendered at ``width`` px."""
    import json
    import re

    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _run(
        [f"--window-size={width},{height}", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    )
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, "the page did not finish loading in headless Chromium"
    result: dict[str, object] = json.loads(found.group(1).replace("&quot;", '"'))
    return result
