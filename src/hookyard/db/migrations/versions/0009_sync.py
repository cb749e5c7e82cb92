"""Sync: scheduler jobs, reconciliation runs, the HubSpot outbox and sync log, pushed values.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_jobs",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.String(20), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_schedule_jobs"),
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("job", sa.String(100), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("checked", sa.Integer, nullable=False),
        sa.Column("drift", sa.Integer, nullable=False),
        sa.Column("fed", sa.Integer, nullable=False),
        sa.Column("details", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reconciliation_runs"),
    )
    op.create_index(
        "ix_reconciliation_runs_provider_started_at",
        "reconciliation_runs",
        ["provider", "started_at"],
    )
    op.add_column("crm_field_state", sa.Column("pushed_value", sa.Text, nullable=True))
    op.add_column("crm_field_state", sa.Column("pushed_at", UTCDateTime(), nullable=True))
    op.create_table(
        "crm_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("customer_id", Id, nullable=False),
        sa.Column("operation", sa.String(10), nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_crm_outbox"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["crm_customers.id"], name="fk_crm_outbox_customer_id"
        ),
    )
    op.create_index(
        "ix_crm_outbox_status_next_attempt_at", "crm_outbox", ["status", "next_attempt_at"]
    )
    op.create_index("ix_crm_outbox_customer_id_status", "crm_outbox", ["customer_id", "status"])
    op.create_table(
        "crm_sync_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=True),
        sa.Column("customer_id", Id, nullable=True),
        sa.Column("ban", sa.String(11), nullable=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("operation", sa.String(20), nullable=False),
        sa.Column("properties", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("result", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crm_sync_log"),
    )
    op.create_index("ix_crm_sync_log_customer_id_at", "crm_sync_log", ["customer_id", "at"])
    op.create_index("ix_crm_sync_log_at", "crm_sync_log", ["at"])


def downgrade() -> None:
    op.drop_table("crm_sync_log")
    op.drop_table("crm_outbox")
    with op.batch_alter_table("crm_field_state") as batch:
        batch.drop_column("pushed_at")
        batch.drop_column("pushed_value")
    op.drop_table("reconciliation_runs")
    op.drop_table("schedule_jobs")
