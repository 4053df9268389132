"""Where a drift report goes: a self-contained HTML file (Evidently's own report under a short
summary a person reads first), an Evidently local workspace (``evidently ui`` shows the history)
and an MLflow monitoring run linked to the model version by tags.

Evidently is imported lazily (10+ s); MLflow is passed in as a client.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts.clock import wall_clock
from churnops.contracts.columns import SCORE
from churnops.contracts.mlflow_keys import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from churnops.contracts.monitoring_runs import (
    KIND_DRIFT,
    METRIC_DRIFTED_SHARE,
    METRIC_LABELLED_ROWS,
    METRIC_MATURED_LABELS,
    METRIC_MATURED_ROC_AUC,
    METRIC_PREDICTION_JS,
    MONITORING_EXPERIMENT,
    PART_CONCEPT_DRIFT,
    PART_DATA_DRIFT,
    PART_PERFORMANCE,
    SNAPSHOT_MODEL_NAME,
    SNAPSHOT_MODEL_VERSION,
    SNAPSHOT_PART,
    TAG_AS_OF,
    TAG_CONCEPT_STATUS,
    TAG_DRIFT_STATUS,
    TAG_DRIFT_WINDOW_END,
    TAG_DRIFT_WINDOW_START,
    TAG_KIND,
    TAG_LABELS_END,
    TAG_LABELS_START,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
)
from churnops.contracts.monitoring_terms import ReportStatus
from monitoring.drift import PIT_COLUMN, PREDICTION_METHOD, DriftResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

HTML_ARTIFACT_DIR = "drift"

_STATUS_COLOUR = {
    ReportStatus.DRIFT: "#b3261e",
    ReportStatus.NO_DRIFT: "#1b6e20",
    ReportStatus.INSUFFICIENT_DATA: "#8a6d00",
}
_STYLE = """
<style>
#churnops-summary{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
 margin:24px auto;padding:20px 24px;border:1px solid #ddd;border-radius:8px;background:#fff;color:#222}
#churnops-summary h1{font-size:22px;margin:0 0 8px}
#churnops-summary h2{font-size:16px;margin:18px 0 6px}
#churnops-summary .status{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
#churnops-summary table{border-collapse:collapse;font-size:13px;margin-top:4px}
#churnops-summary td,#churnops-summary th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}
#churnops-summary td.num{text-align:right;font-variant-numeric:tabular-nums}
#churnops-summary tr.flag td{background:#fdecea;font-weight:600}
#churnops-summary p.note{font-size:12px;color:#555;margin:6px 0}
#churnops-concept iframe{width:100%;height:900px;border:1px solid #ddd}
</style>
"""


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def summary_html(result: DriftResult) -> str:
    """The summary section (escaped; every string in it comes from the result)."""
    colour = _STATUS_COLOUR.get(result.status, "#555")
    rows = []
    ranked = sorted(
        result.features, key=lambda f: -1.0 if f.score is None else f.score / f.threshold, reverse=True
    )
    for f in ranked:
        css = ' class="flag"' if f.drifted else ""
        rows.append(
            f"<tr{css}><td>{_e(f.feature)}</td><td class='num'>{_fmt(f.score)}</td>"
            f"<td class='num'>{_fmt(f.threshold)}</td><td>{'drift' if f.drifted else ''}</td></tr>"
        )
    p, c, perf = result.prediction, result.concept, result.performance
    shift = None if p.reference_mean is None or p.current_mean is None else p.current_mean - p.reference_mean
    quality = [
        q
        for q in result.quality
        if q.null_share > 0 or q.out_of_range_share > 0 or q.unseen_category_share > 0
    ]
    quality_rows = "".join(
        f"<tr><td>{_e(q.feature)}</td><td class='num'>{q.null_share:.2%}</td>"
        f"<td class='num'>{q.out_of_range_share:.2%}</td>"
        f"<td class='num'>{q.unseen_category_share:.2%}</td></tr>"
        for q in quality
    )
    drifted = [f.feature for f in result.features if f.drifted]
    headline = (
        "Not enough rows in the window to judge drift."
        if result.status == ReportStatus.INSUFFICIENT_DATA
        else f"{len(drifted)} of {len(result.features)} features drifted"
        + (f" ({_e(', '.join(drifted))})" if drifted else "")
        + f"; prediction drift {'yes' if p.drifted else 'no'}; concept drift {_e(c.status)}."
    )
    return f"""{_STYLE}
<section id="churnops-summary">
<h1>Drift report: model {_e(result.model_name)} version {_e(result.model_version)}
 <span class="status" style="background:{colour}">{_e(result.status)}</span></h1>
