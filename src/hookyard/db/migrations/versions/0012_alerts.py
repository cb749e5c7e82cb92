"""Alerts: the alerts the rules open and resolve, and the values they last measured.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("open_key", sa.String(450), nullable=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    )
    op.create_index("ix_alerts_tenant_resolved_at", "alerts", ["tenant", "resolved_at"])
    op.create_index("ix_alerts_kind_resolved_at", "alerts", ["kind", "resolved_at"])
    op.create_table(
        "alert_values",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_values"),
    )
    op.create_index("ix_alert_values_kind", "alert_values", ["kind"])


def downgrade() -> None:
    op.drop_table("alert_values")
    op.drop_table("alerts")
