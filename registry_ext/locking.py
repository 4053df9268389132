"""Cross-process locks that serialize stage changes (and migrations) per model: short locks only.

A long-held lock (a retrain: minutes) is a lease with a fencing token instead
(:mod:`registry_ext.leases`): a session advisory lock dies silently with its session
(``pg_terminate_backend``, ``idle_session_timeout``) and its holder would go on writing. These
locks are held for one stage change (milliseconds) by code that writes right after taking them.

A promotion changes two things that cannot share one transaction: the registry_ext rows (our
connection) and MLflow's aliases (written by ``MlflowClient`` on its own connection). Both are
done while holding a lock that every writer takes, so no two stage changes of a model ever
interleave:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a dedicated
  connection; the server releases it if the process dies.
- SQLite: ``flock`` on a sidecar file next to the database (``<db>.registry-lock``); the kernel
  releases it if the process dies. (Holding ``BEGIN IMMEDIATE`` across the MLflow alias write is
  not possible: MLflow writes the same SQLite file through another connection and would wait on
  our write lock.) The table writes themselves then run in a ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry_ext.engine import sqlite_path
from registry_ext.errors import RegistryBusyError

DEFAULT_LOCK_TIMEOUT_S = 60.0


def advisory_key(key: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sidecar_name(db_name: str, key: str) -> str:
    """``<db>.registry-lock`` for registry_ext's own keys; ``<db>.<hash>.lock`` for any other key,
    so a long lock (e.g. a retrain) never blocks the stage changes it makes while holding it."""
    if key.startswith("registry_ext:"):
        return f"{db_name}.registry-lock"
    return f"{db_name}.{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.lock"


def _backoff(delay: float) -> float:
    time.sleep(delay)
    return min(delay * 2, 0.2)


@contextmanager
def database_lock(engine: Engine, *, key: str, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive cross-process lock named ``key`` on this database."""
    path = sqlite_path(engine)
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    if path is not None:
        lock_file = path.with_name(_sidecar_name(path.name, key))
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RegistryBusyError(
                            f"could not take the registry lock {key!r} within {timeout_s:.0f}s"
                        ) from None
                    delay = _backoff(delay)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return

    lock_id = advisory_key(key)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_id}).scalar_one():
            if time.monotonic() > deadline:
                raise RegistryBusyError(f"could not take the registry lock {key!r} within {timeout_s:.0f}s")
            delay = _backoff(delay)
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})


def model_lock(
    engine: Engine, *, name: str, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> AbstractContextManager[None]:
    """The lock that serializes every stage change of registered model ``name``."""
    return database_lock(engine, key=f"registry_ext:model:{name}", timeout_s=timeout_s)
