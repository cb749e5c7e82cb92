"""Customers are tenants (domain/crm/tenancy.py): every customer's `tenant` names a row of
`tenants`, and a tenant's `ban` is the BAN of the customer it is.

Existing rows, each customer in the order it was created:
- a customer of no tenant joins the tenant holding its BAN, or gets a new tenant, named
  after the company, its id the company name as a slug (`-2`, `-3`… when taken), its BAN
  the customer's; its conflicts, outbox rows and sync log move to that tenant with it (they
  carry the customer's tenant for the tenant filters);
- a customer whose tenant has no row gets that row: the same id, the company's name, the
  customer's BAN (unless another tenant holds it);
- a tenant with no BAN takes the BAN of its first customer (unless another tenant holds it).
A tenant keeps its id, and a tenant with a BAN keeps it.

No schema changes. Downgrade changes nothing: the tenants made stay, and 0015's code reads
them as any tenant.

Revision ID: 0016
Revises: 0015
"""

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from hookyard.db.schema import Id, UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The columns this migration reads and writes, as of 0015.
_tables = sa.MetaData()
tenants = sa.Table(
    "tenants",
    _tables,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("ban", sa.String(11)),
    sa.Column("created_at", UTCDateTime()),
)
customers = sa.Table(
    "crm_customers",
    _tables,
    sa.Column("id", Id, primary_key=True),
    sa.Column("tenant", sa.String(100)),
    sa.Column("ban", sa.String(11)),
    sa.Column("company_name", sa.String(255)),
    sa.Column("created_at", UTCDateTime()),
)
# Rows that carry their customer's tenant.
FOLLOWERS = [
    sa.Table(
        name,
        _tables,
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant", sa.String(100)),
        sa.Column("customer_id", Id),
    )
    for name in ("crm_sync_conflicts", "crm_outbox", "crm_sync_log")
]


def _slug(name: str) -> str:
    # As domain/crm/tenancy.py's slug when this was written.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return words[:60].rstrip("-") or "customer"


def _free_id(name: str, ban: str, taken: set[str]) -> str:
    base = _slug(name)
    for candidate in [base] + [f"{base}-{n}" for n in range(2, 10_000)]:
        if candidate not in taken:
            return candidate
    return ban.lower()  # pragma: no cover


def upgrade() -> None:
    conn = op.get_bind()
    ban_of: dict[str, str | None] = {
        r.id: r.ban for r in conn.execute(sa.select(tenants.c.id, tenants.c.ban))
    }
    holder = {ban: tenant for tenant, ban in ban_of.items() if ban is not None}
    found = conn.execute(
        sa.select(customers.c.id, customers.c.tenant, customers.c.ban, customers.c.company_name,
                  customers.c.created_at).order_by(customers.c.id)
    ).all()  # fmt: skip
    for customer in found:
        tenant: str | None = customer.tenant
        free_ban = customer.ban if customer.ban not in holder else None
        if tenant is None:
            tenant = holder.get(customer.ban)
            if tenant is None:
                tenant = _free_id(customer.company_name, customer.ban, set(ban_of))
                _add(conn, tenant, customer, free_ban, ban_of, holder)
            conn.execute(
                sa.update(customers).where(customers.c.id == customer.id).values(tenant=tenant)
            )
            for table in FOLLOWERS:
                conn.execute(
                    sa.update(table)
                    .where(table.c.customer_id == customer.id, table.c.tenant.is_(None))
                    .values(tenant=tenant)
                )
        elif tenant not in ban_of:
            _add(conn, tenant, customer, free_ban, ban_of, holder)
        elif ban_of[tenant] is None and free_ban is not None:
            conn.execute(sa.update(tenants).where(tenants.c.id == tenant).values(ban=free_ban))
            ban_of[tenant] = free_ban
            holder[free_ban] = tenant


def _add(
    conn: sa.Connection,
    tenant: str,
    customer: Any,
    ban: str | None,
    ban_of: dict[str, str | None],
    holder: dict[str, str],
) -> None:
    created = customer.created_at or datetime.now(UTC)
    conn.execute(
        sa.insert(tenants).values(
            id=tenant, name=customer.company_name[:255], ban=ban, created_at=created
        )
    )
    ban_of[tenant] = ban
    if ban is not None:
        holder[ban] = tenant


def downgrade() -> None:
    pass
