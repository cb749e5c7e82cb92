"""The circuit breaker of each destination, and the rest of its shared state.

State lives in the `destinations` row, so every worker process agrees: after
`HOOKYARD_DESTINATION_CIRCUIT_FAILURES` consecutive failed attempts (no answer, 429, 5xx) the
circuit opens and the destination's deliveries wait; once per
`HOOKYARD_DESTINATION_PROBE_SECONDS` one worker (whoever moves `next_probe_at` forward
first) sends one delivery as a probe; its success closes the circuit, its failure keeps it
open until the next probe. A refusal (another 4xx) says nothing about the destination's
health and is not counted; a 410 disables the destination instead.

Each transition (opened, closed, a probe taken, disabled) publishes a `destination` change
in its transaction (changes.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from hookyard.db.rows import insert_missing, locked
from hookyard.destinations.changes import destination_change
from hookyard.destinations.config import DestinationConfig
from hookyard.destinations.tables import Circuit, State, destinations
from hookyard.live.publish import publish
from hookyard.logs import log


@dataclass(frozen=True, slots=True)
class Breaker:
    failures: int = 5  # consecutive failed attempts that open the circuit
    probe_seconds: float = 30.0  # while open: one probe per this many seconds


@dataclass(frozen=True, slots=True)
class DestinationState:
    name: str
    state: str
    circuit: str
    next_probe_at: datetime | None

    @property
    def sendable(self) -> bool:
        """Deliveries flow freely: active, circuit closed."""
        return self.state == State.ACTIVE.value and self.circuit == Circuit.CLOSED.value

    @property
    def probing(self) -> bool:
        """Active with its circuit open: one probe per interval."""
        return self.state == State.ACTIVE.value and self.circuit == Circuit.OPEN.value

    def probe_due(self, now: datetime) -> bool:
        return self.probing and (self.next_probe_at is None or self.next_probe_at <= now)


def sync(tx: Connection, configured: Iterable[DestinationConfig], now: datetime) -> None:
    """The rows of the configured destinations: created active and closed when new; their
    url and tenant as configured now (state and circuit are kept across restarts)."""
    for destination in configured:
        insert_missing(
            tx,
            destinations,
            {
                "name": destination.name,
                "tenant": destination.tenant,
                "url": destination.url,
                "state": State.ACTIVE.value,
                "circuit": Circuit.CLOSED.value,
                "consecutive_failures": 0,
                "state_changed_at": now,
                "updated_at": now,
            },
            ["name"],
        )
        tx.execute(
            update(destinations)
            .where(
                destinations.c.name == destination.name,
                (destinations.c.url != destination.url)
                | (destinations.c.tenant.is_distinct_from(destination.tenant)),
            )
            .values(url=destination.url, tenant=destination.tenant, updated_at=now)
        )


def states(conn: Connection, names: Sequence[str]) -> dict[str, DestinationState]:
    if not names:
        return {}
    rows = conn.execute(
        select(
            destinations.c.name,
            destinations.c.state,
            destinations.c.circuit,
            destinations.c.next_probe_at,
        ).where(destinations.c.name.in_(list(names)))
    )
    return {r.name: DestinationState(r.name, r.state, r.circuit, r.next_probe_at) for r in rows}


def take_probe(tx: Connection, name: str, now: datetime, breaker: Breaker) -> bool:
    """Whether this caller sends the open circuit's next probe (it moved `next_probe_at`
    forward first: one probe per interval across every process)."""
    moved = tx.execute(
        update(destinations)
        .where(
            destinations.c.name == name,
            destinations.c.state == State.ACTIVE.value,
            destinations.c.circuit == Circuit.OPEN.value,
            (destinations.c.next_probe_at.is_(None)) | (destinations.c.next_probe_at <= now),
        )
        .values(next_probe_at=now + timedelta(seconds=breaker.probe_seconds), updated_at=now)
        .returning(destinations.c.tenant)
    ).first()
    if moved is None:
        return False
    publish(
        tx,
        destination_change(
            name, moved.tenant, State.ACTIVE.value, Circuit.OPEN.value, "probe", now
        ),
    )
    return True


def record(
    tx: Connection,
    name: str,
    outcomes: Sequence[bool],
    now: datetime,
    breaker: Breaker,
    *,
    closed: bool = False,
) -> str | None:
    """Count a pass's attempts to `name` (True: success, in the order they ended); the
    circuit's transition, if any ("opened", "closed"). `closed`: the caller saw the circuit
    closed when it took these deliveries."""
    if not outcomes:
        return None
    if closed and all(outcomes):
        # The usual pass: all delivered through a closed circuit. Only a failure count left
        # by another pass to clear, if there is one: no row lock and no write otherwise (two
        # passes recording at once do not wait for each other). A circuit that opened
        # meanwhile stays open: its probe decides.
        tx.execute(
            update(destinations)
            .where(
                destinations.c.name == name,
                destinations.c.circuit == Circuit.CLOSED.value,
                destinations.c.consecutive_failures != 0,
            )
            .values(consecutive_failures=0, updated_at=now)
        )
        return None
    row = locked(tx, destinations, destinations.c.name == name)
    if row is None:
        return None
    failures = int(row["consecutive_failures"])
    if True in outcomes:
        last_success = len(outcomes) - 1 - list(reversed(outcomes)).index(True)
        failures = len(outcomes) - 1 - last_success
    else:
        failures += len(outcomes)
    values: dict[str, Any] = {"consecutive_failures": failures, "updated_at": now}
    transition = None
    if row["circuit"] == Circuit.CLOSED.value and failures >= breaker.failures:
        transition = "opened"
        values.update(
            circuit=Circuit.OPEN.value,
            circuit_opened_at=now,
            next_probe_at=now + timedelta(seconds=breaker.probe_seconds),
        )
    elif row["circuit"] == Circuit.OPEN.value and True in outcomes and failures == 0:
        transition = "closed"
        values.update(circuit=Circuit.CLOSED.value, circuit_opened_at=None, next_probe_at=None)
    tx.execute(update(destinations).where(destinations.c.name == name).values(values))
    if transition is not None:
        log.warning(f"destination_circuit_{transition}", destination=name, failures=failures)
        circuit = values["circuit"]
        publish(tx, destination_change(name, row["tenant"], row["state"], circuit, transition, now))
    return transition


def disable(tx: Connection, name: str, reason: str, now: datetime) -> None:
    """The receiver answered 410 Gone: no more deliveries until a person resumes it."""
    disabled = tx.execute(
        update(destinations)
        .where(destinations.c.name == name, destinations.c.state != State.DISABLED.value)
        .values(
            state=State.DISABLED.value,
            disabled_reason=reason[:2000],
            state_changed_at=now,
            updated_at=now,
        )
        .returning(destinations.c.tenant, destinations.c.circuit)
    ).first()
    if disabled is None:
        return
    log.warning("destination_disabled", destination=name, reason=reason[:200])
    change = destination_change(
        name, disabled.tenant, State.DISABLED.value, disabled.circuit, "disabled", now
    )
    publish(tx, change)


def open_circuits(conn: Connection) -> Mapping[str, Any]:
    """The destinations whose circuit is open now (the alert rule's reading), by name."""
    rows = conn.execute(
        select(
            destinations.c.name,
            destinations.c.tenant,
            destinations.c.consecutive_failures,
            destinations.c.circuit_opened_at,
        )
        .where(destinations.c.circuit == Circuit.OPEN.value)
        .order_by(destinations.c.name)
    )
    return {row.name: row for row in rows}


__all__ = [
    "Breaker",
    "DestinationState",
    "disable",
    "open_circuits",
    "record",
    "states",
    "sync",
    "take_probe",
]
