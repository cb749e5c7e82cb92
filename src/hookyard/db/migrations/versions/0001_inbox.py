"""The inbox (`events`) and the rejected-requests log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("entity_key", sa.String(300), nullable=True),
        sa.Column("provider_ts", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_traceback", sa.Text, nullable=True),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("source", "dedup_key", name="uq_events_source_dedup_key"),
    )
    op.create_index("ix_events_status_next_attempt_at", "events", ["status", "next_attempt_at"])
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_events_entity_key", "events", ["entity_key"])
    op.create_table(
        "rejected_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body_excerpt", sa.LargeBinary, nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejected_requests"),
    )


def downgrade() -> None:
    op.drop_table("rejected_requests")
    op.drop_index("ix_events_entity_key", "events")
    op.drop_index("ix_events_received_at", "events")
    op.drop_index("ix_events_status_next_attempt_at", "events")
    op.drop_table("events")
