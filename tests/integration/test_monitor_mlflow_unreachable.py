"""What monitoring reads from MLflow, on a real SQLite store. `churnops monitor performance` reads
each version's training run: a version MLflow no longer holds is reported without it (and said
so); an MLflow it cannot reach or may not read is an error, never read as "deleted" (which used to
report the version at a made-up 0.5 threshold). A run without a holdout has no concept-drift
baseline, and the drift job says so in its log."""

from __future__ import annotations

import logging

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from churnops.jobs import training_run
from tests.support.registry import shared_sqlite_store
from tests.support.serving_env import free_port


def _said(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "churnops.jobs"]


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    uri, _ = shared_sqlite_store(tmp_path_factory)
    return MlflowClient(uri, registry_uri=uri)


def test_an_mlflow_it_cannot_reach_is_an_error_not_a_deleted_version(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = MlflowClient(url, registry_uri=url)
    with pytest.raises(MlflowException) as raised:
        training_run(client=unreachable, model_name="churn", version="1")
    assert raised.value.error_code != "RESOURCE_DOES_NOT_EXIST"
    assert _said(caplog) == []
