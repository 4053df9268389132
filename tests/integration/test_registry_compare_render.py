"""The `registry compare` HTML as a reviewer sees it: real Chromium, 1,400 px, escaped strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.training import load_policy
from registry_ext import ModelRegistry
from registry_ext.compare import compare_versions
from registry_ext.compare_html import write_html
from tests.support.browser import measure_layout
from tests.support.registry import log_candidate, make_registry, model_name_for, shared_sqlite_store

SLICES = load_policy().slice_specs()  # the packaged gate policy's slices, as the CLI passes them
HOSTILE = "<img src=x onerror=alert(1)>&'\""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> ModelRegistry:
    """Three versions; v2 is Production, the runs carry a hostile param and a very long one."""
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    for seed in (1, 2, 3):
        logged = log_candidate(
            registry.client,
            experiment_id=experiment_id,
            seed=seed,
            params={"note": HOSTILE, "features_long": ",".join(f"feature_{i}" for i in range(120))},
        )
        registry.register(
            run_id=logged.run_id,
            sha256=logged.sha256,
            feature_service="churn_v1",
            metrics={"test_roc_auc": 0.8, "test_rows": 1234.0, "positives_test": 56.0},
            gate_results={"passed": True, "results": []},
            actor="tester",
        )
    registry.promote(version=2, stage="Staging", reason="s", actor="t")
    registry.promote(version=2, stage="Production", reason="p", actor="t")
    return registry


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
