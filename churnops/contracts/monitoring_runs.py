"""The MLflow run a drift report is logged as: what ``monitoring.report`` writes and
``churnops.retraining.observations`` reads back, defined once for both.

One run per report in the ``MONITORING_EXPERIMENT`` experiment, tagged with the model and the
window; the metrics listed here are the ones retraining's policy reads.
"""

from __future__ import annotations

from churnops.contracts.monitoring_terms import MATURED_LABELS

MONITORING_EXPERIMENT = "churn-monitoring"

TAG_MODEL_NAME = "churnops.model_name"
TAG_MODEL_VERSION = "churnops.model_version"
TAG_KIND = "churnops.run_kind"
KIND_DRIFT = "drift"
"""The value of ``TAG_KIND`` on a drift report's run."""
TAG_DRIFT_STATUS = "churnops.drift_status"
TAG_CONCEPT_STATUS = "churnops.concept_drift_status"
TAG_DRIFT_WINDOW_START = "churnops.window_start"
TAG_DRIFT_WINDOW_END = "churnops.window_end"
"""The drift window the report compared (a training labels window has its own names in
``churnops.contracts.mlflow_keys``). The values predate that split and stay: retraining reads
the window end back from every report already logged."""
TAG_LABELS_START = "churnops.labels_start"
TAG_LABELS_END = "churnops.labels_end"
TAG_AS_OF = "churnops.labels_as_of"

METRIC_DRIFTED_SHARE = "data_drift_drifted_share"
METRIC_PREDICTION_JS = "prediction_drift_js"
METRIC_MATURED_ROC_AUC = "matured_roc_auc"
METRIC_LABELLED_ROWS = "concept_drift_labelled_rows"
METRIC_MATURED_LABELS = MATURED_LABELS
"""The vocabulary's count (churnops.contracts.monitoring_terms), under its own name."""

# The Evidently side: every snapshot a report adds to the workspace carries these metadata keys
# and tags, and the project dashboard (``monitoring.report.ensure_dashboard``) filters on them.
SNAPSHOT_MODEL_NAME = "model_name"
SNAPSHOT_MODEL_VERSION = "model_version"
SNAPSHOT_WINDOW_START = "window_start"
SNAPSHOT_WINDOW_END = "window_end"
SNAPSHOT_PART = "part"
"""Which part of the report a snapshot holds: one of the ``PART_*`` values."""
PART_DATA_DRIFT = "data_drift"
PART_CONCEPT_DRIFT = "concept_drift"
PART_PERFORMANCE = "performance"


def snapshot_metadata(
    *, model_name: str, model_version: str, window_start: str, window_end: str
) -> dict[str, str]:
    """The metadata of every Evidently snapshot of one report (window ends as ISO 8601)."""
    return {
        SNAPSHOT_MODEL_NAME: model_name,
        SNAPSHOT_MODEL_VERSION: model_version,
        SNAPSHOT_WINDOW_START: window_start,
        SNAPSHOT_WINDOW_END: window_end,
    }


def snapshot_tags(*, model_name: str, model_version: str, window_start: str, window_end: str) -> list[str]:
    """The tags of every Evidently snapshot of one report: ``model:<name>``, ``version:<v>``,
    ``window:<start>/<end>`` (the UI lists and filters reports by them)."""
    return [f"model:{model_name}", f"version:{model_version}", f"window:{window_start}/{window_end}"]
