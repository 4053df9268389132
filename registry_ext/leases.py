"""Leases with a fencing token: long-held locks that a dropped session cannot silently lose.

A PostgreSQL session advisory lock dies with its session (``pg_terminate_backend``,
``idle_session_timeout``, a network cut) without telling its holder, who goes on writing while a
second holder takes the lock. A lease lives in a row instead (table ``leases``: key, holder,
token, expiry), so it outlives any connection, and:

- acquiring it (free, released, or expired) increments its **token** and sets its expiry;
- its holder renews it while working (:class:`Heartbeat`, a thread, or :meth:`Lease.renew`);
- every write made under it calls :meth:`Lease.check` with the connection of the write's own
  transaction: the row is read ``FOR UPDATE`` (PostgreSQL; ``BEGIN IMMEDIATE`` serializes on
  SQLite) and the write is refused with :class:`LeaseLostError` unless the token is still the
  holder's and the lease has not expired. A holder that lost its lease can therefore write
  nothing, however long it was paused; a concurrent acquirer waits for that transaction.

Expiry is judged on the injected clock (default: :func:`churnops.contracts.clock.wall_clock`),
never on a pinned "now": a retrain replaying 2024 still holds its lease for real seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from churnops.contracts.clock import wall_clock
from registry_ext.engine import write_transaction
from registry_ext.errors import RegistryBusyError, RegistryError
from registry_ext.tables import leases

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DEFAULT_TTL_S = 60.0


class LeaseLostError(RegistryError):
    """The lease was taken over (a newer token) or expired: this holder may not write."""


class LeaseBusyError(RegistryBusyError):
    """Another holder has the lease and it has not expired."""


@dataclass(frozen=True)
class LeaseState:
    """A lease row as stored."""

    key: str
    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return self.expires_at > now


def _locked_row(conn: Connection, key: str) -> LeaseState | None:
    query = sa.select(leases).where(leases.c.key == key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else LeaseState(**dict(row))


def read_lease(engine: Engine, *, key: str) -> LeaseState | None:
    """The lease ``key`` as stored (None when it was never taken); a plain read."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(leases).where(leases.c.key == key)).mappings().first()
    return None if row is None else LeaseState(**dict(row))


@dataclass(frozen=True)
class Lease:
    """A lease this process holds: ``token`` fences every write made under it."""

    engine: Engine
    key: str
    holder: str
    token: int
    ttl_s: float
    clock: Clock

    def check(self, conn: Connection) -> None:
        """The fence: call it inside the transaction of a write made under this lease."""
        row = _locked_row(conn, self.key)
        now = self.clock()
        if row is None or row.token != self.token:
            who = "nobody" if row is None else f"{row.holder!r} (token {row.token})"
            raise LeaseLostError(
                f"lease {self.key!r} token {self.token} was taken over by {who}: this process lost "
                "it (paused, or its connection dropped) and may not write; nothing was written"
            )
        if not row.live(now):
            raise LeaseLostError(
                f"lease {self.key!r} token {self.token} expired at {row.expires_at.isoformat()} "
                f"(not renewed within {self.ttl_s:.0f}s): this process may not write; nothing was written"
            )

    def renew(self) -> datetime:
        """Extend the expiry by ``ttl_s`` (the new expiry); :class:`LeaseLostError` when lost."""
        with write_transaction(self.engine) as conn:
            self.check(conn)
            expires = self.clock() + timedelta(seconds=self.ttl_s)
            conn.execute(
                leases.update()
                .where(leases.c.key == self.key, leases.c.token == self.token)
                .values(expires_at=expires)
            )
        return expires

    def release(self) -> None:
        """Give the lease up (expire it now) when still ours; the token stays for the next holder."""
        with write_transaction(self.engine) as conn:
            row = _locked_row(conn, self.key)
            if row is None or row.token != self.token:
                return
            conn.execute(
                leases.update()
                .where(leases.c.key == self.key, leases.c.token == self.token)
                .values(expires_at=self.clock())
            )


