"""`churnops demo` on an empty home, twice: the second run works and changes nothing it shouldn't."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from churnops.cli import app
from churnops.settings import Settings
from registry_ext import ModelRegistry, registry_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    runner = CliRunner()
    args = ["demo", "--customers", "2500", "--months", "6"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "Production" in first.output
    assert "curl -s -X POST http://127.0.0.1:3000/predict" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    engine = registry_engine(settings.registry_db_url)
    try:
        registry = ModelRegistry(
            client=MlflowClient(settings.tracking_uri), engine=engine, model_name=settings.model_name
        )
        versions = registry.all_versions()
        production = registry.production()
    finally:
        engine.dispose()
    # The same data again gives the same model: the default gates want a real improvement.
    assert "no new version" in second.output
    assert len(versions) == 1
    assert production is not None
    assert production.version == versions[0].version
