"""Workers: claim due events with a lease, run handlers, commit effects and "done" together.

A claimed batch is handled in one transaction (one commit for many events). If anything in
it fails, that transaction rolls back and the batch is redone one event per transaction, so a
poison event fails alone and never holds the others back.

Beside the inbox, each loop runs one pass of every background job (lead enrichment, and any
other work that claims its own rows): outside the events' transactions, one job's failure
logged and never stopping the loop. A worker may also be a loop of jobs alone
(`handles_events=False`: runtime.py runs the deliveries' sending so on PostgreSQL).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection

from hookyard.inbox.store import EventStore
from hookyard.logs import log
from hookyard.metrics import DEAD, FAILED, PROCESSED
from hookyard.providers.base import Adapter, Source, StoredEvent
from hookyard.queue.leased import Heartbeat, LeaseLost, utcnow
from hookyard.worker.wakeup import Wakeup


class UnknownSource(LookupError):
    pass


class HandlerTimeout(RuntimeError):
    """A handler ran past HOOKYARD_HANDLER_TIMEOUT_SECONDS: its statement was cancelled."""


class BackgroundJob(Protocol):
    """Work every worker loop does after the due events, one bounded pass at a time. A job
    claims its own rows (with a lease, so several workers share it) and runs outside any
    event's transaction."""

    name: str

    def run_pass(self, worker: str) -> int:
        """Handle what is due now, at most a bounded batch; how many items were handled (0:
        nothing was due). `worker` names the calling worker, for leases and logs."""
        ...

    def next_due_at(self) -> datetime | None:
        """When the job next has work, so an idle worker wakes for it (None: nothing known)."""
        ...

    def close(self) -> None:
        """Release what the job holds (connections); called once when the process stops."""
        ...


