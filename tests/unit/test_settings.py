"""Settings: embedded defaults need no service; one variable switches each piece."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from churnops.settings import Settings
from churnops.wiring import repo_config


def test_embedded_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("CHURNOPS_HOME", "CHURNOPS_REDIS_URL", "CHURNOPS_MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.home == tmp_path / ".churnops"  # absolute: duckdb resolves paths against the cwd
    assert settings.tracking_uri == f"sqlite:///{tmp_path}/.churnops/mlflow.db"
    assert settings.registry_url.startswith("sqlite:///")
    config = repo_config(settings)
    assert config.online_store.type == "sqlite"
    assert config.offline_store.type == "duckdb"
    assert config.mlflow.enabled


def test_environment_switches_online_store_to_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_HOME", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_REDIS_URL", "redis://:s3cret@cache.internal:6390/2")
    monkeypatch.setenv("CHURNOPS_REDIS_TIMEOUT_MS", "25")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    config = repo_config(settings)
    assert config.online_store.type == "redis"
    parts = config.online_store.connection_string.split(",")
    assert parts[0] == "cache.internal:6390"
    assert "db=2" in parts
    assert "password=s3cret" in parts
    assert "socket_timeout=0.025" in parts
    assert "socket_connect_timeout=0.025" in parts


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHURNOPS_MODEL_NAME", raising=False)
    env = tmp_path / ".env"
    env.write_text("CHURNOPS_MODEL_NAME=churn_eu\n")
    assert Settings(_env_file=env).model_name == "churn_eu"  # type: ignore[call-arg]


def test_bad_redis_url_names_the_variable() -> None:
    with pytest.raises(ValidationError, match="CHURNOPS_REDIS_URL"):
        Settings(redis_url="localhost:6379", _env_file=None)  # type: ignore[call-arg]
