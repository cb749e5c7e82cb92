"""A second notification channel: each tenant's chat webhook (`notification_chat_webhooks`)
and the channel of each delivery (`notification_deliveries.channel`: email, chat).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLE = "notification_chat_webhooks"


def upgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.add_column(
            sa.Column("channel", sa.String(10), nullable=False, server_default="email")
        )
    op.create_table(
        TABLE,
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name=f"pk_{TABLE}"),
        sa.ForeignKeyConstraint(
            ["tenant"], ["tenants.id"], name=f"fk_{TABLE}_tenant", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
    op.execute("DELETE FROM notification_deliveries WHERE channel = 'chat'")
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_column("channel")
