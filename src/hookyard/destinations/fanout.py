"""A delivery per matching destination, written with the event in its ingest transaction (the
outbox idiom: an acknowledged event never lacks its deliveries, and a delivery never names an
event that was not stored).

This runs on the hot path (inbox/insert.py calls it inside the batch's transaction): the
matching is plain Python over the batch, and the rows go in with one `executemany`; when no
destination takes any of the batch's events, nothing is run at all.

An event replayed in the inbox is handled again, not delivered again: a delivery has its own
replay (manage.py), with the same `webhook-id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from hookyard.destinations import circuit
from hookyard.destinations.config import DestinationConfig, Destinations
from hookyard.destinations.retention import keep_deliveries
from hookyard.destinations.tables import DeliveryStatus
from hookyard.inbox.model import NewEvent
from hookyard.inbox.store import EventStore
from hookyard.queue.leased import utcnow

_COLUMNS = (
    "destination, event_id, tenant, source, event_type, entity_key, status, attempts,"
    " next_attempt_at, replay_count, created_at"
)
_PENDING = DeliveryStatus.PENDING.value


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime reads back (naive UTC, microseconds).
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class DeliveryFanout:
    """inbox/insert.py's `Fanout` for the configured destinations."""

    def __init__(self, destinations: Destinations | Sequence[DestinationConfig]) -> None:
        by_source: dict[str, list[DestinationConfig]] = {}
        for destination in destinations:
            for source in destination.sources:
                by_source.setdefault(source, []).append(destination)
        self.by_source: Mapping[str, tuple[DestinationConfig, ...]] = {
            source: tuple(found) for source, found in by_source.items()
        }

    def __bool__(self) -> bool:
        return bool(self.by_source)

    def statement(self, *, sqlite: bool) -> str:
        marks = ", ".join(["?" if sqlite else "%s"] * 11)
        return f"INSERT INTO destination_deliveries ({_COLUMNS}) VALUES ({marks})"

    def rows(
        self, new: Sequence[NewEvent], inserted: Mapping[tuple[str, str], int], *, sqlite: bool
    ) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        seen: set[int] = set()
        for event in new:
            targets = self.by_source.get(event.source)
            if not targets:
                continue
            event_id = inserted.get((event.source, event.dedup_key))
            if event_id is None or event_id in seen:  # a duplicate: its deliveries exist
                continue
            seen.add(event_id)
            at: Any = _sqlite_time(event.received_at) if sqlite else event.received_at
            for destination in targets:
                if destination.matches(event.source, event.event_type, event.tenant):
                    rows.append(
                        (
                            destination.name,
                            event_id,
                            event.tenant,
                            event.source,
                            event.event_type,
                            event.entity_key if destination.ordered else None,
                            _PENDING,
                            0,
                            at,
                            0,
                            at,
                        )
                    )
        return rows


def attach(store: EventStore, destinations: Destinations) -> None:
    """Every new event `store` accepts gets its deliveries: the destinations' rows first
    (deliveries name them), then the fanout on the store's inserts. Its retention minds the
    deliveries in any case (retention.py); nothing else without destinations."""
    keep_deliveries(store)
    if not len(destinations):
        return
    with store.writer.begin() as tx:
        circuit.sync(tx, destinations, utcnow())
    store.fanout = DeliveryFanout(destinations)


__all__ = ["DeliveryFanout", "attach"]
