"""The ``loop_steps`` store: the finished steps of a model's loop day, recorded once each.

A step is recorded after it did its work, in one insert; the unique (model, day, step) key
means a second run of the same step of the same day cannot record it twice: it gets the first
run's row back (:class:`LoopStepRecorded`), so the caller knows another run finished it. Kept
free of churnops' step enum: steps arrive as plain names (``churnops.contracts.loop`` names them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry_ext.engine import write_transaction
from registry_ext.errors import InvalidInputError
from registry_ext.tables import LOOP_STEP_STATUSES, loop_steps


@dataclass(frozen=True)
class LoopStepRecord:
    name: str
    day: date
    step: str
    status: str
    time: datetime
    actor: str
    detail: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "day": self.day.isoformat(),
            "step": self.step,
            "status": self.status,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "detail": dict(self.detail),
        }


class LoopStepRecorded(InvalidInputError):
    """The step of that day was recorded already (by another run); ``record`` is that row."""

    def __init__(self, record: LoopStepRecord) -> None:
        self.record = record
        super().__init__(f"{record.name} {record.day}: step {record.step} was recorded at {record.time}")


def record_loop_step(
    engine: Engine,
    *,
    name: str,
    day: date,
    step: str,
    status: str,
    time: datetime,
    actor: str,
    detail: Mapping[str, Any],
) -> LoopStepRecord:
    """Record that ``step`` of ``name``'s ``day`` finished; :class:`LoopStepRecorded` when it was
    recorded before (nothing written)."""
    if time.tzinfo is None:
        raise InvalidInputError("time: must be timezone-aware (UTC)")
    if status not in LOOP_STEP_STATUSES:
        raise InvalidInputError(f"status {status!r}: one of {', '.join(LOOP_STEP_STATUSES)}")
    if not name.strip() or not step.strip() or not actor.strip():
        raise InvalidInputError("name, step and actor must not be empty")
    try:
        detail_json = json.loads(json.dumps(dict(detail), allow_nan=False, default=str))
    except ValueError as error:
        raise InvalidInputError(f"detail must be JSON without NaN/inf: {error}") from error
    values = {
        "name": name,
        "day": day,
        "step": step,
        "status": status,
        "time": time,
        "actor": actor,
        "detail": detail_json,
    }
    with write_transaction(engine) as conn:
        t = loop_steps
        found = (
            conn.execute(sa.select(t).where(t.c.name == name, t.c.day == day, t.c.step == step))
            .mappings()
            .first()
        )
        if found is not None:
            raise LoopStepRecorded(_record(dict(found)))
        conn.execute(t.insert().values(**values))
    return _record(values)


def loop_day_steps(engine: Engine, *, name: str, day: date) -> dict[str, LoopStepRecord]:
    """The recorded steps of ``name``'s ``day``, by step name, in the order they were recorded."""
    t = loop_steps
    query = sa.select(t).where(t.c.name == name, t.c.day == day).order_by(t.c.id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {str(row["step"]): _record(dict(row)) for row in rows}


def _record(row: dict[str, Any]) -> LoopStepRecord:
    return LoopStepRecord(
        name=row["name"],
        day=row["day"],
        step=row["step"],
        status=row["status"],
        time=row["time"],
        actor=row["actor"],
        detail=row["detail"],
    )