def try_acquire(
    engine: Engine,
    *,
    key: str,
    holder: str,
    ttl_s: float = DEFAULT_TTL_S,
    clock: Clock = wall_clock,
    take_over: Callable[[LeaseState], bool] | None = None,
) -> Lease | LeaseState:
    """Take lease ``key`` when it is free or expired (a new, higher token); else the live row.

    ``take_over(row)`` may also declare a live lease's holder gone (e.g. a dead process on this
    host), so it is taken at once instead of after its expiry. Always safe: the old holder's
    token is superseded, so it can write nothing afterwards."""
    if ttl_s <= 0:
        raise ValueError("ttl_s: a lease lasts a positive number of seconds")
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":  # make the row exist, then lock it
            conn.execute(
                postgresql.insert(leases)
                .values(key=key, holder="", token=0, acquired_at=clock(), expires_at=clock())
                .on_conflict_do_nothing(index_elements=["key"])
            )
        row = _locked_row(conn, key)
        now = clock()
        if row is not None and row.live(now) and not (take_over is not None and take_over(row)):
            return row
        token = 1 if row is None else row.token + 1
        values = {
            "holder": holder,
            "token": token,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        }
        if row is None:
            conn.execute(leases.insert().values(key=key, **values))
        else:
            conn.execute(leases.update().where(leases.c.key == key).values(**values))
    return Lease(engine=engine, key=key, holder=holder, token=token, ttl_s=ttl_s, clock=clock)


def acquire_lease(
    engine: Engine,
    *,
    key: str,
    holder: str,
    ttl_s: float = DEFAULT_TTL_S,
    wait_s: float = 0.0,
    clock: Clock = wall_clock,
    take_over: Callable[[LeaseState], bool] | None = None,
) -> Lease:
    """Take lease ``key``, waiting up to ``wait_s`` for the holder to release it or for it to
    expire; :class:`LeaseBusyError` (naming the holder and the expiry) otherwise."""
    deadline = time.monotonic() + wait_s
    delay = 0.01
    while True:
        got = try_acquire(engine, key=key, holder=holder, ttl_s=ttl_s, clock=clock, take_over=take_over)
        if isinstance(got, Lease):
            return got
        if time.monotonic() >= deadline:
            raise LeaseBusyError(
                f"lease {key!r} is held by {got.holder!r} (token {got.token}) until "
                f"{got.expires_at.isoformat()}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class Heartbeat:
    """Renews a lease every ``interval_s`` on a daemon thread until stopped or lost.

    A renewal that fails on a database error is logged and retried at the next beat (the lease
    may still be ours); a :class:`LeaseLostError` stops the beat and sets :attr:`lost`. Writes do
    not rely on it: each one checks the token itself.
    """

    def __init__(self, lease: Lease, *, interval_s: float | None = None) -> None:
        self.lease = lease
        self.interval_s = interval_s if interval_s is not None else max(lease.ttl_s / 3, 0.05)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-heartbeat:{lease.key}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.lease.renew()
            except LeaseLostError:
                log.warning(
                    "lease %s token %s lost; stopping its heartbeat", self.lease.key, self.lease.token
                )
                self.lost.set()
                return
            except Exception:
                log.warning(
                    "renewing lease %s failed; retrying at the next beat", self.lease.key, exc_info=True
                )


@contextmanager
def held_lease(
    engine: Engine,
    *,
    key: str,
    holder: str,
    ttl_s: float = DEFAULT_TTL_S,
    wait_s: float = 0.0,
    clock: Clock = wall_clock,
    heartbeat: bool = True,
) -> Iterator[Lease]:
    """Hold lease ``key`` (renewed by a :class:`Heartbeat` unless ``heartbeat=False``), released
    on exit. A crash releases nothing: the lease expires ``ttl_s`` after its last renewal."""
    lease = acquire_lease(engine, key=key, holder=holder, ttl_s=ttl_s, wait_s=wait_s, clock=clock)
    beat = Heartbeat(lease).start() if heartbeat else None
    try:
        yield lease
    finally:
        if beat is not None:
            beat.stop()
        try:
            lease.release()
        except Exception:
            log.warning("releasing lease %s failed; it expires on its own", key, exc_info=True)
