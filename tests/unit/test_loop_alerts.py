"""The loop's events as Alertmanager alerts (monitoring/alerts.py) and the notifier the wiring
picks. The real Alertmanager is in tests/integration/test_alerting.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from churnops.contracts.loop_events import ALERTNAMES, EVENT_SOURCE, EVENT_TTL, LoopEventKind
from churnops.settings import Settings
from churnops.wiring import loop_notifier
from monitoring.alerts import AlertmanagerNotifier, LoopEvent, Notifier, NullNotifier, postable_alert

AT = datetime(2025, 3, 8, 2, 30, tzinfo=UTC)


def event(kind: LoopEventKind | str = LoopEventKind.DRIFT_FIRED, **changes: object) -> LoopEvent:
    fields: dict[str, object] = {
        "kind": kind,
        "model": "churn",
        "version": "4",
        "window_start": datetime(2025, 3, 1, tzinfo=UTC),
        "window_end": datetime(2025, 3, 8, tzinfo=UTC),
        "reason": "drifted share 0.40 over 0.30",
        "report_url": "https://mlflow.example.org/#/runs/r1",
        "at": AT,
    }
    return LoopEvent.model_validate(fields | changes)


def test_an_event_is_one_alert_identified_by_its_labels() -> None:
    alert = postable_alert(event())
    assert alert["labels"] == {
        "alertname": "ChurnOpsDriftFired",
        "model": "churn",
        "model_version": "4",
        "severity": "warning",
        "event": "drift_fired",
        "window": "2025-03-01T00:00:00Z/2025-03-08T00:00:00Z",
        "event_source": EVENT_SOURCE,
    }
    assert alert["annotations"]["reason"] == "drifted share 0.40 over 0.30"
    assert (
        alert["annotations"]["report_url"] == alert["generatorURL"] == "https://mlflow.example.org/#/runs/r1"
    )
    assert alert["startsAt"] == "2025-03-08T02:30:00Z"
    assert alert["endsAt"] == (AT + EVENT_TTL).isoformat().replace("+00:00", "Z")
    # A retried step (later `at`) is the same alert; the next window is a new one.
    assert postable_alert(event(at=AT + timedelta(minutes=5)))["labels"] == alert["labels"]
    later = event(window_start=datetime(2025, 3, 8, tzinfo=UTC), window_end=datetime(2025, 3, 15, tzinfo=UTC))
    assert postable_alert(later)["labels"] != alert["labels"]


def test_every_kind_has_an_alertname_and_no_link_means_no_generator_url() -> None:
    assert set(ALERTNAMES) == set(LoopEventKind)
    for kind in LoopEventKind:
        alert = postable_alert(event(kind, report_url=None))
        assert alert["labels"]["alertname"] == ALERTNAMES[kind]
        assert "generatorURL" not in alert and "report_url" not in alert["annotations"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window_end": datetime(2025, 2, 1, tzinfo=UTC)}, "is before window_start"),
        ({"reason": "  "}, "needs a model, a version and a reason"),
        ({"at": datetime(2025, 3, 8)}, "timezone"),
        ({"kind": "exploded"}, "drift_fired"),
    ],
)
def test_a_malformed_event_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        event(**changes)


def test_without_an_alertmanager_events_are_logged_and_that_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = loop_notifier(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    assert isinstance(notifier, NullNotifier) and isinstance(notifier, Notifier)
    with caplog.at_level(logging.INFO, logger="monitoring.alerts"):
        results = [notifier.notify(event()), notifier.notify(event(LoopEventKind.PROMOTED))]
    assert [r.sent for r in results] == [False, False] and results[0].target is None
    said = [r.message for r in caplog.records if "CHURNOPS_ALERTMANAGER_URL is not set" in r.message]
    assert len(said) == 1
    assert sum("loop event" in r.message for r in caplog.records) == 2


def test_the_wiring_builds_an_alertmanager_notifier_and_refuses_a_bad_url(tmp_path: Path) -> None:
    notifier = loop_notifier(
        Settings(home=tmp_path, alertmanager_url="http://alertmanager:9093/", _env_file=None)  # type: ignore[call-arg]
    )
    assert isinstance(notifier, AlertmanagerNotifier) and notifier.url == "http://alertmanager:9093"
    with pytest.raises(ValidationError, match="CHURNOPS_ALERTMANAGER_URL must be"):
        Settings(home=tmp_path, alertmanager_url="alertmanager:9093", _env_file=None)  # type: ignore[call-arg]
