"""Typed settings, built once at an entry point (CLI, service) and passed down.

The embedded default needs no service: everything lives under ``home`` (SQLite, DuckDB,
parquet, local artifacts). One variable each moves a piece onto a real service:
``CHURNOPS_REDIS_URL`` (online store), ``CHURNOPS_FEAST_REGISTRY_URL`` (Feast SQL registry),
``CHURNOPS_MLFLOW_TRACKING_URI`` (MLflow backend), ``CHURNOPS_ARTIFACT_ROOT`` (s3://...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable in ChurnOps, with embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CHURNOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".churnops"), description="Where all local state lives.")
    project: str = "churnops"
    model_name: str = "churn"
    feature_service: str = "churn_v1"

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; when set, Feast's online store is Redis."
    )
    redis_timeout_ms: int = Field(default=50, ge=1, le=60_000)
    feast_registry_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the Feast SQL registry (default: SQLite in home)."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow backend (default: sqlite:///<home>/mlflow.db)."
    )
    artifact_root: str | None = Field(
        default=None, description="Model artifact root: a local dir or s3://bucket/prefix."
    )
    gate_policy: Path | None = Field(
        default=None, description="Training quality-gate policy YAML (default: the packaged one)."
    )
    drift_policy: Path | None = Field(
        default=None, description="Drift policy YAML (default: monitoring/default_drift.yaml)."
    )
    retrain_policy: Path | None = Field(
        default=None, description="Retraining policy YAML (default: the packaged default_retrain.yaml)."
    )
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway that monitoring jobs push their gauges to."
    )
    actor: str | None = Field(
        default=None,
        description="Who is recorded in the registry's audit trail (default: the OS user); --actor wins.",
    )
    registry_database_url: str | None = Field(
        default=None,
        description="Database of MLflow's backend store, for registry_ext's tables (default: the "
        "tracking URI; set it when the tracking URI is an http:// MLflow server).",
    )

    # Online serving (serving/): CHURNOPS_SERVING_API_KEY etc.
    serving_api_key: SecretStr | None = Field(
        default=None, description="When set, /predict* need it (Authorization: Bearer or X-API-Key)."
    )
    serving_webhook_secret: SecretStr | None = Field(
        default=None, description="Secret of the MLflow registry webhook that calls /model/refresh."
    )
    serving_max_ids: int = Field(default=1000, ge=1, le=100_000, description="Ids per /predict request.")
    serving_max_rows: int = Field(default=1000, ge=1, le=100_000, description="Rows per /predict_features.")
    serving_max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    serving_body_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Time a client has to send its whole request body (else 408)."
    )
    serving_max_pending_bodies: int = Field(
        default=64, ge=1, le=100_000, description="Requests whose body is still arriving, at once (else 503)."
    )
    serving_poll_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="How often the service checks the production alias."
    )
    serving_prediction_log_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the prediction log table (PostgreSQL); default parquet in home.",
    )
    serving_online_reader: Literal["auto", "feast", "redis"] = Field(
        default="auto", description="auto: read Feast's Redis layout directly when redis_url is set."
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # duckdb resolves relative parquet paths against the cwd, so every path we hand on
        # to Feast must be absolute.
        return value.expanduser().resolve()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlparse(value).scheme not in ("redis", "rediss"):
            raise ValueError("CHURNOPS_REDIS_URL must look like redis://host:6379/0")
        return value or None

    @property
    def sources_dir(self) -> Path:
        return self.home / "sources"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def registry_url(self) -> str:
        return self.feast_registry_url or f"sqlite:///{self.feast_dir / 'registry.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def registry_db_url(self) -> str:
        """Where registry_ext's tables live: MLflow's backend database."""
        return self.registry_database_url or self.tracking_uri

    @property
    def artifact_location(self) -> str:
        return self.artifact_root or str(self.home / "artifacts")

    def source_dir(self, name: str) -> Path:
        """Directory of part files for one Feast source (a view name or ``labels``)."""
        return self.sources_dir / name

    def redis_connection_string(self) -> str:
        """Feast's ``host:port,key=value`` form with finite, fail-fast timeouts."""
        if self.redis_url is None:
            raise ValueError("redis_url is not set")
        url = urlparse(self.redis_url)
        seconds = self.redis_timeout_ms / 1000
        parts = [f"{url.hostname or 'localhost'}:{url.port or 6379}"]
        db = (url.path or "/0").lstrip("/") or "0"
        parts.append(f"db={int(db)}")
        if url.password:
            parts.append(f"password={url.password}")
        if url.username:
            parts.append(f"username={url.username}")
        if url.scheme == "rediss" or "true" in parse_qs(url.query).get("ssl", []):
            parts.append("ssl=true")
        parts.append(f"socket_timeout={seconds}")
        parts.append(f"socket_connect_timeout={seconds}")
        return ",".join(parts)
