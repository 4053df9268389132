"""Model artifacts on a real S3 server (SeaweedFS ``weed mini``, started here on free loopback ports).

Credentials and endpoint reach MLflow/boto3 only through the environment, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.support.s3_server import WEED_HOW, S3Unavailable, weed_s3

pytestmark = pytest.mark.integration

BUCKET = "churnops"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 endpoint with one bucket and one identity; stopped after the module."""
    try:
        with weed_s3(workdir=tmp_path_factory.mktemp("weed"), bucket=BUCKET) as server:
            yield {
                "endpoint": server.endpoint,
                "access_key": server.access_key,
                "secret_key": server.secret_key,
            }
    except S3Unavailable as error:
        service_missing("SeaweedFS (weed)", WEED_HOW, error)


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
    # verified against the manifest signed at registration: the message names the changed file
    assert "differ from those signed at registration" in message and "changed file 'MLmodel'" in message
