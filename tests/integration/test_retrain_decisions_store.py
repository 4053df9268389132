"""The retrain_decisions table (migration 0003) on SQLite and real PostgreSQL: rows come back as
written, and UPDATE / DELETE (and TRUNCATE on PostgreSQL) are refused by the database itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.decisions import DecisionState, DecisionTransitionError
from churnops.contracts.stages import Trigger
from registry_ext import InvalidInputError, registry_engine
from registry_ext.decisions import (
    UnknownDecisionError,
    append_decision,
    append_transition,
    get_decision,
    list_decisions,
    pending_decision,
)
from registry_ext.migrate import current_revision, head_revision, migrate_to_head

pytestmark = pytest.mark.integration
T0 = datetime(2025, 3, 1, 6, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (
        f"sqlite:///{tmp_path / 'registry.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = registry_engine(url)
    migrate_to_head(engine)
    yield engine
    engine.dispose()


def _append(engine: Engine, *, hours: int, fired: bool, name: str = "churn") -> int:
    return append_decision(
        engine,
        name=name,
        time=T0 + timedelta(hours=hours),
        fired=fired,
        trigger=Trigger.DRIFT if fired else None,
        suppressed_by=None if fired else "cooldown",
        model_version="3",
        report="runs:/abc/drift",
        policy="default@0123",
        actor="tester",
        reasons=[{"trigger": "drift", "check": "consecutive_windows", "met": fired, "value": 2.0}],
    ).id


def test_decisions_round_trip_in_recorded_order(engine: Engine) -> None:
    # by id, not by their time: a decision recorded with a later (even future) time never hides
    # the ones recorded after it (issue 17)
    assert current_revision(engine) == head_revision()
    second = _append(engine, hours=2, fired=False)
    first = _append(engine, hours=1, fired=True)
    _append(engine, hours=3, fired=True, name="other")
    rows = list_decisions(engine, name="churn")
    assert [r.id for r in rows] == [second, first]
    assert rows[1].trigger is Trigger.DRIFT and rows[1].fired and rows[1].time == T0 + timedelta(hours=1)
    assert rows[0].trigger is None and rows[0].suppressed_by == "cooldown"
    assert rows[1].reasons == [
        {"trigger": "drift", "check": "consecutive_windows", "met": True, "value": 2.0}
    ]
    assert [r.id for r in list_decisions(engine, name="churn", limit=1)] == [first]
    got = get_decision(engine, decision_id=first)
    assert got is not None and got.report == "runs:/abc/drift"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE retrain_decisions SET fired = NOT fired",
        "UPDATE retrain_decisions SET reasons = '[]'",
        "DELETE FROM retrain_decisions",
    ],
)
def test_decisions_are_append_only(engine: Engine, statement: str) -> None:
    _append(engine, hours=1, fired=True)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert len(list_decisions(engine, name="churn")) == 1


def test_truncate_is_refused_on_postgres(postgres_url: str) -> None:
    engine = registry_engine(postgres_url)
    try:
        migrate_to_head(engine)
        _append(engine, hours=1, fired=True)
        # CASCADE: the transitions table references it (a plain TRUNCATE is refused for that alone)
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE retrain_decisions CASCADE"))
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE retrain_decision_transitions"))
    finally:
        engine.dispose()


def test_bad_rows_are_refused_with_the_field(engine: Engine) -> None:
    with pytest.raises(InvalidInputError, match="time: must be timezone-aware"):
        append_decision(
            engine,
            name="churn",
            time=T0.replace(tzinfo=None),
            fired=False,
            trigger=None,
            suppressed_by=None,
            model_version=None,
            report=None,
            policy="p",
            actor="a",
            reasons=[],
        )
    with pytest.raises(ValueError, match="invalid trigger 'whim'"):
        append_decision(
            engine,
            name="churn",
            time=T0,
            fired=True,
            trigger="whim",
            suppressed_by=None,
            model_version=None,
            report=None,
            policy="p",
            actor="a",
            reasons=[],
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the CHECK constraint
        conn.execute(
            sa.text(
                "INSERT INTO retrain_decisions (name, time, fired, trigger, policy, actor, reasons) "
                "VALUES ('churn', :t, true, 'whim', 'p', 'a', '[]')"
            ),
            {"t": T0},
        )


def test_transitions_follow_the_lifecycle_and_are_append_only(engine: Engine) -> None:
    fired = _append(engine, hours=1, fired=True)
    quiet = _append(engine, hours=2, fired=False)
    assert get_decision(engine, decision_id=quiet).state == DecisionState.NOT_FIRED  # type: ignore[union-attr]
    assert pending_decision(engine, name="churn").id == fired  # type: ignore[union-attr]
    with pytest.raises(DecisionTransitionError, match="it can move to nothing"):
        append_transition(engine, decision_id=quiet, to_state="claimed", time=T0, actor="t")
    with pytest.raises(DecisionTransitionError, match="not registered"):
        append_transition(engine, decision_id=fired, to_state="registered", time=T0, actor="t")
    for state in ("claimed", "trained", "registered"):
        record = append_transition(
            engine, decision_id=fired, to_state=state, time=T0, actor="t", detail={"step": state}
        )
    assert record.state == DecisionState.REGISTERED and pending_decision(engine, name="churn") is not None
    with pytest.raises(DecisionTransitionError):  # a second claim of a decision under way
        append_transition(engine, decision_id=fired, to_state="claimed", time=T0, actor="t")
    done = append_transition(engine, decision_id=fired, to_state="promoted", time=T0, actor="t")
    assert [t.seq for t in done.transitions] == [1, 2, 3, 4]
    assert [t.to_state.value for t in done.transitions] == ["claimed", "trained", "registered", "promoted"]
    assert done.last_detail(DecisionState.TRAINED) == {"step": "trained"}
    assert pending_decision(engine, name="churn") is None
    with pytest.raises(UnknownDecisionError):
        append_transition(engine, decision_id=10_000, to_state="claimed", time=T0, actor="t")

    def refuse(_conn: object) -> None:
        raise RuntimeError("fenced")

    later = _append(engine, hours=3, fired=True)
    with pytest.raises(RuntimeError, match="fenced"):
        append_transition(engine, decision_id=later, to_state="claimed", time=T0, actor="t", fence=refuse)
    assert get_decision(engine, decision_id=later).transitions == ()  # type: ignore[union-attr]
    for statement in (
        "UPDATE retrain_decision_transitions SET to_state = 'fired'",
        "DELETE FROM retrain_decision_transitions",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
