"""The loop's own events (drift fired, retrain refused, promoted, rolled back) sent as alerts.

An event goes to Alertmanager's v2 API (``POST /api/v2/alerts``), not straight to a chat: there
it is grouped and deduplicated with the Prometheus rule alerts and reaches the same receiver
(deploy/alertmanager/alertmanager.yml, docs/alerting.md). Its labels and annotations are the
contract of ``churnops.contracts.loop_events``.

A caller holds a :class:`Notifier`: :class:`AlertmanagerNotifier` when an Alertmanager is
configured (``churnops.wiring.loop_notifier`` builds it from ``CHURNOPS_ALERTMANAGER_URL``),
else :class:`NullNotifier`, which logs each event and says once that none is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import AwareDatetime, BaseModel, ConfigDict, HttpUrl, model_validator

from churnops.contracts.loop_events import (
    ALERTNAMES,
    ALERTS_PATH,
    ANNOTATION_DESCRIPTION,
    ANNOTATION_REASON,
    ANNOTATION_REPORT_URL,
    ANNOTATION_SUMMARY,
    ANNOTATION_WINDOW_END,
    ANNOTATION_WINDOW_START,
    EVENT_SOURCE,
    EVENT_TTL,
    LABEL_ALERTNAME,
    LABEL_EVENT,
    LABEL_MODEL,
    LABEL_MODEL_VERSION,
    LABEL_SEVERITY,
    LABEL_SOURCE,
    LABEL_WINDOW,
    SEVERITIES,
    LoopEventKind,
)
from churnops.contracts.redaction import redact

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AlertDeliveryError",
    "AlertmanagerNotifier",
    "LoopEvent",
    "LoopEventKind",
    "Notifier",
    "NotifyResult",
    "NullNotifier",
    "postable_alert",
]

logger = logging.getLogger(__name__)

_SUMMARIES = {
    LoopEventKind.DRIFT_FIRED: "Drift on {model} version {version}: the loop's drift trigger fired",
    LoopEventKind.RETRAIN_REFUSED: "Retraining of {model} refused (version {version} stays in Production)",
    LoopEventKind.PROMOTED: "{model} version {version} promoted to Production",
    LoopEventKind.ROLLED_BACK: "{model} rolled back to version {version}",
}


class AlertDeliveryError(RuntimeError):
    """Alertmanager refused the event or could not be reached; the message names it."""


class LoopEvent(BaseModel):
    """One thing the loop did (or refused to do) for one model over one window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: LoopEventKind
    model: str
    version: str
    """The version the event is about: the drifted or kept one, the promoted one, the one
    rolled back to."""
    window_start: AwareDatetime
    window_end: AwareDatetime
    reason: str
    report_url: HttpUrl | None = None
    """A link to the report behind the event (the drift report, the retrain decision)."""
    at: AwareDatetime
    """When the loop acted (its injected now): the alert's ``startsAt``."""

    @model_validator(mode="after")
    def _window(self) -> LoopEvent:
        if self.window_end < self.window_start:
            raise ValueError(
                f"window_end {self.window_end.isoformat()} is before window_start "
                f"{self.window_start.isoformat()}"
            )
        if not self.model or not self.version or not self.reason.strip():
            raise ValueError("a loop event needs a model, a version and a reason")
        return self

    @property
    def alertname(self) -> str:
        return ALERTNAMES[self.kind]

    @property
    def summary(self) -> str:
        return _SUMMARIES[self.kind].format(model=self.model, version=self.version)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def postable_alert(event: LoopEvent) -> dict[str, Any]:
    """The event as one Alertmanager v2 postable alert (labels identify it, annotations say it)."""
    window = f"{_iso(event.window_start)}/{_iso(event.window_end)}"
    annotations = {
        ANNOTATION_SUMMARY: event.summary,
        ANNOTATION_DESCRIPTION: f"{event.reason} (window {window})",
        ANNOTATION_REASON: event.reason,
        ANNOTATION_WINDOW_START: _iso(event.window_start),
        ANNOTATION_WINDOW_END: _iso(event.window_end),
    }
    alert: dict[str, Any] = {
        "labels": {
            LABEL_ALERTNAME: event.alertname,
            LABEL_MODEL: event.model,
            LABEL_MODEL_VERSION: event.version,
            LABEL_SEVERITY: SEVERITIES[event.kind],
            LABEL_EVENT: event.kind.value,
            LABEL_WINDOW: window,
            LABEL_SOURCE: EVENT_SOURCE,
        },
        "annotations": annotations,
        "startsAt": _iso(event.at),
        "endsAt": _iso(event.at + EVENT_TTL),
    }
    if event.report_url is not None:
        annotations[ANNOTATION_REPORT_URL] = str(event.report_url)
        alert["generatorURL"] = str(event.report_url)
    return alert


@dataclass(frozen=True)
class NotifyResult:
    """What became of one event: sent to ``target``, or only logged (``target`` None)."""

    event: LoopEvent
    sent: bool
    target: str | None


@runtime_checkable
class Notifier(Protocol):
    """Where the loop's events go. ``notify`` raises :class:`AlertDeliveryError` on failure."""

    def notify(self, event: LoopEvent) -> NotifyResult: ...


@dataclass
class NullNotifier:
    """No Alertmanager configured: every event is logged, and that none is sent is said once."""

    _said: bool = field(default=False, init=False)

    def notify(self, event: LoopEvent) -> NotifyResult:
        if not self._said:
            logger.warning(
                "CHURNOPS_ALERTMANAGER_URL is not set: the loop's events are logged only, not sent"
            )
            self._said = True
        logger.info("loop event %s: %s (%s)", event.kind.value, event.summary, event.reason)
        return NotifyResult(event=event, sent=False, target=None)


@dataclass(frozen=True)
class AlertmanagerNotifier:
    """Posts each event to Alertmanager's v2 API with a client from ``client`` (the wiring's
    factory: timeouts, TLS). A client per event, closed after it: events are a few a day, and
    the notifier holds no connection its caller would have to close."""

    client: Callable[[], httpx.Client]
    url: str
    """Alertmanager's base URL, e.g. ``http://alertmanager:9093``."""

    def notify(self, event: LoopEvent) -> NotifyResult:
        import httpx

        target = self.url.rstrip("/") + ALERTS_PATH
        try:
            with self.client() as client:
                response = client.post(target, json=[postable_alert(event)])
        except httpx.HTTPError as error:
            raise AlertDeliveryError(
                redact(
                    f"Alertmanager at {self.url} could not be reached ({error}); "
                    f"event {event.kind.value} of {event.model} not sent"
                )
            ) from error
        if response.status_code != 200:
            raise AlertDeliveryError(
                redact(
                    f"Alertmanager at {self.url} refused event {event.kind.value} of {event.model}: "
                    f"{response.status_code} {response.text[:200]}"
                )
            )
        logger.info("loop event %s sent to %s: %s", event.kind.value, redact(self.url), event.summary)
        return NotifyResult(event=event, sent=True, target=redact(self.url))
