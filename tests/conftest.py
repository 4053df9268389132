"""Shared fixtures: a fresh home per test, and the real services this machine runs.

A service that is absent skips its tests with a reason that says how to start it, except
under ``CI=true``, where it fails: CI must never go green by skipping.

Two suites may share the servers: each test has its own Feast project (Feast's Redis keys end
with it; only those keys are deleted afterwards, no db is flushed) and its own PostgreSQL
database. The order is shuffled by pytest-randomly (seed printed at the end).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.settings import Settings

SHARED_TELCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "telco_churn.csv"
REDIS_URL = os.environ.get("CHURNOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_ADMIN_URL = os.environ.get(
    "CHURNOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOW = (
    "start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no (or set CHURNOPS_TEST_REDIS_URL)"
)
POSTGRES_HOW = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or set CHURNOPS_TEST_POSTGRES_URL to an admin URL)"
)


_SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis runs the same examples every run (pytest-randomly shuffles the test order, and
    a failure must reproduce from its seed alone); no example database left in the work tree."""
    from hypothesis import settings as hypothesis_settings

    hypothesis_settings.register_profile("churnops", derandomize=True, database=None)
    hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "churnops"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run tests marked slow in a bare `pytest` (CI=true, -m or named paths run them anyway)",
    )


def _runs_slow(config: pytest.Config) -> bool:
    """Slow tests run unless this is a developer's bare `pytest` (no paths, no -m, not CI)."""
    bare = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    ci = os.environ.get("CI", "").lower() == "true"
    return bool(config.getoption("--run-slow") or config.getoption("-m") or ci or not bare)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A developer's bare run leaves the slow tests out (CI runs them all), and says so."""
    if _runs_slow(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
        config.stash[_SLOW_LEFT_OUT] = len(slow)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say what a bare run left out, and print the order seed even under -q, so a failure that
    depends on order can be replayed."""
    left_out = config.stash.get(_SLOW_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(f"{left_out} slow tests left out: --run-slow runs them, as CI=true does")
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.has_plugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(
            f"test order: pytest-randomly seed {seed}; replay with --randomly-seed={seed} "
            "(file order: -p no:randomly)"
        )


def service_missing(what: str, how: str, error: Exception) -> None:
    """Skip on a developer's machine, fail under CI."""
    message = f"{what} is not reachable ({error}); {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def _session_settings() -> Iterator[None]:
    """The same as ``_no_outside_settings`` for the whole session, set before any module- or
    session-scoped fixture runs: a module's stack (a served model, a monitored home, a process
    pool, a forkserver) signs and verifies with the run's keys like every test does."""
    from tests.support.signing import SIGNING_VARIABLE, TRUSTED_VARIABLE, signing_key_files

    saved = {
        n: v
        for n, v in os.environ.items()
        if n.startswith("CHURNOPS_") and not n.startswith("CHURNOPS_TEST_")
    }
    for name in saved:
        del os.environ[name]
    keys = signing_key_files()
    os.environ[SIGNING_VARIABLE] = str(keys.signing_key)
    os.environ[TRUSTED_VARIABLE] = str(keys.trusted_keys)
    yield
    for name in (SIGNING_VARIABLE, TRUSTED_VARIABLE):
        os.environ.pop(name, None)
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own CHURNOPS_* variables (a Redis URL, a home) never leak into a test; the
    registry signing keys are the test run's own (``tests/support/signing.py``)."""
    for name in [n for n in os.environ if n.startswith("CHURNOPS_") and not n.startswith("CHURNOPS_TEST_")]:
        monkeypatch.delenv(name)
    from tests.support.signing import SIGNING_VARIABLE, TRUSTED_VARIABLE, signing_key_files

    keys = signing_key_files()
    monkeypatch.setenv(SIGNING_VARIABLE, str(keys.signing_key))
    monkeypatch.setenv(TRUSTED_VARIABLE, str(keys.trusted_keys))


_MLFLOW_URI_VARIABLES = {
    name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
}  # as the run started


@pytest.fixture(autouse=True)
def _mlflow_process_uris() -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs (module globals and the
    MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI variables that ``mlflow.set_*_uri`` and Feast's
    MLflow integration set) are put back after every test: one test's store never becomes the
    next test's default registry (a client built without ``registry_uri`` would follow it). A
    module fixture's leak (Feast's MLflow integration, when it trains) ends with its first test."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    yield
    tracking_utils._tracking_uri, registry_utils._registry_uri = None, None  # MLflow's own start
    for name, value in _MLFLOW_URI_VARIABLES.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def feast_project() -> str:
    """A Feast project of this test's own: Feast's Redis keys end with it, so two tests (or two
    suites) sharing one Redis db never read or delete each other's rows."""
    return f"t{uuid.uuid4().hex}"


@pytest.fixture
def settings(tmp_path: Path, feast_project: str) -> Settings:
    """Embedded-default settings in a fresh home directory, with the test's own Feast project."""
    return Settings(home=tmp_path / "home", project=feast_project, _env_file=None)


@pytest.fixture(scope="session")
def telco_csv() -> Path:
    if not SHARED_TELCO.exists():
        service_missing(
            "The public Telco churn file",
            f"put telco_churn.csv at {SHARED_TELCO} (CI lays out shared/ beside the clone)",
            FileNotFoundError(str(SHARED_TELCO)),
        )
    return SHARED_TELCO


@pytest.fixture
def redis_projects(feast_project: str) -> set[str]:
    """The Feast projects whose Redis keys ``redis_url`` deletes at teardown; a test that builds
    Settings of its own against the shared Redis adds their projects here."""
    return {feast_project}


@pytest.fixture
def redis_url(redis_projects: set[str]) -> Iterator[str]:
    """A real Redis database shared with whatever else runs; never flushed. Isolation is by Feast
    project: at teardown only the keys of ``redis_projects`` are deleted."""
    import redis

    from tests.support.redis_keys import delete_project_keys

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        service_missing("Redis", REDIS_HOW, error)
    yield REDIS_URL
    try:
        for project in sorted(redis_projects):
            delete_project_keys(client=client, project=project)
    finally:
        client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real server, dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"churnops_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        service_missing("PostgreSQL", POSTGRES_HOW, error)
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def spark() -> Iterator[str]:
    """Feast's Spark offline store is usable (pyspark and a Java runtime); yields ``"spark"``.

    The first retrieval starts one ``local[2]`` SparkSession (``churnops.features.spark_session``,
    its JVM's output in that test's ``<home>/feast/spark.log``) and Feast reuses the active one
    after that, so every Spark test of the run shares it; it is stopped when the run ends.
    """
    import shutil

    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        service_missing("pyspark (the churnops[spark] extra)", "run ./dev (it syncs every extra)", error)
    if shutil.which("java") is None:
        service_missing("A Java runtime", "apt-get install -y openjdk-17-jre-headless", OSError("java"))
    # Importing Feast's Spark store runs warnings.simplefilter("once", RuntimeWarning), which would
    # outrank "error" for the rest of the test; catch_warnings puts the filters back after it.
    import warnings

    with warnings.catch_warnings():
        import feast.infra.offline_stores.contrib.spark_offline_store.spark  # noqa: F401

    yield "spark"
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-node Redis Cluster of this run on loopback ports; yields its CHURNOPS_REDIS_URL.

    Private to the run, so tests isolate themselves by Feast project and never flush it.
    """
    from tests.support.redis_cluster import RedisCluster

    cluster = RedisCluster(workdir=tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
