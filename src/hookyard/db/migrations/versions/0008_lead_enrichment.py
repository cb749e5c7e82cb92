"""C2S lead enrichment: the pipeline's reason, retry time, lease and step timings.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # All nullable: ADD COLUMN on both engines, no table rebuild. A lead pending before this
    # migration has no next attempt time, which the pipeline reads as "due now".
    op.add_column("leads", sa.Column("enrichment_reason", sa.String(300), nullable=True))
    op.add_column("leads", sa.Column("enrichment_next_attempt_at", UTCDateTime(), nullable=True))
    op.add_column("leads", sa.Column("enrichment_lease_owner", sa.String(100), nullable=True))
    op.add_column("leads", sa.Column("enrichment_lease_until", UTCDateTime(), nullable=True))
    op.add_column("leads", sa.Column("enrichment_steps", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:  # SQLite drops columns by rebuilding
        for name in (
            "enrichment_steps",
            "enrichment_lease_until",
            "enrichment_lease_owner",
            "enrichment_next_attempt_at",
            "enrichment_reason",
        ):
            batch.drop_column(name)
