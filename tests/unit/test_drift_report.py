"""Where a drift report goes: the HTML file (rendered in headless Chromium), the Evidently
workspace (read back through its API) and an MLflow monitoring run (a real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnops.contracts.monitoring_runs import TAG_MODEL_NAME, TAG_MODEL_VERSION
from monitoring.drift import DriftResult, detect_drift
from monitoring.policy import load_policy
from monitoring.report import (
    add_to_workspace,
    log_to_mlflow,
    monitoring_metrics,
    report_html,
    report_path,
    write_report_html,
)
from tests.support.drift_data import HOSTILE_MODEL_NAME, hostile_data_drift_result, scenario

NASTY = HOSTILE_MODEL_NAME


@pytest.fixture(scope="module")
def result() -> DriftResult:
    return hostile_data_drift_result()


def test_the_html_has_the_summary_first_and_escapes_user_strings(result: DriftResult, tmp_path: Path) -> None:
    path = write_report_html(result=result, path=tmp_path / "reports" / "drift.html")
    text = path.read_text(encoding="utf-8")
    assert NASTY not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in text
    body = text.index("<body")
    summary = text.index('id="churnops-summary"')
    assert body < summary < text.index('id="churnops-concept"') < len(text)
    assert "monthly_charges" in text[summary : summary + 20_000]
    assert "moved by" in text  # how far the scores moved
    assert text.count("<html") >= 1 and "<!DOCTYPE html>" in text[:200]
    assert path.stat().st_size > 1_000_000  # Evidently's self-contained report (scripts and fonts inline)
    assert 'src="http' not in text.lower()


def test_the_report_path_is_under_the_homes_reports_and_safe(result: DriftResult, tmp_path: Path) -> None:
    from churnops.contracts.home_layout import HomeLayout

    path = report_path(reports_dir=HomeLayout(tmp_path).reports, result=result)
    assert path.parent == tmp_path / "reports"
    assert path.name == "drift-_script_alert_x_script_-v7-20250601T000000.html"


def test_a_report_below_the_minimum_size_still_renders(result: DriftResult) -> None:
    s = scenario("clean")
    small = detect_drift(
        reference=s.reference.head(2000),
        current=s.current.head(10),
        policy=load_policy(),
        model_name="churn",
        model_version=1,
        window_start=s.window_start,
        window_end=s.window_end,
    )
    text = report_html(small)
    assert "insufficient_data" in text and "Not enough rows" in text


def test_the_workspace_keeps_the_history(result: DriftResult, tmp_path: Path) -> None:
    from evidently.ui.workspace import Workspace

    first = add_to_workspace(result=result, workspace_dir=tmp_path / "ws", project_name="churn drift")
    second = add_to_workspace(result=result, workspace_dir=tmp_path / "ws", project_name="churn drift")
    assert first.project_id == second.project_id
    assert len(first.snapshot_ids) == 3  # data + prediction drift, concept drift, live ROC-AUC
    assert first.dashboard_created and not second.dashboard_created
    workspace = Workspace(str(tmp_path / "ws"))
    [project] = workspace.search_project("churn drift")
    listed = {str(i) for i in workspace.list_runs(project.id)}
    assert listed == set(first.snapshot_ids) | set(second.snapshot_ids)
    stored = workspace.get_run(project.id, first.snapshot_ids[0])
    assert stored is not None
    assert stored.metadata["model_version"] == "7"


def test_the_mlflow_run_is_linked_to_the_version_and_holds_the_report(
    result: DriftResult, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    html = write_report_html(result=result, path=tmp_path / "drift.html")
    run_id = log_to_mlflow(
        client=client,
        experiment_name="churn-monitoring",
        result=result,
        html_path=html,
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    run = client.get_run(run_id)
    assert run.data.tags[TAG_MODEL_NAME] == NASTY and run.data.tags[TAG_MODEL_VERSION] == "7"
    assert run.data.tags["churnops.drift_status"] == result.status
    assert run.data.metrics == pytest.approx(monitoring_metrics(result))
    assert run.data.metrics["data_drift_kl_monthly_charges"] == next(
        f.score for f in result.features if f.feature == "monthly_charges"
    )
    artifacts = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert artifacts == {"drift/drift.html", "drift/drift.json"}
    found = client.search_runs([run.info.experiment_id], filter_string=f"tags.`{TAG_MODEL_VERSION}` = '7'")
    assert [r.info.run_id for r in found] == [run_id]
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
