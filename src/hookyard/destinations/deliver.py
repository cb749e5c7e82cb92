"""Sending deliveries: a worker job on the one leased queue (`destination_deliveries`).

Each pass: take back expired leases, read the destinations' shared state (circuit.py), lease
due deliveries of the sendable ones (one claim per destination, each in the order of its due
index, the first in turn; an open circuit's probe: one delivery, by whoever takes it), POST
them concurrently, then record every attempt and its outcome in one transaction.

- 2xx: delivered. 410 Gone: the destination is disabled (the delivery waits with the others,
  none is lost). No answer (timeout, connection error), 408, 425, 429 or 5xx: tried again
  after the one backoff, never before a Retry-After; dead after the destination's
  `max_attempts`. Any other status (4xx, a redirect): dead at once, replayable.
- At least once: a worker that dies mid-send leaves a lease that runs out; the delivery goes
  again with the same `webhook-id`, which the receiver dedupes on.
- `ordered = true`: a delivery whose entity (the event's `entity_key`) has an earlier
  delivery to the same destination still pending, being sent or waiting for a retry is not
  leased; a dead one no longer blocks (it waits for a person, not for time). Events without
  an entity key are not ordered.
- `rate_per_second`: a token bucket per destination in each worker process (two processes
  may send twice the rate).
- Live: each pass publishes its deliveries' new statuses (`delivery` changes, changes.py)
  in the transaction that records them, as one batch; leases taken back publish theirs.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Engine, RowMapping, exists, insert, or_, select

from hookyard.config import Settings
from hookyard.destinations import circuit
from hookyard.destinations.changes import DELIVERY_COLUMNS, delivery_change
from hookyard.destinations.circuit import Breaker
from hookyard.destinations.config import DestinationConfig, Destinations
from hookyard.destinations.tables import (
    DUE_STATUSES,
    DeliveryStatus,
    Outcome,
    attempts,
    deliveries,
    webhook_id,
)
from hookyard.http import ApiClient, Exchange, passing
from hookyard.inbox import queries as inbox
from hookyard.live.change import Change
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.providers.signing import standard_webhooks_headers
from hookyard.queue.backoff import Backoff, retry_after_seconds
from hookyard.queue.leased import Clock, LeasedQueue, Spec, utcnow

EXCERPT_BYTES = 2048

DELIVERIES = Spec(
    deliveries,
    due=DUE_STATUSES,
    leased=DeliveryStatus.SENDING.value,
    retry=DeliveryStatus.FAILED.value,
    dead=DeliveryStatus.DEAD.value,
    error="last_error",
    dead_at="finished_at",
    due_sql="status IN ('pending', 'failed')",  # ix_destination_deliveries_due's predicate
)

_CLAIMED = (
    deliveries.c.destination,
    deliveries.c.event_id,
    deliveries.c.tenant,
    deliveries.c.source,
    deliveries.c.event_type,
    deliveries.c.attempts,
)

# A recorded attempt's outcome -> its delivery's status after it.
_STATUS_AFTER = {
    Outcome.DELIVERED: DeliveryStatus.DELIVERED.value,
    Outcome.RETRY: DeliveryStatus.FAILED.value,
    Outcome.DEAD: DeliveryStatus.DEAD.value,
    Outcome.DISABLED: DeliveryStatus.PENDING.value,
}

_earlier = deliveries.alias("earlier")
# Ordered destinations (their deliveries carry the entity key): not while an earlier delivery
# of the same entity is unfinished. A dead one does not block: it waits for a replay.
IN_ORDER: ColumnElement[bool] = or_(
    deliveries.c.entity_key.is_(None),
    ~exists().where(
        _earlier.c.destination == deliveries.c.destination,
        _earlier.c.entity_key == deliveries.c.entity_key,
        _earlier.c.id < deliveries.c.id,
        _earlier.c.status.in_([*DUE_STATUSES, DeliveryStatus.SENDING.value]),
    ),
)


class TokenBucket:
    """`rate` sends a second, bursts of up to `rate` (at least one), in this process."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
            self._at = now
            granted = min(wanted, int(self.tokens))
            self.tokens -= granted
            return granted

    def wait_seconds(self) -> float:
        """How long until a token is there (0: one is)."""
        with self._lock:
            have = self.tokens + (time.monotonic() - self._at) * self.rate
            return 0.0 if have >= 1 else (1 - have) / self.rate

    def give_back(self, count: int) -> None:
        if count > 0:
            with self._lock:
                self.tokens = min(self.capacity, self.tokens + count)


