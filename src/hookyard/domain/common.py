"""What every domain module shares: where a state came from, the ordering rule, and how a sent
notification marks its row. (The portable row helpers are `hookyard.db.rows`.)"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Table, update

from hookyard.notify.marks import Mark, Sent


class SyncSource(StrEnum):
    WEBHOOK = "webhook"
    POLLING = "polling"
    MANUAL = "manual"

    @classmethod
    def of_origin(cls, origin: str) -> SyncSource:
        # A replay re-applies what was received, so it keeps the delivery's kind: events
        # replayed from the inbox were webhooks unless they say otherwise.
        try:
            return cls(origin)
        except ValueError:
            return cls.WEBHOOK


def is_older(ts: datetime | None, applied: datetime | None) -> bool:
    """Guarantee 4: an event older than the state it would change is superseded. Without a
    provider time there is nothing to order by, so the event applies; equal times apply too
    (providers' clocks have coarse resolution; the later-handled one wins)."""
    return ts is not None and applied is not None and ts < applied


def stamp_sent(table: Table) -> Mark:
    """How a sent notification about a row of `table` marks it: `last_notification_sent_at`.
    Each domain package registers it for its entity types (`notify.marks.on_sent`)."""

    def mark(tx: Connection, sent: Sent, now: datetime) -> None:
        tx.execute(
            update(table).where(table.c.id == sent.entity_id).values(last_notification_sent_at=now)
        )

    return mark
