"""Leases with a fencing token on SQLite (registry_ext.leases): acquiring increments the token, a
live lease is refused to others, an expired one is taken over, and the old holder can then write
nothing: its fence fails inside the transaction of the write (a decision transition, a renewal).
The clock is injected, so expiry needs no sleeping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from churnops.contracts.decisions import DecisionState
from registry_ext import registry_engine
from registry_ext.decisions import append_decision, append_transition, get_decision
from registry_ext.engine import write_transaction
from registry_ext.leases import (
    Heartbeat,
    Lease,
    LeaseBusyError,
    LeaseLostError,
    acquire_lease,
    read_lease,
    try_acquire,
)
from registry_ext.migrate import migrate_to_head
from tests.support.leases import ManualClock

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = registry_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate_to_head(engine)
    yield engine
    engine.dispose()


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


def test_a_lost_lease_cannot_write(engine: Engine) -> None:
    clock = ManualClock()
    a = acquire_lease(engine, key="retrain:churn", holder="A", ttl_s=10, clock=clock)
    assert a.token == 1
    busy = try_acquire(engine, key="retrain:churn", holder="B", ttl_s=10, clock=clock)
    assert not isinstance(busy, Lease) and busy.holder == "A" and busy.token == 1
    with pytest.raises(LeaseBusyError, match="held by 'A'"):
        acquire_lease(engine, key="retrain:churn", holder="B", ttl_s=10, clock=clock)
    other = acquire_lease(engine, key="retrain:other", holder="B", ttl_s=10, clock=clock)  # another key
    assert other.token == 1

    decision = _fired(engine)
    append_transition(
        engine,
        decision_id=decision,
        to_state="claimed",
        time=T0,
        actor="A",
        fence=a.check,
        lease_token=a.token,
    )
    clock.advance(5)
    a.renew()  # renewed: lasts until +15 s
    clock.advance(9)
    with write_transaction(engine) as conn:
        a.check(conn)  # still live at +14 s
    assert try_acquire(engine, key="retrain:churn", holder="B", ttl_s=10, clock=clock).holder == "A"  # type: ignore[union-attr]

    clock.advance(2)  # +16 s: expired; nobody took it yet, but A may not write any more
    with pytest.raises(LeaseLostError, match="expired"):
        append_transition(engine, decision_id=decision, to_state="trained", time=T0, actor="A", fence=a.check)
    b = acquire_lease(engine, key="retrain:churn", holder="B", ttl_s=10, clock=clock)
    assert b.token == 2
    for write in (
        lambda: append_transition(
            engine, decision_id=decision, to_state="trained", time=T0, actor="A", fence=a.check
        ),
        a.renew,
    ):
        with pytest.raises(LeaseLostError, match="taken over by 'B' \\(token 2\\)"):
            write()
    a.release()  # a stale release leaves B's lease alone
    assert read_lease(engine, key="retrain:churn").holder == "B"  # type: ignore[union-attr]
    state = get_decision(engine, decision_id=decision)
    assert state is not None and state.state == DecisionState.CLAIMED  # A wrote nothing after losing it
    moved = append_transition(
        engine,
        decision_id=decision,
        to_state="trained",
        time=T0,
        actor="B",
        fence=b.check,
        lease_token=b.token,
    )
    assert [t.lease_token for t in moved.transitions] == [1, 2]

    b.release()
    c = acquire_lease(engine, key="retrain:churn", holder="C", ttl_s=10, clock=clock)
    assert c.token == 3  # released: free at once, and the token keeps growing


def test_the_heartbeat_keeps_a_lease_and_stops_when_it_is_lost(engine: Engine) -> None:
    a = acquire_lease(engine, key="k", holder="A", ttl_s=0.6)
    beat = Heartbeat(a, interval_s=0.05).start()
    try:
        first = read_lease(engine, key="k")
        assert first is not None
        deadline = first.expires_at
        # renewed past its first expiry while the beat runs: poll for a later expiry
        limit = time.monotonic() + 10
        while (row := read_lease(engine, key="k")) is not None and row.expires_at <= deadline:
            assert time.monotonic() < limit, "the heartbeat never renewed the lease"
            time.sleep(0.02)
        clock = ManualClock(now=row.expires_at)  # B sees it expired (a paused A, in effect)
        b = acquire_lease(engine, key="k", holder="B", ttl_s=3600, clock=clock)
        assert b.token == 2
        limit = time.monotonic() + 10
        while not beat.lost.is_set():
            assert time.monotonic() < limit, "the heartbeat did not notice the lost lease"
            time.sleep(0.02)
        with pytest.raises(LeaseLostError):
            a.renew()
    finally:
        beat.stop()


def test_a_killed_holder_on_this_host_is_taken_over_at_once(engine: Engine) -> None:
    import os
    import socket

    from churnops.retraining.orders import holder_is_dead, lease_holder

    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    dead = next(p for p in range(pid_max - 1, 1, -1) if not Path(f"/proc/{p}").exists())
    host = socket.gethostname()
    acquire_lease(engine, key="retrain:churn", holder=f"{host}:{dead}:abcd1234", ttl_s=3600)
    alive = acquire_lease(engine, key="retrain:alive", holder=f"{host}:{os.getppid()}:abcd1234", ttl_s=3600)
    remote = acquire_lease(engine, key="retrain:remote", holder=f"elsewhere:{dead}:abcd1234", ttl_s=3600)
    mine = lease_holder()
    taken = acquire_lease(engine, key="retrain:churn", holder=mine, ttl_s=60, take_over=holder_is_dead)
    assert taken.token == 2
    for live in (alive, remote):  # a live process here, or any process on another host: wait
        with pytest.raises(LeaseBusyError):
            acquire_lease(engine, key=live.key, holder=mine, ttl_s=60, take_over=holder_is_dead)
    assert not holder_is_dead(read_lease(engine, key="retrain:churn"))  # type: ignore[arg-type]
