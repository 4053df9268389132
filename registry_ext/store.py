"""Reads and writes of the registry_ext tables (no MLflow here).

Only three kinds of writes exist: inserting rows, changing ``models.stage`` together with the
``model_transitions`` row that records it, and closing a ``registry_intents`` row (its status,
finish time and outcome). Nothing updates or deletes a transition row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from churnops.contracts.artifacts import (
    MANIFEST_COLUMN,
    SIGNATURE_COLUMN,
    SIGNING_KEY_ID_COLUMN,
    VersionSignature,
)
from churnops.contracts.clock import wall_clock
from churnops.contracts.crash_points import crash_point
from churnops.contracts.stages import Stage
from registry_ext.errors import RegistryError
from registry_ext.records import IntentRecord, JSONValue, ModelRecord, TransitionRecord
from registry_ext.tables import model_experiments, model_transitions, models, registry_intents


def utcnow() -> datetime:
    """The registry's default clock (``ModelRegistry(clock=...)`` injects another): the wall clock."""
    return wall_clock()


_registration = model_transitions.alias("registration")
_training = model_experiments.alias("training")


def record_select() -> sa.Select[Any]:
    """SELECT of everything a :class:`ModelRecord` needs (the version, its gate results and experiment).

    Gate results and experiment come from correlated subqueries, each one lookup in a unique
    index per row, so the plan does not depend on table statistics (a join planned on stale
    statistics after a bulk load degenerated to a nested loop over all rows on PostgreSQL).
    """
    gate_results = (
        sa.select(_registration.c.gate_results)
        .where(
            _registration.c.name == models.c.name,
            _registration.c.version == models.c.version,
            _registration.c.from_stage.is_(None),
        )
        .limit(1)
        .scalar_subquery()
    )
    experiment_id = (
        sa.select(_training.c.experiment_id)
        .where(
            _training.c.name == models.c.name,
            _training.c.version == models.c.version,
            _training.c.role == "training",
        )
        .order_by(_training.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return sa.select(
        models, gate_results.label("gate_results"), experiment_id.label("experiment_id")
    ).select_from(models)


def row_to_record(row: RowMapping) -> ModelRecord:
    return ModelRecord(
        name=row["name"],
        version=int(row["version"]),
        stage=Stage(row["stage"]),
        run_id=row["run_id"],
        artifact_uri=row["artifact_uri"],
        sha256=row["sha256"],
        feature_service=row["feature_service"],
        metrics=dict(row["metrics"] or {}),
        tags=dict(row["tags"] or {}),
        gate_results=row["gate_results"],
        created=row["created"],
        experiment_id=row["experiment_id"],
        signature=None
        if row[SIGNATURE_COLUMN] is None
        else VersionSignature(
            manifest=row[MANIFEST_COLUMN] or "",
            signature=row[SIGNATURE_COLUMN],
            key_id=row[SIGNING_KEY_ID_COLUMN] or "",
        ),
    )


def row_to_transition(row: RowMapping) -> TransitionRecord:
    return TransitionRecord(
        id=int(row["id"]),
        name=row["name"],
        version=int(row["version"]),
        from_stage=None if row["from_stage"] is None else Stage(row["from_stage"]),
        to_stage=Stage(row["to_stage"]),
        actor=row["actor"],
        reason=row["reason"],
        trigger=row["trigger"],
        gate_results=row["gate_results"],
        time=row["time"],
    )


def fetch_record(conn: Connection, *, name: str, version: int) -> ModelRecord | None:
    row = (
        conn.execute(record_select().where(models.c.name == name, models.c.version == version))
        .mappings()
        .first()
    )
    return None if row is None else row_to_record(row)


def fetch_records(conn: Connection, query: sa.Select[Any]) -> list[ModelRecord]:
    return [row_to_record(row) for row in conn.execute(query).mappings()]


def stage_holders(conn: Connection, *, name: str) -> dict[Stage, int]:
    """Which version holds Staging and Production (at most one each, by a unique index)."""
    rows = conn.execute(
        sa.select(models.c.stage, models.c.version).where(
            models.c.name == name, models.c.stage.in_([Stage.STAGING.value, Stage.PRODUCTION.value])
        )
    )
    return {Stage(stage): int(version) for stage, version in rows}


def fetch_stages(conn: Connection, *, name: str, versions: Iterable[int]) -> dict[int, Stage]:
    wanted = sorted(set(versions))
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(models.c.version, models.c.stage).where(models.c.name == name, models.c.version.in_(wanted))
    )
    return {int(version): Stage(stage) for version, stage in rows}


def fetch_transitions(conn: Connection, *, name: str, version: int | None = None) -> list[TransitionRecord]:
    query = sa.select(model_transitions).where(model_transitions.c.name == name)
    if version is not None:
        query = query.where(model_transitions.c.version == version)
    rows = conn.execute(query.order_by(model_transitions.c.id)).mappings()
    return [row_to_transition(row) for row in rows]


def production_history(conn: Connection, *, name: str) -> list[int]:
    """Versions in the order they entered Production (one entry per transition to Production)."""
    rows = conn.execute(
        sa.select(model_transitions.c.version)
        .where(model_transitions.c.name == name, model_transitions.c.to_stage == Stage.PRODUCTION.value)
        .order_by(model_transitions.c.id)
    )
    return [int(version) for (version,) in rows]


def insert_version(
    conn: Connection,
    *,
    name: str,
    version: int,
    run_id: str,
    experiment_id: str,
    artifact_uri: str,
    sha256: str,
    feature_service: str,
    metrics: dict[str, float],
    tags: dict[str, str],
    gate_results: JSONValue,
    actor: str,
    trigger: str,
    created: datetime,
    reason: str = "registered",
    signature: VersionSignature | None = None,
) -> None:
    """The ``models`` row, its ``model_experiments`` link and its registration transition.

    Test hook ``registry.register.after_mlflow_version``: the MLflow version exists, this row not.
    """
    crash_point("registry.register.after_mlflow_version")
    signed = (
        {}
        if signature is None
        else {
            MANIFEST_COLUMN: signature.manifest,
            SIGNATURE_COLUMN: signature.signature,
            SIGNING_KEY_ID_COLUMN: signature.key_id,
        }
    )
    conn.execute(
        models.insert().values(
            **signed,
            name=name,
            version=version,
            stage=Stage.NONE.value,
            run_id=run_id,
            artifact_uri=artifact_uri,
            sha256=sha256,
            feature_service=feature_service,
            metrics=metrics,
            tags=tags,
            created=created,
        )
    )
    conn.execute(
        model_experiments.insert().values(
            name=name,
            version=version,
            experiment_id=experiment_id,
            run_id=run_id,
            role="training",
            created=created,
        )
    )
    conn.execute(
        model_transitions.insert().values(
            name=name,
            version=version,
            from_stage=None,
            to_stage=Stage.NONE.value,
            actor=actor,
            reason=reason,
            trigger=trigger,
            gate_results=gate_results,
            time=created,
        )
    )


def change_stage(
    conn: Connection,
    *,
    name: str,
    version: int,
    from_stage: Stage,
    to_stage: Stage,
    actor: str,
    reason: str,
    trigger: str,
    time: datetime,
) -> TransitionRecord:
    """Move one version and append its transition row (the caller's transaction holds both)."""
    result = conn.execute(
        models.update()
        .where(models.c.name == name, models.c.version == version, models.c.stage == from_stage.value)
        .values(stage=to_stage.value)
    )
    if result.rowcount != 1:
        raise RegistryError(
            f"model {name!r} version {version} is no longer in stage {from_stage.value}; "
            "it was changed concurrently outside registry_ext, nothing was written"
        )
    inserted = conn.execute(
        model_transitions.insert()
        .values(
            name=name,
            version=version,
            from_stage=from_stage.value,
            to_stage=to_stage.value,
            actor=actor,
            reason=reason,
            trigger=trigger,
            gate_results=None,
            time=time,
        )
        .returning(model_transitions.c.id)
    )
    return TransitionRecord(
        id=int(inserted.scalar_one()),
        name=name,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        actor=actor,
        reason=reason,
        trigger=trigger,
        gate_results=None,
        time=time,
    )


def registered_versions(conn: Connection, *, name: str) -> set[int]:
    """Every version number the ``models`` table holds for model ``name``."""
    rows = conn.execute(sa.select(models.c.version).where(models.c.name == name))
    return {int(version) for (version,) in rows}


def experiment_ids(conn: Connection, *, name: str) -> list[str]:
    """The MLflow experiments that trained versions of model ``name``."""
    rows = conn.execute(
        sa.select(model_experiments.c.experiment_id).where(model_experiments.c.name == name).distinct()
    )
    return sorted(str(experiment) for (experiment,) in rows)


def _row_to_intent(row: RowMapping) -> IntentRecord:
    return IntentRecord(
        id=int(row["id"]),
        name=row["name"],
        kind=row["kind"],
        status=row["status"],
        actor=row["actor"],
        reason=row["reason"],
        trigger=row["trigger"],
        target=dict(row["target"] or {}),
        created=row["created"],
        finished=row["finished"],
        outcome=row["outcome"],
    )


def insert_intent(
    conn: Connection,
    *,
    name: str,
    kind: str,
    actor: str,
    reason: str,
    trigger: str,
    target: dict[str, JSONValue],
    created: datetime,
    status: str = "pending",
    outcome: str | None = None,
) -> int:
    """A new ``registry_intents`` row; returns its id."""
    inserted = conn.execute(
        registry_intents.insert()
        .values(
            name=name,
            kind=kind,
            status=status,
            actor=actor,
            reason=reason,
            trigger=trigger,
            target=target,
            created=created,
            finished=None if status == "pending" else created,
            outcome=outcome,
        )
        .returning(registry_intents.c.id)
    )
    return int(inserted.scalar_one())


def close_intent(
    conn: Connection, *, intent_id: int, status: str, finished: datetime, outcome: str | None
) -> None:
    """Mark a pending intent completed, recovered or reverted (only a pending one changes)."""
    result = conn.execute(
        registry_intents.update()
        .where(registry_intents.c.id == intent_id, registry_intents.c.status == "pending")
        .values(status=status, finished=finished, outcome=outcome)
    )
    if result.rowcount != 1:
        raise RegistryError(f"registry intent {intent_id} is no longer pending; nothing was written")


def fetch_intents(conn: Connection, *, name: str, pending_only: bool = False) -> list[IntentRecord]:
    """The intents of model ``name``, oldest first (only the pending ones if asked)."""
    query = sa.select(registry_intents).where(registry_intents.c.name == name)
    if pending_only:
        query = query.where(registry_intents.c.status == "pending")
    return [_row_to_intent(row) for row in conn.execute(query.order_by(registry_intents.c.id)).mappings()]
