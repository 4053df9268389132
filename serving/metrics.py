"""The service's Prometheus metrics (next to BentoML's own request metrics at /metrics).

Created by the service at start-up, never at import: BentoML workers run prometheus_client in
multiprocess mode and set ``PROMETHEUS_MULTIPROC_DIR`` after importing the service module, so
prometheus_client is imported here lazily. ``registry=None`` (the service) writes to the
multiprocess files that BentoML's /metrics collects; tests pass their own CollectorRegistry.
Labels are bounded: endpoint, model version, status, reason. Never a customer id.

The request path goes through ``ServingMetrics.child``: ``labels()`` takes a lock and builds the
label tuple on every call (~3-5 us each, five per request), so each child is looked up once per
label set and kept.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))
ERROR_REASONS = (
    "invalid_request",
    "unauthorized",
    "unsupported_media_type",
    "body_too_large",
    "body_timeout",
    "too_many_slow_bodies",
    "too_many_items",
    "features_unavailable",
    "model_unavailable",
    "internal",
)


class ServingMetrics:
    """Every metric the issue lists, on one registry."""

    def __init__(self, *, registry: Any = None, namespace: str = "churnops") -> None:
        from prometheus_client import Counter, Gauge, Histogram

        kw: dict[str, Any] = {"registry": registry, "namespace": namespace}
        self.request_latency = Histogram(
            "request_duration_seconds",
            "Request latency by endpoint, measured in the service (includes body parsing).",
            ["endpoint", "status_code"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "Every HTTP request's latency by route (other: any path that is not a route) and status.",
            ["endpoint", "status_code"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.feature_latency = Histogram(
            "feature_fetch_duration_seconds",
            "Online feature fetch latency per request.",
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.predict_latency = Histogram(
            "model_predict_duration_seconds",
            "Model predict latency per request.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.predictions = Counter(
            "predictions",
            "Rows answered, by model version and row status (ok or why there is no score).",
            ["model_version", "status"],
            **kw,
        )
        self.scores = Histogram(
            "score",
            "Churn probabilities served.",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            **kw,
        )
        self.feature_problems = Counter(
            "feature_rows_unusable",
            "Rows whose online features were missing, stale or unknown.",
            ["reason"],
            **kw,
        )
        self.errors = Counter("errors", "Failed requests by reason.", ["reason"], **kw)
        self.log_rows = Counter("prediction_log_rows", "Rows written to the prediction log.", **kw)
        self.log_failures = Counter(
            "prediction_log_failures",
            "Prediction-log rows lost (neither the sink nor the spool took them).",
            **kw,
        )
        self.log_spooled = Counter(
            "prediction_log_spooled_rows",
            "Prediction-log rows the sink refused, kept in the local spool until it takes them.",
            **kw,
        )
        self.model_info = Gauge(
            "model_info",
            "The model version being served (1) and those it replaced (0).",
            ["model_name", "model_version", "feature_service", "scorer"],
            multiprocess_mode="livemax",
            **kw,
        )
        self.model_swaps = Counter("model_swaps", "Production versions swapped in.", **kw)
        self.model_load_failures = Counter(
            "model_load_failures", "Production versions that failed to load or verify.", ["reason"], **kw
        )
        self.model_registry_info = Gauge(
            "model_registry_info",
            "The version the registry names Production (1), as this service last read it.",
            ["model_name", "model_version"],
            multiprocess_mode="livemax",
            **kw,
        )
        self.model_registry_mismatch = Gauge(
            "model_registry_mismatch",
            "1 while the version served differs from the registry's Production (a failed load).",
            multiprocess_mode="livemax",
            **kw,
        )
        self._registry_labels: tuple[str, str] | None = None
        self._info_labels: tuple[str, str, str, str] | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set (labels are bounded, see above)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def set_registry_version(self, *, name: str | None, version: str | None, matches: bool) -> None:
        labels = (name, version) if name is not None and version is not None else None
        if labels != self._registry_labels:
            if self._registry_labels is not None:
                self.model_registry_info.labels(*self._registry_labels).set(0)
            if labels is not None:
                self.model_registry_info.labels(*labels).set(1)
            self._registry_labels = labels
        self.model_registry_mismatch.set(0 if matches or labels is None else 1)

    def set_model(self, *, name: str, version: str, feature_service: str, scorer: str) -> None:
        if self._info_labels is not None:
            self.model_info.labels(*self._info_labels).set(0)
        self._info_labels = (name, version, feature_service, scorer)
        self.model_info.labels(*self._info_labels).set(1)
