"""Contact2Sale (C2S) leads: validated contact data, lead status, closures to notify and the
enrichment state.

Importing it registers how a sent notification marks its rows (`notify/marks.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update

from hookyard.domain.common import stamp_sent
from hookyard.domain.leads.tables import lead_closures, leads
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.marks import Sent, on_sent

_stamp_lead = stamp_sent(leads)


def _mark_lead(tx: Connection, sent: Sent, now: datetime) -> None:
    """The lead's `last_notification_sent_at`, and its closing's `notified_at`."""
    _stamp_lead(tx, sent, now)
    if sent.kind is Kind.LEAD_CLOSED and sent.event_id is not None:
        tx.execute(
            update(lead_closures)
            .where(lead_closures.c.event_id == sent.event_id, lead_closures.c.notified_at.is_(None))
            .values(notified_at=now)
        )


on_sent(EntityType.LEAD, _mark_lead)
