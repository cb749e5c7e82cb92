"""What one process runs: the engine, the inbox, and (optionally) worker threads."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from hookyard import contacts
from hookyard.alerts.evaluate import alert_jobs
from hookyard.bus import LocalBus
from hookyard.config import Settings
from hookyard.db.engine import make_engine
from hookyard.db.listen import READY_SECONDS, Listener, Subscription
from hookyard.destinations import fanout as destination_fanout
from hookyard.destinations.deliver import DeliveryJob
from hookyard.domain.crm import rules as crm_rules
from hookyard.domain.leads.enrichment import EnrichmentPipeline
from hookyard.inbox.accept import GroupCommitter
from hookyard.inbox.store import EventStore
from hookyard.live.feed import ACCEPTED_BUS_CHANNEL, send_changes
from hookyard.live.publish import attach_accepted, attach_local
from hookyard.logs import log
from hookyard.notify.job import EmailJob
from hookyard.queue.backoff import Backoff
from hookyard.queue.scheduler import Scheduler, SchedulerThread
from hookyard.sources import SourceSet, load_sources
from hookyard.sync.services import OutboxJob, SyncServices
from hookyard.sync.tcr_registration import RegistrationJob
from hookyard.worker.runner import BackgroundJob, Worker
from hookyard.worker.wakeup import Wakeup


@dataclass
class Runtime:
    settings: Settings
    sources: SourceSet
    engine: Engine
    store: EventStore
    wakeup: Wakeup = field(default_factory=Wakeup)
    workers: list[Worker] = field(default_factory=list)
    jobs: list[BackgroundJob] = field(default_factory=list)  # every worker runs them
    # Of `jobs`, those the started threads run in loops of their own (HOOKYARD_DESTINATION_LOOPS
    # per process, 4: one pass's database round trips overlap the others' sends; bench
    # `deliveries`, docs/performance.md) beside the event loops: the deliveries' sending, on
    # PostgreSQL (on SQLite they share the one writer with the events and gained nothing
    # measured: they stay in the event loops).
    own_loop: list[BackgroundJob] = field(default_factory=list)
    sync: SyncServices | None = None  # provider API clients, reconcilers, scheduled jobs
    _scheduler: SchedulerThread | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    # SQLite: the other processes of this database (wake-ups, live changes); None otherwise.
    bus: LocalBus | None = None
    # PostgreSQL: the process's one LISTEN connection (wake-ups, live changes); None otherwise.
    listener: Listener | None = None
    _wakeups: Subscription | None = None
    _detach_live: Callable[[], None] | None = None

    @classmethod
    def build(
        cls, settings: Settings, sources: SourceSet | None = None, *, acknowledges: bool = True
    ) -> Runtime:
        """`acknowledges` False: a worker process, which answers no webhook, so its SQLite
        commits need not be fsynced one by one (db/engine.py)."""
        # The HubSpot property of each customer field, for this process (rules.py).
        crm_rules.use(crm_rules.FieldRules.named(settings.hubspot_property_names))
        # The placeholder e-mail check of C2S leads (contacts.py); a bad pattern: ConfigError.
        contacts.use_fake_emails(
            contacts.FakeEmails.named(
                settings.leads_fake_email_patterns, settings.leads_fake_email_check
            )
        )
        engine = make_engine(
            settings.sqlalchemy_url,
            pool_size=max(5, settings.worker_threads + 4),
            durable_commits=acknowledges,
        )
        sources = sources or load_sources(settings)
        store = EventStore(
            engine,
            Backoff(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds),
            lease_seconds=settings.lease_seconds,
        )
        destination_fanout.attach(store, sources.destinations)  # deliveries at ingest
        bus = LocalBus.for_sqlite_url(settings.sqlalchemy_url)
        wakeup = Wakeup(bus)
        enrichment = EnrichmentPipeline.from_settings(settings, engine)
        jobs: list[BackgroundJob] = [enrichment] if enrichment is not None else []
        sync = SyncServices(settings, store, sources.sources, on_fed=wakeup.signal)
        if (sender := sync.outbox()) is not None:
            jobs.append(OutboxJob(sender))
        if (registrar := sync.registrar()) is not None:
            jobs.append(RegistrationJob(registrar))
        jobs.append(EmailJob.from_settings(settings, engine))  # e-mail, chat or neither
        own_loop: list[BackgroundJob] = []
        if deliverer := DeliveryJob.from_settings(settings, engine, sources.destinations):
            jobs.append(deliverer)
            if engine.dialect.name == "postgresql":
                own_loop.append(deliverer)
        return cls(
            settings,
            sources,
            engine,
            store,
            wakeup,
            jobs=jobs,
            own_loop=own_loop,
            sync=sync,
            bus=bus,
            listener=Listener.for_engine(engine),
        )

    def committer(self, on_commit: Callable[[], None] | None = None) -> GroupCommitter:
        s = self.settings
        return GroupCommitter(
            self.store,
            max_batch=s.max_batch_size,
            concurrency=s.commit_concurrency,
            timeout=s.accept_timeout_seconds,
            rejected_capacity=s.rejected_log_size,
            on_commit=on_commit or self.wakeup.signal,
        )

    def make_worker(
        self, jobs: list[BackgroundJob] | None = None, *, handles_events: bool = True
    ) -> Worker:
        """A worker of the events and `jobs` (default: every job, as `drain` needs)."""
        s = self.settings
        return Worker(
            store=self.store,
            sources=self.sources.by_name(),
            batch_size=s.claim_batch_size,
            gather_seconds=s.claim_gather_seconds,
            lease_seconds=s.lease_seconds,
            handler_timeout=s.handler_timeout_seconds,
            retention_days=s.retention_days,
            retention_interval=s.retention_interval_seconds,
            audit_providers=s.audit_providers,
            audit_retention_days=s.audit_retention_days,
            rejected_log_size=s.rejected_log_size,
            jobs=self.jobs if jobs is None else jobs,
            handles_events=handles_events,
            wakeup=self.wakeup if handles_events else self.wakeup.fork(),
        )

    def start_workers(self, count: int | None = None) -> None:
        if self.listener is not None and self._wakeups is None:
            self._wakeups = self.wakeup.listen_postgres(self.listener)
            # Workers claim once they start: from then on every commit must wake them.
            if not self._wakeups.listening.wait(READY_SECONDS):
                log.warning("listen_not_ready", seconds=READY_SECONDS)
        self.wakeup.listen()  # SQLite: ingest processes' commits wake these workers
        shared = [job for job in self.jobs if job not in self.own_loop]
        loops = [
            (f"hookyard-worker-{i}", self.make_worker(shared))
            for i in range(count or self.settings.worker_threads)
        ]
        for i in range(self.settings.destination_loops if self.own_loop else 0):
            loops.append(
                (f"hookyard-jobs-{i}", self.make_worker(self.own_loop, handles_events=False))
            )
        for name, worker in loops:
            thread = threading.Thread(target=worker.run, args=(self._stop,), name=name, daemon=True)
            self.workers.append(worker)
            self._threads.append(thread)
            thread.start()
        self.start_scheduler()

    def start_scheduler(self) -> None:
        """Reconciliation on the seed schedules and the alert rules' evaluation (each job run
        by one process at a time)."""
        if not self.settings.scheduler_enabled or self._scheduler:
            return
        jobs = self.sync.jobs() if self.sync is not None else []
        jobs += alert_jobs(self.engine, self.settings, self.sources.sources)
        if not jobs:
            return
        owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._scheduler = SchedulerThread(Scheduler(self.engine, jobs, owner), self._stop)
        self._scheduler.start()

    def forward_live_changes(self) -> None:
        """A process without an API of its own (`hookyard worker`) on SQLite: what it commits
        reaches the live sockets of the API processes over the bus (PostgreSQL: NOTIFY)."""
        bus = self.bus
        if bus is not None and self._detach_live is None:
            detach = attach_local(self.engine, lambda c: send_changes(bus, c))
            # The events its reconcilers feed the inbox, while some socket asks for them.
            detach_accepted = attach_accepted(
                self.engine,
                lambda c: send_changes(bus, c, ACCEPTED_BUS_CHANNEL),
                lambda: bus.wanted(ACCEPTED_BUS_CHANNEL),
            )

            def detach_both() -> None:
                detach()
                detach_accepted()

            self._detach_live = detach_both

    def stop_workers(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
        self.wakeup.signal()
        if self.listener is not None and self._wakeups is not None:
            self.listener.unsubscribe(self._wakeups)
            self._wakeups = None
        for thread in self._threads:
            thread.join(timeout)

    def close(self) -> None:
        self.stop_workers()
        for job in self.jobs:
            job.close()
        if self.sync is not None:
            self.sync.close()
        if self._detach_live is not None:
            self._detach_live()
        if self.bus is not None:
            self.bus.close()
        if self.listener is not None:
            self.listener.stop()
        self.engine.dispose()
