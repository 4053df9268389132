"""The one place where Settings become clients.

Entry points (the CLI commands, the BentoML service, the notebook, benchmarks) build
``Settings`` and call these functions; everything below them takes the built objects as
explicit arguments. What each process needs:

- **training / registry writes** (``churnops train``, ``registry promote|rollback|reconcile|migrate``):
  MLflow (tracking URI, plus ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` for a server with auth),
  the artifact store, and write access to the registry database (``registry_database_url``,
  which defaults to the tracking URI's database). Only these run migrations.
- **registry reads** (``registry list|show|search|audit|compare``): the same, read-only; a schema
  that is missing or behind is reported ("run churnops registry migrate"), never migrated.
- **serving**: MLflow read access only (the ``production`` alias and version tags through the
  API) and the artifact store; no registry database at all. See ``serving.model_source``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore
    from feast.repo_config import RepoConfig
    from mlflow import MlflowClient

    from churnops.features.definitions import Definitions
    from registry_ext import ModelRegistry
    from serving.metrics import ServingMetrics
    from serving.model_source import AliasModelSource
    from serving.prediction_log import Sink
    from serving.runtime import Runtime


# --- Feast ------------------------------------------------------------------------------------


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast config for these settings: duckdb offline, SQLite or Redis online, SQL registry."""
    from feast.repo_config import RepoConfig

    online: dict[str, Any]
    if settings.redis_url:
        online = {"type": "redis", "connection_string": settings.redis_connection_string()}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry={
            "registry_type": "sql",
            "path": settings.registry_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        },
        offline_store={"type": "duckdb"},
        online_store=online,
        entity_key_serialization_version=3,
        mlflow={"enabled": True, "tracking_uri": settings.tracking_uri, "auto_log": True},
    )


def feature_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over the settings' home (its directory created on demand)."""
    from feast import FeatureStore

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.feast_dir), config=repo_config(settings))


def feast_definitions(settings: Settings) -> Definitions:
    """The Feast objects over the settings' sources (entity, sources, views, FeatureService)."""
    from churnops.features.definitions import build_definitions

    return build_definitions(sources_dir=settings.sources_dir)


# --- MLflow and the registry ---------------------------------------------------------------


def mlflow_client(settings: Settings) -> MlflowClient:
    """An MlflowClient on the tracking URI (also the model registry URI)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def model_registry(settings: Settings, *, write: bool) -> ModelRegistry:
    """registry_ext's ModelRegistry for the settings' model (the caller disposes ``.engine``).

    ``write=True`` (commands that change the registry) brings the schema to head first;
    ``write=False`` only checks it and refuses with "run churnops registry migrate" when the
    tables are missing or behind.
    """
    from registry_ext import ModelRegistry, registry_engine
    from registry_ext.migrate import migrate_to_head, require_current

    engine = registry_engine(settings.registry_db_url)
    try:
        if write:
            migrate_to_head(engine)
        else:
            require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return ModelRegistry(client=mlflow_client(settings), engine=engine, model_name=settings.model_name)


@contextmanager
def open_registry(settings: Settings, *, write: bool) -> Iterator[ModelRegistry]:
    """:func:`model_registry` as a context manager that disposes the engine on exit."""
    registry = model_registry(settings, write=write)
    try:
        yield registry
    finally:
        registry.engine.dispose()


def migrate_registry(settings: Settings) -> str:
    """Bring the registry_ext schema to head; returns the revision it is at."""
    from registry_ext import registry_engine
    from registry_ext.migrate import current_revision, migrate_to_head

    engine = registry_engine(settings.registry_db_url)
    try:
        migrate_to_head(engine)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    assert revision is not None
    return revision


# --- serving ---------------------------------------------------------------------------------


def model_source(settings: Settings) -> AliasModelSource:
    """Production by the MLflow ``production`` alias: read-only, no registry database."""
    from serving.model_source import AliasModelSource

    return AliasModelSource(client=mlflow_client(settings), model_name=settings.model_name)


def prediction_log_dir(settings: Settings) -> Path:
    """Where the parquet prediction log lives on the embedded default."""
    return settings.home / "predictions"


def prediction_log_sink(settings: Settings) -> Sink | None:
    """The SQL table sink when ``serving_prediction_log_url`` is set, else None (parquet)."""
    from serving.prediction_log import SqlSink

    url = settings.serving_prediction_log_url
    return SqlSink(url) if url else None


def prediction_log_writer(settings: Settings) -> Sink:
    """Where batch jobs append prediction-log rows: the SQL table when configured, else parquet."""
    from serving.prediction_log import parquet_sink

    return prediction_log_sink(settings) or parquet_sink(prediction_log_dir(settings))


def read_prediction_window(
    settings: Settings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """A window of the prediction log, wherever the settings keep it (parquet or the SQL table)."""
    from churnops.contracts.prediction_log import read_prediction_log, read_prediction_log_table

    if settings.serving_prediction_log_url:
        import sqlalchemy as sa

        engine = sa.create_engine(settings.serving_prediction_log_url, pool_pre_ping=True)
        try:
            return read_prediction_log_table(
                engine,
                start=start,
                end=end,
                model_name=model_name,
                model_version=model_version,
                columns=columns,
            )
        finally:
            engine.dispose()
    return read_prediction_log(
        prediction_log_dir(settings),
        start=start,
        end=end,
        model_name=model_name,
        model_version=model_version,
        columns=columns,
    )


def serving_runtime(settings: Settings, *, metrics: ServingMetrics) -> Runtime:
    """Every part the service needs, built and started (Production loaded if there is one)."""
    from serving.config import ServingConfig
    from serving.prediction_log import PredictionLog
    from serving.runtime import Runtime

    log = PredictionLog(
        directory=prediction_log_dir(settings),
        sink=prediction_log_sink(settings),
        spool_dir=settings.home / "predictions-spool",
        on_written=lambda n: metrics.log_rows.inc(n),
        on_failure=lambda n: metrics.log_failures.inc(n),
        on_spooled=lambda n: metrics.log_spooled.inc(n),
    )
    runtime = Runtime(
        settings=ServingConfig.from_values(settings),
        metrics=metrics,
        store=feature_store(settings),
        source=model_source(settings),
        log=log,
        # The last version this host verified: what a restart serves if the registry's is broken.
        verified_record=settings.home / "serving" / "last_verified_model.json",
    )
    return runtime.start()
