"""The latest monitoring results, as :class:`MonitoringWindow` s, read from MLflow.

Choice: ``retrain check`` reads the drift reports that ``churnops monitor drift`` already logged
(one run per report in the ``churn-monitoring`` experiment, tagged with the model version and
window) instead of computing a new one: checks stay cheap (no Evidently import, no prediction log
scan), the k-consecutive rule sees the real history of windows, and the decision links the exact
report (the monitoring run) it used. ``retrain check --refresh`` runs a report first.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from churnops.contracts.monitoring_runs import (
    KIND_DRIFT,
    METRIC_DRIFTED_SHARE,
    METRIC_MATURED_LABELS,
    METRIC_MATURED_ROC_AUC,
    METRIC_PREDICTION_JS,
    MONITORING_EXPERIMENT,
    TAG_AS_OF,
    TAG_CONCEPT_STATUS,
    TAG_DRIFT_STATUS,
    TAG_DRIFT_WINDOW_END,
    TAG_KIND,
    TAG_LABELS_END,
    TAG_LABELS_START,
    TAG_MODEL_NAME,
    TAG_MODEL_VERSION,
)
from churnops.contracts.monitoring_terms import ReportStatus
from churnops.retraining.decide import MonitoringWindow

if TYPE_CHECKING:
    from mlflow import MlflowClient


def report_link(run_id: str) -> str:
    """How a decision and a version name the report: ``runs:/<monitoring run>/drift``."""
    return f"runs:/{run_id}/drift"


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def read_monitoring_windows(
    *, client: MlflowClient, model_name: str, model_version: str, limit: int = 50
) -> list[MonitoringWindow]:
    """The last ``limit`` drift reports logged for this model version, oldest window first."""
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{TAG_MODEL_NAME}` = '{model_name}' AND tags.`{TAG_MODEL_VERSION}` = '{model_version}' "
            f"AND tags.`{TAG_KIND}` = '{KIND_DRIFT}'"
        ),
        max_results=limit,
        order_by=["attributes.start_time DESC"],
    )
    windows: list[MonitoringWindow] = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        missing = [
            key for key in (TAG_DRIFT_WINDOW_END, TAG_DRIFT_STATUS, TAG_CONCEPT_STATUS) if key not in tags
        ]
        missing += [key for key in (METRIC_MATURED_LABELS, METRIC_DRIFTED_SHARE) if key not in metrics]
        if missing:  # every drift report writes them: a run without them was not written by this churnops
            raise ValueError(
                f"monitoring run {run.info.run_id} is tagged as a drift report of {model_name} "
                f"v{model_version} but lacks {missing}: delete it or run `churnops monitor drift` again"
            )
        windows.append(
            MonitoringWindow(
                window_end=datetime.fromisoformat(tags[TAG_DRIFT_WINDOW_END]),
                status=tags[TAG_DRIFT_STATUS],
                model_version=model_version,
                drifted_share=metrics[METRIC_DRIFTED_SHARE],
                prediction_js=metrics.get(METRIC_PREDICTION_JS),  # absent: no score to compare
                concept_drifted=tags[TAG_CONCEPT_STATUS] == ReportStatus.DRIFT,
                matured_roc_auc=metrics.get(METRIC_MATURED_ROC_AUC),  # absent: one class, or no labels
                matured_labels=int(metrics[METRIC_MATURED_LABELS]),
                labels_start=_time(tags.get(TAG_LABELS_START)),
                labels_end=_time(tags.get(TAG_LABELS_END)),
                as_of=_time(tags.get(TAG_AS_OF)),
                report=report_link(run.info.run_id),
            )
        )
    # One report per window end: a window reported twice counts once (the latest run wins).
    latest: dict[datetime, MonitoringWindow] = {}
    for window in reversed(windows):
        latest[window.window_end] = window
    return sorted(latest.values(), key=lambda w: w.window_end)
