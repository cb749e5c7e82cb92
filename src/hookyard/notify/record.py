"""Recording a notification inside the transaction that made the change.

Called by the domain handlers (and the HubSpot outbox's failure path) in their own
transaction, so a notification exists iff its change committed. The row names the change
by a key (kind, entity, and the event or transition that made it): inserting it is
insert-or-nothing, so a replayed or redelivered event, or a batch redone one event per
transaction, records it once. Handlers call this only for a real transition (the old state
differs from the new) and never for a superseded event, so a webhook and a poll reporting
the same change give one notification: whichever applies second sees no transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.tables import notifications
from hookyard.providers.base import storable_key

PENDING = "pending"


def notification(
    kind: Kind,
    *,
    tenant: str | None,
    entity_type: EntityType,
    entity_id: int,
    change: str,
    data: Mapping[str, Any],
    event_id: int | None = None,
) -> dict[str, Any] | None:
    """The `notifications` row of one change of `kind` about the entity, for `tenant`'s
    people; None when the entity has no tenant (nobody to tell). `change` tells this change
    apart from others of the same entity (e.g. `event:42`, or `10035:event:42` for one
    carrier). Inserted insert-or-nothing on `dedup_key` (`record`, or a domain's batch)."""
    if tenant is None:
        log.debug("notification_without_tenant", kind=kind.value, entity=entity_type.value)
        return None
    return {
        "tenant": tenant,
        "kind": kind.value,
        "dedup_key": storable_key(f"{kind.value}:{entity_type.value}:{entity_id}:{change}"),
        "entity_type": entity_type.value,
        "entity_id": entity_id,
        "event_id": event_id,
        "data": {k: _plain(v) for k, v in data.items()},
        "status": PENDING,
        "created_at": datetime.now(UTC),
    }


def record(
    tx: Connection,
    kind: Kind,
    *,
    tenant: str | None,
    entity_type: EntityType,
    entity_id: int,
    change: str,
    data: Mapping[str, Any],
    event_id: int | None = None,
) -> bool:
    """Record one notification now (see `notification`). True if recorded now, False if it
    already was (or the entity has no tenant)."""
    values = notification(
        kind,
        tenant=tenant,
        entity_type=entity_type,
        entity_id=entity_id,
        change=change,
        data=data,
        event_id=event_id,
    )
    if values is None:
        return False
    recorded = _insert_new(tx, values)
    if recorded:
        log.info(
            "notification_recorded",
            kind=kind.value,
            entity=entity_type.value,
            entity_id=entity_id,
            event_id=event_id,
        )
    return recorded


def _insert_new(tx: Connection, values: Mapping[str, Any]) -> bool:
    keys = ["dedup_key"]
    if tx.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(notifications).values(values)
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    elif tx.dialect.name == "sqlite":
        stmt = (
            sqlite.insert(notifications).values(values).on_conflict_do_nothing(index_elements=keys)
        )
    else:  # pragma: no cover - another engine: its transaction isolation has to do
        found = tx.execute(
            select(notifications.c.id).where(notifications.c.dedup_key == values["dedup_key"])
        ).first()
        if found is not None:
            return False
        stmt = insert(notifications).values(values)
    return tx.execute(stmt.returning(notifications.c.id)).first() is not None


def _plain(value: Any) -> Any:
    """JSON-storable: times as ISO text, everything else as given (str, int, None…)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
