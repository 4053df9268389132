"""The `registry compare` HTML as a reviewer sees it: real Chromium, 1,400 px, escaped strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.training import load_policy
from registry_ext import ModelRegistry
from registry_ext.compare import compare_versions, format_metric
from registry_ext.compare_html import write_html
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


def test_every_user_string_is_escaped_and_counts_are_integers(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    comparison = compare_versions(registry=registry, versions=[2, 3], slices=SLICES, resamples=20)
    text = write_html(comparison=comparison, path=tmp_path / "c.html").read_text()
    assert HOSTILE not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&#x27;&quot;" in text
    assert "1,234" in text and "1234.0000" not in text and "56.0000" not in text
    assert format_metric("rows_test", 1234.0) == "1,234" and format_metric("test_roc_auc", 0.8) == "0.8000"


def test_calibration_axes_fit_the_scores(registry: ModelRegistry) -> None:
    from registry_ext.compare_html import _figures

    comparison = compare_versions(registry=registry, versions=[1, 2], slices=SLICES, resamples=20)
    calibration = _figures(comparison)[2]
    top = max(c.score_max for c in comparison.curves.values())
    high = calibration.layout.xaxis.range[1]
    assert top <= high <= min(1.0, top * 1.06) or high == 1.0
    assert calibration.layout.yaxis.range[1] == high


def test_the_cli_picks_sections_by_id_not_by_title(
    registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Writer/reader pair: registry_ext writes one Section per SectionId; the CLI prints the gates
    one alone without --details, and every one with it (each under its display title)."""
    from churnops.commands.registry import _comparison_tables
    from registry_ext.compare import SECTION_TITLES, SectionId

    comparison = compare_versions(registry=registry, versions=[2, 3], slices=SLICES, resamples=20)
    assert [s.id for s in comparison.detail_sections()] == list(SectionId)
    _comparison_tables(comparison, details=False)
    brief = capsys.readouterr().out
    assert [title for title in SECTION_TITLES.values() if title[:20] in brief] == [
        SECTION_TITLES[SectionId.GATES]
    ]
    _comparison_tables(comparison, details=True)
    full = capsys.readouterr().out
    assert all(title[:20] in full for title in SECTION_TITLES.values())
