"""Monitoring results as Prometheus gauges, pushed to a Pushgateway by the batch jobs.

Batch jobs (drift, performance) do not live long enough to be scraped, so each run pushes its
gauges once (HTTP PUT: the group's previous values are replaced) under the grouping key
``job`` + ``model`` (the model name). Prometheus scrapes the Pushgateway with
``honor_labels: true`` so the pushed ``job`` survives. Labels are bounded: feature name, model
version, method, job. Never a customer id.

Nothing is registered at import: gauges are created on a private ``CollectorRegistry`` per push.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from churnops.contracts.clock import wall_clock
from churnops.contracts.loop_events import LABEL_MODEL
from churnops.contracts.monitoring_terms import (
    DRIFTED_SHARE,
    DRIFTED_WINDOWS,
    MATURED_LABELS,
    drifted_windows,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from monitoring.performance import PerformanceReport

NAMESPACE = "churnops"
# name -> (label names, help): every gauge a monitoring job pushes (tests and dashboards read this).
GAUGES: dict[str, tuple[tuple[str, ...], str]] = {
    "drift_score": (
        ("feature", "model_version", "method"),
        "Per-feature data drift score (e.g. KL divergence).",
    ),
    "drift_threshold": (("feature", "model_version", "method"), "Per-feature drift threshold of the policy."),
    "drifted_share": (("model_version",), "Share of features whose drift score is over its threshold."),
    "prediction_drift": (
        ("model_version", "method"),
        "Drift of the score distribution (e.g. Jensen-Shannon).",
    ),
    "prediction_drift_threshold": (("model_version", "method"), "Prediction-drift threshold of the policy."),
    "concept_drift_p_value": (
        ("model_version",),
        "p-value of the concept-drift test (absent if insufficient).",
    ),
    "concept_drift_detected": (("model_version",), "1 if the concept-drift rule fired, else 0."),
    "live_roc_auc": (("model_version",), "ROC-AUC on matured predictions joined to late labels."),
    "matured_labels": (
        ("model_version",),
        "Matured labels behind the figures (the drift report's labels window, or the performance window).",
    ),
    "drifted_windows": (
        ("model_version",),
        "Drifted windows in a row as of the pushed report: 1 if its status is drift, else 0.",
    ),
    "label_lag_seconds": (("model_version",), "Median label availability minus prediction time."),
    "monitoring_last_success_timestamp_seconds": (("job",), "Unix time of the last successful run."),
    "loop_last_run_timestamp_seconds": ((), "The moment (Unix time) of the last loop day run."),
    "loop_day_complete": ((), "1 if the last loop day ran every step, 0 if it stopped at a failed step."),
    "loop_retrain_fired": ((), "1 if the last loop day's retraining check fired, else 0."),
    "loop_promoted": ((), "1 if the last loop day promoted a retrained version to Production, else 0."),
    "production_version": ((), "The model version in Production after the last loop day."),
}
LOOP_GAUGES = frozenset(
    {
        "loop_last_run_timestamp_seconds",
        "loop_day_complete",
        "loop_retrain_fired",
        "loop_promoted",
        "production_version",
    }
)
"""The gauges of :data:`GAUGES` the loop pushes (:func:`push_loop_metrics`, job :data:`LOOP_JOB`);
a monitoring push never carries them (unlabelled gauges would read 0 there)."""
LOOP_JOB = "churnops-loop"


class MonitoringPushError(RuntimeError):
    """The Pushgateway refused the push or could not be reached."""


class MonitoringInputError(ValueError):
    """The drift JSON or the performance report cannot be exported as given."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _Model(_Strict):
    name: str
    version: str

    @field_validator("version", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Feature(_Strict):
    feature: str
    score: float
    threshold: float
    drifted: bool


class _DataDrift(_Strict):
    method: str
    drifted_share: float
    features: list[_Feature]


class _PredictionDrift(_Strict):
    method: str
    score: float
    threshold: float
    drifted: bool


class _ConceptDrift(_Strict):
    method: str
    status: str
    p_value: float | None
    threshold: float
    drifted: bool


class _Counts(_Strict):
    matured_labels: int
    drifted_share: float
    drifted_windows: int


class DriftDocument(_Strict):
    """The fields of the drift JSON contract that are exported (the rest is ignored)."""

    status: str
    model: _Model
    counts: _Counts
    data_drift: _DataDrift | None = None
    prediction_drift: _PredictionDrift | None = None
    concept_drift: _ConceptDrift | None = None


def parse_drift_json(document: Mapping[str, Any]) -> DriftDocument:
    """Validate the drift JSON contract; the error names every bad field."""
    try:
        return DriftDocument.model_validate(dict(document))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise MonitoringInputError(
            f"drift_json does not follow the drift JSON contract: {problems}"
        ) from None


def monitoring_gauges(registry: CollectorRegistry, *, loop: bool = False) -> dict[str, Any]:
    """The monitoring gauges of :data:`GAUGES` on ``registry`` (``churnops_<name>``), by short
    name; ``loop``: the loop's (:data:`LOOP_GAUGES`) instead."""
    from prometheus_client import Gauge

    return {
        name: Gauge(name, doc, list(labels), namespace=NAMESPACE, registry=registry)
        for name, (labels, doc) in GAUGES.items()
        if (name in LOOP_GAUGES) == loop
    }


def _set(gauges: dict[str, Any], name: str, value: float | None, **labels: str) -> None:
    if value is not None and math.isfinite(value):
        gauges[name].labels(**labels).set(value)


def _fill_drift(gauges: dict[str, Any], drift: DriftDocument) -> None:
    version = drift.model.version
    # the monitoring vocabulary's counts, as `monitor drift` and `retrain check` print them
    _set(gauges, MATURED_LABELS, float(drift.counts.matured_labels), model_version=version)
    _set(gauges, DRIFTED_SHARE, drift.counts.drifted_share, model_version=version)
    _set(gauges, DRIFTED_WINDOWS, float(drifted_windows([drift.status])), model_version=version)
    if drift.data_drift is not None:
        data = drift.data_drift
        for feature in data.features:
            labels = {"feature": feature.feature, "model_version": version, "method": data.method}
            _set(gauges, "drift_score", feature.score, **labels)
            _set(gauges, "drift_threshold", feature.threshold, **labels)
    if drift.prediction_drift is not None:
        pred = drift.prediction_drift
        labels = {"model_version": version, "method": pred.method}
        _set(gauges, "prediction_drift", pred.score, **labels)
        _set(gauges, "prediction_drift_threshold", pred.threshold, **labels)
    if drift.concept_drift is not None:
        concept = drift.concept_drift
        _set(gauges, "concept_drift_p_value", concept.p_value, model_version=version)
        _set(gauges, "concept_drift_detected", float(concept.drifted), model_version=version)


def _fill_performance(gauges: dict[str, Any], report: PerformanceReport) -> None:
    for group in report.versions:
        version = group.model_version
        _set(gauges, MATURED_LABELS, float(group.rows), model_version=version)
        _set(gauges, "label_lag_seconds", group.label_lag_median_s, model_version=version)
        if group.status == "ok":
            _set(gauges, "live_roc_auc", group.metrics.get("roc_auc"), model_version=version)


def _model_name(drift: DriftDocument | None, report: PerformanceReport | None, given: str | None) -> str:
    names = {
        n for n in (given, drift.model.name if drift else None, report.model_name if report else None) if n
    }
    if len(names) > 1:
        raise MonitoringInputError(
            f"model names disagree: {sorted(names)}; push one model's results at a time"
        )
    if not names:
        raise MonitoringInputError(
            "no model name: pass model_name=..., or a drift_json/performance that names the model"
        )
    return names.pop()


def push_monitoring_metrics(
    *,
    gateway: str,
    job: str,
    drift_json: Mapping[str, Any] | None = None,
    performance: PerformanceReport | None = None,
    registry: CollectorRegistry | None = None,
    timeout_s: float = 10.0,
    model_name: str | None = None,
    now: float | None = None,
) -> None:
    """Push one successful monitoring run's gauges (and its success time) to ``gateway``.

    ``registry``: the CollectorRegistry to fill and push (a fresh one by default; pass your own
    to add metrics or to read back what was pushed). The push replaces the group
    ``{job, model}``, so give drift and performance runs different ``job`` names.
    """
    from prometheus_client import CollectorRegistry, push_to_gateway

    if not job.strip():
        raise MonitoringInputError("job must be a non-empty name, e.g. 'churnops-drift'")
    if timeout_s <= 0:
        raise MonitoringInputError(f"timeout_s must be > 0, got {timeout_s}")
    drift = parse_drift_json(drift_json) if drift_json is not None else None
    name = _model_name(drift, performance, model_name)
    registry = registry if registry is not None else CollectorRegistry()
    gauges = monitoring_gauges(registry)
    if drift is not None:
        _fill_drift(gauges, drift)
    if performance is not None:
        _fill_performance(gauges, performance)
    gauges["monitoring_last_success_timestamp_seconds"].labels(job=job).set(
        wall_clock().timestamp() if now is None else now
    )
    try:
        push_to_gateway(
            gateway, job=job, registry=registry, grouping_key={LABEL_MODEL: name}, timeout=timeout_s
        )
    except OSError as error:  # URLError and HTTPError are OSErrors
        raise MonitoringPushError(
            f"pushing monitoring metrics to the Pushgateway at {gateway} (job {job!r}, model {name!r}) "
            f"failed: {error}; check the gateway URL and that it is up"
        ) from error


def push_loop_metrics(
    *,
    gateway: str,
    model_name: str,
    moment: float,
    complete: bool,
    retrain_fired: bool | None,
    promoted: bool,
    production_version: str | None,
    registry: CollectorRegistry | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Push one loop day's outcome (:data:`LOOP_GAUGES`) under ``{job=churnops-loop, model}``:
    its moment (Unix time), whether it completed, whether the retraining check fired (left out
    when the day stopped before it), whether it promoted, and the Production version after it
    (left out when there is none, or it is not a number)."""
    from prometheus_client import CollectorRegistry, push_to_gateway

    registry = registry if registry is not None else CollectorRegistry()
    gauges = monitoring_gauges(registry, loop=True)
    gauges["loop_last_run_timestamp_seconds"].set(moment)
    gauges["loop_day_complete"].set(1.0 if complete else 0.0)
    gauges["loop_promoted"].set(1.0 if promoted else 0.0)
    if retrain_fired is None:
        registry.unregister(gauges["loop_retrain_fired"])
    else:
        gauges["loop_retrain_fired"].set(1.0 if retrain_fired else 0.0)
    if production_version is not None and production_version.isdigit():
        gauges["production_version"].set(float(production_version))
    else:
        registry.unregister(gauges["production_version"])
    try:
        push_to_gateway(
            gateway,
            job=LOOP_JOB,
            registry=registry,
            grouping_key={LABEL_MODEL: model_name},
            timeout=timeout_s,
        )
    except OSError as error:
        raise MonitoringPushError(
            f"pushing the loop's metrics to the Pushgateway at {gateway} (model {model_name!r}) failed: "
            f"{error}; check the gateway URL and that it is up"
        ) from error
