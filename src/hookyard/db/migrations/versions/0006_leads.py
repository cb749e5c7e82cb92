"""C2S leads and lead closures.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("c2s_lead_id", sa.String(300), nullable=False),
        sa.Column("name", sa.String(300), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("validation_errors", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("contact_hash", sa.String(64), nullable=False),
        sa.Column("enrichment_status", sa.String(20), nullable=False),
        sa.Column("document", sa.String(32), nullable=True),
        sa.Column("enrichment_data", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("enrichment_error", sa.Text, nullable=True),
        sa.Column("enrichment_attempts", sa.Integer, nullable=False),
        sa.Column("enrichment_requested_at", UTCDateTime(), nullable=True),
        sa.Column("enrichment_started_at", UTCDateTime(), nullable=True),
        sa.Column("enrichment_finished_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("c2s_updated_at", UTCDateTime(), nullable=True),
        sa.Column("last_event_id", Id, nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("sync_source", sa.String(20), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leads"),
        sa.UniqueConstraint("c2s_lead_id", name="uq_leads_c2s_lead_id"),
    )
    op.create_index("ix_leads_tenant_status", "leads", ["tenant", "status"])
    op.create_index("ix_leads_enrichment_status", "leads", ["enrichment_status"])
    op.create_table(
        "lead_closures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("event_id", Id, nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lead_closures"),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name="fk_lead_closures_lead_id"),
        sa.UniqueConstraint("event_id", name="uq_lead_closures_event_id"),
    )
    op.create_index("ix_lead_closures_lead_id", "lead_closures", ["lead_id"])
    op.create_index("ix_lead_closures_notified_at", "lead_closures", ["notified_at"])


def downgrade() -> None:
    op.drop_table("lead_closures")
    op.drop_table("leads")
