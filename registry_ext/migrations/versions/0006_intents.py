"""registry_intents: write-ahead intents of the registry's write commands.

A stage change touches two stores that share no transaction: MLflow's aliases and the
registry_ext tables. Before moving an alias, ``promote``, ``rollback`` and ``reconcile`` write
their intent here (actor, reason, trigger, the stage changes and the aliases before and after);
the table write that records the change marks the intent ``completed`` in the same
transaction. An intent still ``pending`` when the per-model lock is next taken belongs to a
process that died: the next write command finishes it (with the intent's own actor and reason)
or reverts it. ``adopt`` and ``delete-unregistered`` of a version MLflow holds but the ``models``
table does not, and runs marked FAILED because they were left RUNNING, are recorded here too.

Only ``status``, ``finished`` and ``outcome`` of a row ever change.

Revision ID: 0006
Revises: 0005 (relinked after 0004/0005 at merge)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registry_intents",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("target", _json(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'recovered', 'reverted')", name="ck_registry_intents_status"
        ),
    )
    op.create_index("ix_registry_intents_name_status", "registry_intents", ["name", "status"])


def downgrade() -> None:
    op.drop_index("ix_registry_intents_name_status", table_name="registry_intents")
    op.drop_table("registry_intents")
