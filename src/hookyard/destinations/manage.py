"""What an operator does to destinations and deliveries (the API and dashboard call these):
pause, resume, replay, discard. With `tenant`, only that tenant's rows are touched (a
caller's scope; a shared destination has no tenant and is out of any tenant's reach here).
Each publishes its live changes (`destination`, `delivery`: changes.py) in its transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, text, update

from hookyard.db.engine import writer
from hookyard.destinations.changes import DELIVERY_COLUMNS, delivery_change, destination_change
from hookyard.destinations.tables import (
    DUE_STATUSES,
    Circuit,
    DeliveryStatus,
    State,
    deliveries,
    destinations,
)
from hookyard.inbox.store import NOTIFY_CHANNEL
from hookyard.live.publish import publish
from hookyard.queue.leased import Clock, utcnow


def _wake(tx: Connection) -> None:
    """Workers of every process wake when this commits (PostgreSQL; on SQLite they look
    again within HOOKYARD_DESTINATION_LEASE_SECONDS/4 at most)."""
    if tx.dialect.name == "postgresql":
        tx.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def pause(engine: Engine, name: str, *, tenant: str | None = None, clock: Clock = utcnow) -> bool:
    """Stop sending to `name` (its deliveries wait, none is lost); False: no such destination
    (in scope) or it is not active."""
    now = clock()
    scope = [] if tenant is None else [destinations.c.tenant == tenant]
    with writer(engine).begin() as tx:
        changed = tx.execute(
            update(destinations)
            .where(destinations.c.name == name, destinations.c.state == State.ACTIVE.value, *scope)
            .values(state=State.PAUSED.value, state_changed_at=now, updated_at=now)
            .returning(destinations.c.tenant, destinations.c.circuit)
        ).first()
        if changed is not None:
            state = State.PAUSED.value
            publish(
                tx, destination_change(name, changed.tenant, state, changed.circuit, "paused", now)
            )
    return changed is not None


def resume(engine: Engine, name: str, *, tenant: str | None = None, clock: Clock = utcnow) -> bool:
    """Send to `name` again: active (a disabled one too, its reason cleared), the circuit
    closed; its waiting deliveries go out. False: no such destination in scope."""
    now = clock()
    scope = [] if tenant is None else [destinations.c.tenant == tenant]
    with writer(engine).begin() as tx:
        changed = tx.execute(
            update(destinations)
            .where(destinations.c.name == name, *scope)
            .values(
                state=State.ACTIVE.value,
                disabled_reason=None,
                circuit=Circuit.CLOSED.value,
                consecutive_failures=0,
                circuit_opened_at=None,
                next_probe_at=None,
                state_changed_at=now,
                updated_at=now,
            )
            .returning(destinations.c.tenant)
        ).first()
        if changed is not None:
            active, closed = State.ACTIVE.value, Circuit.CLOSED.value
            publish(tx, destination_change(name, changed.tenant, active, closed, "resumed", now))
        _wake(tx)
    return changed is not None


def replay(
    engine: Engine,
    delivery_ids: Iterable[int],
    *,
    tenant: str | None = None,
    clock: Clock = utcnow,
) -> int:
    """Send deliveries again, now, with a fresh attempt budget and the same `webhook-id` (the
    receiver dedupes): any but one being sent right now. With `tenant`, only that tenant's
    deliveries among `delivery_ids`. How many were replayed."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return 0
    now: datetime = clock()
    chosen = [deliveries.c.id.in_(ids), deliveries.c.status != DeliveryStatus.SENDING.value]
    again = {
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "replay_count": deliveries.c.replay_count + 1,
        "finished_at": None,
    }
    return _change(engine, chosen, again, tenant, now, wake=True)


def discard(
    engine: Engine,
    name: str,
    reason: str,
    *,
    tenant: str | None = None,
    clock: Clock = utcnow,
) -> int:
    """End the waiting deliveries of `name` (pending or failed; not one being sent right
    now) as dead, `reason` their error: they no longer wait for a destination that will not
    take them (one removed from the configuration), nor keep their events from retention.
    Each stays replayable. With `tenant`, only that tenant's. How many were discarded."""
    now: datetime = clock()
    chosen = [deliveries.c.destination == name, deliveries.c.status.in_(DUE_STATUSES)]
    dead = {"status": DeliveryStatus.DEAD.value, "finished_at": now, "last_error": reason[:2000]}
    return _change(engine, chosen, dead, tenant, now, wake=False)


def _change(
    engine: Engine,
    chosen: list[ColumnElement[bool]],
    values: dict[str, Any],
    tenant: str | None,
    now: datetime,
    *,
    wake: bool,
) -> int:
    """Set `values` on the deliveries `chosen` (of `tenant`, when given) and publish their
    new states, in one transaction; `wake`: workers look for work when it commits."""
    scope = [] if tenant is None else [deliveries.c.tenant == tenant]
    with writer(engine).begin() as tx:
        changed = tx.execute(
            update(deliveries).where(*chosen, *scope).values(values).returning(*DELIVERY_COLUMNS)
        ).all()
        publish(tx, *(delivery_change(row._mapping, now) for row in changed))
        if wake:
            _wake(tx)
    return len(changed)


__all__ = ["discard", "pause", "replay", "resume"]
