"""The HubSpot outbox's lease names its holder (`crm_outbox.lease_owner`), as every leased
queue's does: a sender whose lease expired can no longer overwrite a newer attempt's result.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_outbox") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("crm_outbox") as batch:
        batch.drop_column("lease_owner")
