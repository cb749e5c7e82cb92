"""Workers: claim due events with a lease, run handlers, commit effects and "done" together.

A claimed batch is handled in one transaction (one commit for many events). If anything in
it fails, that transaction rolls back and the batch is redone one event per transaction, so a
poison event fails alone and never holds the others back.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from hookyard.inbox.store import EventStore, LeaseLost, utcnow
from hookyard.logs import log
from hookyard.metrics import DEAD, FAILED, PROCESSED
from hookyard.providers.base import Adapter, Source, StoredEvent
from hookyard.worker.retry import RetryPolicy
from hookyard.worker.wakeup import Wakeup


class UnknownSource(LookupError):
    pass


@dataclass
class Worker:
    store: EventStore
    sources: Mapping[str, Source]
    wakeup: Wakeup
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_size: int = 100
    lease_seconds: float = 60.0
    idle_seconds: float = 30.0  # longest sleep with nothing due (a timer, not a poll)
    retention_days: int = 30
    retention_interval: float = 3600.0
    rejected_log_size: int = 1000  # rows kept in rejected_requests
    name: str = field(default_factory=lambda: f"{os.getpid()}-{uuid.uuid4().hex[:8]}")

    _next_housekeeping: float = 0.0
    _next_retention: float = 0.0

    def run(self, stop: threading.Event) -> None:
        log.info("worker_started", worker=self.name)
        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception as exc:  # database down: back off, keep the thread alive
                log.warning("worker_cycle_failed", worker=self.name, error=str(exc)[:300])
                stop.wait(1.0)
                continue
            if handled == 0:
                self.wakeup.wait(self._sleep_for())
        log.info("worker_stopped", worker=self.name)

    def run_once(self) -> int:
        self._housekeeping()
        claimed = self.store.claim(self.name, self.batch_size, self.lease_seconds)
        if claimed:
            self.process(claimed)
        return len(claimed)

    def drain(self) -> int:
        """Process until nothing is due (tests and `hookyard worker --once`)."""
        total = 0
        while n := self.run_once():
            total += n
        return total

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
        with self.store.writer.begin() as tx:
            for event in claimed:
                outcome = self._adapter_for(event).handle(event, tx).value
                outcomes[outcome].append(event.id)
                counts[(event.source, outcome)] += 1
            self.store.finish(tx, outcomes, self.name)
        for (source, outcome), n in counts.items():
            PROCESSED.labels(source, outcome).inc(n)

    def _handle_alone(self, event: StoredEvent) -> None:
        try:
            with self.store.writer.begin() as tx:
                outcome = self._adapter_for(event).handle(event, tx)
                self.store.finish(tx, {outcome.value: [event.id]}, self.name)
        except LeaseLost:
            log.warning("event_lease_lost", event_id=event.id, worker=self.name)
            return
        except Exception as exc:
            self._record_failure(event, exc)
            return
        PROCESSED.labels(event.source, outcome.value).inc()

    def _record_failure(self, event: StoredEvent, exc: Exception) -> None:
        retry_at = self.retry.next_attempt(event.attempts, utcnow())
        error = f"{type(exc).__name__}: {exc}"
        if not self.store.fail(event.id, self.name, error, traceback.format_exc(), retry_at):
            log.warning("event_lease_lost", event_id=event.id, worker=self.name)
            return
        FAILED.labels(event.source).inc()
        if retry_at is None:
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
                retry_at=retry_at.isoformat(),
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
            if recovered := self.store.recover_expired_leases(self.retry.max_attempts):
                log.warning("leases_recovered", events=recovered, worker=self.name)
            self.store.trim_rejected(self.rejected_log_size)
        if self.retention_days > 0 and now >= self._next_retention:
            self._next_retention = now + self.retention_interval
            purged = self.store.purge_finished(utcnow() - timedelta(days=self.retention_days))
            if purged:
                log.info("retention_purged", events=purged, days=self.retention_days)

    def _sleep_for(self) -> float:
        next_due = self.store.next_due_at()
        limit = min(self.idle_seconds, max(1.0, self.lease_seconds / 4))
        if next_due is None:
            return limit
        return min(limit, max(0.0, (next_due - utcnow()).total_seconds()) + 0.01)
