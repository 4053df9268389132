"""loop_steps: the finished steps of each model's loop day (``churnops loop run``, Dagster).

One row per (model, day, step), unique: a rerun of a day (the CLI, a Dagster retry, a rerun of
a finished partition) reads the steps already recorded and does not run them again, so a day
is scored once and retrained once. Append-only (triggers refuse UPDATE/DELETE, and TRUNCATE on
PostgreSQL, as for ``retrain_decision_transitions``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_APPEND_ONLY = "loop_steps is append-only: rows cannot be updated or deleted"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "loop_steps",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.UniqueConstraint("name", "day", "step", name="uq_loop_steps_day_step"),
        sa.CheckConstraint("status IN ('done', 'skipped')", name="ck_loop_steps_status"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION registry_ext_refuse_loop_step_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER loop_steps_append_only BEFORE UPDATE OR DELETE ON loop_steps "
            "FOR EACH ROW EXECUTE FUNCTION registry_ext_refuse_loop_step_change()"
        )
        op.execute(
            "CREATE TRIGGER loop_steps_no_truncate BEFORE TRUNCATE ON loop_steps "
            "FOR EACH STATEMENT EXECUTE FUNCTION registry_ext_refuse_loop_step_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER loop_steps_no_{event.lower()} BEFORE {event} "
                f"ON loop_steps BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS loop_steps_no_truncate ON loop_steps")
        op.execute("DROP TRIGGER IF EXISTS loop_steps_append_only ON loop_steps")
        op.execute("DROP FUNCTION IF EXISTS registry_ext_refuse_loop_step_change()")
    op.drop_table("loop_steps")
