"""The ``retrain_decisions`` store: append a retraining decision, read them back.

Append-only (migration 0003's triggers refuse UPDATE/DELETE). Kept free of churnops.retraining's
types: a decision arrives as plain fields and JSON reasons, so the registry stays a component
that the retraining layer calls, not the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from churnops.contracts.stages import Trigger
from registry_ext.engine import write_transaction
from registry_ext.errors import InvalidInputError
from registry_ext.tables import retrain_decisions


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    name: str
    time: datetime
    fired: bool
    trigger: Trigger | None
    suppressed_by: str | None
    model_version: str | None
    report: str | None
    policy: str
    actor: str
    reasons: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "time": self.time.isoformat(),
            "fired": self.fired,
            "trigger": None if self.trigger is None else self.trigger.value,
            "suppressed_by": self.suppressed_by,
            "model_version": self.model_version,
            "report": self.report,
            "policy": self.policy,
            "actor": self.actor,
            "reasons": self.reasons,
        }


def append_decision(
    engine: Engine,
    *,
    name: str,
    time: datetime,
    fired: bool,
    trigger: Trigger | str | None,
    suppressed_by: str | None,
    model_version: str | None,
    report: str | None,
    policy: str,
    actor: str,
    reasons: Any,
) -> DecisionRecord:
    """Insert one decision row; returns it with its id."""
    if time.tzinfo is None:
        raise InvalidInputError("time: must be timezone-aware (UTC)")
    if not name.strip() or not actor.strip() or not policy.strip():
        raise InvalidInputError("name, actor and policy must not be empty")
    try:
        reasons_json = json.loads(json.dumps(reasons, allow_nan=False, default=str))
    except ValueError as error:
        raise InvalidInputError(f"reasons must be JSON without NaN/inf: {error}") from error
    values = {
        "name": name,
        "time": time,
        "fired": fired,
        "trigger": None if trigger is None else Trigger.parse(trigger).value,
        "suppressed_by": suppressed_by,
        "model_version": model_version,
        "report": report,
        "policy": policy,
        "actor": actor,
        "reasons": reasons_json,
    }
    with write_transaction(engine) as conn:
        new_id = conn.execute(retrain_decisions.insert().values(**values)).inserted_primary_key
    assert new_id is not None
    return _record({"id": int(new_id[0]), **values})


def list_decisions(
    engine: Engine, *, name: str, since: datetime | None = None, limit: int | None = None
) -> list[DecisionRecord]:
    """Decisions of model ``name``, oldest first (the newest ``limit`` when given)."""
    t = retrain_decisions
    query = sa.select(t).where(t.c.name == name).order_by(t.c.time.desc(), t.c.id.desc())
    if since is not None:
        query = query.where(t.c.time >= since)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_record(dict(row)) for row in reversed(rows)]


def get_decision(engine: Engine, *, decision_id: int) -> DecisionRecord | None:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(retrain_decisions).where(retrain_decisions.c.id == decision_id))
            .mappings()
            .first()
        )
    return None if row is None else _record(dict(row))


def _record(row: dict[str, Any]) -> DecisionRecord:
    trigger = row["trigger"]
    return DecisionRecord(
        id=int(row["id"]),
        name=row["name"],
        time=row["time"],
        fired=bool(row["fired"]),
        trigger=None if trigger is None else Trigger.parse(trigger),
        suppressed_by=row["suppressed_by"],
        model_version=row["model_version"],
        report=row["report"],
        policy=row["policy"],
        actor=row["actor"],
        reasons=row["reasons"],
    )
