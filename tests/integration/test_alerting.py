"""Alerts that arrive: a real ``prometheus-alertmanager`` started through the repo's
``deploy/alertmanager/start.sh`` with the repo's ``alertmanager.yml`` (test timings only), a
real ``prometheus`` with the repo's rules and ``alerting`` block, a real Pushgateway, and a local
HTTP sink standing in for the Slack/Teams webhook.

- a drift day: the loop's drift event posted twice (a retried step) and the drift rules firing
  on the pushed gauges make exactly one notification, with model, version, window, reason and
  report link (grouped, deduplicated; the rule alerts are inhibited by the event);
- a rule alone (no loop running) reaches the same webhook, once;
- a quiet day (calm gauges, no event) sends nothing.

Every wait is a poll with a deadline; "nothing more arrives" is checked over a few group
intervals after the last expected notification.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnops.contracts.loop_events import ALERTNAMES, EVENT_SOURCE, LoopEventKind
from churnops.settings import Settings
from churnops.wiring import loop_notifier
from monitoring.alerts import AlertDeliveryError, AlertmanagerNotifier, LoopEvent
from monitoring.prometheus import push_monitoring_metrics
from tests.support.alertmanager import GROUP_WAIT_S, Alertmanager, WebhookSink
from tests.support.prometheus import Prometheus, Pushgateway, binary, scrape_config, wait_for
from tests.support.samples import drift_document
from tests.support.serving_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
MODEL = "churn"
VERSION = "7"
REPORT = "https://mlflow.example.org/#/experiments/3/runs/abc123"
# After the last expected notification, nothing else may arrive for this long (several group
# intervals of the test config, and more than Prometheus's evaluation of the rules).
QUIET_S = 4 * GROUP_WAIT_S + 2
ARRIVE_S = 30.0


@dataclass
class Stack:
    sink: WebhookSink
    alertmanager: Alertmanager
    gateway: Pushgateway
    prometheus: Prometheus
    settings: Settings


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    binary("prometheus")  # skip (fail under CI) before starting anything
    binary("prometheus-pushgateway")
    binary("prometheus-alertmanager")
    sink = WebhookSink()
    sink.start()
    started: list[Any] = []
    try:
        alertmanager = Alertmanager(workdir=tmp_path / "alertmanager", webhook_url=sink.url)
        alertmanager.start()
        started.append(alertmanager)
        gateway = Pushgateway(workdir=tmp_path / "pushgateway")
        gateway.start()
        started.append(gateway)
        prometheus = Prometheus(
            workdir=tmp_path / "prometheus",
            config=scrape_config(
                serving=None,
                gateway=f"127.0.0.1:{gateway.port}",
                alertmanager=f"127.0.0.1:{alertmanager.port}",
            ),
            rule_files=(ALERTS,),
        )
        prometheus.start()
        started.append(prometheus)
        settings = Settings(home=tmp_path / "home", alertmanager_url=alertmanager.url, _env_file=None)  # type: ignore[call-arg]
        yield Stack(
            sink=sink, alertmanager=alertmanager, gateway=gateway, prometheus=prometheus, settings=settings
        )
    finally:
        for daemon in reversed(started):
            daemon.stop()
        sink.stop()


def drift_event(*, at: datetime) -> LoopEvent:
    return LoopEvent(
        kind=LoopEventKind.DRIFT_FIRED,
        model=MODEL,
        version=VERSION,
        window_start=datetime(2025, 3, 1, tzinfo=UTC),
        window_end=datetime(2025, 3, 8, tzinfo=UTC),
        reason="drifted share 0.50 over 0.30 (tenure, monthly_charges)",
        report_url=REPORT,
        at=at,
    )


def push_drift(stack: Stack, *, share: float) -> None:
    push_monitoring_metrics(
        gateway=stack.gateway.url,
        job="churnops-drift",
        model_name=MODEL,
        drift_json=drift_document(version=VERSION, share=share),
        timeout_s=5,
    )
    wait_for(stack.prometheus, f'churnops_drifted_share{{job="churnops-drift"}} == {share}', timeout_s=30)


def wait_for_rule_alert(stack: Stack, alertname: str) -> dict[str, Any]:
    """The rule's alert as Alertmanager holds it, once Prometheus has sent it."""
    deadline = time.monotonic() + ARRIVE_S
    while True:
        held = [a for a in stack.alertmanager.alerts() if a["labels"]["alertname"] == alertname]
        if held:
            return held[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Prometheus did not send {alertname} to Alertmanager within {ARRIVE_S:.0f} s"
            )
        time.sleep(0.1)


