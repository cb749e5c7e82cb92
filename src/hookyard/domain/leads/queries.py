"""Read-only queries of the leads table for the management API.

`tenant` is the tenant whose leads a query may return; None means every tenant (a superadmin
who picked none). Lists are newest first; `before_id` continues after a page. The rows carry
personal data as stored: masking for the reader is the caller's (`hookyard.api.privacy`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select, true

from hookyard.db.schema import utc_day
from hookyard.domain.leads.service import ENRICHMENT_OUTCOMES
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


def enrichment_outcomes(
    conn: Connection, tenant: str | None, since: datetime, until: datetime
) -> dict[date, dict[str, int]]:
    """How many leads' enrichment ended per UTC day of `enrichment_finished_at` (in [since,
    until)) and outcome (`ENRICHMENT_OUTCOMES`): {day: {status: n}}, days without any left
    out. A lead counts once, on the day its last run ended (a new run replaces its outcome)."""
    postgres = conn.dialect.name == "postgresql"
    rows = (
        select(utc_day(c.enrichment_finished_at, postgres=postgres).label("day"),
               c.enrichment_status)
        .where(
            _owned(tenant),
            c.enrichment_finished_at >= since,
            c.enrichment_finished_at < until,
            c.enrichment_status.in_([s.value for s in ENRICHMENT_OUTCOMES]),
        )
        .subquery()
    )  # fmt: skip
    counted = select(rows.c.day, rows.c.enrichment_status, func.count()).group_by(
        rows.c.day, rows.c.enrichment_status
    )
    found: dict[date, dict[str, int]] = {}
    for day, status, n in conn.execute(counted):
        found.setdefault(date.fromisoformat(day), {})[status] = int(n)
    return found
