"""The running service against hostile and unlucky clients (issue 12): unbounded metric labels,
slow-body clients, and a Production alias pointing at a tampered artifact.

A real `bentoml serve` subprocess with no API key (the default, where slow bodies hurt most),
a private redis-server and an MLflow SQLite store. Tests run in file order: the last one
tampers with an artifact and restarts the service.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from churnops.settings import Settings
from tests.support.serving_env import (
    Environment,
    RedisServer,
    ServiceProcess,
    private_service,
)

# slow: starts redis-server and a real BentoML process (twice, for the restart).
pytestmark = [pytest.mark.integration, pytest.mark.slow]
BODY_TIMEOUT_S = 2
MAX_PENDING = 16
SLOW_CLIENTS = 300


@dataclass
class Stack:
    settings: Settings
    env: Environment
    redis: RedisServer
    service: ServiceProcess
    broken_version: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with private_service(
        work=tmp_path_factory.mktemp("hardening"),
        n_customers=100,
        seed=5,
        c=0.1,
        CHURNOPS_SERVING_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT_S),
        CHURNOPS_SERVING_MAX_PENDING_BODIES=str(MAX_PENDING),
        CHURNOPS_SERVING_POLL_SECONDS="0.3",
    ) as served:
        yield Stack(served.settings, served.env, served.redis, served.service, served.second_version)


def _predict(stack: Stack, client: httpx.Client | None = None) -> httpx.Response:
    body = {"customer_ids": stack.env.customer_ids[:2]}
    if client is not None:
        return client.post("/predict", json=body)
    return httpx.post(f"{stack.service.url}/predict", json=body, timeout=10)


def _endpoint_labels(metrics: str) -> set[str]:
    return set(re.findall(r'endpoint="((?:[^"\\]|\\.)*)"', metrics))


def test_hundreds_of_distinct_paths_leave_the_metrics_bounded(stack: Stack) -> None:
    # 450 distinct paths, each sent as GET and POST: one leaked path fails the label check, and an
    # unbounded label set would add at least one series per path, over twice the bound below.
    hostile = [f"/nope-{i}" for i in range(300)]
    hostile += [f"/predict/{i}" for i in range(100)]  # under a real route
    hostile += [f"/static_content/{i}.css" for i in range(50)]  # under the static mount
    hostile += ["/%00", "/a%00b", "/predict%00", "/%E2%80%AE", "/" + "x" * 4000]
    with httpx.Client(base_url=stack.service.url, timeout=10) as client:
        before = client.get("/metrics").text
        for path in hostile:
            client.get(path)
            client.post(path, content=b"{}")
        _predict(stack, client)
        after = client.get("/metrics").text
    known = {"/predict", "/predict_features", "/model/refresh", "/livez", "/healthz", "/readyz", "/"}
    known |= {"/docs", "/docs.json", "/schema.json", "/metrics"}
    labels = _endpoint_labels(after)
    assert labels <= known | {"other"}, sorted(labels - known)[:10]
    assert "\\x00" not in after and "\x00" not in after
    series = sum(1 for line in after.splitlines() if line and not line.startswith("#"))
    series_before = sum(1 for line in before.splitlines() if line and not line.startswith("#"))
    # Bounded: "other" adds a fixed handful of series per status code, not one per path.
    assert series - series_before < 200, (series_before, series)


def _slow_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"customer_ids": [')  # and then nothing more
    return sock


def _status(sock: socket.socket) -> int | None:
    try:
        data = sock.recv(4096)
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(match.group(1)) if match else None


def test_slow_body_clients_neither_starve_real_requests_nor_hold_a_slot_for_long(stack: Stack) -> None:
    slow = [_slow_socket(stack.service.port) for _ in range(SLOW_CLIENTS)]
    try:
        time.sleep(0.5)  # every slow request has reached the service
        with httpx.Client(base_url=stack.service.url, timeout=10) as client:
            answers = [_predict(stack, client).status_code for _ in range(30)]
        assert answers == [200] * 30, answers
        statuses = [_status(sock) for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    # The first MAX_PENDING wait for their body until the deadline (408); the rest are refused
    # at once (503): nobody holds a slot past the body deadline.
    assert set(statuses) <= {408, 503}, sorted({s for s in statuses if s not in (408, 503)}, key=str)
    assert statuses.count(408) <= MAX_PENDING, statuses.count(408)
    assert _predict(stack).status_code == 200


def test_schemathesis_finds_nothing_against_the_published_spec(stack: Stack, tmp_path: Path) -> None:
    """Every check of schemathesis (property-based, from the service's own /docs.json), bounded."""
    import subprocess
    import sys

    # 413 is the documented answer to more items than the limit (the schema's maxItems), as to
    # a body over the size limit: schemathesis' default list of rejections omits it.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[checks.negative_data_rejection]\n"
        'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", '
        '"428", "429", "5xx"]\n'
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{stack.service.url}/docs.json",
        "--checks",
        "all",
        "--max-examples",
        "12",
        "--seed",
        "12",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "10",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    failures = run.stdout[run.stdout.find("FAILURES") :]
    assert run.returncode == 0, failures[:3000] + "\n...\n" + run.stdout[-1500:] + run.stderr[-2000:]


def _artifact_files(settings: Settings, version: str) -> list[Path]:
    from churnops.wiring import mlflow_client

    uri = mlflow_client(settings).get_model_version_download_uri(settings.model_name, version)
    root = Path(urllib.parse.urlparse(uri).path) if uri.startswith("file:") else Path(uri)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix == ".skops")


