"""WhatsApp templates: accounts, templates, their history, campaigns and alerts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("waba_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_accounts"),
        sa.UniqueConstraint("waba_id", name="uq_whatsapp_accounts_waba_id"),
    )
    op.create_table(
        "whatsapp_templates",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("account_id", Id, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("meta_template_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(20), nullable=True),
        sa.Column("category", sa.String(50), nullable=True),
        sa.Column("status", sa.String(30), nullable=True),
        sa.Column("quality", sa.String(20), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("disable_info", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("other_info", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("status_event_at", UTCDateTime(), nullable=True),
        sa.Column("quality_event_at", UTCDateTime(), nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("sync_source", sa.String(20), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_templates"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["whatsapp_accounts.id"], name="fk_whatsapp_templates_account_id"
        ),
        sa.UniqueConstraint("meta_template_id", name="uq_whatsapp_templates_meta_template_id"),
    )
    op.create_index("ix_whatsapp_templates_account_id", "whatsapp_templates", ["account_id"])
    op.create_index(
        "ix_whatsapp_templates_tenant_status", "whatsapp_templates", ["tenant", "status"]
    )
    op.create_table(
        "whatsapp_template_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("template_id", Id, nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("from_value", sa.String(30), nullable=True),
        sa.Column("to_value", sa.String(30), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("provider_ts", UTCDateTime(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_template_history"),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["whatsapp_templates.id"],
            name="fk_whatsapp_template_history_template_id",
        ),
        sa.UniqueConstraint("event_id", name="uq_whatsapp_template_history_event_id"),
    )
    op.create_index(
        "ix_whatsapp_template_history_template_id_id",
        "whatsapp_template_history",
        ["template_id", "id"],
    )
    op.create_table(
        "whatsapp_campaigns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("template_id", Id, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("paused_reason", sa.String(50), nullable=True),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("paused_by_event", Id, nullable=True),
        sa.Column("paused_by", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_campaigns"),
        sa.ForeignKeyConstraint(
            ["template_id"], ["whatsapp_templates.id"], name="fk_whatsapp_campaigns_template_id"
        ),
    )
    op.create_index(
        "ix_whatsapp_campaigns_template_id_status",
        "whatsapp_campaigns",
        ["template_id", "status"],
    )
    op.create_table(
        "whatsapp_campaign_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_campaign_log"),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["whatsapp_campaigns.id"], name="fk_whatsapp_campaign_log_campaign_id"
        ),
    )
    op.create_index(
        "ix_whatsapp_campaign_log_campaign_id_id", "whatsapp_campaign_log", ["campaign_id", "id"]
    )
    op.create_table(
        "whatsapp_alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("template_id", Id, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_alerts"),
        sa.ForeignKeyConstraint(
            ["template_id"], ["whatsapp_templates.id"], name="fk_whatsapp_alerts_template_id"
        ),
        sa.UniqueConstraint("event_id", "kind", name="uq_whatsapp_alerts_event_id_kind"),
    )
    op.create_index(
        "ix_whatsapp_alerts_tenant_acknowledged_at",
        "whatsapp_alerts",
        ["tenant", "acknowledged_at"],
    )
    op.create_index("ix_whatsapp_alerts_template_id", "whatsapp_alerts", ["template_id"])


def downgrade() -> None:
    op.drop_table("whatsapp_alerts")
    op.drop_table("whatsapp_campaign_log")
    op.drop_table("whatsapp_campaigns")
    op.drop_table("whatsapp_template_history")
    op.drop_table("whatsapp_templates")
    op.drop_table("whatsapp_accounts")
