"""What the API and dashboard read of destinations: each one with its health, deliveries by
destination, event, status, and one delivery with every attempt.

Scoping (the caller's tenant, `None` for a superadmin who picked none):
- a tenant sees its own destinations and the shared ones (tenant NULL), never another
  tenant's (`visible`);
- a tenant sees only deliveries whose `tenant` is its own, also those through a shared
  destination; the health of a shared destination counts only the tenant's attempts.

Health is measured over a window of attempts (`since`, e.g. the last 24 hours): how many,
the share that was delivered (attempts whose lease ran out, `lost`, are left out: the
receiver's answer is unknown), and the latency p95 (nearest rank, with the window functions
SQLite and PostgreSQL both have). The counts of waiting and dead deliveries are of every
time, from the (destination, status, id) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, or_, select, true

from hookyard.destinations.tables import (
    DeliveryStatus,
    Outcome,
    attempts,
    deliveries,
    destinations,
    webhook_id,
)

# Deliveries not yet settled: due, being sent, or failed and due again.
WAITING = (
    DeliveryStatus.PENDING.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.FAILED.value,
)
_COUNTED = (*WAITING, DeliveryStatus.DEAD.value)  # delivered ones are not counted: too many


def visible(tenant: str | None) -> ColumnElement[bool]:
    """The destinations a tenant sees: its own and the shared ones (all, for None)."""
    if tenant is None:
        return true()
    return or_(destinations.c.tenant == tenant, destinations.c.tenant.is_(None))


def _own(tenant: str | None) -> ColumnElement[bool]:
    """The deliveries a tenant sees: its own (all, for None)."""
    return true() if tenant is None else deliveries.c.tenant == tenant


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    tenant: str | None = None  # the caller's scope; None: every tenant's
    destination: str | None = None
    status: str | None = None  # a DeliveryStatus value
    event_id: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        conditions = [_own(self.tenant)]
        if self.destination is not None:
            conditions.append(deliveries.c.destination == self.destination)
        if self.status is not None:
            conditions.append(deliveries.c.status == self.status)
        if self.event_id is not None:
            conditions.append(deliveries.c.event_id == self.event_id)
        return conditions


def health(
    conn: Connection, names: Sequence[str], *, tenant: str | None, since: datetime
) -> dict[str, dict[str, Any]]:
    """name -> {attempts, delivered, success_rate, latency_p95_ms, last_attempt_at,
    waiting, dead} for each of `names` (zeros and nulls without data)."""
    found: dict[str, dict[str, Any]] = {
        name: {
            "attempts": 0,
            "delivered": 0,
            "success_rate": None,
            "latency_p95_ms": None,
            "last_attempt_at": None,
            "waiting": 0,
            "dead": 0,
        }
        for name in names
    }
    if not names:
        return found
    window = select(
        attempts.c.destination, attempts.c.outcome, attempts.c.latency_ms, attempts.c.started_at
    ).where(
        attempts.c.destination.in_(names),
        attempts.c.started_at >= since,
        attempts.c.outcome != Outcome.LOST.value,
    )
    if tenant is not None:  # a shared destination's attempts of this tenant's deliveries only
        window = window.join_from(
            attempts, deliveries, deliveries.c.id == attempts.c.delivery_id
        ).where(deliveries.c.tenant == tenant)
    rows = window.subquery()
    delivered = func.sum(case((rows.c.outcome == Outcome.DELIVERED.value, 1), else_=0))
    totals = select(
        rows.c.destination, func.count(), delivered, func.max(rows.c.started_at)
    ).group_by(rows.c.destination)
    ranked = (
        select(
            rows.c.destination,
            rows.c.latency_ms,
            func.row_number()
            .over(partition_by=rows.c.destination, order_by=rows.c.latency_ms)
            .label("rank"),
            func.count().over(partition_by=rows.c.destination).label("n"),
        )
        .where(rows.c.latency_ms.is_not(None))
        .subquery()
    )
    # `//`: integer division on both engines, so (95n + 99) // 100 is ceil(0.95·n).
    p95 = select(ranked.c.destination, ranked.c.latency_ms).where(
        ranked.c.rank == (ranked.c.n * 95 + 99) // 100
    )
    counts = (
        select(deliveries.c.destination, deliveries.c.status, func.count())
        .where(
            deliveries.c.destination.in_(names),
            deliveries.c.status.in_(_COUNTED),
            _own(tenant),
        )
        .group_by(deliveries.c.destination, deliveries.c.status)
    )
    for name, n, ok, last in conn.execute(totals):
        entry = found[name]
        entry.update(attempts=int(n), delivered=int(ok or 0), last_attempt_at=last)
        entry["success_rate"] = round(int(ok or 0) / int(n), 4) if n else None
    for name, latency in conn.execute(p95):
        found[name]["latency_p95_ms"] = int(latency)
    for name, status, n in conn.execute(counts):
        found[name]["dead" if status == DeliveryStatus.DEAD.value else "waiting"] += int(n)
    return found


def list_destinations(
    conn: Connection, *, tenant: str | None, since: datetime
) -> list[dict[str, Any]]:
    """The destinations `tenant` sees, by name, each with its `health`."""
    rows = [
        dict(r)
        for r in conn.execute(
            select(destinations).where(visible(tenant)).order_by(destinations.c.name)
        ).mappings()
    ]
    healths = health(conn, [r["name"] for r in rows], tenant=tenant, since=since)
    return [{**r, "health": healths[r["name"]]} for r in rows]


def find_destination(
    conn: Connection, name: str, *, tenant: str | None, since: datetime
) -> dict[str, Any] | None:
    """One destination `tenant` sees, with its `health`; None: none such in its sight."""
    row = (
        conn.execute(select(destinations).where(destinations.c.name == name, visible(tenant)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return {**row, "health": health(conn, [name], tenant=tenant, since=since)[name]}


def _delivery(row: Any) -> dict[str, Any]:
    return {**row, "webhook_id": webhook_id(row["id"])}


def list_deliveries(
    conn: Connection, flt: DeliveryFilter, *, limit: int, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Newest first; `before_id`: the page after the one that ended with that id."""
    query = select(deliveries).where(*flt.where())
    if before_id is not None:
        query = query.where(deliveries.c.id < before_id)
    found = conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit)).mappings()
    return [_delivery(r) for r in found]


def find_delivery(
    conn: Connection, delivery_id: int, *, tenant: str | None
) -> dict[str, Any] | None:
    """One delivery of `tenant`'s with its `attempt_log` (every attempt, oldest first);
    None: none such."""
    row = (
        conn.execute(select(deliveries).where(deliveries.c.id == delivery_id, _own(tenant)))
        .mappings()
        .first()
    )
    if row is None:
        return None
    tried = conn.execute(
        select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id)
    ).mappings()
    return {**_delivery(row), "attempt_log": [dict(a) for a in tried]}


def replayable(conn: Connection, flt: DeliveryFilter, *, limit: int) -> list[int]:
    """The ids of up to `limit` deliveries matching `flt` that a replay may take (any but
    one being sent right now), oldest first."""
    query = (
        select(deliveries.c.id)
        .where(*flt.where(), deliveries.c.status != DeliveryStatus.SENDING.value)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]


__all__ = [
    "WAITING",
    "DeliveryFilter",
    "find_delivery",
    "find_destination",
    "health",
    "list_deliveries",
    "list_destinations",
    "replayable",
    "visible",
]
