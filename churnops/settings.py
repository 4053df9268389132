"""Typed settings, built once at an entry point (CLI, service) and passed down.

The embedded default needs no service: everything lives under ``home`` (SQLite, DuckDB,
parquet, local artifacts). One variable each moves a piece onto a real service:
``CHURNOPS_REDIS_URL`` (online store), ``CHURNOPS_FEAST_REGISTRY_URL`` (Feast SQL registry),
``CHURNOPS_MLFLOW_TRACKING_URI`` (MLflow backend), ``CHURNOPS_ARTIFACT_ROOT`` (s3://...).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlparse

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churnops.contracts.columns import FEATURE_SERVICE
from churnops.contracts.home_layout import HomeLayout
from churnops.contracts.redaction import redact

PLACEHOLDERS = frozenset({"change_me", "changeme", "change-me", "placeholder", "replace_me", "todo", "xxx"})
"""Values .env.example (and habit) put where a secret belongs; refused wherever a secret is read."""
SECRET_FIELDS = ("serving_api_key", "serving_webhook_secret")
URL_FIELDS = (
    "redis_url",
    "feast_registry_url",
    "mlflow_tracking_uri",
    "registry_database_url",
    "serving_prediction_log_url",
    "pushgateway_url",
    "alertmanager_url",
)
SECRET_ENVIRONMENT = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY")
"""Secrets read by MLflow and boto3 from the environment (checked by the entry points)."""


def is_placeholder(value: str) -> bool:
    """``CHANGE_ME`` and friends, or ``<your secret>``: a value nobody meant to deploy."""
    text = value.strip()
    return text.lower() in PLACEHOLDERS or (text.startswith("<") and text.endswith(">") and len(text) > 2)


def _url_password(url: str) -> str | None:
    try:
        return urlparse(url).password
    except ValueError:
        return None


def placeholder_problem(variable: str, value: str) -> str:
    return (
        f"{variable} holds the placeholder {value.strip()!r} from .env.example: set a real secret "
        "(e.g. `openssl rand -hex 24`) or unset the variable"
    )


class Settings(BaseSettings):
    """Everything configurable in ChurnOps, with embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CHURNOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".churnops"), description="Where all local state lives.")
    project: str = "churnops"
    model_name: str = "churn"
    feature_service: str = FEATURE_SERVICE

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; when set, Feast's online store is Redis."
    )
    redis_timeout_ms: int = Field(
        default=50, ge=1, le=60_000, description="Online-store socket timeout in whole milliseconds, 1-60000."
    )
    connect_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="How long a command waits to reach Redis, PostgreSQL or an MLflow server (seconds, "
        "at most 60) before it fails naming the service.",
    )
    redis_type: Literal["redis", "redis_cluster"] = Field(
        default="redis",
        description="Feast's redis_type: redis_cluster reads CHURNOPS_REDIS_URL as one or more "
        "cluster nodes (redis://:password@host1:7000,host2:7001).",
    )
    offline_store: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Feast offline store for training sets, batch scoring and materialization: "
        "duckdb, or Feast's Spark store over the same parquet (needs the churnops[spark] extra).",
    )
    spark_master: str = Field(
        default="local[2]", description="spark.master of the Spark offline store's session."
    )
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
        default=None, description="Drift policy YAML (default: churnops/policies/drift.yaml)."
    )
    retrain_policy: Path | None = Field(
        default=None, description="Retraining policy YAML (default: churnops/policies/retrain.yaml)."
    )
    pushgateway_url: str | None = Field(
        default=None, description="Prometheus Pushgateway that monitoring jobs push their gauges to."
    )
    alertmanager_url: str | None = Field(
        default=None,
        description="Alertmanager the loop's own events (drift fired, retrain refused, promoted, "
        "rolled back) are posted to (docs/alerting.md); unset: they are logged only.",
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

    materialize_max_removed_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="The largest share (0-1) of a feature view's customers one `features materialize` "
        "may remove from the online store; a run that would remove more is refused unless --force.",
    )

    # Signed versions (registry_ext.signing): registry writers hold the private key, every
    # loader the public ones. Both default to <home>/keys/, created on the first registry write.
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) registry writers sign versions with; writers only "
        "(default: <home>/keys/signing_key.pem, created 0600 on first use).",
    )
    trusted_keys_file: Path | None = Field(
        default=None,
        description="Public keys whose signatures serving, scoring and the registry accept, one "
        "'<key id> ed25519 <base64>' a line (default: <home>/keys/trusted_keys).",
    )

    now: datetime | None = Field(
        default=None,
        description="Pin the clock for every command (ISO 8601 with an offset, at most a few minutes "
        "ahead of the real time): tests and replays behave the same in every month.",
    )

    @field_validator("now")
    @classmethod
    def _now_not_in_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        from churnops.contracts.clock import not_in_future
        from churnops.contracts.timestamps import parse_utc

        return not_in_future(parse_utc(value, field="CHURNOPS_NOW"), field="CHURNOPS_NOW")

    @property
    def clock(self) -> datetime:
        """Now: the pinned time (CHURNOPS_NOW) or the wall clock."""
        from churnops.contracts.clock import current_time

        return current_time(self.now)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # duckdb resolves relative parquet paths against the cwd, so every path we hand on
        # to Feast must be absolute.
        return value.expanduser().resolve()

    @field_validator(*SECRET_FIELDS)
    @classmethod
    def _no_placeholder_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and is_placeholder(value.get_secret_value()):
            raise ValueError(
                placeholder_problem(f"CHURNOPS_{str(info.field_name).upper()}", value.get_secret_value())
            )
        return value

    @field_validator("signing_key_file", "trusted_keys_file", mode="before")
    @classmethod
    def _no_placeholder_path(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str | Path) and is_placeholder(str(value)):
            variable = f"CHURNOPS_{str(info.field_name).upper()}"
            raise ValueError(
                f"{variable} holds the placeholder {str(value).strip()!r} from .env.example: set it to "
                "the key file's path (`churnops registry keys init` creates one) or unset it for "
                "<home>/keys/"
            )
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator(*URL_FIELDS)
    @classmethod
    def _no_placeholder_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        password = None if value is None else _url_password(value)
        if password is not None and is_placeholder(password):
            raise ValueError(
                placeholder_problem(f"the password in CHURNOPS_{str(info.field_name).upper()}", password)
            )
        return value

    @field_validator("alertmanager_url")
    @classmethod
    def _alertmanager_scheme(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        if urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc:
            raise ValueError(
                f"CHURNOPS_ALERTMANAGER_URL must be Alertmanager's http(s):// base URL "
                f"(e.g. http://alertmanager:9093), not {redact(value)!r}"
            )
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlparse(value)
        if url.scheme not in ("redis", "rediss"):
            raise ValueError("CHURNOPS_REDIS_URL must look like redis://host:6379/0")
        # one node, or several comma-separated (a Redis Cluster: redis://h1:7000,h2:7001)
        for node in url.netloc.rpartition("@")[2].split(","):
            try:
                urlparse(f"redis://{node}").port  # noqa: B018 - urlparse checks the port only when asked
            except ValueError:
                raise ValueError(
                    f"CHURNOPS_REDIS_URL has the port {node.rpartition(':')[2]!r}, not a number "
                    "from 1 to 65535; write it like redis://host:6379/0 (or h1:7000,h2:7001 for a cluster)"
                ) from None
        db = url.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(
                f"CHURNOPS_REDIS_URL names the database {db!r}; a Redis database is a number: "
                "write it like redis://host:6379/0"
            )
        return value

    @property
    def layout(self) -> HomeLayout:
        """Every path under the home (:mod:`churnops.contracts.home_layout`)."""
        return HomeLayout(self.home)

    @property
    def sources_dir(self) -> Path:
        return self.layout.sources

    @property
    def quarantine_dir(self) -> Path:
        return self.layout.quarantine

    @property
    def feast_dir(self) -> Path:
        return self.layout.feast

    @property
    def registry_url(self) -> str:
        return self.feast_registry_url or f"sqlite:///{self.layout.feast_registry}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.layout.mlflow_db}"

    @property
    def registry_db_url(self) -> str:
        """Where registry_ext's tables live: MLflow's backend database."""
        return self.registry_database_url or self.tracking_uri

    @property
    def keys_dir(self) -> Path:
        return self.layout.keys

    @property
    def signing_key_path(self) -> Path:
        return (self.signing_key_file or self.layout.signing_key).expanduser()

    @property
    def trusted_keys_path(self) -> Path:
        return (self.trusted_keys_file or self.layout.trusted_keys).expanduser()

    @property
    def artifact_location(self) -> str:
        return self.artifact_root or str(self.layout.artifacts)

    def source_dir(self, name: str) -> Path:
        """Directory of part files for one Feast source (a view name or ``labels``)."""
        return self.layout.source(name)

    def redis_nodes(self) -> list[tuple[str, int]]:
        """The ``(host, port)`` of every node the URL names (``redis://h1:7000,h2:7001/0``)."""
        if self.redis_url is None:
            raise ValueError("redis_url is not set")
        hosts = urlparse(self.redis_url).netloc.rpartition("@")[2]
        nodes = []
        for item in hosts.split(","):
            parsed = urlparse(f"redis://{item}")
            nodes.append((parsed.hostname or "localhost", parsed.port or 6379))
        return nodes

    def redis_connection_string(self) -> str:
        """Feast's ``host:port[,host:port],key=value`` form with finite, fail-fast timeouts.

        A cluster has no databases, so ``db`` is only passed to plain Redis.
        """
        if self.redis_url is None:
            raise ValueError("redis_url is not set")
        # urlparse cannot read a port out of a comma-separated netloc: keep only the credentials.
        whole = urlparse(self.redis_url)
        userinfo, at, _ = whole.netloc.rpartition("@")
        url = urlparse(whole._replace(netloc=f"{userinfo}{at}node").geturl())
        seconds = self.redis_timeout_ms / 1000
        parts = [f"{host}:{port}" for host, port in self.redis_nodes()]
        if self.redis_type == "redis":
            parts = parts[:1]
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


def writable_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a directory we write to; None when it can.

    Probed by creating and removing a temporary directory in it (or its nearest existing
    parent), so nothing is left behind: ``os.access`` says yes to root even where nothing can be
    created (``/proc``, a read-only mount).
    """
    if path.exists() and not path.is_dir():
        return f"{path} is not a directory"
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".churnops-probe-", dir=parent))
    except OSError as error:
        where = "is not writable" if parent == path else f"cannot be created in {parent}"
        return f"{path} {where} ({error.strerror or error})"
    return None


class ClientCredentials(BaseSettings):
    """The MLflow and S3 client variables (no prefix) as the environment and ``.env`` give them:
    MLflow and boto3 read only the process environment, so entry points export these."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    mlflow_tracking_username: str | None = None
    mlflow_tracking_password: str | None = None
    mlflow_tracking_token: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    mlflow_s3_endpoint_url: str | None = None
