"""The leased-queue contract, inherited by every queue that runs on `hookyard.queue`: events,
lead enrichment, e-mail deliveries, the HubSpot outbox, 10DLC brand registrations and the
scheduler's jobs.

Each subclass builds its job's own queue (the job's spec, backoff and lease) with a clock the
test moves, and adds due rows as the job would find them. Time is moved by the clock, never
slept.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import Engine, insert, select, update

from hookyard.db.schema import events
from hookyard.destinations import circuit as destination_state
from hookyard.destinations.config import build_destinations
from hookyard.destinations.deliver import DeliveryJob
from hookyard.destinations.tables import deliveries as destination_deliveries
from hookyard.domain.crm import service as crm
from hookyard.domain.crm.tables import outbox
from hookyard.domain.leads.enrichment import EnrichmentPipeline
from hookyard.domain.leads.tables import leads
from hookyard.domain.tendlc.tables import brand_registrations
from hookyard.inbox.store import EventStore
from hookyard.notify.job import EmailJob
from hookyard.notify.smtp import SmtpSettings
from hookyard.notify.tables import deliveries, notifications
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import Heartbeat, LeasedQueue, LeaseLost
from hookyard.queue.scheduler import Job, Scheduler
from hookyard.queue.tables import schedule_jobs
from hookyard.sync.hubspot import OutboxSender, SyncPolicy
from hookyard.sync.tcr_registration import BrandRegistrar, Policy
from tests.support import MovableClock


class LeasedQueueContract:
    """What every leased queue guarantees."""

    lease: ClassVar[float] = 60.0
    has_attempts: ClassVar[bool] = True

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        raise NotImplementedError

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        raise NotImplementedError

    @pytest.fixture
    def clock(self) -> MovableClock:
        return MovableClock()

    @pytest.fixture
    def queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        return self.make_queue(engine, clock)

    def status(self, q: LeasedQueue, key: Any) -> Any:
        s = q.spec
        with q.engine.connect() as conn:
            column = s.col(s.status) if s.status else s.col(s.lease_owner)
            return conn.execute(select(column).where(s.id == key)).scalar_one()

    def keys(self, rows: Sequence[Any]) -> set[Any]:
        return {next(iter(r.values())) for r in rows}

    # -- the contract ------------------------------------------------------------------

    def test_two_claimers_never_share_a_row(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        added = self.add_due(engine, 3, clock())
        first = queue.claim("a", 2)
        second = queue.claim("b", 10)
        assert len(first) == 2 and len(second) == len(added) - 2
        assert not self.keys(first) & self.keys(second)
        assert self.keys(first) | self.keys(second) == set(added)
        assert queue.claim("c", 10) == []

    def test_concurrent_claimers_take_each_row_once(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        added = self.add_due(engine, 12, clock())
        taken: list[set[Any]] = []
        barrier = threading.Barrier(4)

        def claimer(name: str) -> None:
            barrier.wait()
            mine: set[Any] = set()
            while rows := queue.claim(name, 2):
                mine |= self.keys(rows)
            taken.append(mine)

        threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(len(t) for t in taken) == len(added)
        assert set().union(*taken) == set(added)

    def test_a_row_is_not_due_before_its_time(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock() + timedelta(seconds=30))
        assert queue.claim("a", 10) == []
        assert queue.next_due_at() == clock() + timedelta(seconds=30)
        clock.advance(30)
        assert self.keys(queue.claim("a", 10)) == {key}

    def test_an_expired_lease_is_taken_back(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        assert self.keys(queue.claim("a", 1, lease_seconds=self.lease)) == {key}
        assert queue.next_due_at() == clock() + timedelta(seconds=self.lease)
        clock.advance(self.lease - 1)
        queue.recover()
        assert queue.claim("b", 1) == []  # still a's
        clock.advance(2)
        queue.recover()
        assert self.keys(queue.claim("b", 1)) == {key}

    def test_a_late_finisher_is_refused(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1, lease_seconds=self.lease)
        clock.advance(self.lease + 1)
        queue.recover()
        queue.claim("b", 1)
        with pytest.raises(LeaseLost), queue.writer.begin() as tx:
            queue.finish(tx, [key], "a", self.done_values())
        failure = queue.retry_or_dead(key, "a", 1, error="late")
        assert not failure.recorded
        with queue.writer.begin() as tx:
            queue.finish(tx, [key], "b", self.done_values())
        assert queue.claim("c", 1) == []

    def test_a_heartbeat_keeps_the_lease(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1, lease_seconds=self.lease)
        clock.advance(self.lease - 1)
        assert queue.extend([key], "a", self.lease) == {key}
        assert queue.extend([key], "intruder", self.lease) == set()
        clock.advance(self.lease - 1)
        queue.recover()
        assert queue.claim("b", 1) == []
        with queue.writer.begin() as tx:
            queue.finish(tx, [key], "a", self.done_values())

    def test_a_crash_loop_ends_dead(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        for attempt in range(1, queue.backoff.max_attempts + 1):
            assert self.keys(queue.claim(f"w{attempt}", 1, lease_seconds=self.lease)) == {key}
            clock.advance(self.lease + 1)  # the worker died mid-attempt
            queue.recover()
        assert self.status(queue, key) == queue.spec.dead
        clock.advance(10 * queue.backoff.max_seconds)
        assert queue.claim("again", 1) == []

    def test_backoff_stays_within_bounds_and_respects_retry_after(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        b = queue.backoff
        [key] = self.add_due(engine, 1, clock())
        for attempt in range(1, b.max_attempts):
            [row] = queue.claim("a", 1)
            failure = queue.retry_or_dead(key, "a", attempt, error="boom")
            assert failure.recorded and failure.retry_at is not None
            ceiling = min(b.max_seconds, b.base_seconds * 2 ** (attempt - 1))
            wait = (failure.retry_at - clock()).total_seconds()
            assert ceiling / 2 <= wait <= ceiling
            assert self.status(queue, key) == queue.spec.retry
            clock.advance(wait - 0.5)
            assert queue.claim("a", 1) == []
            clock.advance(0.5)
        [row] = queue.claim("a", 1)
        assert queue.retry_or_dead(key, "a", b.max_attempts, error="last").dead
        assert self.status(queue, key) == queue.spec.dead
        del row

    def test_retry_after_is_honoured_even_beyond_the_cap(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1)
        later = queue.backoff.max_seconds * 2
        failure = queue.retry_or_dead(key, "a", 1, error="429", retry_after=later)
        assert failure.retry_at == clock() + timedelta(seconds=later)
        assert queue.next_due_at() == failure.retry_at

    def test_a_refusal_is_dead_at_once(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1)
        assert queue.retry_or_dead(key, "a", 1, error="400", transient=False).dead
        assert self.status(queue, key) == queue.spec.dead

    def done_values(self) -> dict[str, Any]:
        return {"status": "done"}


# -- the queues ---------------------------------------------------------------------------


class TestEventsQueue(LeasedQueueContract):
    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        return EventStore(engine, Backoff(4, 2.0, 60.0), clock=clock).queue

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        rows = [
            {
                "source": "effects",
                "provider": "generic",
                "event_type": "t",
                "dedup_key": f"k{i}-{now.timestamp()}",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "origin": "webhook",
                "replay_count": 0,
                "received_at": now,
            }
            for i in range(n)
        ]
        with engine.begin() as tx:
            return list(tx.execute(insert(events).returning(events.c.id), rows).scalars())

    def test_the_store_keeps_the_claimed_batch_in_order(
        self, engine: Engine, clock: MovableClock
    ) -> None:
        store = EventStore(engine, Backoff(4, 2.0, 60.0), clock=clock)
        added = self.add_due(engine, 5, clock())
        claimed = store.claim("a", 10)
        assert [e.id for e in claimed] == sorted(added)
        assert all(e.attempts == 1 for e in claimed)


class TestEnrichmentQueue(LeasedQueueContract):
    lease = 120.0

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        pipeline = EnrichmentPipeline(
            engine, [], httpx.Client(), Backoff(3, 30.0, 3600.0), clock=clock
        )
        pipeline.http.close()
        return pipeline.queue

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        rows = [
            {
                "c2s_lead_id": f"lead-{i}-{now.timestamp()}",
                "status": "open",
                "contact_hash": "0" * 64,
                "enrichment_status": "pending",
                "enrichment_attempts": 0,
                "enrichment_next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        with engine.begin() as tx:
            return list(tx.execute(insert(leads).returning(leads.c.id), rows).scalars())

    def done_values(self) -> dict[str, Any]:
        return {"enrichment_status": "done"}

    def test_a_lead_without_a_time_is_due_at_once(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        with engine.begin() as tx:
            tx.execute(update(leads).values(enrichment_next_attempt_at=None))
        assert queue.next_due_at() == clock()
        assert self.keys(queue.claim("a", 1)) == {key}


class TestEmailQueue(LeasedQueueContract):
    lease = 120.0

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        smtp = SmtpSettings(host="127.0.0.1", port=1, sender="hookyard@example.com")
        job = EmailJob(engine, smtp, audience=None, retry=Backoff(3, 60.0, 3600.0))  # type: ignore[arg-type]
        job.clock = clock
        return job.queue

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        with engine.begin() as tx:
            note = tx.execute(
                insert(notifications)
                .values(
                    tenant="acme",
                    kind="brand_verified",
                    dedup_key=f"n-{now.timestamp()}-{n}",
                    entity_type="tendlc_brand",
                    entity_id=1,
                    data={},
                    status="queued",
                    created_at=now,
                )
                .returning(notifications.c.id)
            ).scalar_one()
            rows = [
                {
                    "notification_id": note,
                    "tenant": "acme",
                    "email": f"p{i}@example.com",
                    "mode": "immediate",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ]
            return list(tx.execute(insert(deliveries).returning(deliveries.c.id), rows).scalars())

    def done_values(self) -> dict[str, Any]:
        return {"status": "sent"}


class TestOutboxQueue(LeasedQueueContract):
    lease = 120.0

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        sender = OutboxSender(engine, None, SyncPolicy(4, 30.0, 3600.0, self.lease))  # type: ignore[arg-type]
        sender.queue.clock = clock
        return sender.queue

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        keys = []
        with engine.begin() as tx:
            for i in range(n):
                customer = crm.create_customer(tx, "acme", f"Company {i} {now.timestamp()}")
                keys.append(
                    tx.execute(
                        insert(outbox)
                        .values(
                            tenant="acme",
                            customer_id=customer,
                            operation="create",
                            fields=["company_name"],
                            status="pending",
                            attempts=0,
                            next_attempt_at=now,
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(outbox.c.id)
                    ).scalar_one()
                )
        return keys


class TestBrandRegistrationQueue(LeasedQueueContract):
    lease = 120.0

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        policy = Policy(4, 30.0, 3600.0, self.lease)
        return BrandRegistrar(engine, None, policy, clock).queue  # type: ignore[arg-type]

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        rows = [
            {
                "tenant": "acme",
                "request": {"entityType": "PRIVATE_PROFIT", "companyName": f"Brand {i}"},
                "status": "PENDING",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(n)
        ]
        with engine.begin() as tx:
            inserted = tx.execute(
                insert(brand_registrations).returning(brand_registrations.c.id), rows
            )
            return list(inserted.scalars())

    def done_values(self) -> dict[str, Any]:
        return {"status": "REGISTERED"}


class TestDeliveriesQueue(LeasedQueueContract):
    """Destinations' deliveries (hookyard.destinations): a destination's own queue, whose
    backoff carries that destination's max_attempts."""

    SECRET = "whsec_" + "ZGVzdGluYXRpb24tc2VjcmV0LWZvci10ZXN0cy0zMmI="

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        configured = build_destinations(
            [
                {
                    "name": "contract",
                    "url": "http://127.0.0.1:9/hooks",
                    "secret": self.SECRET,
                    "sources": ["demo"],
                    "max_attempts": 4,
                }
            ],
            ["demo"],
        )
        with engine.begin() as tx:
            destination_state.sync(tx, configured, clock())
        job = DeliveryJob(engine, configured, lease_seconds=self.lease, clock=clock)
        job.close()  # only its queue is used here
        return job.queues["contract"]

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        base = int(now.timestamp() * 1000) % 1_000_000_000
        rows = [
            {
                "destination": "contract",
                "event_id": base + i,
                "tenant": None,
                "source": "demo",
                "event_type": "ping",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "replay_count": 0,
                "created_at": now,
            }
            for i in range(n)
        ]
        with engine.begin() as tx:
            inserted = tx.execute(
                insert(destination_deliveries).returning(destination_deliveries.c.id), rows
            )
            return list(inserted.scalars())

    def done_values(self) -> dict[str, Any]:
        return {"status": "delivered"}


