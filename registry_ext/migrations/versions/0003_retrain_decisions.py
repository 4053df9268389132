"""retrain_decisions: one append-only row per `churnops retrain check` (and per forced run).

Same protection as ``model_transitions`` (0001): triggers refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL), so the decision history cannot be rewritten.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_APPEND_ONLY = "retrain_decisions is append-only: rows cannot be updated or deleted"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "retrain_decisions",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired", sa.Boolean, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=True),
        sa.Column("suppressed_by", sa.String(32), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("report", sa.Text, nullable=True),
        sa.Column("policy", sa.String(256), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.CheckConstraint(
            "trigger IS NULL OR trigger IN ('manual', 'scheduled', 'performance', 'drift')",
            name="ck_retrain_decisions_trigger",
        ),
    )
    op.create_index("ix_retrain_decisions_name_time", "retrain_decisions", ["name", "time"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION registry_ext_refuse_decision_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER retrain_decisions_append_only BEFORE UPDATE OR DELETE ON retrain_decisions "
            "FOR EACH ROW EXECUTE FUNCTION registry_ext_refuse_decision_change()"
        )
        op.execute(
            "CREATE TRIGGER retrain_decisions_no_truncate BEFORE TRUNCATE ON retrain_decisions "
            "FOR EACH STATEMENT EXECUTE FUNCTION registry_ext_refuse_decision_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER retrain_decisions_no_{event.lower()} BEFORE {event} ON retrain_decisions "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS retrain_decisions_no_truncate ON retrain_decisions")
        op.execute("DROP TRIGGER IF EXISTS retrain_decisions_append_only ON retrain_decisions")
        op.execute("DROP FUNCTION IF EXISTS registry_ext_refuse_decision_change()")
    op.drop_table("retrain_decisions")