@dataclass
class Worker:
    store: EventStore
    sources: Mapping[str, Source]
    wakeup: Wakeup
    batch_size: int = 100
    lease_seconds: float = 60.0
    handler_timeout: float = 300.0  # a batch's handlers running longer are stopped
    idle_seconds: float = 30.0  # longest sleep with nothing due (a timer, not a poll)
    gather_seconds: float = 0.0  # after a partial batch, wait this long before the next claim
    retention_days: int = 30
    retention_interval: float = 3600.0
    audit_providers: tuple[str, ...] = ()  # kept by retention (hookyard.config)
    audit_retention_days: int = 0  # 0: audit events are kept forever
    rejected_log_size: int = 1000  # rows kept in rejected_requests
    name: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
    jobs: Sequence[BackgroundJob] = ()
    handles_events: bool = True  # False: a loop of its jobs only (runtime.py: the deliveries')

    _next_housekeeping: float = 0.0
    _next_retention: float = 0.0
    _failed_jobs: set[str] = field(default_factory=set, init=False)  # failed in the last pass

    def run(self, stop: threading.Event) -> None:
        log.info("worker_started", worker=self.name)
        while not stop.is_set():
            try:
                events = self._run_events()
                handled = events + self._run_jobs()
            except Exception as exc:  # database down: back off, keep the thread alive
                log.warning("worker_cycle_failed", worker=self.name, error=str(exc)[:300])
                stop.wait(1.0)
                continue
            if handled == 0:
                self.wakeup.wait(self._sleep_for())
            elif 0 < events < self.batch_size and self.gather_seconds > 0:
                # Caught up: let the next events gather into one batch for a moment, rather
                # than chasing every ingest commit with a transaction of its own (each one
                # takes the write lock and an fsync that ingest is waiting for).
                stop.wait(self.gather_seconds)
        log.info("worker_stopped", worker=self.name)

    def run_once(self) -> int:
        """One loop pass: the due events, then each job's pass; how many items were handled."""
        events = self._run_events()
        return events + self._run_jobs()

    def drain(self) -> int:
        """Process until nothing is due, events and jobs (tests and `hookyard worker --once`);
        the number of events processed."""
        total = 0
        while True:
            events = self._run_events()
            total += events
            if events + self._run_jobs() == 0:
                return total

    def _run_events(self) -> int:
        if not self.handles_events:
            return 0
        self._housekeeping()
        claimed = self.store.claim(self.name, self.batch_size, self.lease_seconds)
        if claimed:
            self.process(claimed)
        return len(claimed)

    def _run_jobs(self) -> int:
        handled = 0
        self._failed_jobs.clear()
        for job in self.jobs:
            try:
                handled += job.run_pass(self.name)
            except Exception as exc:  # database down, or a bug: the next pass tries again
                self._failed_jobs.add(job.name)
                log.warning("job_failed", job=job.name, worker=self.name, error=str(exc)[:300])
        return handled

    def process(self, claimed: list[StoredEvent]) -> None:
        if len(claimed) > 1:
            try:
                self._handle_together(claimed)
                return
            except Exception as exc:
                log.info("batch_split", worker=self.name, events=len(claimed), error=str(exc)[:200])
        for event in claimed:
            self._handle_alone(event)

    def _handle_together(self, claimed: list[StoredEvent]) -> None:
        outcomes: dict[str, list[int]] = defaultdict(list)
        counts: Counter[tuple[str, str]] = Counter()
        by_source: dict[str, list[StoredEvent]] = defaultdict(list)
        for event in claimed:
            by_source[event.source].append(event)
        started = time.perf_counter()
        # The watch outside the transaction: it ends after the commit released the rows, so
        # an extension waiting on them never waits on us.
        with self._watch(claimed) as watch, self.store.writer.begin() as tx:
            watch.on_timeout = self._canceller(tx)
            # Sources in name order: every worker locks domain rows in the same order.
            for source, events in sorted(by_source.items()):
                handled = self._adapter_for(events[0]).handle_batch(events, tx)
                for event in events:
                    outcome = handled[event.id].value
                    outcomes[outcome].append(event.id)
                    counts[(source, outcome)] += 1
            self.store.finish(tx, outcomes, self.name)
        for (source, outcome), n in counts.items():
            PROCESSED.labels(source, outcome).inc(n)
        log.debug(
            "batch_handled",
            worker=self.name,
            events=len(claimed),
            ms=round(1000 * (time.perf_counter() - started), 1),
            **{outcome: len(ids) for outcome, ids in outcomes.items()},
        )

    def _handle_alone(self, event: StoredEvent) -> None:
        watch: Heartbeat | None = None
        try:
            with self._watch([event]) as watch, self.store.writer.begin() as tx:
                watch.on_timeout = self._canceller(tx)
                outcome = self._adapter_for(event).handle(event, tx)
                self.store.finish(tx, {outcome.value: [event.id]}, self.name)
        except LeaseLost:
            log.warning("event_lease_lost", event_id=event.id, worker=self.name)
            return
        except Exception as exc:
            failure: Exception = exc
            if watch is not None and watch.timed_out:
                failure = HandlerTimeout(f"the handler ran longer than {self.handler_timeout:g} s")
            self._record_failure(event, failure)
            return
        PROCESSED.labels(event.source, outcome.value).inc()

    def _watch(self, claimed: Sequence[StoredEvent]) -> Heartbeat:
        """While handlers run: the lease kept alive (PostgreSQL: on SQLite the transaction
        holds the one write lock, so nobody can take the events back meanwhile), and past the
        handler timeout the transaction's statement cancelled (`_canceller`), so the batch
        fails and is retried instead of holding its events and locks."""
        return Heartbeat(
            self.store.queue,
            [e.id for e in claimed],
            self.name,
            timeout=self.handler_timeout,
            extend=self.store.is_postgres,
        )

    def _canceller(self, tx: Connection) -> Callable[[], None]:
        dbapi: Any = tx.connection.dbapi_connection
        return dbapi.cancel if self.store.is_postgres else dbapi.interrupt  # type: ignore[no-any-return]

    def _record_failure(self, event: StoredEvent, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        failure = self.store.fail(event, self.name, error, traceback.format_exc())
        if not failure.recorded:
            log.warning("event_lease_lost", event_id=event.id, worker=self.name)
            return
        FAILED.labels(event.source).inc()
        if failure.retry_at is None:
            DEAD.labels(event.source).inc()
            log.error(
                "event_dead",
                event_id=event.id,
                source=event.source,
                attempts=event.attempts,
                error=error[:300],
            )
        else:
            log.warning(
                "event_retry",
                event_id=event.id,
                source=event.source,
                attempts=event.attempts,
                retry_at=failure.retry_at.isoformat(),
                error=error[:300],
            )

    def _adapter_for(self, event: StoredEvent) -> Adapter:
        source = self.sources.get(event.source)
        if source is None:
            raise UnknownSource(f"source {event.source!r} is not configured in this process")
        return source.adapter

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + max(1.0, self.lease_seconds / 4)
            if recovered := self.store.recover_expired_leases():
                log.warning("leases_recovered", events=recovered, worker=self.name)
            self.store.trim_rejected(self.rejected_log_size)
        if self.retention_days > 0 and now >= self._next_retention:
            self._next_retention = now + self.retention_interval
            now_at = utcnow()
            audit_days = self.audit_retention_days
            purged = self.store.purge_finished(
                now_at - timedelta(days=self.retention_days),
                audit_providers=self.audit_providers,
                audit_older_than=now_at - timedelta(days=audit_days) if audit_days else None,
            )
            if purged:
                log.info("retention_purged", events=purged, days=self.retention_days)

    def _sleep_for(self) -> float:
        due = [self._job_due(job) for job in self.jobs]
        if self.handles_events:
            due.append(self.store.next_due_at())
        limit = min(self.idle_seconds, max(1.0, self.lease_seconds / 4))
        next_due = min((d for d in due if d is not None), default=None)
        if next_due is None:
            return limit
        return min(limit, max(0.0, (next_due - utcnow()).total_seconds()) + 0.01)

    def _job_due(self, job: BackgroundJob) -> datetime | None:
        if job.name in self._failed_jobs:
            return None  # its work may be due now but failing: wait the idle time, no spin
        try:
            return job.next_due_at()
        except Exception as exc:
            log.warning("job_failed", job=job.name, worker=self.name, error=str(exc)[:300])
            return None
