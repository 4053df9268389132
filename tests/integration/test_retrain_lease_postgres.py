"""The retrain lease on real PostgreSQL, where the advisory lock it replaces failed: a holder's
session dropped by ``pg_terminate_backend`` or ``idle_session_timeout`` lost the lock silently
and a second retrain took it while the first went on writing. A lease lives in a row: a dropped
session loses nothing while the holder renews it; once it expires (a paused holder) another
holder takes it with a higher token, and every write of the old holder is refused in its own
transaction."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.decisions import DecisionState
from registry_ext import registry_engine
from registry_ext.decisions import append_decision, append_transition, get_decision
from registry_ext.leases import Heartbeat, Lease, LeaseLostError, acquire_lease, try_acquire
from registry_ext.migrate import migrate_to_head

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 1, tzinfo=UTC)
KEY = "retrain:churn"


@pytest.fixture
def url(postgres_url: str) -> str:
    engine = registry_engine(postgres_url)
    migrate_to_head(engine)
    engine.dispose()
    return postgres_url


def _engine(url: str, name: str, **options: str) -> Engine:
    """An engine whose sessions carry ``application_name`` (and server options), to find them."""
    settings = " ".join(f"-c {k}={v}" for k, v in options.items())
    return sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"),
        pool_pre_ping=True,
        connect_args={"application_name": name, **({"options": settings} if settings else {})},
    )


def _sessions(admin: Engine, name: str) -> list[int]:
    with admin.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": name}
            ).scalars()
        )


def _terminate(admin: Engine, name: str) -> int:
    with admin.connect() as conn:
        return sum(
            bool(conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one())
            for pid in _sessions(admin, name)
        )


def _fired(engine: Engine) -> int:
    return append_decision(
        engine,
        name="churn",
        time=T0,
        fired=True,
        trigger="drift",
        suppressed_by=None,
        model_version="1",
        report=None,
        policy="p@1",
        actor="t",
        reasons=[],
    ).id


def _take_when_expired(engine: Engine, *, holder: str, timeout_s: float = 20.0) -> Lease:
    deadline = time.monotonic() + timeout_s
    while True:
        got = try_acquire(engine, key=KEY, holder=holder, ttl_s=60)
        if isinstance(got, Lease):
            return got
        assert time.monotonic() < deadline, f"the lease never expired: {got}"
        time.sleep(0.05)


@pytest.mark.parametrize("drop", ["pg_terminate_backend", "idle_session_timeout"])
def test_a_dropped_session_then_an_expired_lease_fences_the_old_holder(url: str, drop: str) -> None:
    tag = f"lease-a-{uuid.uuid4().hex[:8]}"
    options = {"idle_session_timeout": "200"} if drop == "idle_session_timeout" else {}
    a_engine, b_engine = _engine(url, tag, **options), registry_engine(url)
    admin = registry_engine(url)
    try:
        a = acquire_lease(a_engine, key=KEY, holder="A", ttl_s=1.0)  # no heartbeat: A is "paused"
        decision = _fired(b_engine)
        append_transition(
            a_engine, decision_id=decision, to_state="claimed", time=T0, actor="A", fence=a.check
        )
        assert _sessions(admin, tag), "A has an idle pooled session"
        if drop == "pg_terminate_backend":
            assert _terminate(admin, tag) >= 1
        deadline = time.monotonic() + 20
        while _sessions(admin, tag):  # terminated, or closed by the server after 200 ms idle
            assert time.monotonic() < deadline, "A's session was not dropped"
            time.sleep(0.05)
        b = _take_when_expired(b_engine, holder="B")
        assert b.token == a.token + 1
        # A comes back (its pool reconnects) and tries its next writes: all refused
        with pytest.raises(LeaseLostError, match="taken over by 'B'"):
            append_transition(
                a_engine, decision_id=decision, to_state="trained", time=T0, actor="A", fence=a.check
            )
        with pytest.raises(LeaseLostError):
            a.renew()
        record = get_decision(b_engine, decision_id=decision)
        assert record is not None and record.state == DecisionState.CLAIMED
        append_transition(
            b_engine, decision_id=decision, to_state="trained", time=T0, actor="B", fence=b.check
        )
    finally:
        for engine in (a_engine, b_engine, admin):
            engine.dispose()


def test_a_renewed_lease_survives_its_sessions_being_killed(url: str) -> None:
    """What the advisory lock got wrong: killing the holder's sessions hands the lock to nobody."""
    tag = f"lease-a-{uuid.uuid4().hex[:8]}"
    a_engine, b_engine, admin = _engine(url, tag), registry_engine(url), registry_engine(url)
    a = acquire_lease(a_engine, key=KEY, holder="A", ttl_s=1.0)
    beat = Heartbeat(a, interval_s=0.1).start()
    try:
        killed = 0
        watch_until = time.monotonic() + 3.0  # three lease lifetimes: B must never get it
        while time.monotonic() < watch_until:
            killed += _terminate(admin, tag)
            got = try_acquire(b_engine, key=KEY, holder="B", ttl_s=60)
            assert not isinstance(got, Lease), "B took a lease whose holder is alive"
            time.sleep(0.05)
        assert killed >= 1 and not beat.lost.is_set()
        decision = _fired(b_engine)
        append_transition(
            a_engine, decision_id=decision, to_state="claimed", time=T0, actor="A", fence=a.check
        )
    finally:
        beat.stop()
        for engine in (a_engine, b_engine, admin):
            engine.dispose()
