"""Raw requests stored once, apart from their events: `requests`, and `events.request_id`
instead of a copy of the body and headers on every event of a request.

Each existing event gets a request of its own (its id is the event's), holding the body and
headers it carried.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_requests_received_at", "requests", ["received_at"])
    op.execute(
        "INSERT INTO requests (id, source, headers, body, received_at)"
        " SELECT id, source, headers, body, received_at FROM events"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "SELECT setval(pg_get_serial_sequence('requests', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM requests), false)"
        )
    op.add_column("events", sa.Column("request_id", Id, nullable=True))
    op.execute("UPDATE events SET request_id = id")
    op.create_index("ix_events_request_id", "events", ["request_id"])
    # Plain SQL: SQLite (3.35+) drops a plain column in place, without copying the table
    # as Alembic's batch mode would.
    for column in ("headers", "body"):
        op.execute(f"ALTER TABLE events DROP COLUMN {column}")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("headers", sa.JSON, nullable=True))
        batch.add_column(sa.Column("body", sa.LargeBinary, nullable=True))
    op.execute(
        "UPDATE events SET headers = (SELECT headers FROM requests WHERE requests.id ="
        " events.request_id), body = (SELECT body FROM requests WHERE requests.id ="
        " events.request_id)"
    )
    op.drop_index("ix_events_request_id", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("request_id")
        batch.alter_column("headers", nullable=False)
        batch.alter_column("body", nullable=False)
    op.drop_table("requests")
