"""Shared fixtures: a fresh home per test, and the real services this machine runs.

A service that is absent skips its tests with a reason that says how to start it, except
under ``CI=true``, where it fails: CI must never go green by skipping.
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


def service_missing(what: str, how: str, error: Exception) -> None:
    """Skip on a developer's machine, fail under CI."""
    message = f"{what} is not reachable ({error}); {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own CHURNOPS_* variables (a Redis URL, a home) never leak into a test."""
    for name in [n for n in os.environ if n.startswith("CHURNOPS_") and not n.startswith("CHURNOPS_TEST_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a fresh home directory."""
    return Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]


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
def redis_url() -> Iterator[str]:
    """A real Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        service_missing("Redis", REDIS_HOW, error)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
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
