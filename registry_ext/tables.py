"""The registry_ext tables (SQLAlchemy Core), living next to MLflow's own in its backend database.

Created and migrated only by the Alembic revisions in ``registry_ext/migrations`` (never
``metadata.create_all``); this module is what queries are written against. Names come from the
product spec: ``models``, ``model_transitions``, ``model_experiments``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from churnops.contracts.artifacts import MANIFEST_COLUMN, SIGNATURE_COLUMN, SIGNING_KEY_ID_COLUMN
from churnops.contracts.stages import Stage, Trigger

STAGES = tuple(stage.value for stage in Stage)
TRIGGERS = tuple(trigger.value for trigger in Trigger)
STAGE_CHECK = "stage IN ({})".format(", ".join(f"'{stage}'" for stage in STAGES))
"""The ``ck_models_stage`` constraint, from the one Stage enum (migration 0001 holds the same text)."""

VERSION_TABLE = "registry_ext_alembic_version"  # MLflow owns ``alembic_version`` in the same DB

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it without an offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    # JSONB on PostgreSQL: indexable (GIN) containment queries for tag search.
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(16), nullable=False, server_default="None"),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("feature_service", sa.String(256), nullable=False),
    sa.Column("metrics", _json(), nullable=False),
    sa.Column("tags", _json(), nullable=False),
    sa.Column("created", UTCDateTime(), nullable=False),
    # migration 0004: what registry_ext signed at registration (NULL: an older, unsigned version)
    sa.Column(MANIFEST_COLUMN, sa.Text, nullable=True),
    sa.Column(SIGNATURE_COLUMN, sa.String(128), nullable=True),
    sa.Column(SIGNING_KEY_ID_COLUMN, sa.String(64), nullable=True),
    sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
    sa.CheckConstraint(STAGE_CHECK, name="ck_models_stage"),
    sa.Index("ix_models_name_stage", "name", "stage"),
)

model_transitions = sa.Table(
    "model_transitions",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("from_stage", sa.String(16), nullable=True),  # NULL on the registration row
    sa.Column("to_stage", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("gate_results", _json(), nullable=True),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"], ["models.name", "models.version"], name="fk_model_transitions_version"
    ),
    sa.Index("ix_model_transitions_name_version", "name", "version"),
)

model_experiments = sa.Table(
    "model_experiments",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("experiment_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(32), nullable=False, server_default="training"),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"], ["models.name", "models.version"], name="fk_model_experiments_version"
    ),
    sa.UniqueConstraint("name", "version", "run_id", name="uq_model_experiments_version_run"),
    sa.Index("ix_model_experiments_run_id", "run_id"),
)

retrain_decisions = sa.Table(
    "retrain_decisions",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("fired", sa.Boolean, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=True),
    sa.Column("suppressed_by", sa.String(32), nullable=True),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("report", sa.Text, nullable=True),
    sa.Column("policy", sa.String(256), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reasons", _json(), nullable=False),
    sa.Index("ix_retrain_decisions_name_time", "name", "time"),
)

INTENT_STATUSES = ("pending", "completed", "recovered", "reverted")
"""``registry_intents.status`` (migration 0006 holds the same list in its CHECK constraint)."""

registry_intents = sa.Table(
    "registry_intents",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("target", _json(), nullable=False),
    sa.Column("created", UTCDateTime(), nullable=False),
    sa.Column("finished", UTCDateTime(), nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
    sa.Index("ix_registry_intents_name_status", "name", "status"),
)
"""Write-ahead intents of registry writes (migration 0006): see ``registry_ext.registry``."""

retrain_decision_transitions = sa.Table(
    "retrain_decision_transitions",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("decision_id", sa.BigInteger, sa.ForeignKey("retrain_decisions.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=False),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("lease_token", sa.BigInteger, nullable=True),
    sa.Column("detail", _json(), nullable=False),
    sa.UniqueConstraint("decision_id", "seq", name="uq_retrain_decision_transitions_seq"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("holder", sa.String(256), nullable=False),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

LOOP_STEP_STATUSES = ("done", "skipped")
"""``loop_steps.status`` (churnops.contracts.loop.StepStatus; migration 0007 holds the same list)."""

loop_steps = sa.Table(
    "loop_steps",
    metadata,
    sa.Column("id", _id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("detail", _json(), nullable=False),
    sa.UniqueConstraint("name", "day", "step", name="uq_loop_steps_day_step"),
)
"""One row per finished step of a model's loop day (migration 0007): see ``registry_ext.loop_days``."""