<p>{headline}</p>
<p>Window {_e(result.window_start.isoformat())} to {_e(result.window_end.isoformat())}: {
        result.current_rows:,} rows;
 reference {result.reference_rows:,} rows (seeded sample of {result.reference_source_rows:,}).
 Policy {_e(result.policy_name)}@{_e(result.policy_digest)}.</p>
<h2>Prediction drift (Jensen-Shannon distance on the score)</h2>
<p>JS {_fmt(p.score)} (threshold {_fmt(p.threshold)}); mean score {_fmt(p.reference_mean)} at training,
 {_fmt(p.current_mean)} now (moved by {_fmt(shift)}).</p>
<h2>Concept drift (KS on the randomized PIT of matured outcomes vs the training holdout)</h2>
<p>Status {_e(c.status)}: D = {_fmt(c.statistic)}, p = {_fmt(c.p_value)} (alpha {
        _fmt(result.concept_threshold)
    }),
 {c.labelled_rows:,} matured labels tested (of {result.counts().matured_labels:,}) against
 {c.holdout_rows:,} holdout rows. Performance on {perf.rows:,} matured labels: ROC-AUC {_fmt(perf.roc_auc, 3)}
 (holdout {_fmt(perf.holdout_roc_auc, 3)}),
 Brier {_fmt(perf.brier)} (holdout {_fmt(perf.holdout_brier)}), churn rate {_fmt(perf.positive_rate)}
 vs mean score {_fmt(perf.mean_score)}.{
        f" {perf.in_sample_excluded:,} matured rows inside the version's training window were left out"
        " (in-sample, not live performance)."
        if perf.in_sample_excluded
        else ""
    }</p>
<h2>Data drift (KL divergence, reference || current)</h2>
<table><tr><th>feature</th><th>KL</th><th>threshold</th><th></th></tr>{"".join(rows)}</table>
<p class="note">tenure and total_charges grow with the customers' age: they move every month with no drift at
 all. Ageing moves both while monthly_charges and the profile columns stay put; see docs/monitoring.md.</p>
<h2>Data quality</h2>
{
        "<p>No nulls, out-of-range values or unseen categories.</p>"
        if not quality
        else "<table><tr><th>feature</th><th>null</th><th>out of range</th><th>unseen category</th></tr>"
        + quality_rows
        + "</table>"
    }
</section>
"""


def _concept_section(result: DriftResult) -> str:
    if result.concept_snapshot is None:
        return ""
    inner = result.concept_snapshot.get_html_str(as_iframe=False)
    return (
        '<section id="churnops-concept" style="max-width:1100px;margin:24px auto">'
        "<h2 style='font-family:system-ui,sans-serif'>"
        "Evidently: concept drift (KS on the randomized PIT)</h2>"
        f'<iframe title="concept drift" srcdoc="{html.escape(inner, quote=True)}"></iframe></section>'
    )


def report_html(result: DriftResult) -> str:
    """The whole document: summary first, then Evidently's own report (and the concept part)."""
    if result.snapshot is None:
        body = (
            "<p style='font-family:system-ui,sans-serif;text-align:center'>"
            "No Evidently report: the window is below the policy's minimum size.</p>"
        )
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='UTF-8'><title>Drift report</title></head>"
            f"<body>{summary_html(result)}{body}{_concept_section(result)}</body></html>"
        )
    document = str(result.snapshot.get_html_str(as_iframe=False))
    title = f"<title>Drift report {_e(result.model_name)} v{_e(result.model_version)}</title>"
    document = document.replace("<head>", f"<head>{title}", 1)
    match = re.search(r"<body[^>]*>", document)
    if match is None:
        raise RuntimeError("Evidently's HTML has no <body> tag; cannot place the summary")
    at = match.end()
    heading = (
        "<h2 style='font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto 0'>"
        "Evidently: data drift per feature and prediction drift</h2>"
    )
    return document[:at] + summary_html(result) + _concept_section(result) + heading + document[at:]


def report_path(*, reports_dir: Path, result: DriftResult) -> Path:
    """``<reports_dir>/drift-<model>-v<version>-<window end>.html`` (a safe file name; the
    home's is ``HomeLayout.reports``)."""
    stem = f"drift-{result.model_name}-v{result.model_version}-{result.window_end:%Y%m%dT%H%M%S}"
    return reports_dir / (re.sub(r"[^A-Za-z0-9._-]+", "_", stem) + ".html")


