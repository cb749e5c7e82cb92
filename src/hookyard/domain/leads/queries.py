"""Read-only queries of the leads table for the management API.

`tenant` is the tenant whose leads a query may return; None means every tenant (a superadmin
who picked none). Lists are newest first; `before_id` continues after a page. The rows carry
personal data as stored: masking for the reader is the caller's (`hookyard.api.privacy`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, select, true

from hookyard.domain.leads.tables import leads

c = leads.c

SUMMARY_COLUMNS = (
    c.id, c.tenant, c.c2s_lead_id, c.name, c.email, c.phone, c.status, c.enrichment_status,
    c.closed_at, c.created_at, c.updated_at,
)  # fmt: skip


def _owned(tenant: str | None) -> ColumnElement[bool]:
    return true() if tenant is None else c.tenant == tenant


def list_leads(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    enrichment_status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    query = select(*SUMMARY_COLUMNS).where(_owned(tenant))
    if status is not None:
        query = query.where(c.status == status)
    if enrichment_status is not None:
        query = query.where(c.enrichment_status == enrichment_status)
    if before_id is not None:
        query = query.where(c.id < before_id)
    rows = conn.execute(query.order_by(c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]


def find_lead(conn: Connection, tenant: str | None, lead_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(leads).where(c.id == lead_id, _owned(tenant))).mappings().first()
    return None if row is None else dict(row)
