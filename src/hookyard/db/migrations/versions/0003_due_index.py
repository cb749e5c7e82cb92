"""A partial index of the due events: claims read it instead of sorting the whole backlog.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DUE = sa.text("status IN ('pending', 'failed')")


def upgrade() -> None:
    op.create_index(
        "ix_events_due",
        "events",
        ["next_attempt_at", "id"],
        postgresql_where=DUE,
        sqlite_where=DUE,
    )


def downgrade() -> None:
    op.drop_index("ix_events_due", "events")
