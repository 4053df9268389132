"""registry_ext tables: models, model_transitions, model_experiments.

Besides the tables:
- partial unique indexes: at most one Production and one Staging version per model (the
  database itself refuses a second one, whatever runs concurrently);
- triggers that refuse UPDATE and DELETE on ``model_transitions`` (append-only audit trail);
- on PostgreSQL a GIN index on ``models.tags`` for tag search.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_APPEND_ONLY = "model_transitions is append-only: rows cannot be updated or deleted"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "models",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False, server_default="None"),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("feature_service", sa.String(256), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_models_name_version"),
        sa.CheckConstraint("stage IN ('None', 'Staging', 'Production', 'Archived')", name="ck_models_stage"),
    )
    op.create_index("ix_models_name_stage", "models", ["name", "stage"])
    for stage in ("Production", "Staging"):
        where = sa.text(f"stage = '{stage}'")
        op.create_index(
            f"uq_models_one_{stage.lower()}",
            "models",
            ["name"],
            unique=True,
            sqlite_where=where,
            postgresql_where=where,
        )
    if dialect == "postgresql":
        op.create_index("ix_models_tags", "models", ["tags"], postgresql_using="gin")

    op.create_table(
        "model_transitions",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("from_stage", sa.String(16), nullable=True),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("gate_results", _json(), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"], ["models.name", "models.version"], name="fk_model_transitions_version"
        ),
    )
    op.create_index("ix_model_transitions_name_version", "model_transitions", ["name", "version"])
    op.create_index("ix_model_transitions_name_to_stage", "model_transitions", ["name", "to_stage"])

    op.create_table(
        "model_experiments",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("experiment_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False, server_default="training"),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"], ["models.name", "models.version"], name="fk_model_experiments_version"
        ),
        sa.UniqueConstraint("name", "version", "run_id", name="uq_model_experiments_version_run"),
    )
    op.create_index("ix_model_experiments_run_id", "model_experiments", ["run_id"])

    if dialect == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION registry_ext_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER model_transitions_append_only BEFORE UPDATE OR DELETE ON model_transitions "
            "FOR EACH ROW EXECUTE FUNCTION registry_ext_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER model_transitions_no_truncate BEFORE TRUNCATE ON model_transitions "
            "FOR EACH STATEMENT EXECUTE FUNCTION registry_ext_refuse_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER model_transitions_no_{event.lower()} BEFORE {event} ON model_transitions "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS model_transitions_no_truncate ON model_transitions")
        op.execute("DROP TRIGGER IF EXISTS model_transitions_append_only ON model_transitions")
        op.execute("DROP FUNCTION IF EXISTS registry_ext_refuse_change()")
    op.drop_table("model_experiments")
    op.drop_table("model_transitions")
    op.drop_table("models")