def write_report_html(*, result: DriftResult, path: Path) -> Path:
    """Write the report to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(result), encoding="utf-8")
    return path


@dataclass(frozen=True)
class WorkspaceEntry:
    project_id: str
    snapshot_ids: tuple[str, ...]
    dashboard_tab: str
    """The dashboard tab of the report's model version (``ensure_dashboard``)."""
    dashboard_created: bool
    """Whether this report added that tab (the version's first report in the workspace)."""


@dataclass(frozen=True)
class DashboardSeries:
    """One series of a dashboard panel: an Evidently metric (``metric_v2`` type and the labels
    that pick one value of it) in one report part."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    part: str
    legend: str


@dataclass(frozen=True)
class DashboardPanel:
    title: str
    subtitle: str
    series: tuple[DashboardSeries, ...]


DASHBOARD_PANELS: tuple[DashboardPanel, ...] = (
    DashboardPanel(
        "Drifted share",
        "Share of features whose KL divergence is over the policy's threshold (DriftedColumnsCount).",
        (
            DashboardSeries(
                "DriftedColumnsCount", (("value_type", "share"),), PART_DATA_DRIFT, "drifted share"
            ),
        ),
    ),
    DashboardPanel(
        "Prediction drift",
        "Jensen-Shannon distance of the score, reference vs window (ValueDrift on the score).",
        (
            DashboardSeries(
                "ValueDrift",
                (("column", SCORE), ("method", PREDICTION_METHOD)),
                PART_DATA_DRIFT,
                "JS of the score",
            ),
        ),
    ),
    DashboardPanel(
        "Concept drift p-value",
        "KS test on the randomized PIT of matured outcomes vs the training holdout (low: drift).",
        (DashboardSeries("ValueDrift", (("column", PIT_COLUMN),), PART_CONCEPT_DRIFT, "KS p-value"),),
    ),
    DashboardPanel(
        "Live ROC-AUC",
        "ROC-AUC of the window's matured predictions against their late labels (RocAuc).",
        (DashboardSeries("RocAuc", (), PART_PERFORMANCE, "ROC-AUC"),),
    ),
)
"""The panels of every model version's dashboard tab, one series each."""


def dashboard_tab_title(*, model_name: str, model_version: str) -> str:
    return f"{model_name} v{model_version}"


def ensure_dashboard(*, workspace: Any, project_id: Any, model_name: str, model_version: str) -> bool:
    """Give the project's dashboard a tab for this model version holding
    :data:`DASHBOARD_PANELS` (line plots over the window ends), each series filtered to the
    version's snapshots by their metadata; True when the tab was added, False when it was there.

    One tab per version, not one series per version in a shared panel: Evidently keys a
    dashboard series by metric type and parameters alone, so two versions' values of one metric
    would merge into one line. A tab already there is left as it is (a person may have edited
    it); the caller holds the workspace lock."""
    from evidently.sdk.models import DashboardPanelPlot, DashboardTabModel, PanelMetric

    title = dashboard_tab_title(model_name=model_name, model_version=model_version)
    dashboard = workspace.get_dashboard(project_id)
    if any(tab.title == title for tab in dashboard.tabs):
        return False
    panels = [
        DashboardPanelPlot(
            title=f"{panel.title} (v{model_version})",
            subtitle=panel.subtitle,
            size="half",
            values=[
                PanelMetric(
                    legend=f"{series.legend} v{model_version}",
                    metric=series.metric,
                    metric_labels=dict(series.labels),
                    metadata={
                        SNAPSHOT_MODEL_NAME: model_name,
                        SNAPSHOT_MODEL_VERSION: model_version,
                        SNAPSHOT_PART: series.part,
                    },
                )
                for series in panel.series
            ],
            plot_params={"plot_type": "line"},
        )
        for panel in DASHBOARD_PANELS
    ]
    dashboard.panels.extend(panels)
    dashboard.tabs.append(DashboardTabModel(title=title, panels=[panel.id for panel in panels]))
    workspace.save_dashboard(project_id, dashboard)
    return True


