"""How the e-mail deliveries of each tenant went lately: what the `email_failing` alert rule
measures (hookyard.alerts). All reads; the sender (job.py) writes these rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select

from hookyard.notify.tables import deliveries

d = deliveries.c


def failing_by_tenant(conn: Connection, since: datetime) -> list[tuple[str, int, int]]:
    """(tenant, judged, failing) of the e-mail deliveries whose latest attempt was since
    `since`: judged are those sent, failed for good, or waiting to retry after a failed
    attempt; failing are the last two. Deliveries never tried, or skipped, are not judged."""
    retrying = and_(d.status == "pending", d.attempts > 0, d.last_error.is_not(None))
    failing = or_(d.status == "failed", retrying)
    query = (
        select(d.tenant, func.count(), func.sum(case((failing, 1), else_=0)))
        .where(d.channel == "email", d.updated_at >= since, or_(d.status == "sent", failing))
        .group_by(d.tenant)
        .order_by(d.tenant)
    )
    return [(str(t), int(n), int(f or 0)) for t, n, f in conn.execute(query)]
