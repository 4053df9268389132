"""The monitoring stack end to end: real ``prometheus`` scraping the real serving app and a real
``prometheus-pushgateway`` that a monitoring run pushed to, with the repo's own scrape config and
alert rules. Every PromQL expression of both Grafana dashboards must return data, every alert
expression must parse and evaluate, and a pushed drift over threshold must fire the drift alert.

The service, Redis, Pushgateway and Prometheus start once for the module, each on a free
loopback port with its own temp directory.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from churnops.settings import Settings
from monitoring.prometheus import (
    GAUGES,
    LOOP_GAUGES,
    NAMESPACE,
    MonitoringPushError,
    push_loop_metrics,
    push_monitoring_metrics,
)
from tests.conftest import REDIS_HOW, service_missing
from tests.support.prometheus import (
    RATE_INTERVAL,
    Prometheus,
    Pushgateway,
    binary,
    dashboard_exprs,
    first_data,
    scrape_config,
    send_traffic,
    wait_for,
)
from tests.support.samples import drift_document, performance_report
from tests.support.serving_env import Environment, RedisServer, ServiceProcess, build_environment, service_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
API_KEY = "stack-test-key-0123456789"
SCRAPE_LABELS = {"job", "instance", "service"}


@dataclass
class Stack:
    env: Environment
    service: ServiceProcess
    gateway: Pushgateway
    prometheus: Prometheus
    sent_ids: list[str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary("prometheus")  # skip (fail under CI) before building anything
    binary("prometheus-pushgateway")
    if shutil.which("redis-server") is None:
        service_missing("redis-server", REDIS_HOW, FileNotFoundError("redis-server"))
    work = tmp_path_factory.mktemp("prometheus-stack")
    redis = RedisServer(workdir=work / "redis")
    gateway = Pushgateway(workdir=work / "pushgateway")
    started: list[Any] = []
    try:
        redis.start()
        started.append(redis)
        gateway.start()
        started.append(gateway)
        settings = Settings(home=work / "home", redis_url=redis.url, _env_file=None)  # type: ignore[call-arg]
        env = build_environment(settings=settings, n_customers=60)
        service = ServiceProcess(
            # Its own BENTOML_HOME: BentoML's Prometheus multiprocess directory lives there, and
            # services sharing one (other tests, other checkouts) wipe each other's counters.
            env=service_env(settings, CHURNOPS_SERVING_API_KEY=API_KEY, BENTOML_HOME=str(work / "bentoml")),
            log_path=work / "service.log",
        )
        service.start()
        started.append(service)
        service.wait_ready()
        prometheus = Prometheus(
            workdir=work / "prometheus",
            config=scrape_config(serving=f"127.0.0.1:{service.port}", gateway=f"127.0.0.1:{gateway.port}"),
            rule_files=(ALERTS,),
        )
        prometheus.start()
        started.append(prometheus)
        sent = send_traffic(service=service, env=env, api_key=API_KEY)
        push_monitoring_metrics(
            gateway=gateway.url,
            job="churnops-drift",
            drift_json=drift_document(version=env.model_version, share=0.5),
            timeout_s=5,
        )
        push_monitoring_metrics(
            gateway=gateway.url,
            job="churnops-performance",
            performance=performance_report(version=env.model_version),
            timeout_s=5,
        )
        push_loop_metrics(  # what `churnops loop run` pushes after a day
            gateway=gateway.url,
            model_name="churn",
            moment=env.as_of.timestamp(),
            complete=True,
            retrain_fired=True,
            promoted=True,
            production_version=env.model_version,
            timeout_s=5,
        )
        # Both targets up, the pushed gauges and the score histogram scraped, and enough
        # scrapes since the traffic for rate() over RATE_INTERVAL.
        wait_for(prometheus, 'up{job="churnops-serving"} == 1')
        wait_for(prometheus, 'up{job="pushgateway"} == 1')
        wait_for(prometheus, "churnops_drift_score")
        wait_for(prometheus, "churnops_live_roc_auc")
        wait_for(
            prometheus,
            f'count_over_time(churnops_score_count{{model_version="{env.model_version}"}}[1m]) >= 5',
        )
        yield Stack(env=env, service=service, gateway=gateway, prometheus=prometheus, sent_ids=sent)
    finally:
        for daemon in reversed(started):
            daemon.stop()


def alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], str(rule["expr"])) for group in rules for rule in group["rules"]]


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    exprs = dashboard_exprs()
    assert {where.split(":")[0] for where, _ in exprs} == {"churnops-monitoring", "churnops-serving"}
    empty = []
    for where, expr in exprs:
        if not first_data(stack.prometheus, expr.replace("$__rate_interval", RATE_INTERVAL)):
            empty.append(f"{where}: {expr}")
    assert empty == [], "dashboard expressions without data:\n" + "\n".join(empty)


def test_every_alert_expression_evaluates_and_drift_fires(stack: Stack) -> None:
    results = {alert: stack.prometheus.query(expr)["result"] for alert, expr in alert_exprs()}
    results["ChurnOpsDataDrift"] = first_data(stack.prometheus, dict(alert_exprs())["ChurnOpsDataDrift"])
    # The pushed drifted share (0.5) is over the rule's 0.3; the pushed prediction drift (0.02) is
    # under its threshold (0.1); the live AUC is over the floor; the jobs just succeeded.
    assert [r["metric"] for r in results["ChurnOpsDataDrift"]] == [
        {"model": "churn", "model_version": stack.env.model_version}
    ]
    for quiet in ("ChurnOpsPredictionDrift", "ChurnOpsLiveAucBelowFloor", "ChurnOpsMonitoringJobStale"):
        assert results[quiet] == [], quiet
    # Prometheus loaded the same rules and evaluates them without errors; the drift alert fires.
    groups = httpx.get(f"{stack.prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == set(results)
    assert {name: rule["health"] for name, rule in loaded.items() if rule["health"] != "ok"} == {}
    deadline = time.monotonic() + 30
    while True:
        alerts = httpx.get(f"{stack.prometheus.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        if "ChurnOpsDataDrift" in firing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "ChurnOpsDataDrift" in firing


def test_pushed_gauges_keep_their_job_and_model_labels(stack: Stack) -> None:
    version = stack.env.model_version
    expected = {f"{NAMESPACE}_{name}" for name in GAUGES}
    got = {
        series["metric"]["__name__"]: series["metric"]
        for series in first_data(
            stack.prometheus,
            '{job=~"churnops-drift|churnops-performance|churnops-loop", __name__=~"churnops_.+"}',
        )
    }
    assert expected <= set(got)
    loop = {name for name, labels in got.items() if labels["job"] == "churnops-loop"}
    assert loop == {f"{NAMESPACE}_{name}" for name in LOOP_GAUGES}  # and no monitoring push carries them
    assert got["churnops_drifted_share"] == {
        "__name__": "churnops_drifted_share",
        "job": "churnops-drift",  # honor_labels: the pushed job, not "pushgateway"
        "model": "churn",  # the grouping key; the Pushgateway's empty instance="" is no label
        "model_version": version,
    }
    assert got["churnops_live_roc_auc"]["job"] == "churnops-performance"
    stamps = first_data(stack.prometheus, "churnops_monitoring_last_success_timestamp_seconds")
    assert {s["metric"]["job"] for s in stamps} == {"churnops-drift", "churnops-performance"}
    assert all(abs(float(s["value"][1]) - time.time()) < 600 for s in stamps)


def test_score_histogram_is_per_version_only_and_no_customer_id_is_a_label(stack: Stack) -> None:
    version = stack.env.model_version
    # On the service's own /metrics: churnops_score_bucket{le, model_version} and nothing else.
    text = httpx.get(f"{stack.service.url}/metrics", timeout=10).text
    buckets = re.findall(r"^churnops_score_bucket\{([^}]*)\}", text, re.MULTILINE)
    assert buckets, "no churnops_score histogram on /metrics"
    for labels in buckets:
        assert set(re.findall(r'(\w+)="', labels)) == {"le", "model_version"}, labels
        assert f'model_version="{version}"' in labels
    count = first_data(stack.prometheus, f'sum(churnops_score_count{{model_version="{version}"}})')
    assert float(count[0]["value"][1]) == 20  # the 20 known customers; unknown and stale rows have no score
    # Through Prometheus: every churnops_* series from both targets, no label value is a customer id.
    wait_for(stack.prometheus, 'up{job="churnops-serving"} == 1 and on () up{job="pushgateway"} == 1')
    every = first_data(stack.prometheus, '{__name__=~"churnops_.+|push_.+"}')
    assert {s["metric"]["job"] for s in every} >= {
        "churnops-serving",
        "churnops-drift",
        "churnops-performance",
    }
    values = {value for series in every for value in series["metric"].values()}
    assert values.isdisjoint(stack.sent_ids)
    score_labels = {
        frozenset(s["metric"]) - {"__name__"}
        for s in every
        if s["metric"]["__name__"] == "churnops_score_bucket"
    }
    assert score_labels == {frozenset({"le", "model_version"} | SCRAPE_LABELS)}


def test_a_refused_push_names_the_gateway(stack: Stack) -> None:
    # Prometheus itself is a real HTTP server that is not a Pushgateway: it refuses the PUT.
    with pytest.raises(MonitoringPushError, match=re.escape(f"Pushgateway at {stack.prometheus.url}")):
        push_monitoring_metrics(
            gateway=stack.prometheus.url, job="churnops-drift", drift_json=drift_document(), timeout_s=5
        )


def test_the_next_push_replaces_the_group_and_the_drift_alert_clears(stack: Stack) -> None:
    """The drift job pushes again with a calm result and only one feature (then the module's
    drifted state is pushed back, so the tests run in any order)."""
    version = stack.env.model_version
    calm = drift_document(version=version, share=0.05)
    calm["data_drift"]["features"] = calm["data_drift"]["features"][:1]
    push_monitoring_metrics(gateway=stack.gateway.url, job="churnops-drift", drift_json=calm, timeout_s=5)
    (expr,) = [expr for alert, expr in alert_exprs() if alert == "ChurnOpsDataDrift"]
    wait_for(stack.prometheus, 'churnops_drifted_share{job="churnops-drift"} == 0.05', timeout_s=30)
    assert stack.prometheus.query(expr)["result"] == []
    features = first_data(stack.prometheus, 'churnops_drift_score{job="churnops-drift"}')
    assert [s["metric"]["feature"] for s in features] == ["tenure"]  # monthly_charges left with the PUT
    # The performance job's group is untouched by the drift job's push.
    assert first_data(stack.prometheus, 'churnops_live_roc_auc{job="churnops-performance"}')
    drifted = drift_document(version=version, share=0.5)
    push_monitoring_metrics(gateway=stack.gateway.url, job="churnops-drift", drift_json=drifted, timeout_s=5)
    wait_for(stack.prometheus, 'churnops_drifted_share{job="churnops-drift"} == 0.5', timeout_s=30)


def test_the_loop_panels_read_the_pushed_day(stack: Stack) -> None:
    """The Grafana loop panels' queries against this Prometheus: last day, complete, decision,
    Production version (pushed by the fixture as `churnops loop run` does)."""
    exprs = dict(dashboard_exprs())

    def value(title: str) -> float:
        [series] = first_data(stack.prometheus, exprs[title])
        assert series["metric"] == {"model": "churn"}
        return float(series["value"][1])

    assert value("churnops-monitoring: Last loop day [A]") == stack.env.as_of.timestamp() * 1000
    assert value("churnops-monitoring: Last loop day complete [A]") == 1.0
    assert value("churnops-monitoring: Loop decision: retrain fired, promoted [A]") == 1.0
    assert value("churnops-monitoring: Loop decision: retrain fired, promoted [B]") == 1.0
    assert value("churnops-monitoring: Production version over time [A]") == float(stack.env.model_version)
