"""`leads.enrichment_status` is 32 wide: `enriched_single_source` (22 characters), a lead
enriched from the one of its e-mail and phone that resolved, does not fit in 20. And
`leads.enrichment_finished_at` is indexed: the delivery statistics count outcomes per day.

Downgrading makes those leads `unmatched` again (what the code before called them; their
document and data stay), then narrows the column back.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.alter_column(
            "enrichment_status",
            existing_type=sa.String(20),
            type_=sa.String(32),
            existing_nullable=False,
        )
    op.create_index("ix_leads_enrichment_finished_at", "leads", ["enrichment_finished_at"])


def downgrade() -> None:
    op.drop_index("ix_leads_enrichment_finished_at", table_name="leads")
    op.execute(
        "UPDATE leads SET enrichment_status = 'unmatched' "
        "WHERE enrichment_status = 'enriched_single_source'"
    )
    with op.batch_alter_table("leads") as batch:
        batch.alter_column(
            "enrichment_status",
            existing_type=sa.String(32),
            type_=sa.String(20),
            existing_nullable=False,
        )
