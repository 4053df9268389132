"""One registration row per version, found by an exact index lookup.

``ModelRecord.gate_results`` is read from the version's registration row (``from_stage`` NULL)
through a correlated subquery per version. Without statistics (right after a bulk load) the
PostgreSQL planner picked ``ix_model_transitions_name_to_stage`` (name only) for it and scanned
every transition of the model per version: 0.3 s for 1,000 versions. A partial unique index on
``(name, version) WHERE from_stage IS NULL`` makes that lookup exact (and enforces one
registration row per version); the name/to_stage index, which only served rollback's history
query (``ix_model_transitions_name_version`` serves it too), is dropped.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tolerant of a database created by a short-lived draft of 0001 that already had this change.
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("model_transitions")}
    registration = sa.text("from_stage IS NULL")
    if "uq_model_transitions_registration" not in existing:
        op.create_index(
            "uq_model_transitions_registration",
            "model_transitions",
            ["name", "version"],
            unique=True,
            sqlite_where=registration,
            postgresql_where=registration,
        )
    if "ix_model_transitions_name_to_stage" in existing:
        op.drop_index("ix_model_transitions_name_to_stage", table_name="model_transitions")


def downgrade() -> None:
    op.create_index("ix_model_transitions_name_to_stage", "model_transitions", ["name", "to_stage"])
    op.drop_index("uq_model_transitions_registration", table_name="model_transitions")
