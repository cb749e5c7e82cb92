"""Destinations: their shared state (`destinations`), one delivery per (destination, event)
written at ingest (`destination_deliveries`, a leased queue) and every attempt
(`destination_attempts`).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

DUE = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.create_table(
        "destinations",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("circuit", sa.String(20), nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("circuit_opened_at", UTCDateTime(), nullable=True),
        sa.Column("next_probe_at", UTCDateTime(), nullable=True),
        sa.Column("state_changed_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_destinations"),
    )
    op.create_table(
        "destination_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("event_id", Id, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("entity_key", sa.String(300), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(100), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("replay_count", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_destination_deliveries"),
        sa.ForeignKeyConstraint(
            ["destination"],
            ["destinations.name"],
            name="fk_destination_deliveries_destination",
        ),
        sa.UniqueConstraint(
            "destination", "event_id", name="uq_destination_deliveries_destination_event_id"
        ),
    )
    op.create_index(
        "ix_destination_deliveries_due",
        "destination_deliveries",
        ["next_attempt_at", "id"],
        postgresql_where=DUE,
        sqlite_where=DUE,
    )
    for columns in (
        ["destination", "status", "id"],
        ["destination", "entity_key", "id"],
        ["event_id"],
        ["tenant", "id"],
    ):
        op.create_index(
            f"ix_destination_deliveries_{'_'.join(columns)}", "destination_deliveries", columns
        )
    op.create_table(
        "destination_attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", Id, nullable=False),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("response_excerpt", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("probe", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_destination_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["destination_deliveries.id"],
            name="fk_destination_attempts_delivery_id",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_destination_attempts_delivery_id_id", "destination_attempts", ["delivery_id", "id"]
    )
    op.create_index(
        "ix_destination_attempts_destination_started_at",
        "destination_attempts",
        ["destination", "started_at"],
    )


def downgrade() -> None:
    op.drop_table("destination_attempts")
    op.drop_table("destination_deliveries")
    op.drop_table("destinations")
