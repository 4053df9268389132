"""models.manifest / signature / signing_key_id: what registry_ext signed at registration.

The manifest (canonical JSON of every model file's SHA-256, as logged), the base64 Ed25519
signature of (name, version, manifest digest, feature service) and the signing key's id. NULL
for versions registered before this revision: loaders refuse those ("re-register or retrain").
The same three values are model-version tags in MLflow, which is where serving reads them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from churnops.contracts.artifacts import MANIFEST_COLUMN, SIGNATURE_COLUMN, SIGNING_KEY_ID_COLUMN

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column(MANIFEST_COLUMN, sa.Text, nullable=True))
        batch.add_column(sa.Column(SIGNATURE_COLUMN, sa.String(128), nullable=True))
        batch.add_column(sa.Column(SIGNING_KEY_ID_COLUMN, sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column(SIGNING_KEY_ID_COLUMN)
        batch.drop_column(SIGNATURE_COLUMN)
        batch.drop_column(MANIFEST_COLUMN)
