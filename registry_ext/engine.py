"""The registry database: an engine on MLflow's backend database, and its write transactions.

``registry_engine(database)`` turns MLflow's backend database URL into a SQLAlchemy engine for
the registry_ext tables (same database, own tables); migrations live in ``registry_ext.migrate``.
SQLite gets WAL, a busy timeout, foreign keys, and explicit ``BEGIN`` control so that writes can
take the write lock up front (``BEGIN IMMEDIATE``); ``postgresql://`` URLs use psycopg v3.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from churnops.contracts.redaction import redact
from registry_ext.errors import RegistryBusyError, RegistryError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "registry_ext_begin"

_PG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"}


def database_url(tracking_uri: str) -> sa.URL:
    """The SQLAlchemy URL of MLflow's backend database for a tracking URI.

    ``sqlite:///path`` stays as is; ``postgresql://``, ``postgres://`` and
    ``postgresql+psycopg2://`` map to psycopg v3 (the installed driver). A server URI
    (``http://...``) or a file store has no database the registry could share: pass the
    database URL of the MLflow server's backend store instead.
    """
    try:
        url = sa.make_url(tracking_uri)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        url = None
    if url is None or url.drivername.split("+")[0] not in ("sqlite", "postgres", "postgresql"):
        raise RegistryError(
            f"registry_ext stores its tables in MLflow's backend database, but {redact(tracking_uri)!r} is "
            "not a sqlite:// or postgresql:// URL; when MLflow runs as a server, set "
            "CHURNOPS_REGISTRY_DATABASE_URL to the database URL of its backend store"
        )
    if url.drivername in _PG_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    if not url.database or url.database == ":memory:":
        raise RegistryError("registry_ext needs an SQLite file (an in-memory database is not shared)")
    return url


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of an SQLite engine, or None on another backend."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    return Path(engine.url.database).resolve()


def registry_engine(database: str, *, echo: bool = False, connect_timeout_s: float | None = None) -> Engine:
    """An engine on MLflow's backend database (``database``: its sqlite:// or postgresql:// URL).

    Opening an engine changes nothing in the database: the schema is brought to head only by
    :func:`registry_ext.migrate.migrate_to_head` (``churnops registry migrate`` and the write
    commands), so serving and read-only commands never run migrations.
    """
    url = database_url(database)
    if url.drivername.startswith("sqlite"):
        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
    else:
        # libpq waits for TCP (minutes) unless told otherwise; it takes whole seconds, at least 2.
        connect_args = (
            {"connect_timeout": max(2, math.ceil(connect_timeout_s))}
            if connect_timeout_s is not None and url.drivername.startswith("postgresql")
            else {}
        )
        engine = sa.create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN (pysqlite's implicit BEGIN can't be IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _is_sqlite_locked(error: sa.exc.OperationalError) -> bool:
    text = str(error.orig).lower()
    return "database is locked" in text or "database is busy" in text


@contextmanager
def write_transaction(engine: Engine, *, timeout_s: float = 60.0) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement.

    SQLite: ``BEGIN IMMEDIATE``, retried (on top of the busy timeout) until ``timeout_s``;
    PostgreSQL: an ordinary transaction (row locks and advisory locks do the serializing).
    Commits on success, rolls back on any exception.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        conn = engine.connect().execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        try:
            transaction = conn.begin()
        except sa.exc.OperationalError as error:
            conn.close()
            if not _is_sqlite_locked(error) or time.monotonic() > deadline:
                if _is_sqlite_locked(error):
                    raise RegistryBusyError(
                        f"the registry database stayed locked for {timeout_s:.0f}s"
                    ) from error
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        break
    try:
        with conn:
            yield conn
            transaction.commit()
    except BaseException:
        if transaction.is_active:
            transaction.rollback()
        raise
