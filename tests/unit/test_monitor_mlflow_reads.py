"""What monitoring reads from MLflow, on a real SQLite store. `churnops monitor performance` reads
each version's training run: a version MLflow no longer holds is reported without it (and said
so); an MLflow it cannot reach or may not read is an error, never read as "deleted" (which used to
report the version at a made-up 0.5 threshold). A run without a holdout has no concept-drift
baseline, and the drift job says so in its log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow import MlflowClient

from churnops.contracts.artifacts import REFERENCE_ARTIFACT
from churnops.jobs import training_run
from monitoring.baseline import load_baselines
from tests.support.registry import model_name_for, shared_sqlite_store


def _said(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "churnops.jobs"]


@pytest.fixture
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    uri, _ = shared_sqlite_store(tmp_path_factory)
    return MlflowClient(uri, registry_uri=uri)


def test_a_version_mlflow_no_longer_holds_is_reported_without_its_run_and_said(
    client: MlflowClient, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    name = model_name_for(request)
    experiment = client.create_experiment(name)
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "threshold", 0.4)
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    with caplog.at_level("WARNING", logger="churnops.commands.monitor"):
        run = training_run(client=client, model_name=name, version=str(version))
        assert run is not None and run.data.metrics["threshold"] == 0.4
        assert _said(caplog) == []
        assert training_run(client=client, model_name=name, version="99") is None
    (record,) = _said(caplog)
    assert "version 99: no training run to read" in record.getMessage()
    assert "not found" in record.getMessage()  # MLflow's own reason, not a guess


def test_a_run_without_a_holdout_has_no_concept_baseline_and_the_log_says_why(
    client: MlflowClient, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import pandas as pd

    name = model_name_for(request)
    run_id = client.create_run(client.create_experiment(name)).info.run_id
    reference = tmp_path / Path(REFERENCE_ARTIFACT).name
    pd.DataFrame({"score": [0.1, 0.9]}).to_parquet(reference)
    client.log_artifact(run_id, str(reference), str(Path(REFERENCE_ARTIFACT).parent))
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    with caplog.at_level("WARNING", logger="monitoring.baseline"):
        baselines = load_baselines(client=client, model_name=name, version=str(version))
    assert baselines.holdout is None and len(baselines.reference) == 2
    (record,) = [r for r in caplog.records if r.name == "monitoring.baseline"]
    assert "no concept-drift baseline" in record.getMessage() and run_id in record.getMessage()
    assert record.exc_info is not None  # the download's own error, traceback included
