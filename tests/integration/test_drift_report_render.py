"""Where a drift report goes: the HTML file (rendered in headless Chromium), the Evidently
workspace (read back through its API) and an MLflow monitoring run (a real SQLite store)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from monitoring.drift import DriftResult
from monitoring.report import (
    write_report_html,
)
from tests.support.browser import screenshot
from tests.support.drift_data import HOSTILE_MODEL_NAME, hostile_data_drift_result

NASTY = HOSTILE_MODEL_NAME


@pytest.fixture(scope="module")
def result() -> DriftResult:
    return hostile_data_drift_result()


def test_the_html_renders_in_headless_chromium(result: DriftResult, tmp_path: Path) -> None:
    page = write_report_html(result=result, path=tmp_path / "drift.html")
    png = screenshot(page, tmp_path / "drift.png", width=1280, height=2400)
    keep = os.environ.get("KEEP_DRIFT_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1280, 2400)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, tables and Evidently's charts, not a blank page
    status_red = sum(n for n, c in colours if c == (0xB3, 0x26, 0x1E))
    assert status_red > 100  # the "drift" badge of the summary is visible at the top
