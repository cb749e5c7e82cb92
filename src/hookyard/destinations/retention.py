"""Event retention and deliveries (inbox/store.py's `Dependents`): the inbox's purge keeps an
event while one of its deliveries is not yet delivered or dead (waiting behind an open
circuit, a pause, a destination no longer configured…), and deletes the deliveries and
attempts of the events it purges, in its transaction. Attached to every store that purges
(`keep_deliveries`: the runtime's, `hookyard events purge`'s), with or without destinations
configured: deliveries of a destination removed from the sources file still count."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, delete, exists, select

from hookyard.destinations.tables import DeliveryStatus, attempts, deliveries
from hookyard.inbox.store import EventStore

_SETTLED = (DeliveryStatus.DELIVERED.value, DeliveryStatus.DEAD.value)


class DeliveryRetention:
    def keeps(self, event_id: ColumnElement[Any]) -> ColumnElement[bool]:
        return exists().where(
            deliveries.c.event_id == event_id, deliveries.c.status.not_in(_SETTLED)
        )

    def names(self, event_id: ColumnElement[Any]) -> ColumnElement[bool]:
        return exists().where(deliveries.c.event_id == event_id)

    def purge(self, tx: Connection, event_ids: Select[Any]) -> None:
        gone = select(deliveries.c.id).where(deliveries.c.event_id.in_(event_ids))
        tx.execute(delete(attempts).where(attempts.c.delivery_id.in_(gone)))
        tx.execute(delete(deliveries).where(deliveries.c.event_id.in_(event_ids)))


def keep_deliveries(store: EventStore) -> None:
    """Make `store`'s retention mind the deliveries (once)."""
    if not any(isinstance(d, DeliveryRetention) for d in store.dependents):
        store.dependents.append(DeliveryRetention())


__all__ = ["DeliveryRetention", "keep_deliveries"]
