"""Processing: leases, one transaction for effects and "done", retries, dead letters, replay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from hookyard.db.schema import events
from hookyard.inbox.model import NewEvent
from hookyard.inbox.reads import EventFilter
from hookyard.inbox.store import LeaseLost
from hookyard.runtime import Runtime
from hookyard.worker.wakeup import Wakeup
from tests.conftest import BACKEND
from tests.handlers import effects
from tests.support import MovableClock, accept


def effect_count(runtime: Runtime) -> dict[int, int]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(effects.c.event_id, func.count()).group_by(effects.c.event_id))
        return {event_id: n for event_id, n in rows}


def status_of(runtime: Runtime, event_id: int) -> str:
    row = runtime.store.get(event_id)
    assert row is not None
    return str(row["status"])


def test_handler_effects_and_done_commit_together(runtime: Runtime) -> None:
    ids = accept(runtime, "effects", 5)
    assert runtime.make_worker().drain() == 5
    assert effect_count(runtime) == {i: 1 for i in ids}
    for i in ids:
        row = runtime.store.get(i)
        assert row is not None
        assert row["status"] == "done" and row["attempts"] == 1 and row["processed_at"] is not None
        assert row["lease_owner"] is None


def test_a_poison_event_fails_alone_and_the_rest_of_its_batch_is_done(runtime: Runtime) -> None:
    good = accept(runtime, "effects", 4)
    [bad] = accept(runtime, "poison")
    worker = runtime.make_worker()
    claimed = runtime.store.claim(worker.name, 100, 30)
    assert len(claimed) == 5
    worker.process(claimed)  # the batch transaction fails, then each event runs alone
    assert effect_count(runtime) == {i: 1 for i in good}
    row = runtime.store.get(bad)
    assert row is not None
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["next_attempt_at"] > datetime.now(UTC)
    assert row["last_error"] == f"ValueError: poison event {bad}"
    assert "always_fail" in row["last_traceback"]


def test_poison_event_is_dead_after_max_attempts_then_replay_runs_it_again(
    runtime: Runtime,
) -> None:
    [bad] = accept(runtime, "poison")
    runtime.store.queue.clock = clock = MovableClock()
    worker = runtime.make_worker()
    for _ in range(runtime.settings.max_attempts):
        assert worker.drain() == 1
        clock.advance(3600)  # past any backoff
    row = runtime.store.get(bad)
    assert row is not None
    assert row["status"] == "dead"
    assert row["attempts"] == runtime.settings.max_attempts == 3
    assert "ValueError: poison event" in row["last_error"]
    # Dead events are never picked up again on their own.
    assert worker.drain() == 0
    assert runtime.store.replay([bad]) == 1
    row = runtime.store.get(bad)
    assert row is not None
    assert (row["status"], row["attempts"], row["replay_count"]) == ("pending", 0, 1)
    assert worker.drain() == 1
    assert status_of(runtime, bad) == "failed"


def test_retry_waits_for_backoff(runtime: Runtime) -> None:
    [bad] = accept(runtime, "poison")
    worker = runtime.make_worker()
    assert worker.drain() == 1
    assert worker.drain() == 0  # not due yet: next_attempt_at is in the future
    row = runtime.store.get(bad)
    assert row is not None and row["status"] == "failed"


def test_expired_lease_is_recovered_and_the_late_worker_cannot_commit(runtime: Runtime) -> None:
    [event_id] = accept(runtime, "effects")
    crashed = runtime.make_worker()
    runtime.store.queue.clock = clock = MovableClock()
    [claimed] = runtime.store.claim(crashed.name, 10, lease_seconds=60)
    clock.advance(61)
    assert runtime.store.recover_expired_leases(max_attempts=3) == 1
    assert status_of(runtime, event_id) == "pending"
    survivor = runtime.make_worker()
    assert survivor.drain() == 1
    # The first worker wakes up and tries to finish: its lease is gone, its effects roll back.
    with pytest.raises(LeaseLost), runtime.store.writer.begin() as tx:
        tx.execute(effects.insert().values(event_id=claimed.id, dedup_key=claimed.dedup_key))
        runtime.store.finish(tx, {"done": [claimed.id]}, crashed.name)
    assert effect_count(runtime) == {event_id: 1}
    row = runtime.store.get(event_id)
    assert row is not None and row["attempts"] == 2 and row["status"] == "done"


def test_lease_expiry_past_max_attempts_is_dead(runtime: Runtime) -> None:
    [event_id] = accept(runtime, "effects")
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).values(attempts=2))
    runtime.store.queue.clock = clock = MovableClock()
    runtime.store.claim("gone", 10, lease_seconds=60)
    clock.advance(61)
    assert runtime.store.recover_expired_leases(max_attempts=3) == 1
    row = runtime.store.get(event_id)
    assert row is not None and row["status"] == "dead"
    assert "lease expired" in row["last_error"]


def test_two_workers_never_claim_the_same_event(runtime: Runtime) -> None:
    accept(runtime, "effects", 30)
    first = runtime.store.claim("a", 20, 30)
    second = runtime.store.claim("b", 20, 30)
    assert len(first) == 20 and len(second) == 10
    assert not {e.id for e in first} & {e.id for e in second}


def test_retention_purges_only_finished_events_older_than_the_cutoff(runtime: Runtime) -> None:
    done = accept(runtime, "effects", 2)
    runtime.make_worker().drain()
    [dead] = accept(runtime, "tokened")
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id == dead).values(status="dead"))
        tx.execute(update(events).values(received_at=datetime.now(UTC) - timedelta(days=40)))
    [fresh] = accept(runtime, "effects")
    worker = runtime.make_worker()
    worker.retention_days = 0  # this test calls retention itself
    worker.drain()
    assert runtime.store.purge_finished(datetime.now(UTC) - timedelta(days=30)) == 2
    remaining = {e["id"] for e in runtime.store.list_events(EventFilter())}
    assert remaining == {dead, fresh}
    assert not remaining & set(done)


def test_the_worker_applies_retention_on_its_own(runtime: Runtime) -> None:
    accept(runtime, "effects", 3)
    runtime.make_worker().drain()
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).values(received_at=datetime.now(UTC) - timedelta(days=31)))
    runtime.make_worker().run_once()  # housekeeping runs at the start of a cycle
    assert runtime.store.list_events(EventFilter()) == []


def test_replay_matching_a_filter(runtime: Runtime) -> None:
    accept(runtime, "effects", 3)
    runtime.make_worker().drain()
    assert runtime.store.replay_matching(EventFilter(source="effects", status="done")) == 3
    assert runtime.make_worker().drain() == 3
    assert set(effect_count(runtime).values()) == {2}  # replay runs the handler again


def test_the_rejected_log_is_bounded(runtime: Runtime) -> None:
    from hookyard.inbox.model import RejectedRequest

    rejected = [
        RejectedRequest(
            "demo", "/webhooks/in/demo", 401, f"bad {i}", "127.0.0.1", {}, b"", datetime.now(UTC)
        )
        for i in range(25)
    ]
    runtime.store.insert_batch([], rejected)
    worker = runtime.make_worker()
    worker.rejected_log_size = 10
    worker.run_once()
    kept = runtime.store.rejected(limit=100)
    assert [r["reason"] for r in kept] == [f"bad {i}" for i in range(24, 14, -1)]


@pytest.mark.skipif(BACKEND != "postgresql", reason="several claimers at once: PostgreSQL")
def test_a_claim_passes_over_the_entities_another_worker_holds(runtime: Runtime) -> None:
    # Entity E's first two events go to worker A; worker B, claiming meanwhile, takes the
    # other entity's and leaves E's third for later: it would only wait for A's row locks.
    now = datetime.now(UTC)
    new = [
        NewEvent("demo", "generic", None, "t", f"k{i}", entity, None, {}, b"{}", None, now)
        for i, entity in enumerate(["E", "E", "F", "E", "F"])
    ]
    runtime.store.insert_batch(new)
    first = runtime.store.claim("A", 2, 60)
    assert [e.entity_key for e in first] == ["E", "E"]
    second = runtime.store.claim("B", 10, 60)
    assert [e.entity_key for e in second] == ["F", "F"]
    with runtime.store.writer.begin() as tx:
        runtime.store.finish(tx, {"done": [e.id for e in first]}, "A")
    assert [e.entity_key for e in runtime.store.claim("B", 10, 60)] == ["E"]


def test_a_handler_past_its_timeout_is_stopped_and_retried_alone(runtime: Runtime) -> None:
    [slow] = accept(runtime, "effects", 1, slow_sql=True)
    fine = accept(runtime, "effects", 2)
    worker = runtime.make_worker()
    worker.handler_timeout = 0.5
    started = time.monotonic()
    worker.run_once()
    assert time.monotonic() - started < 30  # not the statement's minutes
    row = runtime.store.get(slow)
    assert row is not None and row["status"] == "failed"
    assert "ran longer than 0.5 s" in row["last_error"]
    assert all(runtime.store.get(i)["status"] == "done" for i in fine)  # type: ignore[index]


def test_a_forked_wakeup_is_woken_by_every_signal_and_cleared_by_its_own_waits() -> None:
    events = Wakeup()
    deliveries = events.fork()
    events.signal_local()  # what a commit's NOTIFY (or another process's signal) arrives as
    assert events.wait(0) and not events.wait(0)  # one loop's wait clears its own flag only
    assert deliveries.wait(0) and not deliveries.wait(0)
    deliveries.signal()
    assert events.wait(0) and deliveries.wait(0)
