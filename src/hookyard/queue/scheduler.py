"""The scheduler: named jobs at intervals, each run by exactly one process at a time.

Every process that runs workers (`serve`, `worker`) ticks the scheduler. A job is run by the
process that moves its lease forward in one conditional UPDATE (due, and no live lease), so
with many processes on PostgreSQL each run still happens once; a process that dies mid-run
leaves a lease that expires, and the job is picked up again. Job times live in the database
(`schedule_jobs`), so a restart neither repeats a job early nor forgets one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite

from hookyard.logs import log
from hookyard.queue.leased import Clock, Heartbeat, LeasedQueue, LeaseLost, Spec, utcnow
from hookyard.queue.tables import schedule_jobs

# The jobs as a leased queue without statuses: a job is due when its time has come and no
# live lease holds it (an expired lease is simply due again: a periodic job has no attempts
# to use up).
JOBS = Spec(
    schedule_jobs,
    status=None,
    attempts=None,
    key="name",
    next_attempt_at="next_run_at",
    error="last_error",
)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float  # seconds between the end of one run and the start of the next
    run: Callable[[], Any]


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        jobs: Sequence[Job],
        owner: str,
        lease_seconds: float = 1800.0,
        clock: Clock = utcnow,
    ) -> None:
        self.engine = engine
        self.jobs = list(jobs)
        self.owner = owner
        self.queue = LeasedQueue(engine, JOBS, lease_seconds=lease_seconds, clock=clock)
        self._known = False

    def _register(self, now: datetime) -> None:
        # A new job is due at once: a fresh install reconciles on its first start.
        rows = [{"name": job.name, "next_run_at": now} for job in self.jobs]
        dialect = postgresql if self.queue.postgres else sqlite
        with self.queue.writer.begin() as tx:  # a job another process registered is kept
            tx.execute(dialect.insert(schedule_jobs).on_conflict_do_nothing(), rows)
        self._known = True

    def tick(self) -> int:
        """Run every due job this process wins; how many ran."""
        if not self.jobs:
            return 0
        if not self._known:
            self._register(self.queue.clock())
        ran = 0
        for job in self.jobs:
            if self._claim(job):
                self._run(job)
                ran += 1
        return ran

    def _claim(self, job: Job) -> bool:
        claimed = self.queue.claim(
            self.owner,
            1,
            where=[schedule_jobs.c.name == job.name],
            values={"last_started_at": self.queue.clock()},
        )
        return bool(claimed)

    def _run(self, job: Job) -> None:
        error: str | None = None
        log.info("job_started", job=job.name, owner=self.owner)
        try:
            # A run longer than the lease keeps it (a heartbeat), so no other process starts
            # the same job meanwhile.
            with Heartbeat(self.queue, [job.name], self.owner):
                result = job.run()
        except Exception as exc:  # a job's failure is recorded; the schedule goes on
            error = f"{type(exc).__name__}: {exc}"
            log.error("job_failed", job=job.name, error=error[:300])
        else:
            if getattr(result, "error", None):
                error = str(result.error)
        finished = self.queue.clock()
        try:
            with self.queue.writer.begin() as tx:
                self.queue.finish(
                    tx,
                    [job.name],
                    self.owner,
                    {
                        "next_run_at": finished + timedelta(seconds=job.interval),
                        "last_finished_at": finished,
                        "last_status": "failed" if error else "ok",
                        "last_error": error[:2000] if error else None,
                    },
                )
        except LeaseLost:  # ran past its lease: another process may run it now
            log.warning("job_lease_lost", job=job.name, owner=self.owner)
            return
        log.info("job_finished", job=job.name, ok=error is None)

    def run_now(self, name: str) -> None:
        """Make a job due now (the next tick of any process runs it)."""
        with self.queue.writer.begin() as tx:
            tx.execute(
                update(schedule_jobs)
                .where(schedule_jobs.c.name == name)
                .values(next_run_at=self.queue.clock())
            )


class SchedulerThread:
    """Ticks the scheduler every `interval` seconds in its own thread, so a long
    reconciliation never holds up event processing."""

    def __init__(self, scheduler: Scheduler, stop: threading.Event, interval: float = 1.0) -> None:
        self.scheduler = scheduler
        self.stop = stop
        self.interval = interval
        self.thread = threading.Thread(target=self._loop, name="hookyard-scheduler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        log.info("scheduler_started", jobs=[j.name for j in self.scheduler.jobs])
        while not self.stop.is_set():
            try:
                self.scheduler.tick()
            except Exception as exc:  # the database away: try again on the next tick
                log.warning("scheduler_tick_failed", error=str(exc)[:300])
            self.stop.wait(self.interval)

    def join(self, timeout: float) -> None:
        if self.thread.is_alive():
            self.thread.join(timeout)
