"""Our changes on their way to HubSpot (the `crm_outbox` rows) and the record of every
exchange (`crm_sync_log`), as statements in the caller's transaction.

The webhook handler re-pushes a field we own that HubSpot changed, the API queues a
person's change, the reconciler queues drift: all of them join the customer's one open row
here. `sync/hubspot.py` sends the rows (the one leased queue, `queue/leased.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from hookyard.domain.crm.rules import RULES, active
from hookyard.domain.crm.tables import outbox, sync_log

OUTBOUND = tuple(r.field for r in RULES)  # every field goes out (the rules' table)
PENDING = "pending"


def log_exchange(
    tx: Connection,
    customer: Mapping[Any, Any],
    operation: str,
    result: str,
    *,
    direction: str = "out",
    properties: Mapping[str, Any] | None = None,
    detail: str | None = None,
) -> None:
    tx.execute(
        insert(sync_log).values(
            tenant=customer["tenant"],
            customer_id=customer["id"],
            ban=customer["ban"],
            direction=direction,
            operation=operation,
            properties=dict(properties) if properties else None,
            result=result,
            detail=detail[:2000] if detail else None,
            at=datetime.now(UTC),
        )
    )


def enqueue(tx: Connection, customer: Mapping[Any, Any], fields: Sequence[str]) -> int:
    """Queue our `fields` of the customer for HubSpot (joining its open row); 1 if queued."""
    fields = sorted({f for f in fields if f in OUTBOUND})
    if not fields:
        return 0
    now = datetime.now(UTC)
    open_row = tx.execute(
        select(outbox.c.id, outbox.c.fields)
        .where(outbox.c.customer_id == customer["id"], outbox.c.status == PENDING)
        .order_by(outbox.c.id)
        .limit(1)
        .with_for_update()
    ).first()
    if open_row is not None:
        merged = sorted(set(open_row.fields) | set(fields))
        tx.execute(
            update(outbox).where(outbox.c.id == open_row.id).values(fields=merged, updated_at=now)
        )
        return 1
    tx.execute(
        insert(outbox).values(
            tenant=customer["tenant"],
            customer_id=customer["id"],
            operation="update" if customer["hubspot_company_id"] else "create",
            fields=fields,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return 1


Repush = tuple[Mapping[Any, Any], Mapping[str, Any], str]  # customer, theirs by field, source


def repush(
    tx: Connection, customer: Mapping[Any, Any], theirs: Mapping[str, Any], source: str
) -> int:
    """HubSpot changed fields we own (`theirs`: field -> HubSpot's value): not applied, ours
    queued to be pushed again, and the sync log says so. Automatic: no conflict."""
    repush_many(tx, [(customer, theirs, source)])
    return 1


def repush_many(tx: Connection, items: Sequence[Repush]) -> None:
    """`repush` for several customers (each once) with a few statements, whatever their
    number: a webhook batch's."""
    if not items:
        return
    rules = active()
    now = datetime.now(UTC)
    logs = []
    for customer, theirs, source in items:
        ours = {f: rules.by_field[f].current(customer) for f in theirs}
        pushed = ", ".join(f"{f}={ours[f] or ''}" for f in sorted(theirs))
        logs.append({
            "tenant": customer["tenant"], "customer_id": customer["id"], "ban": customer["ban"],
            "direction": "in", "operation": "repush", "result": "not_applied",
            "properties": {rules.prop(f): v for f, v in theirs.items()},
            "detail": f"{source}: ours is the authority; re-pushed ours: {pushed}"[:2000],
            "at": now,
        })  # fmt: skip
    tx.execute(insert(sync_log), logs)
    wanted = {c["id"]: sorted(set(t) & set(OUTBOUND)) for c, t, _ in items}
    open_rows: dict[int, Any] = {}
    for found in tx.execute(
        select(outbox.c.id, outbox.c.customer_id, outbox.c.fields)
        .where(outbox.c.customer_id.in_(sorted(wanted)), outbox.c.status == PENDING)
        .order_by(outbox.c.id)
        .with_for_update()
    ):
        open_rows.setdefault(found.customer_id, found)
    joined = [
        {"b_id": row.id, "b_fields": sorted(set(row.fields) | set(wanted[cid])), "b_now": now}
        for cid, row in open_rows.items()
    ]
    if joined:
        tx.execute(_JOIN, joined)
    new = [
        {"tenant": c["tenant"], "customer_id": c["id"],
         "operation": "update" if c["hubspot_company_id"] else "create",
         "fields": wanted[c["id"]], "status": PENDING, "attempts": 0, "next_attempt_at": now,
         "created_at": now, "updated_at": now}
        for c, _, _ in items
        if c["id"] not in open_rows
    ]  # fmt: skip
    if new:
        tx.execute(insert(outbox), new)


_JOIN = (
    update(outbox)
    .where(outbox.c.id == bindparam("b_id"))
    .values(fields=bindparam("b_fields", type_=outbox.c.fields.type), updated_at=bindparam("b_now"))
)
