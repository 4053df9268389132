"""The Evidently project's dashboard: written by the project with the first report of each model
version (never duplicated by later reports), its panels reading metrics the reports contain, and
every report tagged with the model, the version and the window (read back from the workspace)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnops.contracts.columns import EVENT_TS
from churnops.contracts.monitoring_runs import (
    PART_CONCEPT_DRIFT,
    PART_DATA_DRIFT,
    PART_PERFORMANCE,
    SNAPSHOT_MODEL_NAME,
    SNAPSHOT_MODEL_VERSION,
    SNAPSHOT_PART,
    SNAPSHOT_WINDOW_END,
    SNAPSHOT_WINDOW_START,
)
from monitoring.drift import DriftResult, detect_drift
from monitoring.policy import load_policy
from monitoring.report import DASHBOARD_PANELS, WorkspaceEntry, add_to_workspace
from tests.support.drift_data import scenario

ROWS = 1500  # per window: over the policy's 1,000-row minimums, small enough to stay fast


def _report(
    current: pd.DataFrame, *, version: int, holdout: pd.DataFrame, reference: pd.DataFrame
) -> DriftResult:
    current = current.sample(n=min(ROWS, len(current)), random_state=version)
    start = current[EVENT_TS].min().to_pydatetime()
    return detect_drift(
        reference=reference,
        current=current,
        holdout=holdout,
        labelled=current,
        policy=load_policy().model_copy(update={"reference_rows": 3000}),
        model_name="churn",
        model_version=version,
        window_start=start,
        window_end=start + timedelta(days=30),
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[DriftResult], list[WorkspaceEntry]]:
    s = scenario("data")
    reference, holdout = s.reference.sample(n=3000, random_state=0), s.holdout.sample(n=ROWS, random_state=0)
    months = [frame for _, frame in s.current.groupby(s.current[EVENT_TS].dt.month)]
    # v1 on two windows, then v2 on a third: two versions, one of them with a history
    results = [
        _report(months[0], version=1, holdout=holdout, reference=reference),
        _report(months[1], version=1, holdout=holdout, reference=reference),
        _report(months[2], version=2, holdout=holdout, reference=reference),
    ]
    ws = tmp_path_factory.mktemp("evidently")
    entries = [add_to_workspace(result=r, workspace_dir=ws, project_name="churn") for r in results]
    return ws, results, entries


def _workspace(ws: Path) -> tuple[Any, Any]:
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(ws))
    [project] = workspace.search_project("churn")
    return workspace, project


def test_each_version_gets_its_tab_once(
    written: tuple[Path, list[DriftResult], list[WorkspaceEntry]],
) -> None:
    ws, _, entries = written
    assert [e.dashboard_created for e in entries] == [True, False, True]
    assert [e.dashboard_tab for e in entries] == ["churn v1", "churn v1", "churn v2"]
    workspace, project = _workspace(ws)
    dashboard = workspace.get_dashboard(project.id)
    assert [t.title for t in dashboard.tabs] == ["churn v1", "churn v2"]
    assert len(dashboard.panels) == 2 * len(DASHBOARD_PANELS)
    panels = {p.id: p for p in dashboard.panels}
    for tab, version in zip(dashboard.tabs, ("1", "2"), strict=True):
        assert len(tab.panels) == len(set(tab.panels)) == len(DASHBOARD_PANELS)
        titles = [panels[i].title for i in tab.panels]
        assert titles == [f"{p.title} (v{version})" for p in DASHBOARD_PANELS]
        for i in tab.panels:
            assert panels[i].plot_params["plot_type"] == "line"
            assert all(v.metadata[SNAPSHOT_MODEL_VERSION] == version for v in panels[i].values)


def test_every_report_carries_model_version_and_window(
    written: tuple[Path, list[DriftResult], list[WorkspaceEntry]],
) -> None:
    ws, results, entries = written
    workspace, project = _workspace(ws)
    for result, entry in zip(results, entries, strict=True):
        parts = []
        for snapshot_id in entry.snapshot_ids:
            run = workspace.get_run(project.id, snapshot_id)
            assert run is not None
            meta = run.metadata
            assert meta[SNAPSHOT_MODEL_NAME] == "churn"
            assert meta[SNAPSHOT_MODEL_VERSION] == result.model_version
            assert meta[SNAPSHOT_WINDOW_START] == result.window_start.isoformat()
            assert meta[SNAPSHOT_WINDOW_END] == result.window_end.isoformat()
            window = f"window:{result.window_start.isoformat()}/{result.window_end.isoformat()}"
            assert {"model:churn", f"version:{result.model_version}", window} <= set(run.tags)
            parts.append(meta[SNAPSHOT_PART])
        assert parts == [PART_DATA_DRIFT, PART_CONCEPT_DRIFT, PART_PERFORMANCE]


def test_every_panel_series_finds_its_value_in_each_report(
    written: tuple[Path, list[DriftResult], list[WorkspaceEntry]],
) -> None:
    """What the UI plots: the series the workspace returns for each panel's filters, one point
    per report of the version, equal to the figures the report computed itself."""
    from evidently.legacy.utils.sync import async_to_sync
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local import create_local_project_manager

    ws, results, _ = written
    workspace, project = _workspace(ws)
    dashboard = workspace.get_dashboard(project.id)
    storage = create_local_project_manager(str(ws), False).data_storage  # what `evidently ui` reads
    expected = {
        "Drifted share": lambda r: r.drifted_share,
        "Prediction drift": lambda r: r.prediction.score,
        "Concept drift p-value": lambda r: r.concept.p_value,
        "Live ROC-AUC": lambda r: r.performance.roc_auc,
    }
    for panel in dashboard.panels:
        [series] = panel.values
        filters = [
            SeriesFilter(
                tags=[], metadata=series.metadata, metric=series.metric, metric_labels=series.metric_labels
            )
        ]
        response = async_to_sync(storage.get_data_series(project.id, filters, None, None))
        [line] = response.series
        mine = [r for r in results if r.model_version == series.metadata[SNAPSHOT_MODEL_VERSION]]
        figure = expected[panel.title.rsplit(" (v", 1)[0]]
        assert [v for v in line.values if v is not None] == pytest.approx([figure(r) for r in mine], abs=1e-9)
