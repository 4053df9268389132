"""The ``retrain_decisions`` store: append a retraining decision, move it through its states,
read them back.

Both tables are append-only (migrations 0003 and 0005: triggers refuse UPDATE/DELETE). A
decision's state is the newest of its ``retrain_decision_transitions`` rows (``fired`` or
``not_fired`` when it has none); :func:`append_transition` checks the move against
:mod:`churnops.contracts.decisions` and the caller's fence (a lease token) in the transaction
that writes it, so a retrain that lost its lease, or a move the lifecycle forbids, writes
nothing. Decisions are ordered by id, never by their (caller-given) time: a decision recorded
with a time in the future cannot hide the ones recorded after it.

Kept free of churnops.retraining's types: a decision arrives as plain fields and JSON reasons,
so the registry stays a component that the retraining layer calls, not the other way round.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from churnops.contracts.decisions import (
    PENDING,
    DecisionState,
    check_decision_transition,
    initial_state,
)
from churnops.contracts.stages import Trigger
from registry_ext.engine import write_transaction
from registry_ext.errors import InvalidInputError
from registry_ext.tables import retrain_decision_transitions, retrain_decisions

Fence = Callable[[Connection], None]
"""Called inside a write's transaction; raises (e.g. ``LeaseLostError``) to refuse the write."""


class UnknownDecisionError(InvalidInputError):
    """No decision with that id for that model."""


@dataclass(frozen=True)
class DecisionTransition:
    decision_id: int
    seq: int
    from_state: DecisionState
    to_state: DecisionState
    time: datetime
    actor: str
    lease_token: int | None
    detail: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "seq": self.seq,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "lease_token": self.lease_token,
            "detail": self.detail,
        }


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
    state: DecisionState = DecisionState.NOT_FIRED
    transitions: tuple[DecisionTransition, ...] = field(default=(), compare=False)

    def last_detail(self, state: DecisionState) -> Mapping[str, Any]:
        """The detail recorded with the newest transition into ``state`` ({} when none)."""
        for transition in reversed(self.transitions):
            if transition.to_state == state and isinstance(transition.detail, Mapping):
                return transition.detail
        return {}

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
            "state": self.state.value,
            "transitions": [t.to_dict() for t in self.transitions],
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
    """Decisions of model ``name`` in the order they were recorded (by id, oldest first; the
    newest ``limit`` when given), each with its state and transitions."""
    t = retrain_decisions
    query = sa.select(t).where(t.c.name == name).order_by(t.c.id.desc())
    if since is not None:
        query = query.where(t.c.time >= since)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        history = _transitions(conn, [int(row["id"]) for row in rows])
    return [_record(dict(row), history.get(int(row["id"]), [])) for row in reversed(rows)]


def get_decision(engine: Engine, *, decision_id: int) -> DecisionRecord | None:
    with engine.connect() as conn:
        return _get(conn, decision_id)


def _get(conn: Connection, decision_id: int) -> DecisionRecord | None:
    row = (
        conn.execute(sa.select(retrain_decisions).where(retrain_decisions.c.id == decision_id))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return _record(dict(row), _transitions(conn, [decision_id]).get(decision_id, []))


def pending_decision(engine: Engine, *, name: str) -> DecisionRecord | None:
    """The newest (by id) decision of model ``name`` that fired and is not at an end yet."""
    t = retrain_decisions
    query = sa.select(t.c.id).where(t.c.name == name, t.c.fired.is_(True)).order_by(t.c.id.desc())
    with engine.connect() as conn:
        ids = [int(i) for i in conn.execute(query).scalars()]
        history = _transitions(conn, ids)
        for decision_id in ids:
            steps = history.get(decision_id)
            state = steps[-1].to_state if steps else DecisionState.FIRED
            if state in PENDING:
                return _get(conn, decision_id)
    return None


def append_transition(
    engine: Engine,
    *,
    decision_id: int,
    to_state: DecisionState | str,
    time: datetime,
    actor: str,
    detail: Mapping[str, Any] | None = None,
    fence: Fence | None = None,
    lease_token: int | None = None,
) -> DecisionRecord:
    """Move decision ``decision_id`` to ``to_state``: in one transaction, ``fence`` (the lease
    check), the lifecycle check against the decision's current state, then the new row.

    Raises :class:`UnknownDecisionError`, ``DecisionTransitionError`` (a move the lifecycle does
    not allow, e.g. a second claim of a claimed decision) or whatever ``fence`` raises; nothing
    is written then. Returns the decision with its new state."""
    target = DecisionState.parse(to_state)
    if time.tzinfo is None:
        raise InvalidInputError("time: must be timezone-aware (UTC)")
    if not actor.strip():
        raise InvalidInputError("actor must not be empty")
    try:
        detail_json = json.loads(json.dumps(dict(detail or {}), allow_nan=False, default=str))
    except ValueError as error:
        raise InvalidInputError(f"detail must be JSON without NaN/inf: {error}") from error
    with write_transaction(engine) as conn:
        if fence is not None:
            fence(conn)
        record = _get(conn, decision_id)
        if record is None:
            raise UnknownDecisionError(f"there is no retrain decision {decision_id}")
        check_decision_transition(decision_id=decision_id, current=record.state, target=target)
        seq = len(record.transitions) + 1
        conn.execute(
            retrain_decision_transitions.insert().values(
                decision_id=decision_id,
                seq=seq,
                from_state=record.state.value,
                to_state=target.value,
                time=time,
                actor=actor,
                lease_token=lease_token,
                detail=detail_json,
            )
        )
        updated = _get(conn, decision_id)
    assert updated is not None
    return updated


def _transitions(conn: Connection, ids: list[int]) -> dict[int, list[DecisionTransition]]:
    if not ids:
        return {}
    x = retrain_decision_transitions
    found: dict[int, list[DecisionTransition]] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(x)
            .where(x.c.decision_id.in_(ids[start : start + 500]))
            .order_by(x.c.decision_id, x.c.seq)
        ).mappings()
        for row in rows:
            found.setdefault(int(row["decision_id"]), []).append(
                DecisionTransition(
                    decision_id=int(row["decision_id"]),
                    seq=int(row["seq"]),
                    from_state=DecisionState.parse(row["from_state"]),
                    to_state=DecisionState.parse(row["to_state"]),
                    time=row["time"],
                    actor=row["actor"],
                    lease_token=None if row["lease_token"] is None else int(row["lease_token"]),
                    detail=row["detail"],
                )
            )
    return found


def _record(row: dict[str, Any], transitions: list[DecisionTransition] | None = None) -> DecisionRecord:
    trigger = row["trigger"]
    history = tuple(transitions or ())
    state = history[-1].to_state if history else initial_state(fired=bool(row["fired"]))
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
        state=state,
        transitions=history,
    )
