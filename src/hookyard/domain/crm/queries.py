"""Read-only queries on customers, their field state, conflicts, outbox and sync log.

Every query that can reach more than one customer takes `tenant` as a required keyword:
the tenant whose rows it may return, or None for every tenant (a superadmin who picked
none). Being required, forgetting it is a TypeError, not a leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, func, select, true

from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts, sync_log


class ConflictState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[RowMapping]
    total: int  # matching rows, all pages


def _of(column: Any, tenant: str | None) -> ColumnElement[bool]:
    return true() if tenant is None else column == tenant


def _page(conn: Connection, query: Select[Any], limit: int, offset: int) -> Page:
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
    return Page(rows, int(total))


def list_customers(
    conn: Connection,
    *,
    tenant: str | None,
    status: str | None = None,
    customer_type: str | None = None,
    name_contains: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Customers by id; `name_contains` matches the company name case-insensitively, and
    `%`/`_` in it are plain characters."""
    query = select(customers).where(_of(customers.c.tenant, tenant)).order_by(customers.c.id)
    if status is not None:
        query = query.where(customers.c.status == status)
    if customer_type is not None:
        query = query.where(customers.c.customer_type == customer_type)
    if name_contains:
        query = query.where(customers.c.company_name.icontains(name_contains, autoescape=True))
    return _page(conn, query, limit, offset)


def get_customer(conn: Connection, customer_id: int, *, tenant: str | None) -> RowMapping | None:
    where = (customers.c.id == customer_id) & _of(customers.c.tenant, tenant)
    return conn.execute(select(customers).where(where)).mappings().first()


def customer_by_ban(conn: Connection, ban: str, *, tenant: str | None) -> RowMapping | None:
    where = (customers.c.ban == ban) & _of(customers.c.tenant, tenant)
    return conn.execute(select(customers).where(where)).mappings().first()


def field_states(conn: Connection, customer_id: int) -> dict[str, RowMapping]:
    """The customer's field_state rows by field (a customer already in the caller's scope)."""
    query = select(field_state).where(field_state.c.customer_id == customer_id)
    return {row["field"]: row for row in conn.execute(query).mappings()}


def open_conflicts(conn: Connection, customer_id: int) -> int:
    query = select(func.count()).where(
        sync_conflicts.c.customer_id == customer_id, sync_conflicts.c.resolved_at.is_(None)
    )
    return int(conn.execute(query).scalar_one())


def sync_pending(conn: Connection, customer_id: int) -> bool:
    """Whether an outbox row of the customer is still on its way (pending or sending)."""
    query = select(outbox.c.id).where(
        outbox.c.customer_id == customer_id, outbox.c.status.in_(("pending", "sending"))
    )
    return conn.execute(query.limit(1)).first() is not None


def sync_log_of(conn: Connection, customer: RowMapping, limit: int = 200) -> Sequence[RowMapping]:
    """The customer's exchanges with HubSpot, newest first. Matched on id *and* BAN: a log
    row outlives a refused customer, and SQLite may give a later customer that id again."""
    query = (
        select(sync_log)
        .where(
            sync_log.c.customer_id == customer["id"],
            sync_log.c.ban == customer["ban"],
            _of(sync_log.c.tenant, customer["tenant"]),
        )
        .order_by(sync_log.c.id.desc())
        .limit(limit)
    )
    return conn.execute(query).mappings().all()


def list_conflicts(
    conn: Connection,
    *,
    tenant: str | None,
    state: ConflictState = ConflictState.OPEN,
    customer_id: int | None = None,
    field: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Conflicts, newest first."""
    query = (
        select(sync_conflicts)
        .where(_of(sync_conflicts.c.tenant, tenant))
        .order_by(sync_conflicts.c.id.desc())
    )
    if state is ConflictState.OPEN:
        query = query.where(sync_conflicts.c.resolved_at.is_(None))
    elif state is ConflictState.RESOLVED:
        query = query.where(sync_conflicts.c.resolved_at.is_not(None))
    if customer_id is not None:
        query = query.where(sync_conflicts.c.customer_id == customer_id)
    if field is not None:
        query = query.where(sync_conflicts.c.field == field)
    return _page(conn, query, limit, offset)


def get_conflict(conn: Connection, conflict_id: int, *, tenant: str | None) -> RowMapping | None:
    where = (sync_conflicts.c.id == conflict_id) & _of(sync_conflicts.c.tenant, tenant)
    return conn.execute(select(sync_conflicts).where(where)).mappings().first()


def list_outbox(
    conn: Connection,
    *,
    tenant: str | None,
    status: str | None = None,
    customer_id: int | None = None,
    limit: int = 100,
) -> Sequence[RowMapping]:
    """Outbox rows, newest first."""
    query = (
        select(outbox).where(_of(outbox.c.tenant, tenant)).order_by(outbox.c.id.desc()).limit(limit)
    )
    if status is not None:
        query = query.where(outbox.c.status == status)
    if customer_id is not None:
        query = query.where(outbox.c.customer_id == customer_id)
    return conn.execute(query).mappings().all()


def list_sync_log(
    conn: Connection,
    *,
    tenant: str | None,
    result: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Every exchange with HubSpot, newest first (a refused customer's rows included)."""
    query = select(sync_log).where(_of(sync_log.c.tenant, tenant)).order_by(sync_log.c.id.desc())
    if result is not None:
        query = query.where(sync_log.c.result == result)
    return _page(conn, query, limit, offset)
