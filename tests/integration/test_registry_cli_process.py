"""`churnops registry ...` end to end on a real SQLite MLflow store: JSON output, errors, compare."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from churnops.commands.registry import app
from registry_ext import ModelRegistry
from tests.support.registry import make_registry, model_name_for, register_candidate, shared_sqlite_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return shared_sqlite_store(tmp_path_factory)


@pytest.fixture
def cli(
    store: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[ModelRegistry, str, Any]:
    """A registry with two registered versions, and a runner of the CLI against the same store."""
    registry, experiment_id = make_registry(store[0], store[1], model_name=model_name_for(request))
    register_candidate(registry, experiment_id=experiment_id, seed=1)
    register_candidate(registry, experiment_id=experiment_id, seed=2, tags={"trigger": "drift"})
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHURNOPS_MLFLOW_TRACKING_URI", store[0])
    monkeypatch.setenv("CHURNOPS_MODEL_NAME", registry.model_name)
    monkeypatch.setenv("CHURNOPS_ACTOR", "cli-user")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no wrapping in assertions
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args))

    return registry, experiment_id, run


def test_read_commands_on_an_empty_registry_say_to_migrate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from churnops.cli import app

    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path / "empty"))
    runner = CliRunner()
    result = runner.invoke(app, ["registry", "list"])
    assert result.exit_code == 2
    assert "churnops registry migrate" in result.stderr
    migrated = runner.invoke(app, ["registry", "migrate", "--json"])
    assert migrated.exit_code == 0, migrated.output
    assert json.loads(migrated.stdout)["revision"]
    listed = runner.invoke(app, ["registry", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == []


def test_importing_the_command_module_stays_light() -> None:
    code = (
        "import sys, churnops.commands.registry as r; "
        "print(sorted(m for m in ('mlflow', 'sqlalchemy', 'registry_ext', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
