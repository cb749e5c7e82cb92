"""Group commit: concurrent requests share one transaction, each answered after it commits.

Requests queue while the previous batch is committing, so batches grow with load and
durability costs one fsync per batch instead of one per request. A request is answered only
from the outcome of the commit that contains it: success means the rows are durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import sqlalchemy.exc

from hookyard.inbox.insert import AsyncPostgresWriter
from hookyard.inbox.model import NewEvent, RejectedRequest
from hookyard.inbox.store import EventStore
from hookyard.logs import log


class StorageUnavailable(RuntimeError):
    """The batch holding this request did not commit (or did not in time): answer 503."""


class Unstorable(ValueError):
    """The database refuses this request's events themselves (not a passing fault): 400."""


# Failures of the storage itself. Anything else raised by a batch is about its data: then
# the batch is retried request by request, so one bad request cannot fail its neighbours.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    ConnectionError,
    TimeoutError,
)


@dataclass(slots=True)
class _Request:
    events: Sequence[NewEvent]
    future: asyncio.Future[list[int | None]]


@dataclass
class GroupCommitter:
    store: EventStore
    max_batch: int = 512
    timeout: float = 10.0
    rejected_capacity: int = 1000
    on_commit: Callable[[], None] | None = None  # wakes in-process workers

    concurrency: int = 2  # PostgreSQL: batches committing at once (SQLite: always one)

    _queue: list[_Request] = field(default_factory=list)
    _rejected: list[RejectedRequest] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None
    _idle_writers: list[AsyncPostgresWriter] = field(default_factory=list)
    _slots: asyncio.Semaphore | None = None
    _in_flight: dict[asyncio.Task[None], float] = field(default_factory=dict)

    async def start(self) -> None:
        self._wake = asyncio.Event()
        # PostgreSQL: batches are written from the event loop on async connections, several
        # at once (PostgreSQL overlaps their commits); SQLite has one writer and no async
        # driver, so its batches go one at a time to a dedicated thread.
        if self.store.is_postgres:
            self._idle_writers = [self.store.async_writer() for _ in range(self.concurrency)]
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="hookyard-commit")
        self._slots = asyncio.Semaphore(len(self._idle_writers) or 1)
        self._task = asyncio.create_task(self._run(), name="hookyard-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            # Let queued requests get their answer before the loop goes away (bounded: a
            # hanging commit answers 503 after `timeout` anyway).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            while (self._queue or self._rejected or self._in_flight) and not self._task.done():
                if loop.time() > deadline:
                    break
                assert self._wake is not None
                self._wake.set()
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
        for writer in self._idle_writers:
            await writer.close()

    async def accept(self, events: Sequence[NewEvent]) -> list[int | None]:
        """Store `events` durably; the id of each, or None where it was a duplicate."""
        loop = asyncio.get_running_loop()
        if self._in_flight and loop.time() - min(self._in_flight.values()) > self.timeout:
            raise StorageUnavailable("storage has not answered in time")
        if self._wake is None:
            raise StorageUnavailable("inbox is not running")
        future: asyncio.Future[list[int | None]] = loop.create_future()
        self._queue.append(_Request(events, future))
        self._wake.set()
        return await future

    def log_rejected(self, rejected: RejectedRequest) -> None:
        """Queue a rejected request for the bounded log (written with the next batch)."""
        if len(self._rejected) < self.rejected_capacity:
            self._rejected.append(rejected)
            if self._wake is not None:
                self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._rejected:
                # Requests arriving while every slot is committing form the next batch.
                await self._slots.acquire()
                if not (self._queue or self._rejected):
                    self._slots.release()
                    break
                batch = self._take()
                rejected, self._rejected = self._rejected, []
                task = loop.create_task(self._flush(batch, rejected))
                self._in_flight[task] = loop.time()

    async def _flush(self, batch: list[_Request], rejected: list[RejectedRequest]) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.timeout, self._expire, batch)
        writer = self._idle_writers.pop() if self._idle_writers else None
        try:
            await self._commit(batch, rejected, writer)
        finally:
            timer.cancel()
            if writer is not None:
                self._idle_writers.append(writer)
            task = asyncio.current_task()
            if task is not None:
                self._in_flight.pop(task, None)
            self._slots.release()

    async def _write(
        self,
        new: list[NewEvent],
        rejected: list[RejectedRequest],
        writer: AsyncPostgresWriter | None,
    ) -> dict[tuple[str, str], int]:
        if writer is not None:
            return await asyncio.wait_for(writer.insert_batch(new, rejected), self.timeout)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.store.insert_batch, new, rejected)

    async def _commit(
        self,
        batch: list[_Request],
        rejected: list[RejectedRequest],
        writer: AsyncPostgresWriter | None = None,
    ) -> None:
        try:
            inserted = await self._write(_flatten(batch), rejected, writer)
        except _UNAVAILABLE as exc:
            log.warning("inbox_commit_failed", error=str(exc)[:300], requests=len(batch))
            _fail(batch, StorageUnavailable(str(exc)[:200]))
            return
        except Exception as exc:
            if len(batch) == 1 and not rejected:
                log.warning("inbox_event_unstorable", error=str(exc)[:300])
                _fail(batch, Unstorable(f"{type(exc).__name__}: {str(exc)[:200]}"))
                return
            log.warning("inbox_batch_split", error=str(exc)[:300], requests=len(batch))
            for request in batch:  # the rejected log entries are dropped with the bad batch
                await self._commit([request], [], writer)
            return
        if inserted and self.on_commit is not None:
            self.on_commit()
        _answer(batch, inserted)

    def _take(self) -> list[_Request]:
        taken, count = 0, 0
        for request in self._queue:
            count += len(request.events)
            taken += 1
            if count >= self.max_batch:
                break
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    def _expire(self, batch: list[_Request]) -> None:
        # The commit is hanging (database stopped, network gone): answer 503 now. If it
        # commits later anyway, the provider's retry is answered as a duplicate.
        error = StorageUnavailable("storage did not commit in time")
        _fail(batch, error)
        _fail(self._queue, error)
        self._queue = []


def _flatten(batch: Sequence[_Request]) -> list[NewEvent]:
    # Within one batch the same delivery twice is inserted once; the constraint handles
    # repeats across batches and processes.
    seen: set[tuple[str, str]] = set()
    unique: list[NewEvent] = []
    for request in batch:
        for event in request.events:
            key = (event.source, event.dedup_key)
            if key not in seen:
                seen.add(key)
                unique.append(event)
    return unique


def _answer(batch: Sequence[_Request], inserted: dict[tuple[str, str], int]) -> None:
    for request in batch:
        if request.future.done():
            continue
        ids: list[int | None] = []
        for event in request.events:
            # `pop`: when the same delivery sits twice in a batch, only the first one
            # is reported as new; the other is a duplicate.
            ids.append(inserted.pop((event.source, event.dedup_key), None))
        request.future.set_result(ids)


def _fail(batch: Sequence[_Request], error: Exception) -> None:
    for request in batch:
        if not request.future.done():
            request.future.set_exception(error)
