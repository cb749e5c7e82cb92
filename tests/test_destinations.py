"""Destinations (issue 16): deliveries written with the event at ingest, POSTed signed with
Standard Webhooks to a real local HTTP server, retried, refused, disabled, paused by the
circuit breaker, kept in order per entity, and never lost to a killed worker."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from hookyard.alerts.rules import BY_KIND, AlertKind, RuleContext
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.schema import events
from hookyard.destinations import manage
from hookyard.destinations.circuit import Breaker
from hookyard.destinations.config import DestinationError, build_destinations
from hookyard.destinations.deliver import DeliveryJob, TokenBucket
from hookyard.destinations.fanout import DeliveryFanout
from hookyard.destinations.tables import attempts, deliveries, destinations, webhook_id
from hookyard.inbox.model import NewEvent
from hookyard.inbox.reads import EventFilter
from hookyard.runtime import Runtime
from hookyard.sources import load_sources_file
from hookyard.testing.fakes.receiver import Answer, Receiver
from hookyard.testing.fakes.server import serving
from tests.conftest import BACKEND, process_env
from tests.support import (
    SECRETS,
    SOURCES_TOML,
    TENANT_SOURCES,
    MovableClock,
    Proc,
    accept,
    add,
    delivery,
    free_port,
    hookyard,
    row,
    rows,
    start_server,
    wait_for,
)

SECRET = "whsec_" + base64.b64encode(b"destination-secret-for-tests-32b").decode()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    r = Receiver()
    with serving(r.app) as base:
        yield r, base + "/hooks"


def destination_toml(address: str, **options: Any) -> str:
    values: dict[str, Any] = {
        "name": "billing",
        "url": address,
        "secret": SECRET,
        "sources": ["demo", "acme-hooks"],
        "timeout_seconds": 5,
        "max_attempts": 4,
        **options,
    }
    lines = ["[[destination]]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_sources(tmp_path: Path, *destinations: str) -> Path:
    path = tmp_path / "sources-destinations.toml"
    path.write_text(SOURCES_TOML + TENANT_SOURCES + "\n" + "\n".join(destinations))
    return path


class Setup:
    def __init__(self, settings: Settings, tmp_path: Path, *destinations: str) -> None:
        self.path = write_sources(tmp_path, *destinations)
        self.settings = settings.model_copy(update={"sources": self.path})
        self.runtime = Runtime.build(self.settings)
        # Ahead of the events' received_at, which is when their deliveries fall due.
        self.clock = MovableClock(datetime.now(UTC) + timedelta(seconds=5))
        self.job = DeliveryJob(
            self.runtime.engine,
            self.runtime.sources.destinations,
            backoff_base=10.0,
            backoff_max=600.0,
            breaker=Breaker(failures=3, probe_seconds=30.0),
            clock=self.clock,
        )

    @property
    def engine(self) -> Any:
        return self.runtime.engine

    def passes(self, n: int = 1, advance: float = 0.0) -> int:
        sent = 0
        for _ in range(n):
            sent += self.job.run_pass("w1")
            self.clock.advance(advance)
        return sent

    def close(self) -> None:
        self.job.close()
        self.runtime.close()


@pytest.fixture
def make(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    made: list[Setup] = []

    def build(*destinations: str) -> Setup:
        setup = Setup(settings, tmp_path, *destinations)
        made.append(setup)
        return setup

    yield build
    for setup in made:
        setup.close()


def the_delivery(setup: Setup, **where: Any) -> dict[str, Any]:
    return row(setup.engine, deliveries, *(deliveries.c[k] == v for k, v in where.items()))


# -- signing and the happy path ----------------------------------------------------------------


def test_a_delivery_verifies_with_the_standard_webhooks_library(make: Any, receiver: Any) -> None:
    r, url = receiver
    setup = make(destination_toml(url))
    [event_id] = accept(setup.runtime, "demo")
    assert setup.passes() == 1
    [got] = r.received
    hook = standardwebhooks.Webhook(SECRET)
    payload = hook.verify(got.body, got.headers)
    assert payload["type"]  # the provider's own JSON, byte for byte
    sent = the_delivery(setup, event_id=event_id)
    assert got.headers["webhook-id"] == webhook_id(sent["id"])
    assert got.headers["x-hookyard-source"] == "demo"
    assert got.headers["x-hookyard-event-type"] == payload["type"]
    assert got.headers["content-type"].startswith("application/json")
    assert sent["status"] == "delivered" and sent["attempts"] == 1
    [attempt] = rows(setup.engine, attempts)
    assert attempt["status_code"] == 200 and attempt["response_excerpt"] == "ok"
    assert attempt["outcome"] == "delivered" and attempt["latency_ms"] >= 0
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRETS["generic"]).verify(got.body, got.headers)


def test_an_event_accepted_over_http_has_its_delivery_in_the_same_commit(
    make: Any, receiver: Any
) -> None:
    _, url = receiver
    setup = make(destination_toml(url, event_types=["invoice.*", "ping"]))
    demo = setup.runtime.sources.by_name()["demo"]
    with TestClient(create_app(setup.runtime, run_workers=False)) as client:
        wanted = delivery(demo, 1, event="invoice.paid")
        other = delivery(demo, 2, event="customer.created")
        for d in (wanted, other, wanted):  # the repeat is a duplicate: no second delivery
            assert client.post("/webhooks/in/demo", content=d.body, headers=d.headers).is_success
    [made] = rows(setup.engine, deliveries)
    assert made["event_type"] == "invoice.paid" and made["status"] == "pending"
    assert made["destination"] == "billing" and made["source"] == "demo"


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's statement trace counts them")
def test_a_batch_no_destination_takes_runs_no_statement_for_it(make: Any, receiver: Any) -> None:
    _, url = receiver
    setup = make(destination_toml(url, sources=["demo"]))
    traced: list[str] = []
    setup.engine.pool.dispose()  # new connections, traced
    event.listen(setup.engine, "connect", lambda conn, _: conn.set_trace_callback(traced.append))
    add(setup.runtime, "acme", source="acme-hooks", n=3)
    assert traced and not [t for t in traced if "destination_deliveries" in t]
    accept(setup.runtime, "demo", 2)
    # One executemany, which SQLite traces once per row.
    assert len([t for t in traced if "INSERT INTO destination_deliveries" in t]) == 2


def test_the_fanout_matches_sources_types_and_tenants() -> None:
    configured = build_destinations(
        [
            {"name": "all", "url": "http://x", "secret": SECRET, "sources": ["a"]},
            {
                "name": "acme-only",
                "url": "https://x",
                "secret": SECRET,
                "sources": ["a", "b"],
                "event_types": ["invoice.*"],
                "tenant": "acme",
                "ordered": True,
            },
        ],
        ["a", "b"],
    )
    fanout = DeliveryFanout(configured)
    at = datetime.now(UTC)

    def new(source: str, kind: str, tenant: str | None, key: str) -> NewEvent:
        return NewEvent(source, "generic", tenant, kind, key, "ent-1", None, {}, b"{}", None, at)

    batch = [
        new("a", "invoice.paid", "acme", "k1"),
        new("a", "invoice.paid", "globex", "k2"),
        new("b", "customer.created", "acme", "k3"),
        new("c", "invoice.paid", "acme", "k4"),
        new("a", "invoice.paid", "acme", "k5"),  # a duplicate: not in `inserted`
    ]
    inserted = {("a", "k1"): 1, ("a", "k2"): 2, ("b", "k3"): 3, ("c", "k4"): 4}
    made = fanout.rows(batch, inserted, sqlite=False)
    assert sorted((r[0], r[1], r[5]) for r in made) == [
        ("acme-only", 1, "ent-1"),  # ordered: the entity key is kept
        ("all", 1, None),
        ("all", 2, None),
    ]
    assert fanout.rows(batch[2:4], inserted, sqlite=True) == []  # nothing to run
    assert not DeliveryFanout(build_destinations([], ["a"]))


# -- retries, refusals, 410 ----------------------------------------------------------------------


def test_503_503_200_is_delivered_on_the_third_attempt_with_one_webhook_id(
    make: Any, receiver: Any
) -> None:
    r, url = receiver
    r.answer(Answer(503, {"retry-after": "120"}), 503, 200)
    setup = make(destination_toml(url))
    [event_id] = accept(setup.runtime, "demo")
    assert setup.passes() == 1
    first = the_delivery(setup, event_id=event_id)
    assert first["status"] == "failed" and first["last_status_code"] == 503
    # Retry-After: 120 outweighs the backoff's first wait (5-10 s).
    assert first["next_attempt_at"] >= setup.clock() + timedelta(seconds=120)
    setup.clock.advance(60)
    assert setup.passes() == 0  # not before Retry-After
    setup.clock.advance(61)
    assert setup.passes() == 1
    setup.clock.advance(3600)
    assert setup.passes() == 1
    done = the_delivery(setup, event_id=event_id)
    assert done["status"] == "delivered" and done["attempts"] == 3
    assert len({got.headers["webhook-id"] for got in r.received}) == 1
    assert len(r.received) == 3
    assert [a["outcome"] for a in rows(setup.engine, attempts)] == ["retry", "retry", "delivered"]
    assert [a["attempt"] for a in rows(setup.engine, attempts)] == [1, 2, 3]


def test_retries_end_dead_after_max_attempts(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(500, 500)
    setup = make(destination_toml(url, max_attempts=2))
    accept(setup.runtime, "demo")
    setup.passes(3, advance=3600)
    dead = the_delivery(setup, destination="billing")
    assert dead["status"] == "dead" and dead["attempts"] == 2 and dead["finished_at"] is not None
    assert len(r.received) == 2


def test_no_answer_is_retried_a_timeout_and_a_refused_connection(make: Any, receiver: Any) -> None:
    r, url = receiver
    setup = make(
        destination_toml(url, timeout_seconds=0.3),
        destination_toml(f"http://127.0.0.1:{free_port()}/hooks", name="nobody"),
    )
    r.hold()
    try:
        accept(setup.runtime, "demo")
        assert setup.passes() == 2
    finally:
        r.release.set()
    found = {a["destination"]: a for a in rows(setup.engine, attempts)}
    assert found["billing"]["error"].startswith("ReadTimeout")
    assert found["nobody"]["error"].startswith("ConnectError")
    assert {a["status_code"] for a in found.values()} == {None}
    assert {a["outcome"] for a in found.values()} == {"retry"}
    assert {d["status"] for d in rows(setup.engine, deliveries)} == {"failed"}


def test_each_pass_starts_with_another_destination(make: Any, receiver: Any) -> None:
    """Claims go one destination at a time (in its due index's order); when a pass has room
    for fewer than are waiting, the destinations take turns at being first."""
    r, url = receiver
    setup = make(destination_toml(url), destination_toml(url, name="audit"))
    setup.job.batch_size = 3
    accept(setup.runtime, "demo", 4)  # four deliveries to each
    firsts = []
    for _ in range(2):
        before = len(rows(setup.engine, attempts))
        assert setup.passes() == 3
        taken = rows(setup.engine, attempts)[before:]
        firsts.append(sorted(a["destination"] for a in taken))
    assert sorted(firsts) == [["audit", "audit", "audit"], ["billing", "billing", "billing"]]
    setup.passes(2)
    assert len(r.received) == 8
    assert {d["status"] for d in rows(setup.engine, deliveries)} == {"delivered"}


def test_a_400_is_dead_at_once_and_a_replay_delivers_it(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(Answer(400, body=b'{"error":"unknown customer"}'))
    setup = make(destination_toml(url))
    [event_id] = accept(setup.runtime, "demo")
    setup.passes()
    dead = the_delivery(setup, event_id=event_id)
    assert dead["status"] == "dead" and dead["attempts"] == 1
    assert "unknown customer" in dead["last_error"]
    setup.clock.advance(3600)
    assert setup.passes() == 0
    assert manage.replay(setup.engine, [dead["id"]], tenant="globex") == 0  # not its tenant's
    assert manage.replay(setup.engine, [dead["id"]], clock=setup.clock) == 1
    assert setup.passes() == 1
    again = the_delivery(setup, event_id=event_id)
    assert again["status"] == "delivered" and again["replay_count"] == 1
    assert [g.headers["webhook-id"] for g in r.received] == [webhook_id(dead["id"])] * 2


def test_a_410_disables_the_destination_and_its_deliveries_wait(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(Answer(410, body=b"endpoint removed"))
    setup = make(destination_toml(url, rate_per_second=1))
    accept(setup.runtime, "demo", 3)
    assert setup.passes() == 1  # one token a second: one send
    state = row(setup.engine, destinations, destinations.c.name == "billing")
    assert state["state"] == "disabled" and "endpoint removed" in state["disabled_reason"]
    setup.clock.advance(3600)
    assert setup.passes() == 0
    waiting = rows(setup.engine, deliveries)
    assert [d["status"] for d in waiting] == ["pending"] * 3  # none lost
    assert setup.job.next_due_at() is None  # nothing to wake for
    assert manage.resume(setup.engine, "billing", tenant="acme") is False  # shared: not acme's
    assert manage.resume(setup.engine, "billing")
    wait_for(lambda: setup.passes() == 0 and len(r.received) == 4, timeout=10)
    assert [d["status"] for d in rows(setup.engine, deliveries)] == ["delivered"] * 3


def test_pause_holds_deliveries_until_resumed(make: Any, receiver: Any) -> None:
    r, url = receiver
    setup = make(destination_toml(url))
    assert manage.pause(setup.engine, "billing")
    accept(setup.runtime, "demo", 2)
    assert setup.passes() == 0 and r.received == []
    assert manage.resume(setup.engine, "billing")
    assert setup.passes() == 2


# -- the circuit breaker --------------------------------------------------------------------------


def test_the_circuit_opens_probes_and_closes(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(503, 503, 503, 503)  # three to open it, one failed probe
    setup = make(destination_toml(url, max_attempts=20))
    accept(setup.runtime, "demo", 3)
    setup.passes()  # the three fail together: the circuit opens
    state = row(setup.engine, destinations, destinations.c.name == "billing")
    assert state["circuit"] == "open" and state["consecutive_failures"] == 3
    alert = BY_KIND[AlertKind.DESTINATION_CIRCUIT_OPEN]
    with setup.engine.connect() as conn:
        [firing] = alert.measure(conn, RuleContext(setup.clock(), setup.settings))
    assert firing.subject == "destination:billing" and firing.value == 1
    setup.clock.advance(29)  # every retry is due (within 10 s): held while open
    assert setup.passes() == 0  # the probe's time has not come (30 s after it opened)
    setup.clock.advance(1)
    assert setup.passes() == 1  # the probe, fails
    assert len(r.received) == 4
    assert setup.passes() == 0  # one probe per interval
    setup.clock.advance(30)
    assert setup.passes() == 1  # the probe succeeds: closed
    state = row(setup.engine, destinations, destinations.c.name == "billing")
    assert state["circuit"] == "closed" and state["consecutive_failures"] == 0
    assert [a["probe"] for a in rows(setup.engine, attempts)] == [False] * 3 + [True] * 2
    with setup.engine.connect() as conn:
        assert alert.measure(conn, RuleContext(setup.clock(), setup.settings)) == []
    assert setup.passes() == 2  # the others flow again
    assert {d["status"] for d in rows(setup.engine, deliveries)} == {"delivered"}


def test_a_delivered_pass_clears_failures_without_touching_a_clean_row(
    make: Any, receiver: Any
) -> None:
    """Through a closed circuit, a pass whose sends all succeeded writes the destination's
    row only to clear failures another pass counted; a clean row is not written at all."""
    r, url = receiver
    r.answer(503, 503, 200, 200, 200)
    setup = make(destination_toml(url, max_attempts=20))
    accept(setup.runtime, "demo", 2)
    setup.passes()  # two failures, below the three that open it
    state = row(setup.engine, destinations, destinations.c.name == "billing")
    assert (state["circuit"], state["consecutive_failures"]) == ("closed", 2)
    setup.clock.advance(3600)
    assert setup.passes() == 2  # both delivered: the count is cleared
    cleared = row(setup.engine, destinations, destinations.c.name == "billing")
    assert cleared["consecutive_failures"] == 0 and cleared["updated_at"] > state["updated_at"]
    accept(setup.runtime, "demo", 1)
    setup.clock.advance(60)
    assert setup.passes() == 1
    clean = row(setup.engine, destinations, destinations.c.name == "billing")
    assert clean["updated_at"] == cleared["updated_at"]  # nothing to clear: not written
    assert {d["status"] for d in rows(setup.engine, deliveries)} == {"delivered"}


# -- order per entity -----------------------------------------------------------------------------


def test_ordered_keeps_one_entitys_order_under_retries(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(503, 200, 200, 503, 200)
    setup = make(destination_toml(url, ordered=True, sources=["acme-hooks"]))
    for i in range(3):
        add(setup.runtime, "acme", entity="lead:1", payload={"n": i})
    assert setup.passes() == 1  # lead:1's first (fails); not lead:1's next
    add(setup.runtime, "acme", entity="lead:2", payload={"n": "other"})
    setup.clock.advance(3600)
    assert setup.passes() == 2  # lead:1's first again, beside lead:2's: not blocked by it
    for _ in range(6):
        setup.clock.advance(3600)
        setup.passes()
    order = [json.loads(g.body)["n"] for g in r.received]
    # Each one sent, and retried until delivered, before the next is sent.
    assert [n for n in order if n != "other"] == [0, 0, 1, 1, 2]
    assert {d["status"] for d in rows(setup.engine, deliveries)} == {"delivered"}


def test_a_dead_delivery_does_not_block_its_entity(make: Any, receiver: Any) -> None:
    r, url = receiver
    r.answer(400)
    setup = make(destination_toml(url, ordered=True, sources=["acme-hooks"]))
    for i in range(2):
        add(setup.runtime, "acme", entity="lead:1", payload={"n": i})
    setup.passes(2)
    assert [d["status"] for d in rows(setup.engine, deliveries)] == ["dead", "delivered"]


def test_concurrent_claimers_never_lease_two_deliveries_of_one_entity(
    make: Any, receiver: Any
) -> None:
    _, url = receiver
    setup = make(destination_toml(url, ordered=True, sources=["acme-hooks"]))
    for i in range(6):
        add(setup.runtime, "acme", entity="lead:1", payload={"n": i})
    add(setup.runtime, "acme", entity="lead:2")
    barrier = threading.Barrier(3)
    taken: list[int] = []

    def claimer(name: str) -> None:
        barrier.wait()
        taken.extend(r["id"] for r in setup.job._claim(name, ["billing"], 10))

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    leased = rows(setup.engine, deliveries, deliveries.c.status == "sending")
    assert sorted(taken) == [d["id"] for d in leased]
    assert sorted(d["entity_key"] for d in leased) == ["lead:1", "lead:2"]
    assert min(d["id"] for d in leased if d["entity_key"] == "lead:1") == 1  # the first


# -- the started worker threads -----------------------------------------------------------------


def test_started_workers_send_in_loops_of_their_own_woken_by_new_deliveries(
    make: Any, receiver: Any
) -> None:
    r, url = receiver
    setup = make(destination_toml(url))
    runtime = setup.runtime
    runtime.start_workers(1)
    loops = [w for w in runtime.workers if not w.handles_events]
    # PostgreSQL: beside the event loop (SQLite: the one writer, sent from the event loop).
    assert len(loops) == (runtime.settings.destination_loops if BACKEND == "postgresql" else 0)
    accept(runtime, "demo")
    runtime.wakeup.signal()  # as ingest's commit does
    wait_for(lambda: len(r.received) == 1, timeout=10)
    wait_for(lambda: rows(setup.engine, events)[0]["status"] == "done", timeout=10)
    accept(runtime, "demo", 2)  # while every loop is idle
    runtime.wakeup.signal()
    made = rows(setup.engine, deliveries)
    assert len(made) > 1
    wait_for(lambda: len(r.received) == len(made), timeout=10)  # woken: the idle sleep is 15 s
    sent = lambda: {d["status"] for d in rows(setup.engine, deliveries)} == {"delivered"}  # noqa: E731
    wait_for(sent, timeout=10)
    runtime.stop_workers()
    assert not any(t.name.startswith("hookyard-jobs") for t in threading.enumerate())


# -- a killed worker ----------------------------------------------------------------------------


def test_kill_9_of_a_worker_mid_delivery_loses_nothing(
    make: Any, receiver: Any, tmp_path: Path
) -> None:
    r, url = receiver
    setup = make(destination_toml(url, timeout_seconds=60))
    [event_id] = accept(setup.runtime, "demo")
    r.hold()
    env = process_env(setup.settings, HOOKYARD_SOURCES=str(setup.path))
    worker = Proc(["worker", "--threads", "1"], env, tmp_path / "worker.log")
    try:
        wait_for(lambda: r.received, timeout=30)
        worker.kill9()
    finally:
        worker.stop()
        r.release.set()
    held = the_delivery(setup, event_id=event_id)
    assert held["status"] == "sending" and held["lease_owner"]
    setup.clock.advance(3600)  # the dead worker's lease runs out
    assert setup.passes() == 1
    done = the_delivery(setup, event_id=event_id)
    assert done["status"] == "delivered" and done["attempts"] == 2
    assert [g.headers["webhook-id"] for g in r.received] == [webhook_id(done["id"])] * 2


def test_serve_delivers_from_its_worker_processes(
    settings: Settings, tmp_path: Path, receiver: Any
) -> None:
    r, url = receiver
    path = write_sources(tmp_path, destination_toml(url))
    env = process_env(settings, HOOKYARD_SOURCES=str(path))
    server, base = start_server(env, tmp_path / "serve.log", "--processes", "1", "--workers", "1")
    try:
        demo = load_sources_file(path).by_name()["demo"]
        sent = delivery(demo, 7)
        answer = httpx.post(base + "/webhooks/in/demo", content=sent.body, headers=sent.headers)
        assert answer.status_code == 200
        wait_for(lambda: r.received, timeout=10)
        [got] = r.received
        assert got.body == sent.body  # the provider's bytes, as received
        standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
    finally:
        server.stop()


# -- rate ---------------------------------------------------------------------------------------


def test_the_token_bucket_grants_its_rate() -> None:
    bucket = TokenBucket(2)
    assert bucket.wait_seconds() == 0
    assert bucket.take(10) == 2
    assert bucket.take(1) == 0
    assert 0 < bucket.wait_seconds() <= 0.5  # the next token, at two a second
    bucket.give_back(1)
    assert bucket.take(5) == 1


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://127.0.0.1/hooks"}, "destination 'billing': url must be http or https"),
        ({"secret": ""}, "destination 'billing': secret is empty"),
        ({"secret": "whsec_"}, "destination 'billing': secret is empty"),
        ({"secret": "not-a-key"}, "destination 'billing': secret must be a Standard Webhooks"),
        ({"secret": "whsec_!!!"}, "destination 'billing': secret is not valid base64"),
        (
            {"sources": ["demo", "nope"]},
            "destination 'billing': sources names unknown source 'nope'",
        ),
        ({"timeout_seconds": 0}, "destination 'billing': timeout_seconds"),
        ({"event_types": [""]}, "destination 'billing': event_types must be non-empty"),
        ({"colour": "blue"}, "destination 'billing': colour is not a destination setting"),
    ],
)
def test_bad_configuration_names_the_setting(options: dict[str, Any], message: str) -> None:
    raw = {
        "name": "billing",
        "url": "http://127.0.0.1/hooks",
        "secret": SECRET,
        "sources": ["demo"],
    }
    with pytest.raises(DestinationError) as caught:
        build_destinations([{**raw, **options}], ["demo"])
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "file:///etc/passwd"}, "url must be http or https"),
        ({"secret": "${UNSET_DESTINATION_SECRET}"}, "secret is empty"),
        ({"sources": ["stripe"]}, "sources names unknown source 'stripe'"),
    ],
)
def test_serve_refuses_to_start_on_bad_configuration(
    settings: Settings, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    path = write_sources(tmp_path, destination_toml("http://127.0.0.1:9/hooks", **options))
    env = process_env(settings, HOOKYARD_SOURCES=str(path))
    env.pop("UNSET_DESTINATION_SECRET", None)
    done = hookyard(env, "serve", "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode == 2
    assert f"hookyard: destination 'billing': {message}" in done.stderr


def test_destination_rows_follow_the_configuration(make: Any, receiver: Any) -> None:
    _, url = receiver
    setup = make(destination_toml(url, tenant="acme", sources=["acme-hooks"]))
    with setup.engine.connect() as conn:
        found = conn.execute(select(destinations.c.name, destinations.c.tenant)).all()
    assert [tuple(f) for f in found] == [("billing", "acme")]
    add(setup.runtime, "acme", source="acme-hooks")
    add(setup.runtime, "globex", source="acme-hooks")  # not acme's: a tenant's destination skips it
    assert [d["tenant"] for d in rows(setup.engine, deliveries)] == ["acme"]


# -- retention -------------------------------------------------------------------------------


def finished_long_ago(runtime: Runtime, ids: list[int]) -> None:
    """The events handled, 40 days ago (beyond the 30 days the purges below keep)."""
    at = datetime.now(UTC) - timedelta(days=40)
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id.in_(ids)).values(status="done", received_at=at))


def test_retention_keeps_an_event_a_delivery_waits_for_and_purges_the_others_with_theirs(
    make: Any, receiver: Any
) -> None:
    r, url = receiver
    setup = make(destination_toml(url))
    _, dead, waiting = ids = accept(setup.runtime, "demo", 3)
    assert setup.passes() == 3
    of = {e: the_delivery(setup, event_id=e)["id"] for e in ids}
    with setup.engine.begin() as tx:
        tx.execute(update(deliveries).where(deliveries.c.id == of[dead]).values(status="dead"))
    assert manage.replay(setup.engine, [of[waiting]]) == 1  # waiting again (e.g. a circuit)
    finished_long_ago(setup.runtime, ids)
    cutoff = datetime.now(UTC) - timedelta(days=30)

    assert setup.runtime.store.purge_finished(cutoff) == 2
    assert [e["id"] for e in setup.runtime.store.list_events(EventFilter())] == [waiting]
    assert [d["event_id"] for d in rows(setup.engine, deliveries)] == [waiting]
    assert {a["delivery_id"] for a in rows(setup.engine, attempts)} == {of[waiting]}
    # It is sent from the event still stored, then goes with it.
    assert setup.passes() == 1
    assert the_delivery(setup, event_id=waiting)["status"] == "delivered"
    assert len(r.received) == 4
    assert setup.runtime.store.purge_finished(cutoff) == 1
    assert rows(setup.engine, deliveries) == [] and rows(setup.engine, attempts) == []


def test_a_removed_destinations_deliveries_stay_held_and_keep_their_events(
    make: Any, receiver: Any, settings: Settings
) -> None:
    _, url = receiver
    setup = make(destination_toml(url))
    [held] = accept(setup.runtime, "demo")
    finished_long_ago(setup.runtime, [held])
    # Restarted without the destination (settings: the sources file without it).
    without = Runtime.build(settings)
    try:
        assert not len(without.sources.destinations)
        cutoff = datetime.now(UTC) - timedelta(days=30)
        assert without.store.purge_finished(cutoff) == 0
        purged = hookyard(process_env(settings), "events", "purge", "--older-than-days", "30")
        assert purged.returncode == 0 and "purged 0 finished events" in purged.stdout
        assert without.store.get(held) is not None
        assert the_delivery(setup, event_id=held)["status"] == "pending"
    finally:
        without.close()
