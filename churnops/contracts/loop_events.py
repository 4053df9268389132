"""The loop's own events as Alertmanager alerts: what ``monitoring.alerts`` posts and what
``deploy/alertmanager/alertmanager.yml`` routes, groups and inhibits on, defined once for both.

The loop (drift report -> retraining decision -> promotion or rollback) sends each event it
acts on to Alertmanager's v2 API, so it is grouped and deduplicated with the Prometheus rule
alerts and reaches the same receiver. An event is one alert: its labels identify it (the same
event posted twice, by a retried step, is one alert and one notification), its annotations
carry what a person needs (reason, window, a link to the report).

``tests/unit/test_deploy_files.py`` checks that alertmanager.yml groups by ``GROUP_BY``, routes
``EVENT_SOURCE`` to the events receiver and inhibits ``INHIBITED_BY_DRIFT_EVENT`` with the drift
event; ``tests/integration/test_alerting.py`` runs the real Alertmanager on it.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class LoopEventKind(StrEnum):
    """What the loop did, or refused to do."""

    DRIFT_FIRED = "drift_fired"
    RETRAIN_REFUSED = "retrain_refused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


ALERTNAMES: dict[LoopEventKind, str] = {
    LoopEventKind.DRIFT_FIRED: "ChurnOpsDriftFired",
    LoopEventKind.RETRAIN_REFUSED: "ChurnOpsRetrainRefused",
    LoopEventKind.PROMOTED: "ChurnOpsModelPromoted",
    LoopEventKind.ROLLED_BACK: "ChurnOpsModelRolledBack",
}
"""The ``alertname`` of each kind (Alertmanager groups by it, receivers title with it)."""

SEVERITIES: dict[LoopEventKind, str] = {
    LoopEventKind.DRIFT_FIRED: "warning",
    LoopEventKind.RETRAIN_REFUSED: "warning",
    LoopEventKind.PROMOTED: "info",
    LoopEventKind.ROLLED_BACK: "critical",
}

# Labels: the identity of an event (and of its alert). The model label is the one the
# Pushgateway grouping key and the Prometheus rules use, so rules and events group alike.
LABEL_ALERTNAME = "alertname"
LABEL_MODEL = "model"
LABEL_MODEL_VERSION = "model_version"
LABEL_SEVERITY = "severity"
LABEL_EVENT = "event"
LABEL_WINDOW = "window"
"""``<start>/<end>`` in ISO 8601: the same drift on the next day's window is a new event."""
LABEL_SOURCE = "event_source"
EVENT_SOURCE = "churnops-loop"
"""``event_source`` of every loop event; alertmanager.yml routes on it (no resolved messages)."""

# Annotations: what a person reads in the notification.
ANNOTATION_SUMMARY = "summary"
ANNOTATION_DESCRIPTION = "description"
ANNOTATION_REASON = "reason"
ANNOTATION_WINDOW_START = "window_start"
ANNOTATION_WINDOW_END = "window_end"
ANNOTATION_REPORT_URL = "report_url"

GROUP_BY = (LABEL_ALERTNAME, LABEL_MODEL)
"""The route's ``group_by``: one notification per alert name and model per group interval."""

INHIBITED_BY_DRIFT_EVENT = ("ChurnOpsDataDrift", "ChurnOpsPredictionDrift", "ChurnOpsConceptDrift")
"""Prometheus rules a drift event of the same model silences: the event says the same thing with
the window, the reason and the report link, so a drift day is one notification, not four. When
the loop does not run (no event), the rules still notify."""

EVENT_TTL = timedelta(hours=24)
"""An event stays active this long (``endsAt``): a retried step within a day is deduplicated,
and the event resolves by itself (silently: the events route sends no resolved message)."""

ALERTS_PATH = "/api/v2/alerts"
"""Alertmanager's v2 endpoint that takes a JSON list of postable alerts."""