def add_to_workspace(
    *,
    result: DriftResult,
    workspace_dir: Path,
    project_name: str,
    on_wait: Callable[[str], None] | None = None,
) -> WorkspaceEntry:
    """Add the result's snapshots to the Evidently local workspace (the project is created on
    first use, each model version's dashboard tab with its first report: :func:`ensure_dashboard`);
    ``evidently ui --workspace <workspace_dir>`` shows their history.

    Evidently's local workspace is JSON files with no cross-process coordination: one writer at a
    time (``churnops.contracts.home_lock``); a second one waits, saying so through ``on_wait``."""
    from evidently.ui.workspace import Workspace

    from churnops.contracts.home_lock import home_lock

    with home_lock(workspace_dir, what="drift report writing the Evidently workspace", on_wait=on_wait):
        workspace = Workspace.create(str(workspace_dir))
        found = workspace.search_project(project_name)
        project: Any = (
            found[0]
            if found
            else workspace.create_project(
                project_name, description=f"ChurnOps drift reports for model {result.model_name}"
            )
        )
        created = ensure_dashboard(
            workspace=workspace,
            project_id=project.id,
            model_name=result.model_name,
            model_version=result.model_version,
        )
        ids: list[str] = []
        for snapshot in (result.snapshot, result.concept_snapshot, result.performance_snapshot):
            if snapshot is not None:
                ref = workspace.add_run(project.id, snapshot)
                ids.append(str(ref.id))
    return WorkspaceEntry(
        project_id=str(project.id),
        snapshot_ids=tuple(ids),
        dashboard_tab=dashboard_tab_title(model_name=result.model_name, model_version=result.model_version),
        dashboard_created=created,
    )


def monitoring_metrics(result: DriftResult) -> dict[str, float]:
    """Every finite score of the report as an MLflow metric."""
    out: dict[str, float] = {
        "current_rows": float(result.current_rows),
        "reference_rows": float(result.reference_rows),
        METRIC_DRIFTED_SHARE: result.drifted_share,
        METRIC_MATURED_LABELS: float(result.counts().matured_labels),
        METRIC_LABELLED_ROWS: float(result.concept.labelled_rows),
        "drift": 1.0 if result.status == ReportStatus.DRIFT else 0.0,
    }
    for f in result.features:
        if f.score is not None:
            out[f"data_drift_kl_{f.feature}"] = f.score
    candidates = {
        METRIC_PREDICTION_JS: result.prediction.score,
        "concept_drift_ks_statistic": result.concept.statistic,
        "concept_drift_ks_p_value": result.concept.p_value,
        "score_mean_current": result.prediction.current_mean,
        METRIC_MATURED_ROC_AUC: result.performance.roc_auc,
        "matured_brier": result.performance.brier,
    }
    out.update({k: float(v) for k, v in candidates.items() if v is not None and math.isfinite(v)})
    return out


def log_to_mlflow(
    *,
    client: MlflowClient,
    experiment_name: str = MONITORING_EXPERIMENT,
    result: DriftResult,
    html_path: Path | None,
    artifact_location: str | None = None,
) -> str:
    """One MLflow run per report, tagged with the model name and version; returns its run id.

    ``artifact_location`` is used when the experiment has to be created
    (``<artifact_location>/<experiment_name>``, as training does)."""
    import json
    import tempfile

    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(experiment_name)
    try:
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(
                experiment_name,
                artifact_location=None
                if artifact_location is None
                else f"{artifact_location.rstrip('/')}/{experiment_name}",
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND},
            )
        )
    except MlflowException as error:
        # Another report created it since we looked (concurrent first reports on one store).
        experiment = client.get_experiment_by_name(experiment_name)
        if error.error_code != "RESOURCE_ALREADY_EXISTS" or experiment is None:
            raise
        experiment_id = experiment.experiment_id
    run = client.create_run(
        experiment_id,
        run_name=f"drift-{result.model_name}-v{result.model_version}-{result.window_end.date()}",
        tags={
            TAG_MODEL_NAME: result.model_name,
            TAG_MODEL_VERSION: result.model_version,
            TAG_KIND: KIND_DRIFT,
            TAG_DRIFT_STATUS: result.status.value,
            TAG_CONCEPT_STATUS: result.concept.status.value,
            TAG_DRIFT_WINDOW_START: result.window_start.isoformat(),
            TAG_DRIFT_WINDOW_END: result.window_end.isoformat(),
            **{
                tag: value.isoformat()
                for tag, value in (
                    (TAG_LABELS_START, result.labels_start),
                    (TAG_LABELS_END, result.labels_end),
                    (TAG_AS_OF, result.as_of),
                )
                if value is not None
            },
            "churnops.drift_policy": f"{result.policy_name}@{result.policy_digest}",
        },
    )
    run_id = str(run.info.run_id)
    now = int(wall_clock().timestamp() * 1000)  # when it was logged
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in monitoring_metrics(result).items()],
        tags=[
            RunTag(
                "churnops.drifted_features",
                ",".join(f.feature for f in result.features if f.drifted) or "none",
            )
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "drift.json"
        report.write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
        client.log_artifact(run_id, str(report), HTML_ARTIFACT_DIR)
    if html_path is not None:
        client.log_artifact(run_id, str(html_path), HTML_ARTIFACT_DIR)
    client.set_terminated(run_id)
    return run_id
