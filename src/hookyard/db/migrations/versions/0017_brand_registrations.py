"""10DLC brand registrations kept before TCR is called (`tendlc_brand_registrations`): the
request, its state (PENDING, SENDING, REGISTERED, FAILED), TCR's errors or answer, and the
leased queue's columns for retries.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE = "tendlc_brand_registrations"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("errors", sa.JSON, nullable=True),
        sa.Column("answer", sa.JSON, nullable=True),
        sa.Column("brand_id", sa.String(50), nullable=True),
        sa.Column("requested_by", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("registered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.ForeignKeyConstraint(["brand_id"], ["tendlc_brands.brand_id"]),
    )
    op.create_index(f"ix_{TABLE}_tenant_id", TABLE, ["tenant", "id"])
    op.create_index(f"ix_{TABLE}_status_next_attempt_at", TABLE, ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table(TABLE)
