"""Monitoring results for tests: a drift JSON document (the contract) and a real PerformanceReport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry

from monitoring.performance import PerformanceReport, performance_on_late_labels

SNAPSHOT = datetime(2026, 1, 1, tzinfo=UTC)


def drift_document(
    *, version: str = "3", share: float = 0.1, prediction_score: float = 0.02, p_value: float | None = 0.4
) -> dict[str, Any]:
    """A drift JSON document as ``churnops monitor drift --json`` prints it."""
    return {
        "status": "ok",
        "model": {"name": "churn", "version": version},
        "data_drift": {
            "method": "kl_div",
            "drifted_share": share,
            "features": [
                {"feature": "tenure", "score": 0.05, "threshold": 0.1, "drifted": False},
                {"feature": "monthly_charges", "score": 0.3, "threshold": 0.1, "drifted": True},
            ],
        },
        "prediction_drift": {
            "method": "jensenshannon",
            "score": prediction_score,
            "threshold": 0.1,
            "drifted": prediction_score > 0.1,
        },
        "concept_drift": {
            "method": "ks",
            "status": "ok" if p_value is not None else "insufficient_data",
            "statistic": 0.05 if p_value is not None else None,
            "p_value": p_value,
            "threshold": 0.01,
            "drifted": p_value is not None and p_value <= 0.01,
            "labelled_rows": 500 if p_value is not None else 3,
        },
        "counts": {
            "model_version": version,
            "matured_labels": 500 if p_value is not None else 3,
            "drifted_share": share,
            "drifted_windows": 0,
        },
    }


def performance_report(*, version: str = "3", n: int = 400, seed: int = 0) -> PerformanceReport:
    """Matured predictions of ``n`` customers (an informative score) and their labels."""
    rng = np.random.default_rng(seed)
    churned = (rng.uniform(size=n) < 0.3).astype("int64")
    score = np.clip(0.25 + 0.4 * churned + rng.normal(0, 0.2, size=n), 0.001, 0.999)
    ids = [f"S{i:05d}-{seed}" for i in range(n)]
    ts = pd.Timestamp(SNAPSHOT + timedelta(hours=1))
    predictions = pd.DataFrame(
        {
            "customer_id": ids,
            "ts": pd.Series([ts] * n, dtype="datetime64[us, UTC]"),
            "feature_ts": pd.Series([pd.Timestamp(SNAPSHOT)] * n, dtype="datetime64[us, UTC]"),
            "model_name": "churn",
            "model_version": version,
            "score": score,
            "status": "ok",
        }
    )
    labels = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": predictions["feature_ts"],
            "created": predictions["feature_ts"] + pd.Timedelta(hours=3),
            "churned": churned,
        }
    )
    return performance_on_late_labels(
        predictions=predictions,
        labels=labels,
        as_of=SNAPSHOT + timedelta(days=40),
        threshold=0.5,
        reference_metrics={version: {"test_roc_auc": 0.85}},
    )


def gauge_samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample a registry holds, by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
    }
