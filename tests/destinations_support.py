"""Destinations, deliveries and attempts as the workers leave them, written through the
tables directly: the API and dashboard tests need rows in every state (dead, sending, an
open circuit) without a receiver failing on cue. tests/test_destinations.py shows the
workers making such rows from real sends.

Three destinations beside the two tenants' sources of `TENANT_SOURCES`: acme's and globex's
(`invoice.*` events), and a shared one receiving both (`audit.*` events); `tests.support.add`'s
`lead.created` events go to none of them, so a test gives each the deliveries it wants. Writes
are upserts, so they agree with whatever the runtime wrote itself at start (a destination's
row) or at ingest (a delivery per matching event).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from hookyard.db.engine import writer
from hookyard.destinations.tables import attempts, deliveries, destinations
from tests.support import SECRETS, TENANT_SOURCES

DESTINATION_SOURCES = (
    TENANT_SOURCES
    + f"""
[[destination]]
name = "acme-billing"
url = "http://billing:pa55word@127.0.0.1:9/acme"
secret = "{SECRETS["generic"]}"
sources = ["acme-hooks"]
event_types = ["invoice.*"]
max_attempts = 4
tenant = "acme"

[[destination]]
name = "globex-billing"
url = "http://127.0.0.1:9/globex"
secret = "{SECRETS["generic"]}"
sources = ["globex-hooks"]
event_types = ["invoice.*"]
tenant = "globex"

[[destination]]
name = "audit"
url = "http://127.0.0.1:9/audit"
secret = "{SECRETS["generic"]}"
sources = ["acme-hooks", "globex-hooks"]
event_types = ["audit.*"]
ordered = true
"""
)

URLS = {
    "acme-billing": ("acme", "http://billing:pa55word@127.0.0.1:9/acme"),
    "globex-billing": ("globex", "http://127.0.0.1:9/globex"),
    "audit": (None, "http://127.0.0.1:9/audit"),
}


def ensure_destinations(engine: Engine, **states: dict[str, Any]) -> None:
    """Every destination of DESTINATION_SOURCES has its row; `states` sets columns of some
    (`ensure_destinations(engine, audit={"circuit": "open"})`)."""
    now = datetime.now(UTC)
    with writer(engine).begin() as tx:  # beside running workers: the write lock first
        for name, (tenant, url) in URLS.items():
            values: dict[str, Any] = {
                "tenant": tenant,
                "url": url,
                "state": "active",
                "disabled_reason": None,
                "circuit": "closed",
                "consecutive_failures": 0,
                "circuit_opened_at": None,
                "next_probe_at": None,
                "state_changed_at": now,
                "updated_at": now,
                **states.get(name.replace("-", "_"), {}),
            }
            found = tx.execute(select(destinations.c.name).where(destinations.c.name == name))
            if found.first() is None:
                tx.execute(insert(destinations).values(name=name, **values))
            else:
                tx.execute(update(destinations).where(destinations.c.name == name).values(values))


def add_delivery(
    engine: Engine,
    destination: str,
    event_id: int,
    tenant: str | None,
    *,
    status: str = "pending",
    source: str = "acme-hooks",
    event_type: str = "lead.created",
    created_at: datetime | None = None,
    tries: list[dict[str, Any]] = (),  # type: ignore[assignment]
    **values: Any,
) -> int:
    """A delivery of `event_id` to `destination` in `status`, with `tries` as its attempts
    (each a dict of attempt columns; `outcome` and `started_at` needed). Its id."""
    created = created_at or datetime.now(UTC)
    row = {
        "tenant": tenant,
        "source": source,
        "event_type": event_type,
        "entity_key": None,
        "status": status,
        "attempts": len(tries),
        "next_attempt_at": created,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "last_status_code": None,
        "replay_count": 0,
        "created_at": created,
        "finished_at": created + timedelta(seconds=1) if status in ("delivered", "dead") else None,
        **values,
    }
    with writer(engine).begin() as tx:  # beside running workers: the write lock first
        found = tx.execute(
            select(deliveries.c.id).where(
                deliveries.c.destination == destination, deliveries.c.event_id == event_id
            )
        ).scalar()
        if found is None:
            found = tx.execute(
                insert(deliveries)
                .values(destination=destination, event_id=event_id, **row)
                .returning(deliveries.c.id)
            ).scalar_one()
        else:  # the fanout made it at ingest: put it in the state wanted
            tx.execute(attempts.delete().where(attempts.c.delivery_id == found))
            tx.execute(update(deliveries).where(deliveries.c.id == found).values(row))
        for number, attempt in enumerate(tries, start=1):
            tx.execute(
                insert(attempts).values(
                    {
                        "delivery_id": found,
                        "destination": destination,
                        "attempt": number,
                        "latency_ms": None,
                        "status_code": None,
                        "response_excerpt": None,
                        "error": None,
                        "probe": False,
                        **attempt,
                    }
                )
            )
    return int(found)
