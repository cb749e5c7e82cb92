"""Fault injection: the guarantees hold when processes die, the database stops, deliveries
race each other, and a handler always fails. Real `hookyard` processes wherever it matters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.engine import make_engine
from hookyard.db.migrate import upgrade
from hookyard.db.schema import events
from hookyard.inbox.store import EventStore
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet
from tests.conftest import BACKEND, SECRETS, process_env
from tests.faults_support import (
    Load,
    PrivatePostgres,
    assert_acked_are_stored,
    assert_processed_exactly_once,
    effect_pids,
    effects_per_event,
    retry_unacknowledged,
    rows_by_dedup_key,
    send,
    status_counts,
    wait_all_done,
)
from tests.handlers import test_metadata
from tests.support import Proc, delivery, start_server, wait_for

ADMIN = {"Authorization": f"Bearer {SECRETS['admin']}"}


# -- 1. kill -9 the server under load ------------------------------------------------------


@pytest.mark.slow
def test_kill9_server_under_load_loses_no_acknowledged_event(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    env = process_env(settings, HOOKYARD_LEASE_SECONDS=2)
    source = sources.by_name()["effects"]
    server, base = start_server(env, tmp_path / "serve-1.log")
    restarted: Proc | None = None
    try:
        with Load(source, [base], threads=4, per_thread=3000, seconds=60) as load:
            # Kill while requests are in flight and the in-process worker is busy.
            load.wait_acked(300, timeout=60)
            server.kill9()
            load.stop()
        answers = load.snapshot()
        acked = [a for a in answers if a.acked]
        unanswered = [a for a in answers if a.status is None]
        assert acked and unanswered, (
            f"the kill should land mid-load: {len(acked)} acked, {len(unanswered)} unanswered"
        )
        assert {a.status for a in answers} <= {200, None}, load.statuses()
        assert all(a.body["status"] == "accepted" for a in acked)

        # Everything acknowledged is there after the crash, before anything else runs.
        assert_acked_are_stored(engine, answers)

        stored_at_crash = len(rows_by_dedup_key(engine))

        restarted, base = start_server(env, tmp_path / "serve-2.log")
        wait_all_done(engine, timeout=90)
        rows = assert_acked_are_stored(engine, answers)
        assert_processed_exactly_once(engine)
        # Nothing is stored that was never sent.
        assert set(rows) <= {a.dedup_key for a in answers}

        # The provider sends again what got no answer: now every delivery is stored once.
        retried = retry_unacknowledged(base, answers)
        wait_all_done(engine, timeout=90)
        rows = assert_acked_are_stored(engine, answers + retried)
        assert set(rows) == {a.dedup_key for a in answers}
        assert_processed_exactly_once(engine)
        late = Counter(a.body["status"] for a in retried)
        print(
            f"{len(acked)} acknowledged, {len(unanswered)} unanswered, {stored_at_crash} "
            f"stored at the crash; retries {dict(late)}"
        )
    except BaseException:
        print(server.output()[-3000:])
        if restarted is not None:
            print(restarted.output()[-3000:])
        raise
    finally:
        server.kill9()
        if restarted is not None:
            restarted.stop()


# -- 2. kill -9 a worker inside a handler --------------------------------------------------


@pytest.mark.slow
def test_worker_killed_inside_handler_commits_nothing_and_another_worker_finishes(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    env = process_env(settings, HOOKYARD_LEASE_SECONDS=2)
    source = sources.by_name()["effects"]
    server, base = start_server(env, tmp_path / "serve.log", "--no-worker")
    first: Proc | None = None
    second: Proc | None = None
    try:
        # Three events that each sleep 1.5 s in the handler: claimed together, they keep
        # the first worker inside one uncommitted transaction for about 4.5 s.
        with httpx.Client(timeout=15) as client:
            answers = [send(client, base, source, seq, sleep=1.5) for seq in range(3)]
        assert [a.status for a in answers] == [200, 200, 200], answers
        ids = [a.body["events"][0] for a in answers]

        first = Proc(["worker"], env, tmp_path / "worker-1.log")
        owner = f"{first.popen.pid}-"

        def claimed_by_first() -> bool:
            with engine.connect() as conn:
                owners = (
                    conn.execute(
                        select(events.c.lease_owner).where(
                            events.c.id.in_(ids), events.c.status == "processing"
                        )
                    )
                    .scalars()
                    .all()
                )
            return len(owners) == 3 and all(o and o.startswith(owner) for o in owners)

        wait_for(claimed_by_first, timeout=30, interval=0.05)
        assert not effects_per_event(engine), "the handlers' transaction committed too early"
        first.kill9()
        # The dead worker's open transaction was rolled back with it.
        assert not effects_per_event(engine)
        assert status_counts(engine) == Counter({"processing": 3})

        second = Proc(["worker"], env, tmp_path / "worker-2.log")
        wait_all_done(engine, timeout=60)
        assert_processed_exactly_once(engine)
        assert set(effect_pids(engine)) == {second.popen.pid}
        rows = rows_by_dedup_key(engine)
        # Claimed once by the killed worker, once (after the lease expired) by the other.
        assert sorted(r["attempts"] for r in rows.values()) == [2, 2, 2]
    except BaseException:
        for proc in (server, first, second):
            if proc is not None:
                print(f"--- {proc.args}\n{proc.output()[-3000:]}")
        raise
    finally:
        if first is not None:
            first.kill9()
        for proc in (second, server):
            if proc is not None:
                proc.stop()


# -- 3. PostgreSQL stopped (or frozen) under load --------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if BACKEND != "postgresql":
        pytest.skip("stops a PostgreSQL server: PostgreSQL only")
    reason = PrivatePostgres.available()
    if reason is not None:
        pytest.skip(f"cannot make a private PostgreSQL cluster: {reason}")
    cluster = PrivatePostgres()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


ACCEPT_TIMEOUT = 3  # seconds a hanging commit may hold a request before its 503


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_postgres_outage_under_load_answers_503_then_recovers(
    outage: str,
    private_postgres: PrivatePostgres,
    settings: Settings,
    sources: SourceSet,
    tmp_path: Path,
) -> None:
    """`stopped`: `pg_ctl stop -m immediate` (connections cut, nothing listening).
    `frozen`: every process of the cluster SIGSTOPped (a host that stops answering: commits
    hang, connects time out). Either way: 503s with a reason, never a hang or a 500, never a
    2xx for a row that is not there; then recovery, and the provider's retries close the gap."""
    url = private_postgres.create_database("hookyard")
    db = make_engine(url)
    upgrade(db)
    test_metadata.create_all(db)
    db.dispose()
    env = process_env(
        settings.model_copy(update={"database_url": url}),
        HOOKYARD_LEASE_SECONDS=2,
        HOOKYARD_ACCEPT_TIMEOUT_SECONDS=ACCEPT_TIMEOUT,
    )
    source = sources.by_name()["effects"]
    server, base = start_server(env, tmp_path / "serve.log")
    ready_answers: list[int] = []

    def ready() -> int:
        # The server must answer /ready, database or not: a timeout here fails the test.
        response = httpx.get(base + "/ready", timeout=15)
        ready_answers.append(response.status_code)
        if response.status_code != 200:
            assert response.status_code == 503, response.text
            assert response.json()["status"] == "unavailable"
        return response.status_code

    break_it, repair_it = {
        "stopped": (private_postgres.stop_immediately, private_postgres.start),
        "frozen": (private_postgres.freeze, private_postgres.thaw),
    }[outage]
    try:
        assert ready() == 200
        with Load(source, [base], threads=4, per_thread=4000, seconds=120) as load:
            load.wait_acked(200, timeout=60)
            break_it()
            broken_at = len(load.snapshot())

            # While the database is out: 503 with a JSON reason, for the provider to retry.
            def refused_while_out() -> int:
                return sum(1 for a in load.snapshot()[broken_at:] if a.status == 503)

            wait_for(lambda: refused_while_out() >= 20, timeout=60)
            if outage == "stopped":
                # (/ready while frozen has its own test: it may hang on a pooled connection.)
                wait_for(lambda: ready() == 503, timeout=60)
            during = load.snapshot()[broken_at:]
            for answer in during:
                if answer.status == 503:
                    assert "storage unavailable" in answer.body["error"], answer
            repair_it()
            repaired_at = len(load.snapshot())

            # Back: /ready is 200 again and new deliveries are acknowledged.
            wait_for(lambda: ready() == 200, timeout=60)
            wait_for(lambda: any(a.acked for a in load.snapshot()[repaired_at:]), timeout=60)
            acked_after = len(load.acked())
            wait_for(lambda: len(load.acked()) >= acked_after + 100, timeout=60)
        answers = load.snapshot()
        statuses = Counter(a.status for a in answers)
        unanswered = [a for a in answers if a.status is None]
        # The server stayed up: every request got an answer (a hang would be a timeout here).
        assert not unanswered, f"{len(unanswered)} requests got no answer: {unanswered[:3]}"
        assert set(statuses) <= {200, 503}, statuses
        assert 500 not in ready_answers

        db = make_engine(url)
        assert_acked_are_stored(db, answers)
        # The provider retries every 503: now each is accepted, or was stored after all.
        retried = retry_unacknowledged(base, answers)
        wait_all_done(db, timeout=90)
        rows = assert_acked_are_stored(db, answers + retried)
        assert set(rows) == {a.dedup_key for a in answers}
        assert_processed_exactly_once(db)
        slowest = max((a.seconds for a in during if a.status == 503), default=0.0)
        late_commits = Counter(a.body["status"] for a in retried)
        print(
            f"{outage}: statuses {dict(statuses)}, /ready {dict(Counter(ready_answers))}, "
            f"slowest 503 {slowest:.1f}s, retries {dict(late_commits)}"
        )
    except BaseException:
        print(server.output()[-4000:])
        print(private_postgres.server_log()[-2000:])
        raise
    finally:
        if outage == "frozen":
            private_postgres.thaw()
        server.stop()
        db.dispose()


