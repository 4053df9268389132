"""The retrain_decisions table (migration 0003) on SQLite and real PostgreSQL: rows come back as
written, and UPDATE / DELETE (and TRUNCATE on PostgreSQL) are refused by the database itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.stages import Trigger
from registry_ext import InvalidInputError, registry_engine
from registry_ext.decisions import append_decision, get_decision, list_decisions
from registry_ext.migrate import current_revision, migrate_to_head

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


def test_decisions_round_trip_in_time_order(engine: Engine) -> None:
    assert current_revision(engine) == "0003"
    second = _append(engine, hours=2, fired=False)
    first = _append(engine, hours=1, fired=True)
    _append(engine, hours=3, fired=True, name="other")
    rows = list_decisions(engine, name="churn")
    assert [r.id for r in rows] == [first, second]
    assert rows[0].trigger is Trigger.DRIFT and rows[0].fired and rows[0].time == T0 + timedelta(hours=1)
    assert rows[1].trigger is None and rows[1].suppressed_by == "cooldown"
    assert rows[0].reasons == [
        {"trigger": "drift", "check": "consecutive_windows", "met": True, "value": 2.0}
    ]
    assert [r.id for r in list_decisions(engine, name="churn", limit=1)] == [second]
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
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE retrain_decisions"))
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
