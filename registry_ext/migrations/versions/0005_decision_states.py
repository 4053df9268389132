"""The retraining decision's state machine and the leases that fence long-held locks.

- ``retrain_decision_transitions``: append-only (triggers refuse UPDATE/DELETE, and TRUNCATE on
  PostgreSQL, as 0003 does for ``retrain_decisions``): one row per state change of a decision,
  numbered ``seq`` 1, 2, ... per decision (unique: two writers can never both append step k),
  with the fencing token of the lease it was written under.
- ``leases``: one mutable row per lease key (holder, fencing token, expiry). Acquiring a lease
  increments its token; every write made under a lease checks the token in its own transaction.

Revision ID: 0005
Revises: 0004 (the lead relinks it after 0004 at merge; it depends on nothing 0004 adds)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_APPEND_ONLY = "retrain_decision_transitions is append-only: rows cannot be updated or deleted"
_STATES = ("not_fired", "fired", "claimed", "trained", "registered", "promoted", "refused", "failed")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _state_check(column: str) -> str:
    return f"{column} IN ({', '.join(repr(s) for s in _STATES)})"


def upgrade() -> None:
    op.create_table(
        "retrain_decision_transitions",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.BigInteger, sa.ForeignKey("retrain_decisions.id"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("lease_token", sa.BigInteger, nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.UniqueConstraint("decision_id", "seq", name="uq_retrain_decision_transitions_seq"),
        sa.CheckConstraint(_state_check("from_state"), name="ck_retrain_decision_transitions_from"),
        sa.CheckConstraint(_state_check("to_state"), name="ck_retrain_decision_transitions_to"),
    )
    op.create_table(
        "leases",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION registry_ext_refuse_decision_transition_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation';
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER retrain_decision_transitions_append_only BEFORE UPDATE OR DELETE "
            "ON retrain_decision_transitions FOR EACH ROW "
            "EXECUTE FUNCTION registry_ext_refuse_decision_transition_change()"
        )
        op.execute(
            "CREATE TRIGGER retrain_decision_transitions_no_truncate BEFORE TRUNCATE "
            "ON retrain_decision_transitions FOR EACH STATEMENT "
            "EXECUTE FUNCTION registry_ext_refuse_decision_transition_change()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER retrain_decision_transitions_no_{event.lower()} BEFORE {event} "
                f"ON retrain_decision_transitions BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS retrain_decision_transitions_no_truncate ON retrain_decision_transitions"
        )
        op.execute(
            "DROP TRIGGER IF EXISTS retrain_decision_transitions_append_only ON retrain_decision_transitions"
        )
        op.execute("DROP FUNCTION IF EXISTS registry_ext_refuse_decision_transition_change()")
    op.drop_table("leases")
    op.drop_table("retrain_decision_transitions")
