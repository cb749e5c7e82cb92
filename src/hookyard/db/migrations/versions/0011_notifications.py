"""E-mail notifications: notifications, their deliveries, people's preferences, and
`last_notification_sent_at` on the rows they are about.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NOTIFIED_TABLES = (
    "tendlc_brands",
    "tendlc_campaigns",
    "tendlc_vettings",
    "whatsapp_templates",
    "leads",
    "crm_customers",
)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("entity_type", sa.String(40), nullable=False),
        sa.Column("entity_id", Id, nullable=False),
        sa.Column("event_id", Id, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("recipients", sa.Integer, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("fanned_out_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("dedup_key", name="uq_notifications_dedup_key"),
    )
    op.create_index("ix_notifications_status_id", "notifications", ["status", "id"])
    op.create_index("ix_notifications_tenant_created_at", "notifications", ["tenant", "created_at"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("notification_id", Id, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name="fk_notification_deliveries_notification_id",
        ),
        sa.UniqueConstraint(
            "notification_id", "email", name="uq_notification_deliveries_notification_id_email"
        ),
    )
    op.create_index(
        "ix_notification_deliveries_status_next_attempt_at",
        "notification_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        "ix_notification_deliveries_user_id_status",
        "notification_deliveries",
        ["user_id", "status"],
    )
    op.create_table(
        "notification_preferences",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_preferences"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_notification_preferences_user_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("user_id", "kind", name="uq_notification_preferences_user_id_kind"),
    )
    for table in NOTIFIED_TABLES:
        op.add_column(table, sa.Column("last_notification_sent_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    for table in reversed(NOTIFIED_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("last_notification_sent_at")
    op.drop_table("notification_preferences")
    op.drop_table("notification_deliveries")
    op.drop_table("notifications")