@pytest.mark.slow
def test_service_endpoints_answer_503_in_bounded_time_when_postgres_is_frozen(
    private_postgres: PrivatePostgres, settings: Settings, tmp_path: Path
) -> None:
    """A database that stops answering (SIGSTOP: connections stay open, nothing replies) must
    not hang /ready or the management API: they answer 503 within a bound, like ingress.

    The pool is warmed first, so some requests reuse a connection to the frozen server
    (a fresh connect fails after connect_timeout; a reused one waits forever)."""
    url = private_postgres.create_database("hookyard")
    env = process_env(
        settings.model_copy(update={"database_url": url}),
        HOOKYARD_ACCEPT_TIMEOUT_SECONDS=ACCEPT_TIMEOUT,
        HOOKYARD_API_TIMEOUT_SECONDS=ACCEPT_TIMEOUT,
    )
    server, base = start_server(env, tmp_path / "serve.log", "--no-worker")
    probes = ["/ready"] * 8 + ["/api/v1/events"] * 4

    def all_at_once(paths: list[str], timeout: float) -> list[tuple[str, int | str, float]]:
        results: list[tuple[str, int | str, float]] = []

        def get(path: str) -> None:
            started = time.monotonic()
            try:
                status: int | str = httpx.get(
                    base + path, headers=ADMIN, timeout=timeout
                ).status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            results.append((path, status, round(time.monotonic() - started, 1)))

        threads = [threading.Thread(target=get, args=(p,)) for p in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 10)
        return sorted(results, key=lambda r: (r[0], str(r[1]), r[2]))

    try:
        warm = all_at_once(probes, timeout=15)
        assert {status for _, status, _ in warm} == {200}, warm
        private_postgres.freeze()
        frozen = all_at_once(probes, timeout=15)
        assert {status for _, status, _ in frozen} == {503}, (
            f"while the database is frozen, answers (path, status, seconds): {frozen}"
        )
        private_postgres.thaw()
        wait_for(lambda: httpx.get(base + "/ready", timeout=15).status_code == 200, timeout=60)
    except BaseException:
        print(server.output()[-3000:])
        raise
    finally:
        private_postgres.thaw()
        server.stop()