def exactly(stack: Stack, count: int) -> list[dict[str, Any]]:
    """The sink's notifications once ``count`` arrived and nothing more came for ``QUIET_S``."""
    got = stack.sink.wait_for(count, timeout_s=ARRIVE_S)
    assert len(got) >= count, f"{len(got)} notifications within {ARRIVE_S:.0f} s, expected {count}"
    more = stack.sink.wait_for(count + 1, timeout_s=QUIET_S)
    assert len(more) == count, [n["groupLabels"] for n in more]
    return more


def test_a_drift_day_is_one_notification_with_the_events_details(stack: Stack) -> None:
    notifier = loop_notifier(stack.settings)
    assert isinstance(notifier, AlertmanagerNotifier)
    at = datetime.now(UTC)
    first = notifier.notify(drift_event(at=at))
    again = notifier.notify(drift_event(at=at + timedelta(seconds=5)))  # the step retried
    assert first.sent and again.sent and first.target == stack.alertmanager.url
    # The drift job's gauges make the drift rule fire for the same model: Prometheus sends it,
    # and Alertmanager holds it inhibited by the loop's event.
    push_drift(stack, share=0.5)
    rule = wait_for_rule_alert(stack, "ChurnOpsDataDrift")
    assert rule["labels"]["model"] == MODEL
    assert rule["status"]["inhibitedBy"], rule["status"]

    (notification,) = exactly(stack, 1)
    assert notification["receiver"] == "churnops-events"
    assert notification["groupLabels"] == {"alertname": ALERTNAMES[LoopEventKind.DRIFT_FIRED], "model": MODEL}
    (alert,) = notification["alerts"]
    assert alert["status"] == "firing"
    assert alert["labels"]["model_version"] == VERSION
    assert alert["labels"]["event"] == "drift_fired"
    assert alert["labels"]["event_source"] == EVENT_SOURCE
    assert alert["labels"]["window"] == "2025-03-01T00:00:00Z/2025-03-08T00:00:00Z"
    annotations = alert["annotations"]
    assert annotations["reason"] == "drifted share 0.50 over 0.30 (tenure, monthly_charges)"
    assert (annotations["window_start"], annotations["window_end"]) == (
        "2025-03-01T00:00:00Z",
        "2025-03-08T00:00:00Z",
    )
    assert annotations["report_url"] == REPORT == alert["generatorURL"]
    assert MODEL in annotations["summary"] and VERSION in annotations["summary"]


def test_a_firing_rule_reaches_the_webhook_once(stack: Stack) -> None:
    """No loop event: the rule alone notifies (Prometheus re-sends it; Alertmanager sends it once)."""
    push_drift(stack, share=0.5)
    rule = wait_for_rule_alert(stack, "ChurnOpsDataDrift")
    assert rule["status"]["state"] == "active" and not rule["status"]["inhibitedBy"]
    (notification,) = exactly(stack, 1)
    assert notification["receiver"] == "churnops-webhook"
    assert notification["groupLabels"] == {"alertname": "ChurnOpsDataDrift", "model": MODEL}
    (alert,) = notification["alerts"]
    assert alert["labels"]["model_version"] == VERSION
    assert alert["labels"]["stack"] == "churnops"  # Prometheus's external label
    assert "Data drift on churn" in alert["annotations"]["summary"]


def test_a_quiet_day_sends_nothing(stack: Stack) -> None:
    push_drift(stack, share=0.05)
    # Prometheus has evaluated every rule on the calm gauges, healthy, and none fires.
    deadline = time.monotonic() + ARRIVE_S
    while True:
        groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [rule for rule in rules if rule.get("lastEvaluation", "").startswith("20")]
        if rules and len(evaluated) == len(rules) and all(r["health"] == "ok" for r in rules):
            break
        assert not time.monotonic() > deadline, [(r["name"], r["health"], r.get("lastError")) for r in rules]
        time.sleep(0.1)
    wait_for(stack.prometheus, "count(ALERTS) or vector(0) == 0")
    assert stack.sink.wait_for(1, timeout_s=QUIET_S) == []
    assert stack.alertmanager.alerts() == []


def test_an_unreachable_alertmanager_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path, alertmanager_url=url, connect_timeout_s=1, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(AlertDeliveryError, match=f"Alertmanager at {url} could not be reached"):
        loop_notifier(settings).notify(drift_event(at=datetime.now(UTC)))
