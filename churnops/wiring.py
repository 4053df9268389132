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
- **keys**: registry writers get the signing key (``CHURNOPS_SIGNING_KEY_FILE``); every process
  that loads a model gets the trusted public keys (``CHURNOPS_TRUSTED_KEYS_FILE``) only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from churnops.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureStore
    from feast.repo_config import RepoConfig
    from mlflow import MlflowClient

    from churnops.contracts.monitoring_terms import Rows
    from churnops.contracts.prediction_log import Sink, WindowSample
    from churnops.features.definitions import Definitions
    from monitoring.alerts import Notifier
    from registry_ext import ModelRegistry
    from registry_ext.signing import KeyFiles, Signer, Verifier
    from serving.metrics import ServingMetrics
    from serving.model_source import AliasModelSource
    from serving.runtime import Runtime


# --- reachability: fail within connect_timeout_s, naming the service -------------------------


class ServiceUnreachableError(ConnectionError):
    """A configured service did not answer within ``connect_timeout_s``; the message names it,
    the variable that points at it and the fix."""


def _target(url: str) -> str:
    try:
        parsed = urlparse(url)
        port = parsed.port
    except ValueError:  # no parser reads it (a cluster netloc, a raw "/" or "["): name it, redacted
        from churnops.contracts.redaction import redact

        return redact(url)
    return f"{parsed.hostname or 'localhost'}:{port}" if port else str(parsed.hostname)


def check_redis(settings: Settings) -> None:
    """Ping the online store once, without redis-py's retries (which take ~5 s to give up)."""
    if not settings.redis_url:
        return
    import redis

    seconds = settings.connect_timeout_s
    url = settings.redis_url
    if settings.redis_type == "redis_cluster":  # one node answering is enough to start with
        from urllib.parse import urlparse

        host, port = settings.redis_nodes()[0]
        credentials = urlparse(url).netloc.rpartition("@")[0]
        url = f"redis://{credentials}{'@' if credentials else ''}{host}:{port}"
    client = redis.Redis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds, retry=None)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ServiceUnreachableError(
            f"Redis at {_target(settings.redis_url)} (CHURNOPS_REDIS_URL) did not answer within "
            f"{seconds:g} s: {str(error).rstrip('.')}; start it, or fix or unset CHURNOPS_REDIS_URL"
        ) from None
    finally:
        client.close()


def _check_sql(url: str, *, what: str, variable: str, seconds: float) -> None:
    import sqlalchemy as sa

    from registry_ext import registry_engine

    if url.startswith("sqlite"):
        return
    engine = registry_engine(url, connect_timeout_s=seconds)
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ServiceUnreachableError(
            f"{what} at {_target(url)} ({variable}) cannot be reached within {seconds:g} s: {detail}; "
            f"start it, or fix {variable}"
        ) from None
    finally:
        engine.dispose()


def check_tracking(settings: Settings) -> None:
    """Reach the MLflow backend (its database, or the MLflow server's /health) once, bounded."""
    uri, seconds = settings.tracking_uri, settings.connect_timeout_s
    if uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=seconds):  # noqa: S310
                pass
        except urllib.error.HTTPError:
            return  # it answered (401 behind auth, 404 on an old server): reachable
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServiceUnreachableError(
                f"the MLflow server at {_target(uri)} (CHURNOPS_MLFLOW_TRACKING_URI) did not answer "
                f"within {seconds:g} s: {reason}; start it, or fix CHURNOPS_MLFLOW_TRACKING_URI"
            ) from None
        return
    _check_sql(uri, what="the MLflow database", variable="CHURNOPS_MLFLOW_TRACKING_URI", seconds=seconds)


def check_registry_database(settings: Settings) -> None:
    variable = (
        "CHURNOPS_REGISTRY_DATABASE_URL" if settings.registry_database_url else "CHURNOPS_MLFLOW_TRACKING_URI"
    )
    _check_sql(
        settings.registry_db_url,
        what="the registry database",
        variable=variable,
        seconds=settings.connect_timeout_s,
    )


