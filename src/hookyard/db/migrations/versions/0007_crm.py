"""HubSpot CRM: customers, field-level sync state, sync conflicts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_customers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("ban", sa.String(11), nullable=False),
        sa.Column("company_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("customer_type", sa.String(30), nullable=False),
        sa.Column("credit_limit_cents", sa.BigInteger, nullable=True),
        sa.Column("current_balance_cents", sa.BigInteger, nullable=False),
        sa.Column("service_voice", sa.Boolean, nullable=False),
        sa.Column("service_messaging", sa.Boolean, nullable=False),
        sa.Column("service_telecom_data", sa.Boolean, nullable=False),
        sa.Column("hubspot_company_id", sa.String(64), nullable=True),
        sa.Column("hubspot_deleted_at", UTCDateTime(), nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("sync_source", sa.String(20), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crm_customers"),
        sa.UniqueConstraint("ban", name="uq_crm_customers_ban"),
        sa.UniqueConstraint("hubspot_company_id", name="uq_crm_customers_hubspot_company_id"),
    )
    op.create_index("ix_crm_customers_tenant_status", "crm_customers", ["tenant", "status"])
    op.create_table(
        "crm_field_state",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("our_value", sa.Text, nullable=True),
        sa.Column("our_changed_at", UTCDateTime(), nullable=True),
        sa.Column("their_value", sa.Text, nullable=True),
        sa.Column("their_changed_at", UTCDateTime(), nullable=True),
        sa.Column("their_event_id", Id, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_crm_field_state"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["crm_customers.id"], name="fk_crm_field_state_customer_id"
        ),
        sa.UniqueConstraint("customer_id", "field", name="uq_crm_field_state_customer_id_field"),
    )
    op.create_table(
        "crm_sync_conflicts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("our_value", sa.Text, nullable=True),
        sa.Column("their_value", sa.Text, nullable=True),
        sa.Column("event_id", Id, nullable=False),
        sa.Column("provider_ts", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("resolution", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_crm_sync_conflicts"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["crm_customers.id"], name="fk_crm_sync_conflicts_customer_id"
        ),
        sa.UniqueConstraint("event_id", "field", name="uq_crm_sync_conflicts_event_id_field"),
    )
    op.create_index(
        "ix_crm_sync_conflicts_tenant_resolved_at", "crm_sync_conflicts", ["tenant", "resolved_at"]
    )
    op.create_index(
        "ix_crm_sync_conflicts_customer_id_field", "crm_sync_conflicts", ["customer_id", "field"]
    )


def downgrade() -> None:
    op.drop_table("crm_sync_conflicts")
    op.drop_table("crm_field_state")
    op.drop_table("crm_customers")
