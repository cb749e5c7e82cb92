"""The scheduler: named jobs at intervals, each run by exactly one process at a time.

Every process that runs workers (`serve`, `worker`) ticks the scheduler. A job is run by the
process that moves its lease forward in one conditional UPDATE (due, and no live lease), so
with many processes on PostgreSQL each run still happens once; a process that dies mid-run
leaves a lease that expires, and the job is picked up again. Job times live in the database
(`schedule_jobs`), so a restart neither repeats a job early nor forgets one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, update

from hookyard.db.rows import insert_missing
from hookyard.logs import log
from hookyard.sync.tables import schedule_jobs


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    interval: float  # seconds between the end of one run and the start of the next
    run: Callable[[], Any]


class Scheduler:
    def __init__(
        self, engine: Engine, jobs: Sequence[Job], owner: str, lease_seconds: float = 1800.0
    ) -> None:
        self.engine = engine
        self.jobs = list(jobs)
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self._known = False

    def _register(self, now: datetime) -> None:
        # A new job is due at once: a fresh install reconciles on its first start.
        with self.engine.begin() as tx:
            for job in self.jobs:
                insert_missing(tx, schedule_jobs, {"name": job.name, "next_run_at": now}, ["name"])
        self._known = True

    def tick(self) -> int:
        """Run every due job this process wins; how many ran."""
        if not self.jobs:
            return 0
        now = datetime.now(UTC)
        if not self._known:
            self._register(now)
        ran = 0
        for job in self.jobs:
            if self._claim(job, now):
                self._run(job)
                ran += 1
        return ran

    def _claim(self, job: Job, now: datetime) -> bool:
        with self.engine.begin() as tx:
            claimed = tx.execute(
                update(schedule_jobs)
                .where(
                    schedule_jobs.c.name == job.name,
                    schedule_jobs.c.next_run_at <= now,
                    or_(schedule_jobs.c.lease_until.is_(None), schedule_jobs.c.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + self.lease, last_started_at=now)
            ).rowcount
        return bool(claimed)

    def _run(self, job: Job) -> None:
        error: str | None = None
        log.info("job_started", job=job.name, owner=self.owner)
        try:
            result = job.run()
        except Exception as exc:  # a job's failure is recorded; the schedule goes on
            error = f"{type(exc).__name__}: {exc}"
            log.error("job_failed", job=job.name, error=error[:300])
        else:
            if getattr(result, "error", None):
                error = str(result.error)
        finished = datetime.now(UTC)
        with self.engine.begin() as tx:
            tx.execute(
                update(schedule_jobs)
                .where(schedule_jobs.c.name == job.name, schedule_jobs.c.lease_owner == self.owner)
                .values(
                    next_run_at=finished + timedelta(seconds=job.interval),
                    lease_owner=None,
                    lease_until=None,
                    last_finished_at=finished,
                    last_status="failed" if error else "ok",
                    last_error=error[:2000] if error else None,
                )
            )
        log.info("job_finished", job=job.name, ok=error is None)

    def run_now(self, name: str) -> None:
        """Make a job due now (the next tick of any process runs it)."""
        with self.engine.begin() as tx:
            tx.execute(
                update(schedule_jobs)
                .where(schedule_jobs.c.name == name)
                .values(next_run_at=datetime.now(UTC))
            )
