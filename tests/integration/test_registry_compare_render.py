"""The `registry compare` HTML as a reviewer sees it: real Chromium, 1,400 px, escaped strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.training import load_policy
from registry_ext import ModelRegistry
from registry_ext.compare import compare_versions
from registry_ext.compare_html import write_html
from tests.support.browser import measure_layout
from tests.support.registry import (
    HOSTILE_PARAM,
    make_registry,
    model_name_for,
    shared_sqlite_store,
    three_versions_v2_live,
)

SLICES = load_policy().slice_specs()  # the packaged gate policy's slices, as the CLI passes them
HOSTILE = HOSTILE_PARAM


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> ModelRegistry:
    """Three versions; v2 is Production (``three_versions_v2_live``)."""
    return three_versions_v2_live(*make_registry(store[0], store[1], model_name=model_name_for(request)))


def test_the_report_renders_in_chromium_without_horizontal_overflow_at_1400px(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    comparison = compare_versions(registry=registry, versions=[1, 2, 3], slices=SLICES, resamples=100)
    assert comparison.baseline == 2  # the Production version, wherever it is in the list
    assert [v.version for v in comparison.verdicts] == [1, 3]
    page = write_html(comparison=comparison, path=tmp_path / "compare.html")
    layout = measure_layout(page, width=1400)
    assert layout["viewport"] == 1400
    assert layout["scroll_width"] <= layout["viewport"], layout["wide"]
    assert layout["wide"] == []
    assert layout["charts"] >= 5  # ROC, PR, calibration, gain, lift all drawn
    assert layout["details"] >= 4 and layout["open_details"] == 0  # the details start collapsed
