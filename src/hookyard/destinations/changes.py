"""The live changes of destinations and deliveries (hookyard.live, docs/live.md), published
inside the transactions that make them: deliver.py (a pass's attempts, in one batch; leases
taken back), circuit.py (opened, closed, a probe taken, disabled by a 410) and manage.py
(pause, resume, replay).

- `delivery`: id the delivery's id, tenant the delivery's (its event's), status its status
  after the change; `data` = destination, event_id, attempts, last_status_code.
- `destination`: id its name, tenant its own (None for a shared one: by the rule of every
  tenant-less change, only unscoped clients hear it; a tenant watching a shared destination
  hears its own deliveries' changes), status its state; `data` = circuit, change (what
  happened: opened, closed, probe, disabled, paused, resumed).

Ids, statuses and codes only: never an error text or an answer's body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from hookyard.destinations.tables import deliveries
from hookyard.live.change import Change, ChangeKind

# What `delivery_change` reads of a delivery (a statement's RETURNING).
DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.tenant,
    deliveries.c.destination,
    deliveries.c.event_id,
    deliveries.c.status,
    deliveries.c.attempts,
    deliveries.c.last_status_code,
)


def delivery_change(row: RowMapping | Mapping[str, Any], at: datetime) -> Change:
    """`row`: a delivery's DELIVERY_COLUMNS."""
    return Change(
        ChangeKind.DELIVERY,
        int(row["id"]),
        row["tenant"],
        str(row["status"]),
        {
            "destination": row["destination"],
            "event_id": row["event_id"],
            "attempts": row["attempts"],
            "last_status_code": row["last_status_code"],
        },
        at,
    )


def destination_change(
    name: str, tenant: str | None, state: str, circuit: str, change: str, at: datetime
) -> Change:
    return Change(
        ChangeKind.DESTINATION,
        name,
        tenant,
        state,
        {"circuit": circuit, "change": change},
        at,
    )


__all__ = ["DELIVERY_COLUMNS", "delivery_change", "destination_change"]