# -- 4. one delivery, ten times at once ----------------------------------------------------


def _race(
    clients: list[httpx.Client], path: str, headers: dict[str, str], body: bytes
) -> dict[int, httpx.Response | Exception]:
    """POST the same request from every client at once (released together by a barrier)."""
    barrier = threading.Barrier(len(clients))
    results: dict[int, httpx.Response | Exception] = {}

    def post(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = clients[i].post(path, content=body, headers=headers)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.slow
def test_concurrent_duplicates_are_stored_and_processed_once(
    settings: Settings, sources: SourceSet, engine: Engine, tmp_path: Path
) -> None:
    source = sources.by_name()["effects"]
    server, base = start_server(process_env(settings), tmp_path / "serve.log")
    rounds, copies = 5, 10
    try:
        clients = [httpx.Client(base_url=base, timeout=15) for _ in range(copies)]
        try:
            for seq in range(rounds):
                d = delivery(source, seq)
                path = d.url.replace("http://testserver", "")
                for client in clients:  # connections open, so the posts really race
                    assert client.get("/health").status_code == 200
                results = _race(clients, path, d.headers, d.body)
                responses = [r for r in results.values() if isinstance(r, httpx.Response)]
                assert len(responses) == copies, results
                assert [r.status_code for r in responses] == [200] * copies, [
                    r.text for r in responses
                ]
                bodies = [r.json() for r in responses]
                accepted = [b for b in bodies if b["status"] == "accepted"]
                assert len(accepted) == 1, bodies
                assert sorted(b["status"] for b in bodies).count("duplicate") == copies - 1
                assert all(b["events"] == [None] for b in bodies if b["status"] == "duplicate")
                with engine.connect() as conn:
                    ids = (
                        conn.execute(
                            select(events.c.id).where(
                                events.c.source == "effects",
                                events.c.dedup_key == f"id:{d.headers['webhook-id']}",
                            )
                        )
                        .scalars()
                        .all()
                    )
                assert ids == accepted[0]["events"]
        finally:
            for client in clients:
                client.close()
        assert len(rows_by_dedup_key(engine)) == rounds
        wait_all_done(engine, timeout=60)
        assert_processed_exactly_once(engine)
        metrics = httpx.get(base + "/metrics", headers=ADMIN, timeout=10).text
        expected = float(rounds * (copies - 1))
        assert f'hookyard_events_duplicate_total{{source="effects"}} {expected}' in metrics
    except BaseException:
        print(server.output()[-3000:])
        raise
    finally:
        server.stop()


# -- 5. a poison event -------------------------------------------------------------------


def test_poison_event_goes_dead_without_blocking_others_and_replays(
    runtime: Runtime, sources: SourceSet
) -> None:
    poison, good = sources.by_name()["poison"], sources.by_name()["effects"]
    store = EventStore(runtime.engine)
    max_attempts = runtime.settings.max_attempts
    assert max_attempts == 3
    with TestClient(create_app(runtime, run_workers=False)) as client:

        def post(d):  # type: ignore[no-untyped-def]
            response = client.post(
                d.url.replace("http://testserver", ""), content=d.body, headers=d.headers
            )
            assert response.status_code == 200, response.text
            [event_id] = response.json()["events"]
            return event_id

        # Interleaved, so poison and good events are claimed in the same batches.
        poison_ids, good_ids = [], []
        for seq in range(10):
            good_ids.append(post(delivery(good, seq)))
            if seq % 3 == 0:
                poison_ids.append(post(delivery(poison, seq)))
        worker = runtime.make_worker()

        def all_dead() -> bool:
            worker.drain()
            return all(store.get(i)["status"] == "dead" for i in poison_ids)  # type: ignore[index]

        wait_for(all_dead, timeout=30, interval=0.05)
        for event_id in good_ids:
            row = store.get(event_id)
            assert row is not None
            # Done on the first attempt: the poison in their batch held nothing back.
            assert (row["status"], row["attempts"]) == ("done", 1), row
        assert sorted(effects_per_event(runtime.engine)) == sorted(good_ids)
        assert set(effects_per_event(runtime.engine).values()) == {1}
        for event_id in poison_ids:
            row = store.get(event_id)
            assert row is not None
            assert row["attempts"] == max_attempts
            assert row["last_error"] == f"ValueError: poison event {event_id}"
            assert "always_fail" in row["last_traceback"]
            assert "ValueError: poison event" in row["last_traceback"]
            shown = client.get(f"/api/v1/events/{event_id}", headers=ADMIN).json()
            assert shown["status"] == "dead" and shown["last_error"] == row["last_error"]
        # Dead stays dead: nothing is due any more.
        assert worker.drain() == 0

        target = poison_ids[0]
        assert client.post(f"/api/v1/events/{target}/replay").status_code == 401
        response = client.post(f"/api/v1/events/{target}/replay", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json()["replayed"] == 1
        row = store.get(target)
        assert row is not None
        assert (row["status"], row["attempts"], row["replay_count"]) == ("pending", 0, 1)

        # It runs again, with a fresh budget of attempts, and dies again the same way.
        assert worker.run_once() == 1
        row = store.get(target)
        assert row is not None and row["attempts"] == 1 and row["status"] == "failed"

        def target_dead() -> bool:
            worker.drain()
            row = store.get(target)
            return row is not None and row["status"] == "dead"

        wait_for(target_dead, timeout=30, interval=0.05)
        row = store.get(target)
        assert row is not None
        assert row["attempts"] == max_attempts and row["replay_count"] == 1
        assert row["last_error"] == f"ValueError: poison event {target}"
        # The other poison events were not touched by that replay.
        for event_id in poison_ids[1:]:
            other = store.get(event_id)
            assert other is not None
            assert (other["status"], other["replay_count"]) == ("dead", 0)
