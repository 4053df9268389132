"""monitoring.prometheus: which gauges a drift JSON and a performance report become, and bad input."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from monitoring.prometheus import (
    MonitoringPushError,
    push_monitoring_metrics,
)
from tests.support.samples import drift_document, gauge_samples, performance_report
from tests.support.serving_env import free_port


def closed_gateway() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there: the push fails before any gauge is sent


def test_drift_and_performance_become_gauges_even_when_the_push_fails() -> None:
    registry = CollectorRegistry()
    report = performance_report(version="3")
    gateway = closed_gateway()
    with pytest.raises(MonitoringPushError, match=f"Pushgateway at {gateway} .*job 'drift', model 'churn'"):
        push_monitoring_metrics(
            gateway=gateway,
            job="drift",
            drift_json=drift_document(version="3", share=0.5, p_value=0.001),
            performance=report,
            registry=registry,
            timeout_s=2,
            now=1_700_000_000.0,
        )
    got = gauge_samples(registry)

    def value(name: str, **labels: str) -> float:
        return got[(f"churnops_{name}", frozenset(labels.items()))]

    assert value("drift_score", feature="monthly_charges", model_version="3", method="kl_div") == 0.3
    assert value("drift_threshold", feature="tenure", model_version="3", method="kl_div") == 0.1
    assert value("drifted_share", model_version="3") == 0.5
    assert value("prediction_drift", model_version="3", method="jensenshannon") == 0.02
    assert value("concept_drift_p_value", model_version="3") == 0.001
    assert value("concept_drift_detected", model_version="3") == 1.0
    (group,) = report.versions
    assert value("live_roc_auc", model_version="3") == group.metrics["roc_auc"]
    assert value("label_lag_seconds", model_version="3") == 2 * 3600.0
    assert value("matured_labels", model_version="3") == 400  # the performance report's, pushed last
    assert value("drifted_windows", model_version="3") == 0.0
    assert value("monitoring_last_success_timestamp_seconds", job="drift") == 1_700_000_000.0
    labels = {name for (_, pairs) in got for name, _ in pairs}
    assert labels <= {"feature", "model_version", "method", "job"}


def test_insufficient_results_push_no_value() -> None:
    registry = CollectorRegistry()
    report = performance_report(version="4", n=20)  # below min_rows: no live AUC
    with pytest.raises(MonitoringPushError):
        push_monitoring_metrics(
            gateway=closed_gateway(),
            job="perf",
            drift_json=drift_document(version="4", p_value=None),
            performance=report,
            registry=registry,
            timeout_s=2,
        )
    names = {name for (name, _) in gauge_samples(registry)}
    assert "churnops_concept_drift_p_value" not in names
    assert "churnops_live_roc_auc" not in names
    assert "churnops_label_lag_seconds" in names  # the lag is known from any labelled row
