"""Customers are tenants: the tenant a customer is, and the tenant a key (a tenant id, a
tenant's BAN or any customer's BAN) names.

The model (docs/sync.md#customers-are-tenants): a tenant (`accounts/`) is the account of a
customer organisation; its id is what people use (`X-Customer-ID`, the dashboard's picker,
every row's `tenant`), its `ban` the BAN of the customer it is. A customer's `tenant` is
that tenant's id. Creating a customer (`service.create_customer`) makes sure of it, in the
same transaction:
- no tenant named: the tenant holding the customer's BAN if there is one, else a new
  tenant, named after the company, whose id is the one asked for or the company name as a
  slug (`ringer-network-solutions`, `-2`, … when taken);
- a tenant named that does not exist: it is created with that id;
- a tenant named that exists: the customer joins it, and becomes the customer the tenant
  is when the tenant had no BAN yet. A tenant may hold further customers (a second account
  of the same organisation); each one's BAN picks the tenant too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select

from hookyard.accounts import identity
from hookyard.accounts.tables import tenants
from hookyard.domain.crm.tables import customers

# As the API's NewTenant: lower case, so that a tenant id is never mistaken for a BAN.
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
_SLUG_LENGTH = 60
_SLUG_TRIES = 50


class BanOfAnotherTenant(ValueError):
    """A customer's given BAN is already another tenant's."""


def slug(name: str) -> str:
    """A tenant id from a company name: ASCII letters and digits, words joined by `-`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return words[:_SLUG_LENGTH].rstrip("-") or "customer"


def tenant_for(
    tx: Connection, tenant: str | None, company_name: str, ban: str, at: datetime
) -> str:
    """The tenant a new customer (`company_name`, `ban`, created `at`) is, created or
    linked as the module says; run in the customer's transaction."""
    holder = identity.tenant_of_ban(tx, ban)
    if tenant is None:
        if holder is not None:
            return holder
        return _new_tenant(tx, company_name, ban, at)
    if holder is not None and holder != tenant:
        raise BanOfAnotherTenant(f"BAN {ban} is tenant {holder!r}'s, not {tenant!r}'s")
    if not identity.insert_tenant(tx, tenant, company_name, ban, at):
        identity.claim_ban(tx, tenant, ban)
    return tenant


def _new_tenant(tx: Connection, company_name: str, ban: str, at: datetime) -> str:
    base = slug(company_name)
    candidates = [base] + [f"{base}-{n}" for n in range(2, _SLUG_TRIES)] + [ban.lower()]
    for candidate in candidates:
        if identity.insert_tenant(tx, candidate, company_name, ban, at):
            return candidate
    raise RuntimeError(f"no free tenant id for {company_name!r}")  # pragma: no cover


def released(tx: Connection, customer: Mapping[str, Any]) -> None:
    """A customer was removed again (HubSpot refused its creation): its tenant forgets its
    BAN, and a tenant created with it goes when nothing else holds it."""
    tenant = customer["tenant"]
    if tenant is None:
        return
    others = tx.execute(
        select(customers.c.id).where(customers.c.tenant == tenant, customers.c.id != customer["id"])
    ).first()
    identity.release_tenant(
        tx, tenant, customer["ban"], customer["created_at"], still_used=others is not None
    )


def tenant_of(conn: Connection, key: str) -> str | None:
    """The tenant a key names: a tenant id, a tenant's BAN, or a customer's BAN (the
    customer's tenant). What `X-Customer-ID` and the dashboard's picker take."""
    key = key.strip()
    if not key:
        return None
    found = identity.find_tenant(conn, key)
    if found is not None:
        return found
    owner = conn.execute(
        select(customers.c.tenant)
        .join(tenants, tenants.c.id == customers.c.tenant)
        .where(customers.c.ban == key)
    ).scalar()
    return None if owner is None else str(owner)


def search(conn: Connection, text: str, limit: int) -> list[dict[str, Any]]:
    """The superadmin's picker: customers (name and BAN) and their tenants, matching `text`
    (case-insensitively, in the company or tenant name, a BAN or the tenant id); a tenant
    with no customer is listed by its own name. Empty `text`: the first `limit`."""
    joined = tenants.outerjoin(customers, customers.c.tenant == tenants.c.id)
    name = func.coalesce(customers.c.company_name, tenants.c.name)
    query = (
        select(
            tenants.c.id.label("tenant"),
            name.label("name"),
            func.coalesce(customers.c.ban, tenants.c.ban).label("ban"),
            customers.c.id.label("customer_id"),
        )
        .select_from(joined)
        .order_by(func.lower(name), tenants.c.id, customers.c.id)
        .limit(limit)
    )
    text = text.strip()
    if text:
        query = query.where(
            or_(
                *(
                    column.icontains(text, autoescape=True)
                    for column in (
                        customers.c.company_name,
                        tenants.c.name,
                        customers.c.ban,
                        tenants.c.ban,
                        tenants.c.id,
                    )
                )
            )
        )
    return [dict(r) for r in conn.execute(query).mappings()]
