"""Write-ahead intents, unregistered versions, rollback --to and stale runs on a real SQLite
MLflow store (the crash itself, with a killed process, is tests/integration/test_registry_crash.py)."""

from __future__ import annotations

import pytest

from registry_ext import (
    ModelRegistry,
)
from tests.support.registry import (
    make_registry,
    model_name_for,
    shared_sqlite_store,
    signed_registry,
    staged_and_live,
)
from tests.support.serving_env import free_port


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def registry(store: tuple[str, str], request: pytest.FixtureRequest) -> tuple[ModelRegistry, str]:
    return make_registry(store[0], store[1], model_name=model_name_for(request))


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