class ArtifactLocationError(ValueError):
    """Model artifacts cannot be written where the settings (or the experiment) put them."""


def _local_dir(location: str) -> Path | None:
    """The local directory of an artifact location (a path or file:// URI); None for s3:// etc."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(parsed.path)
    return Path(location) if parsed.scheme == "" or len(parsed.scheme) == 1 else None


def check_artifact_location(settings: Settings, *, client: MlflowClient, experiment: str) -> None:
    """Refuse to train before anything is created when the artifacts cannot be written.

    A bad ``CHURNOPS_ARTIFACT_ROOT`` is refused before the MLflow experiment exists (MLflow keeps
    an experiment's location for good); an experiment whose location is gone is refused with how
    to move on.
    """
    from churnops.settings import writable_dir_problem

    existing = client.get_experiment_by_name(experiment)
    if existing is not None:
        directory = _local_dir(existing.artifact_location)
        problem = None if directory is None else writable_dir_problem(directory)
        if problem is not None:
            raise ArtifactLocationError(
                f"the MLflow experiment {experiment!r} (id {existing.experiment_id}) keeps its artifacts at "
                f"{existing.artifact_location}, and {problem}. MLflow cannot change an experiment's "
                "artifact location: restore that directory, or rename the experiment (MLFLOW_TRACKING_URI="
                f"{settings.tracking_uri} mlflow experiments rename --experiment-id "
                f"{existing.experiment_id} --new-name {experiment}-old) and train again, which creates "
                f"{experiment!r} under CHURNOPS_ARTIFACT_ROOT ({settings.artifact_location})"
            )
        return
    directory = _local_dir(settings.artifact_location)
    problem = None if directory is None else writable_dir_problem(directory)
    if problem is not None:
        raise ArtifactLocationError(
            f"CHURNOPS_ARTIFACT_ROOT={settings.artifact_location!r}: {problem} (fix: point it at a "
            "writable directory or an s3:// URI, or unset it for <home>/artifacts)"
        )


# --- Feast ------------------------------------------------------------------------------------


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast config for these settings: duckdb or Spark offline, SQLite, Redis or Redis Cluster
    online, SQL registry."""
    from feast.repo_config import RepoConfig

    online: dict[str, Any]
    if settings.redis_url:
        online = {
            "type": "redis",
            "redis_type": settings.redis_type,
            "connection_string": settings.redis_connection_string(),
        }
    else:
        online = {"type": "sqlite", "path": str(settings.layout.online_store)}
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry={
            "registry_type": "sql",
            "path": settings.registry_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        },
        offline_store=offline_store_config(settings),
        online_store=online,
        entity_key_serialization_version=3,
        mlflow={"enabled": True, "tracking_uri": settings.tracking_uri, "auto_log": True},
    )


def offline_store_config(settings: Settings) -> dict[str, Any]:
    """Feast's offline store block: duckdb, or Spark with its session pinned to UTC."""
    if settings.offline_store == "duckdb":
        return {"type": "duckdb"}
    conf = {
        "spark.master": settings.spark_master,
        # Parquet timestamps are UTC instants; Spark renders and compares them in the session
        # zone, and Feast's point-in-time SQL compares them as strings in places.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # progress bars on stderr of every CLI command
    }
    if settings.spark_master.startswith("local"):
        # 200 shuffle partitions (the default) is all scheduling overhead on one machine
        # (measured: 4 partitions cost ~40% more per retrieval than 1 on 2 cores).
        conf["spark.sql.shuffle.partitions"] = "2"
        conf["spark.driver.memory"] = "2g"  # local mode: the driver is also the executor
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    return {"type": "spark", "spark_conf": conf}


def feature_store(settings: Settings, *, check: bool = True) -> FeatureStore:
    """A FeatureStore over the settings' home (its directory created on demand).

    ``check`` pings Redis first (commands fail fast naming it); the service passes False, since
    it starts without Redis and reports it on readiness.
    """
    from feast import FeatureStore

    if check:
        check_redis(settings)
    _quiet_offline_store(settings)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.feast_dir), config=repo_config(settings))