@dataclass(frozen=True, slots=True)
class Result:
    delivery: RowMapping
    exchange: Exchange
    outcome: Outcome
    probe: bool
    started_at: datetime
    retry_after: float | None = None
    error: str | None = None


def classify(exchange: Exchange) -> Outcome:
    status = exchange.status
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.DISABLED
    return Outcome.RETRY if passing(status) else Outcome.DEAD


def _error_of(exchange: Exchange) -> str | None:
    if exchange.error is not None:
        return exchange.error
    status = exchange.status
    if status is not None and not 200 <= status < 300:
        excerpt = exchange.body[:300].decode("utf-8", "replace").strip()
        return f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return None


@dataclass
class DeliveryJob:
    """The `BackgroundJob` (worker/runner.py) that sends destinations' deliveries."""

    engine: Engine
    destinations: Destinations
    backoff_base: float = 2.0
    backoff_max: float = 3600.0
    lease_seconds: float = 60.0
    batch_size: int = 50
    concurrency: int = 8
    breaker: Breaker = field(default_factory=Breaker)
    clock: Clock = utcnow
    name: str = "destinations"

    def __post_init__(self) -> None:
        self.by_name: dict[str, DestinationConfig] = self.destinations.by_name()
        self.queue = LeasedQueue(
            self.engine,
            DELIVERIES,
            Backoff(100, self.backoff_base, self.backoff_max),
            self.lease_seconds,
            self.clock,
        )
        # One queue per destination for its attempt budget (the backoff's max_attempts).
        self.queues = {
            name: LeasedQueue(
                self.engine,
                DELIVERIES,
                Backoff(d.max_attempts, self.backoff_base, self.backoff_max),
                self.lease_seconds,
                self.clock,
                self.queue.writer,
            )
            for name, d in self.by_name.items()
        }
        self.buckets = {
            name: TokenBucket(d.rate_per_second)
            for name, d in self.by_name.items()
            if d.rate_per_second is not None
        }
        self.client = ApiClient(provider="destination", max_attempts=1)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hookyard-deliver")
        self._next_recovery = 0.0
        self._recovery_lock = threading.Lock()
        self._turns = itertools.count(1)

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, destinations: Destinations
    ) -> DeliveryJob | None:
        if not len(destinations):
            return None
        return cls(
            engine,
            destinations,
            backoff_base=settings.destination_retry_base_seconds,
            backoff_max=settings.destination_retry_max_seconds,
            lease_seconds=settings.destination_lease_seconds,
            batch_size=settings.destination_batch_size,
            concurrency=settings.destination_concurrency,
            breaker=Breaker(
                settings.destination_circuit_failures, settings.destination_probe_seconds
            ),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()

    # -- the BackgroundJob protocol ----------------------------------------------------

    def run_pass(self, worker: str) -> int:
        self.recover()
        now = self.clock()
        claimed: list[tuple[RowMapping, bool]] = []
        # One transaction, committed before sending (so other workers pass these rows): the
        # destinations' states, the leases, and the bodies to send.
        with self.queue.writer.begin() as tx:
            known = circuit.states(tx, list(self.by_name))
            free = [n for n, s in known.items() if s.sendable and n not in self.buckets]
            room = self.batch_size
            for name in self._in_turn(free):  # one claim each: in its due index's order
                rows = self._claim(worker, [name], room, tx)
                claimed += [(r, False) for r in rows]
                room -= len(rows)
                if room == 0:
                    break
            for name, bucket in self.buckets.items():
                state = known.get(name)
                if state is None or not state.sendable:
                    continue
                granted = bucket.take(self.batch_size)
                if granted:
                    rows = self._claim(worker, [name], granted, tx)
                    bucket.give_back(granted - len(rows))
                    claimed += [(r, False) for r in rows]
            for name, state in known.items():
                if state.probe_due(now):
                    claimed += [(r, True) for r in self._probe(worker, name, now, tx)]
            if not claimed:
                return 0
            bodies = inbox.outgoing(tx, {row["event_id"] for row, _ in claimed})
        closed = {n for n, s in known.items() if s.sendable}
        self.record(worker, self.send(claimed, bodies), closed)
        return len(claimed)

    def next_due_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            known = circuit.states(conn, list(self.by_name))
        # An open circuit's next probe (taking it moves the time on, even with nothing to send).
        now = self.clock()
        due: list[datetime | None] = [s.next_probe_at or now for s in known.values() if s.probing]
        sendable = []
        for name, state in known.items():
            if not state.sendable:
                continue
            bucket = self.buckets.get(name)
            wait = bucket.wait_seconds() if bucket is not None else 0.0
            if wait > 0:  # out of tokens: not before the next one (no spinning meanwhile)
                due.append(now + timedelta(seconds=wait))
            else:
                sendable.append(name)
        if sendable:
            due.append(
                self.queue.next_due_at(where=[deliveries.c.destination.in_(sendable), IN_ORDER])
            )
        return min((d for d in due if d is not None), default=None)

    # -- leases ---------------------------------------------------------------------------

    def recover(self, force: bool = False) -> int:
        """Expired leases taken back (each destination's with its attempt budget), at most
        every lease_seconds/4 per process."""
        now = time.monotonic()
        with self._recovery_lock:
            if not force and now < self._next_recovery:
                return 0
            self._next_recovery = now + max(1.0, self.lease_seconds / 4)
        taken = 0
        with self.queue.writer.begin() as tx:
            back: list[Any] = []
            for name, queue in self.queues.items():
                mine = deliveries.c.destination == name
                back += queue.recover(DELIVERY_COLUMNS, tx, where=[mine])
            if self.by_name:  # a destination no longer configured: the default budget
                unknown = deliveries.c.destination.not_in(list(self.by_name))
                back += self.queue.recover(DELIVERY_COLUMNS, tx, where=[unknown])
            at = self.clock()
            publish(tx, *(delivery_change(row._mapping, at) for row in back))
            taken = len(back)
        if taken:
            log.warning("delivery_leases_recovered", deliveries=taken)
        return taken

    def _lease_for(self, names: Iterable[str], count: int) -> float:
        """Long enough for `count` sends through the pool, each within its timeout."""
        timeout = max(self.by_name[n].timeout_seconds for n in names)
        return self.lease_seconds + math.ceil(count / self.concurrency) * (timeout + 1)

    def _in_turn(self, names: Sequence[str]) -> list[str]:
        """`names` from the next one in turn: each pass starts its claims with another
        destination, so a busy one does not take every pass's room from the others."""
        if len(names) < 2:
            return list(names)
        start = next(self._turns) % len(names)  # the loops of this process share the turns
        return [*names[start:], *names[:start]]

    def _claim(
        self, worker: str, names: Sequence[str], limit: int, tx: Connection | None = None
    ) -> list[RowMapping]:
        return self.queue.claim(
            worker,
            limit,
            _CLAIMED,
            where=[deliveries.c.destination.in_(list(names)), IN_ORDER],
            lease_seconds=self._lease_for(names, limit),
            tx=tx,
        )

    def _probe(self, worker: str, name: str, now: datetime, tx: Connection) -> list[RowMapping]:
        """The open circuit's probe, if this process takes it: one waiting delivery (its
        retry time not considered: the probe is what decides when to try again)."""
        if not circuit.take_probe(tx, name, now, self.breaker):
            return []
        chosen = (
            select(deliveries.c.id)
            .where(DELIVERIES.waiting(), deliveries.c.destination == name, IN_ORDER)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(1)
        )
        stmt = self.queue.claim_statement((deliveries.c.id, *_CLAIMED), chosen=chosen)
        params = self.queue.params(worker, 1, self._lease_for([name], 1))
        rows = tx.execute(stmt, params).mappings().all()
        if rows:
            log.info("destination_probe", destination=name, delivery_id=rows[0]["id"])
        return list(rows)

    # -- sending --------------------------------------------------------------------------

    def send(
        self, claimed: Sequence[tuple[RowMapping, bool]], bodies: Mapping[int, inbox.Outgoing]
    ) -> list[Result]:
        # One task per pool thread (not per delivery), each taking the next delivery until
        # none is left: a slow receiver holds up one thread, not a share of the batch; and
        # each thread sends on its own kept-alive connections (ApiClient.exchange).
        results: list[Result | None] = [None] * len(claimed)
        turns = iter(range(len(claimed)))
        turn = threading.Lock()

        def sender() -> None:
            while True:
                with turn:
                    i = next(turns, None)
                if i is None:
                    return
                row, probe = claimed[i]
                results[i] = self._send_one(row, probe, bodies.get(row["event_id"]))

        senders = [self._pool.submit(sender) for _ in range(min(self.concurrency, len(claimed)))]
        for done in senders:
            done.result()  # a sender never fails (_send_one keeps its errors): each has its result
        return cast(list[Result], results)

    def _send_one(self, row: RowMapping, probe: bool, body: inbox.Outgoing | None) -> Result:
        started_at = self.clock()
        try:
            return self._attempt(row, probe, body, started_at)
        except Exception as exc:  # a bug of ours: this delivery tries again, the others go on
            error = f"{type(exc).__name__}: {exc}"[:500]
            failed = Exchange(None, {}, b"", 0, error)
            return Result(row, failed, Outcome.RETRY, probe, started_at, error=error)

    def _attempt(
        self, row: RowMapping, probe: bool, body: inbox.Outgoing | None, started_at: datetime
    ) -> Result:
        destination = self.by_name[row["destination"]]
        if body is None:
            gone = Exchange(None, {}, b"", 0, "the event is no longer stored", sent=False)
            return Result(row, gone, Outcome.DEAD, probe, started_at, error=gone.error)
        exchange = self.client.exchange(
            "POST",
            destination.url,
            content=body.body,
            headers=signed_headers(destination, row, body),
            timeout=destination.timeout_seconds,
            max_body=EXCERPT_BYTES,
        )
        outcome = classify(exchange)
        wait = None
        if outcome is Outcome.RETRY:
            wait = retry_after_seconds(exchange.headers.get("retry-after"))
        return Result(row, exchange, outcome, probe, started_at, wait, _error_of(exchange))

    # -- recording ------------------------------------------------------------------------

    def record(self, worker: str, results: Sequence[Result], closed: Collection[str] = ()) -> None:
        """Every attempt, the deliveries' new states and the circuits, in one transaction.
        A delivery whose lease ran out meanwhile is another worker's now: its attempt is
        kept as `lost` and nothing else of it is written. `closed`: the destinations whose
        circuit was closed when these deliveries were taken."""
        now = self.clock()
        rows: list[dict[str, Any]] = []
        changes: list[Change] = []
        health: dict[str, list[bool]] = {}
        with self.queue.writer.begin() as tx:
            # The successes: one statement per status code (nearly always one: 200).
            by_code: dict[int | None, list[int]] = {}
            for r in results:
                if r.outcome is Outcome.DELIVERED:
                    by_code.setdefault(r.exchange.status, []).append(r.delivery["id"])
            kept: set[int] = set()
            for code, ids in sorted(by_code.items(), key=lambda item: item[0] or 0):
                stmt = self.queue.finish_statement(
                    {
                        "status": DeliveryStatus.DELIVERED.value,
                        "finished_at": now,
                        "last_error": None,
                        "last_status_code": code,
                    }
                )
                kept |= {row[0] for row in tx.execute(stmt, {"ids": ids, "owner": worker})}
            for result in results:
                delivery = result.delivery
                name = delivery["destination"]
                outcome = result.outcome
                status = result.exchange.status
                if outcome is Outcome.DELIVERED:
                    if delivery["id"] not in kept:
                        outcome = Outcome.LOST
                elif outcome is Outcome.DISABLED:
                    done = tx.execute(
                        self.queue.finish_statement(
                            {
                                "status": DeliveryStatus.PENDING.value,
                                "next_attempt_at": now,
                                "last_error": result.error,
                                "last_status_code": status,
                            }
                        ),
                        {"ids": [delivery["id"]], "owner": worker},
                    ).first()
                    if done is None:
                        outcome = Outcome.LOST
                    else:
                        circuit.disable(tx, name, result.error or "410 Gone", now)
                else:
                    queue = self.queues.get(name, self.queue)
                    failure = queue.retry_or_dead(
                        delivery["id"],
                        worker,
                        delivery["attempts"],
                        error=result.error,
                        retry_after=result.retry_after,
                        transient=outcome is Outcome.RETRY,
                        values={"last_status_code": status},
                        tx=tx,
                    )
                    if not failure.recorded:
                        outcome = Outcome.LOST
                    elif failure.dead:
                        outcome = Outcome.DEAD
                if outcome in (Outcome.DELIVERED, Outcome.RETRY) or (
                    outcome is Outcome.DEAD and _unhealthy(result.exchange)
                ):
                    health.setdefault(name, []).append(outcome is Outcome.DELIVERED)
                rows.append(
                    {
                        "delivery_id": delivery["id"],
                        "destination": name,
                        "attempt": delivery["attempts"],
                        "started_at": result.started_at,
                        "latency_ms": result.exchange.latency_ms,
                        "status_code": status,
                        "response_excerpt": _excerpt(result.exchange.body),
                        "error": result.error[:2000] if result.error else None,
                        "outcome": outcome.value,
                        "probe": result.probe,
                    }
                )
                _log(result, outcome)
                if outcome is not Outcome.LOST:
                    after = {
                        **delivery,
                        "status": _STATUS_AFTER[outcome],
                        "last_status_code": status,
                    }
                    changes.append(delivery_change(after, now))
            if rows:
                tx.execute(insert(attempts), rows)
            publish(tx, *changes)  # one batch for the pass, delivered if this commits
            for name, outcomes in sorted(health.items()):
                circuit.record(tx, name, outcomes, now, self.breaker, closed=name in closed)


def _unhealthy(exchange: Exchange) -> bool:
    """The last attempt of a delivery that failed for the destination's health (no answer,
    429, 5xx): it counts for the circuit like any other such failure."""
    return exchange.status is None or passing(exchange.status)


def _excerpt(body: bytes) -> str | None:
    if not body:
        return None
    return body[:EXCERPT_BYTES].decode("utf-8", "replace")


def _log(result: Result, outcome: Outcome) -> None:
    delivery = result.delivery
    fields = {
        "delivery_id": delivery["id"],
        "destination": delivery["destination"],
        "attempt": delivery["attempts"],
        "status": result.exchange.status,
        "ms": result.exchange.latency_ms,
    }
    if outcome is Outcome.DELIVERED:
        log.debug("delivery_delivered", **fields)
    elif outcome is Outcome.DEAD:
        log.error("delivery_dead", error=(result.error or "")[:300], **fields)
    else:
        log.warning(f"delivery_{outcome.value}", error=(result.error or "")[:300], **fields)


def signed_headers(
    destination: DestinationConfig, delivery: RowMapping, body: inbox.Outgoing
) -> dict[str, str]:
    """The Standard Webhooks headers (https://www.standardwebhooks.com): `webhook-id` is the
    delivery's, the same on every attempt; the timestamp is the wall clock's at sending (the
    receiver checks it against its own clock)."""
    return {
        **standard_webhooks_headers(
            destination.secret,
            webhook_id(int(delivery["id"])),
            body.body,
            time.time(),
            body.content_type,
        ),
        "x-hookyard-source": str(delivery["source"]),
        "x-hookyard-event-type": str(delivery["event_type"]),
        "x-hookyard-event-id": str(delivery["event_id"]),
    }


__all__ = [
    "DELIVERIES",
    "IN_ORDER",
    "DeliveryJob",
    "Result",
    "TokenBucket",
    "classify",
    "signed_headers",
]
