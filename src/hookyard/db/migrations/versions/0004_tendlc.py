"""10DLC (TCR): brands, campaigns, per-carrier campaign status, vetting results.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _sync_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("last_event_type", sa.String(200), nullable=True),
        sa.Column("last_event_at", UTCDateTime(), nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=False),
        sa.Column("sync_source", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tendlc_brands",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("brand_id", sa.String(50), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("company_name", sa.String(255), nullable=True),
        sa.Column("entity_type", sa.String(50), nullable=True),
        sa.Column("vertical", sa.String(50), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("identity_status", sa.String(30), nullable=True),
        sa.Column("trust_score", sa.Integer, nullable=True),
        sa.Column("feedback", sa.Text, nullable=True),
        *_sync_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tendlc_brands"),
        sa.UniqueConstraint("brand_id", name="uq_tendlc_brands_brand_id"),
    )
    op.create_index("ix_tendlc_brands_tenant", "tendlc_brands", ["tenant"])
    op.create_table(
        "tendlc_campaigns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(50), nullable=False),
        sa.Column("brand_id", sa.String(50), nullable=True),
        sa.Column("use_case", sa.String(50), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("share_status", sa.String(20), nullable=True),
        sa.Column("rejection_reason", sa.Text, nullable=True),
        *_sync_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tendlc_campaigns"),
        sa.UniqueConstraint("campaign_id", name="uq_tendlc_campaigns_campaign_id"),
        sa.ForeignKeyConstraint(["brand_id"], ["tendlc_brands.brand_id"]),
    )
    op.create_index("ix_tendlc_campaigns_brand_id", "tendlc_campaigns", ["brand_id"])
    op.create_table(
        "tendlc_campaign_carriers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(50), nullable=False),
        sa.Column("mno_id", sa.String(20), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        *_sync_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tendlc_campaign_carriers"),
        sa.UniqueConstraint(
            "campaign_id", "mno_id", name="uq_tendlc_campaign_carriers_campaign_id_mno_id"
        ),
        sa.ForeignKeyConstraint(["campaign_id"], ["tendlc_campaigns.campaign_id"]),
    )
    op.create_table(
        "tendlc_vettings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("brand_id", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("vetting_key", sa.String(50), nullable=False),
        sa.Column("evp_id", sa.String(50), nullable=True),
        sa.Column("vetting_class", sa.String(50), nullable=True),
        sa.Column("status", sa.String(30), nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        *_sync_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tendlc_vettings"),
        sa.UniqueConstraint(
            "brand_id", "kind", "vetting_key", name="uq_tendlc_vettings_brand_id_kind_vetting_key"
        ),
        sa.ForeignKeyConstraint(["brand_id"], ["tendlc_brands.brand_id"]),
    )


def downgrade() -> None:
    op.drop_table("tendlc_vettings")
    op.drop_table("tendlc_campaign_carriers")
    op.drop_index("ix_tendlc_campaigns_brand_id", "tendlc_campaigns")
    op.drop_table("tendlc_campaigns")
    op.drop_index("ix_tendlc_brands_tenant", "tendlc_brands")
    op.drop_table("tendlc_brands")