def feast_definitions(settings: Settings) -> Definitions:
    """The Feast objects over the settings' sources (entity, sources, views, FeatureService)."""
    from churnops.features.definitions import build_definitions

    _quiet_offline_store(settings)
    return build_definitions(sources_dir=settings.sources_dir, offline_store=settings.offline_store)


def _quiet_offline_store(settings: Settings) -> None:
    """Feast's Spark alpha-status warnings off (the JVM's output goes to <home>/feast/spark.log:
    ``churnops.features.spark_session``)."""
    from churnops.features.spark_session import quiet_alpha_warnings

    quiet_alpha_warnings(offline_store=settings.offline_store)


# --- MLflow and the registry ---------------------------------------------------------------


def mlflow_client(settings: Settings, *, check: bool = True) -> MlflowClient:
    """An MlflowClient on the tracking URI (also the model registry URI); ``check`` reaches the
    backend first, bounded by ``connect_timeout_s``."""
    from mlflow import MlflowClient

    if check:
        check_tracking(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def model_registry(settings: Settings, *, write: bool) -> ModelRegistry:
    """registry_ext's ModelRegistry for the settings' model (the caller disposes ``.engine``).

    ``write=True`` (commands that change the registry) brings the schema to head first;
    ``write=False`` only checks it and refuses with "run churnops registry migrate" when the
    tables are missing or behind.
    """
    from registry_ext import ModelRegistry, registry_engine
    from registry_ext.migrate import migrate_to_head, require_current

    check_registry_database(settings)
    engine = registry_engine(settings.registry_db_url, connect_timeout_s=settings.connect_timeout_s)
    try:
        if write:
            migrate_to_head(engine)
        else:
            require_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return ModelRegistry(
        client=mlflow_client(settings),
        engine=engine,
        model_name=settings.model_name,
        clock=lambda: settings.clock,
        signer=registry_signer(settings) if write else None,
        verifier=registry_verifier(settings),
    )


def key_files(settings: Settings) -> KeyFiles:
    """Where the registry's signing key and the trusted public keys are (``CHURNOPS_SIGNING_KEY_FILE``,
    ``CHURNOPS_TRUSTED_KEYS_FILE``); on the embedded default (neither set) both live in
    ``<home>/keys`` and the first registry write creates them."""
    from registry_ext.signing import KeyFiles

    embedded = settings.signing_key_file is None and settings.trusted_keys_file is None
    return KeyFiles(
        signing_key=settings.signing_key_path, trusted_keys=settings.trusted_keys_path, create=embedded
    )


def registry_signer(settings: Settings) -> Signer:
    """Signs new versions (registry writers only); the key is read on the first registration."""
    from registry_ext.signing import Signer

    return Signer(files=key_files(settings))


def registry_verifier(settings: Settings) -> Verifier:
    """Verifies versions against the trusted public keys (every process that loads a model)."""
    from registry_ext.signing import Verifier

    return Verifier(files=key_files(settings))


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

    check_registry_database(settings)
    engine = registry_engine(settings.registry_db_url, connect_timeout_s=settings.connect_timeout_s)
    try:
        migrate_to_head(engine)
        revision = current_revision(engine)
    finally:
        engine.dispose()
    assert revision is not None
    return revision


# --- serving ---------------------------------------------------------------------------------


def model_source(settings: Settings, *, check: bool = True) -> AliasModelSource:
    """Production by the MLflow ``production`` alias: read-only, no registry database."""
    from serving.model_source import AliasModelSource

    return AliasModelSource(
        client=mlflow_client(settings, check=check),
        model_name=settings.model_name,
        verifier=registry_verifier(settings),
    )


def loop_notifier(settings: Settings) -> Notifier:
    """Where the loop's own events go: Alertmanager's v2 API when ``alertmanager_url`` is set
    (an httpx client with ``connect_timeout_s``), else a notifier that logs them, saying once
    that nothing is sent."""
    from monitoring.alerts import AlertmanagerNotifier, NullNotifier

    if not settings.alertmanager_url:
        return NullNotifier()
    from functools import partial

    import httpx

    client = partial(httpx.Client, timeout=httpx.Timeout(10.0, connect=settings.connect_timeout_s))
    return AlertmanagerNotifier(client=client, url=settings.alertmanager_url)


def prediction_log_dir(settings: Settings) -> Path:
    """Where the parquet prediction log lives on the embedded default."""
    return settings.layout.predictions


def prediction_log_sink(settings: Settings) -> Sink | None:
    """The SQL table sink when ``serving_prediction_log_url`` is set, else None (parquet)."""
    from serving.prediction_log import SqlSink

    url = settings.serving_prediction_log_url
    return SqlSink(url) if url else None


def prediction_log_writer(settings: Settings) -> Sink:
    """Where batch jobs append prediction-log rows: the SQL table when configured, else parquet."""
    from serving.prediction_log import parquet_sink

    return prediction_log_sink(settings) or parquet_sink(prediction_log_dir(settings))


def sample_prediction_window(
    settings: Settings,
    *,
    start: datetime,
    end: datetime,
    model_version: str,
    max_rows: int,
    seed: int,
) -> WindowSample:
    """The monitored, scored rows of a window with their features: counted whole, at most
    ``max_rows`` of them kept (a seeded sample). Parquet: DuckDB, in bounded memory; the SQL
    table: read whole, then the same de-duplication and a seeded sample."""
    from churnops.contracts.columns import SCORE
    from churnops.contracts.online import RowStatus
    from churnops.contracts.prediction_log import (
        MONITORED_ENDPOINTS,
        WindowSample,
        sample_window,
        unique_predictions,
    )

    if not settings.serving_prediction_log_url:
        return sample_window(
            prediction_log_dir(settings),
            start=start,
            end=end,
            model_name=settings.model_name,
            model_version=model_version,
            max_rows=max_rows,
            seed=seed,
        )
    rows = unique_predictions(
        read_prediction_window(
            settings,
            start=start,
            end=end,
            model_name=settings.model_name,
            model_version=model_version,
            endpoints=MONITORED_ENDPOINTS,
        ).to_pandas()
    )
    rows = rows[(rows["status"] == RowStatus.OK.value) & rows[SCORE].notna()]
    total = len(rows)
    if total > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    return WindowSample(rows=total, frame=rows)


def prediction_window_rows(
    settings: Settings, *, start: datetime, end: datetime, model_version: str | None
) -> Rows:
    """A window's monitored rows with the columns a label join reads, for
    :func:`churnops.contracts.monitoring_terms.count_matured_labels`: the parquet files for DuckDB
    to read in place (nothing loaded here), or the SQL table's rows as Arrow."""
    from churnops.contracts.monitoring_terms import PREDICTION_INPUT
    from churnops.contracts.prediction_log import MONITORED_ENDPOINTS, window_rows

    if not settings.serving_prediction_log_url:
        rows = window_rows(
            prediction_log_dir(settings),
            start=start,
            end=end,
            model_name=settings.model_name,
            model_version=model_version,
        )
        if rows is not None:
            return rows
    return read_prediction_window(
        settings,
        start=start,
        end=end,
        model_name=settings.model_name,
        model_version=model_version,
        endpoints=MONITORED_ENDPOINTS,
        columns=list(PREDICTION_INPUT),
    )


def read_prediction_window(
    settings: Settings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    endpoints: tuple[str, ...] | None = None,
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
                endpoints=endpoints,
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
        endpoints=endpoints,
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
        spool_dir=settings.layout.predictions_spool,
        on_written=lambda n: metrics.log_rows.inc(n),
        on_failure=lambda n: metrics.log_failures.inc(n),
        on_spooled=lambda n: metrics.log_spooled.inc(n),
    )
    runtime = Runtime(
        settings=ServingConfig.from_values(settings),
        metrics=metrics,
        store=feature_store(settings, check=False),  # the service reports Redis on readiness
        source=model_source(settings, check=False),
        log=log,
        # The last version this host verified: what a restart serves if the registry's is broken.
        verified_record=settings.layout.verified_model,
    )
    return runtime.start()