def _ready(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.service.url}/readyz", timeout=10)


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def _metric(stack: Stack, name: str) -> list[str]:
    text = httpx.get(f"{stack.service.url}/metrics", timeout=10).text
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_tampered_production_is_reported_retried_survives_a_restart_and_loads_once_repaired(
    stack: Stack,
) -> None:
    from churnops.wiring import mlflow_client

    good = stack.env.model_version
    (model_file,) = _artifact_files(stack.settings, stack.broken_version)
    original = model_file.read_bytes()
    model_file.write_bytes(original + b"tampered")
    # The alias moved without registry_ext's checks (an operator, a script, an attacker).
    client = mlflow_client(stack.settings)
    client.set_registered_model_alias(stack.settings.model_name, "production", stack.broken_version)
    try:
        _wait(lambda: "model_problem" in _ready(stack).json(), "the failed load is reported")
        ready = _ready(stack).json()
        assert ready["ready"] and ready["served_version"] == good, ready
        assert "failed to load" in ready["model_problem"], ready
        assert _predict(stack).json()["model_version"] == good
        assert any(line.endswith(" 1.0") for line in _metric(stack, "churnops_model_registry_mismatch")), (
            _metric(stack, "churnops_model_registry_mismatch")
        )
        failures = _metric(stack, "churnops_model_load_failures_total")
        assert any('reason="ArtifactIntegrityError"' in line for line in failures), failures

        # A restart while the registry's version is broken serves the last verified one, and says so.
        stack.service.stop()
        stack.service.start()
        stack.service.wait_ready()
        ready = _ready(stack).json()
        assert ready["served_version"] == good and ready["registry_version"] == stack.broken_version, ready
        assert f"last verified version {good}" in ready["model_problem"], ready
        assert _predict(stack).json()["model_version"] == good
    finally:
        model_file.write_bytes(original)
    # Repaired: the webhook's refresh retries the failed version at once and loads it.
    # (Its backoff may have let the watcher retry first: then the refresh finds it loaded.)
    refresh = httpx.post(f"{stack.service.url}/model/refresh", timeout=30)
    assert refresh.status_code == 200, refresh.text
    assert refresh.json()["model_version"] == stack.broken_version, refresh.text
    ready = _ready(stack).json()
    assert ready["served_version"] == stack.broken_version and "model_problem" not in ready, ready
    assert _predict(stack).json()["model_version"] == stack.broken_version
