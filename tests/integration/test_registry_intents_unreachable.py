"""Write-ahead intents, unregistered versions, rollback --to and stale runs on a real SQLite
MLflow store (the crash itself, with a killed process, is tests/integration/test_registry_crash.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.commands.registry import app
from registry_ext import (
    ModelRegistry,
)
from tests.support.registry import (
    make_registry,
    model_name_for,
    register_candidate,
    shared_sqlite_store,
    signed_registry,
)
from tests.support.serving_env import free_port


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    return make_registry(store[0], store[1], model_name=model_name_for(request))


@pytest.fixture
def run_cli(
    store: tuple[str, str],
    registry: tuple[ModelRegistry, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry[0].model_name)
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-user")
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def staged_and_live(reg: ModelRegistry, experiment_id: str, seeds: tuple[int, ...] = (1, 2)) -> None:
    for seed in seeds:
        register_candidate(reg, experiment_id=experiment_id, seed=seed)
        reg.promote(version=seed, stage="Staging", reason="stage", actor="a")
        reg.promote(version=seed, stage="Production", reason="ship", actor="a")


def test_an_interrupted_delete_is_recovered_only_when_mlflow_says_the_version_is_gone(
    registry: tuple[ModelRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An MLflow that cannot be reached is no evidence that the version was deleted: the intent
    stays pending (its history is append-only) until MLflow answers "no such version"."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    reg, experiment_id = registry
    staged_and_live(reg, experiment_id, seeds=(1,))
    gone = 7  # a version MLflow never held: what a delete that finished before the kill leaves
    reg._begin_intent(
        kind="delete_unregistered", actor="a", reason="tampered", trigger="manual", target={"version": gone}
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cut_off = signed_registry(MlflowClient(url, registry_uri=url), reg.engine, model_name=reg.model_name)
    with pytest.raises(MlflowException):
        cut_off._recover_locked()
    (pending,) = reg.intents(pending_only=True)
    assert (pending.kind, pending.status) == ("delete_unregistered", "pending")
    reg.reconcile()  # MLflow answers: no version 7
    (intent,) = [i for i in reg.intents() if i.kind == "delete_unregistered"]
    assert (intent.status, intent.actor, intent.reason) == ("recovered", "a", "tampered")