class TestSchedulerJobs(LeasedQueueContract):
    """The scheduler's jobs: a mutex with a next run time, no statuses or attempts."""

    lease = 1800.0

    def make_queue(self, engine: Engine, clock: MovableClock) -> LeasedQueue:
        return Scheduler(engine, [], "test", self.lease, clock).queue

    def add_due(self, engine: Engine, n: int, now: datetime) -> list[Any]:
        names = [f"job-{i}" for i in range(n)]
        with engine.begin() as tx:
            tx.execute(insert(schedule_jobs), [{"name": j, "next_run_at": now} for j in names])
        return names

    def status(self, q: LeasedQueue, key: Any) -> Any:
        with q.engine.connect() as conn:
            return conn.execute(
                select(schedule_jobs.c.lease_owner).where(schedule_jobs.c.name == key)
            ).scalar_one()

    def done_values(self) -> dict[str, Any]:
        return {"last_status": "ok", "next_run_at": datetime.now(UTC) + timedelta(days=10)}

    # A periodic job has no attempts to use up: an expired lease is due again, always.
    def test_a_crash_loop_ends_dead(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        for attempt in range(5):
            assert self.keys(queue.claim(f"w{attempt}", 1, lease_seconds=self.lease)) == {key}
            clock.advance(self.lease + 1)
        assert self.status(queue, key) == "w4"  # still only ever one holder at a time

    def test_backoff_stays_within_bounds_and_respects_retry_after(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1)
        failure = queue.retry_or_dead(key, "a", 1, error="boom", retry_after=90)
        assert failure.recorded and failure.retry_at == clock() + timedelta(seconds=90)
        assert queue.claim("b", 1) == []
        clock.advance(90)
        assert self.keys(queue.claim("b", 1)) == {key}

    def test_a_refusal_is_dead_at_once(
        self, engine: Engine, clock: MovableClock, queue: LeasedQueue
    ) -> None:
        [key] = self.add_due(engine, 1, clock())
        queue.claim("a", 1)
        assert queue.retry_or_dead(key, "a", 1, transient=False).recorded
        assert self.status(queue, key) is None  # released; its next run time is unchanged

    def test_one_tick_of_many_processes_runs_a_due_job_once(
        self, engine: Engine, clock: MovableClock
    ) -> None:
        runs: list[str] = []
        jobs = [Job("j", 60, lambda: runs.append("ran"))]
        schedulers = [Scheduler(engine, jobs, f"p{i}", 60, clock) for i in range(3)]
        assert sum(s.tick() for s in schedulers) == 1
        clock.advance(59)
        assert sum(s.tick() for s in schedulers) == 0
        clock.advance(2)
        assert sum(s.tick() for s in schedulers) == 1
        assert runs == ["ran", "ran"]


# -- the heartbeat and the handler timeout --------------------------------------------


def test_a_heartbeat_extends_a_lease_until_the_work_ends(engine: Engine) -> None:
    store = EventStore(engine, lease_seconds=0.6)
    TestEventsQueue().add_due(engine, 1, datetime.now(UTC))
    [event] = store.claim("a", 1)
    with Heartbeat(store.queue, [event.id], "a", interval=0.1) as beat:
        threading.Event().wait(1.0)  # longer than the lease: only the heartbeat keeps it
        assert store.recover_expired_leases() == 0
    assert not beat.lost and not beat.timed_out
    with store.writer.begin() as tx:
        store.finish(tx, {"done": [event.id]}, "a")


def test_a_heartbeat_past_its_timeout_lets_the_lease_run_out(engine: Engine) -> None:
    store = EventStore(engine, lease_seconds=0.3)
    TestEventsQueue().add_due(engine, 1, datetime.now(UTC))
    [event] = store.claim("a", 1)
    stopped = threading.Event()
    with Heartbeat(
        store.queue, [event.id], "a", interval=0.05, timeout=0.2, on_timeout=stopped.set
    ) as beat:
        assert stopped.wait(5)
        threading.Event().wait(0.4)
    assert beat.timed_out
    assert store.recover_expired_leases() == 1
    with pytest.raises(LeaseLost), store.writer.begin() as tx:
        store.finish(tx, {"done": [event.id]}, "a")


def test_a_job_longer_than_its_lease_keeps_it(engine: Engine) -> None:
    started = threading.Event()
    release = threading.Event()

    def long_job() -> None:
        started.set()
        release.wait(10)

    jobs = [Job("long", 3600, long_job)]
    first = Scheduler(engine, jobs, "first", lease_seconds=0.3)
    other = Scheduler(engine, jobs, "other", lease_seconds=0.3)
    runner = threading.Thread(target=first.tick)
    runner.start()
    assert started.wait(10)
    threading.Event().wait(0.8)  # well past the lease: only the heartbeat keeps it
    assert other.tick() == 0
    release.set()
    runner.join(10)
    with engine.connect() as conn:
        row = conn.execute(select(schedule_jobs).where(schedule_jobs.c.name == "long")).one()
    assert row.last_status == "ok" and row.lease_owner is None
