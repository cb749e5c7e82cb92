"""A request's raw bytes are stored once, apart from its events: a batch of several events
makes one `requests` row, a redelivery none, retention removes what no event names, and only
superadmins read the raw bytes (a request can carry several tenants' events)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from hookyard.app import create_app
from hookyard.db.migrate import upgrade
from hookyard.db.schema import Id, UTCDateTime, events, requests
from hookyard.inbox.model import NewEvent
from hookyard.inbox.store import EventStore
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet
from hookyard.testing.simulate import hubspot_delivery, hubspot_property_change
from tests.conftest import SECRETS
from tests.people import People
from tests.web_support import login, page_of


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def count(engine: Engine, table=requests) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def shared_request(runtime: Runtime, tenants: list[str | None], batch: str = "") -> list[int]:
    """One request carrying an event for each of `tenants` (a shared account's batch); the
    events' keys are `event:{batch}{i}`."""
    batch = batch or secrets.token_hex(3)
    body = json.dumps([{"tenant": t, "secret": f"{t}-only"} for t in tenants]).encode()
    request = object()
    now = datetime.now(UTC)
    new = [
        NewEvent("hubspot", "hubspot", tenant, "company.propertyChange", f"event:{batch}{i}",
                 f"company:{i}", now, {"content-type": "application/json"}, body,
                 {"tenant": tenant, "secret": f"{tenant}-only"}, now, request=request)
        for i, tenant in enumerate(tenants)
    ]  # fmt: skip
    ids = runtime.store.insert_batch(new)
    return [ids[("hubspot", e.dedup_key)] for e in new]


def test_a_batch_of_events_is_one_request_and_a_redelivery_none(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    items = [hubspot_property_change(900 + i, "name", f"Acme {i}") for i in range(3)]
    d = hubspot_delivery(SECRETS["hubspot"], "http://testserver/webhooks/hubspot/company", items)
    answer = client.post("/webhooks/hubspot/company", content=d.body, headers=d.headers)
    assert answer.status_code == 200 and len(answer.json()["events"]) == 3
    with runtime.engine.connect() as conn:
        stored = conn.execute(select(requests.c.id, requests.c.body, requests.c.headers)).all()
        named = set(conn.execute(select(events.c.request_id)).scalars())
        payloads = list(conn.execute(select(events.c.payload).order_by(events.c.id)).scalars())
    [(request_id, body, headers)] = stored
    assert body == d.body and named == {request_id}
    assert payloads == items  # each event keeps its own item, not the whole array
    assert "x-hubspot-request-timestamp" in headers

    again = client.post("/webhooks/hubspot/company", content=d.body, headers=d.headers)
    assert again.json()["status"] == "duplicate"
    assert count(runtime.engine) == 1


def test_a_partly_new_batch_is_stored_once_with_its_new_events(runtime: Runtime) -> None:
    first = shared_request(runtime, ["acme", "acme"], batch="a")
    body = b'[{"again": true}]'
    now = datetime.now(UTC)
    request = object()
    new = [
        NewEvent("hubspot", "hubspot", "acme", "company.propertyChange", key, None, now,
                 {}, body, {"k": key}, now, request=request)
        for key in ("event:a0", "event:b0")  # event:a0 is stored already
    ]  # fmt: skip
    ids = runtime.store.insert_batch(new)
    assert list(ids) == [("hubspot", "event:b0")]
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(events.c.id, events.c.request_id).order_by(events.c.id)).all()
    assert len({r.request_id for r in rows}) == 2 and count(runtime.engine) == 2
    assert rows[0].id == first[0]


def test_retention_removes_the_requests_no_event_names(runtime: Runtime) -> None:
    old = shared_request(runtime, ["acme", "globex"])
    keep = shared_request(runtime, ["acme"])  # received now: kept
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id.in_(old + keep)).values(status="done"))
        tx.execute(update(events).where(events.c.id.in_(old)).values(received_at=long_ago))
        old_requests = select(events.c.request_id).where(events.c.id.in_(old))
        tx.execute(
            update(requests).where(requests.c.id.in_(old_requests)).values(received_at=long_ago)
        )
    assert runtime.store.purge_finished(datetime.now(UTC) - timedelta(days=30)) == 2
    assert count(runtime.engine) == 1 and count(runtime.engine, events) == 1


def test_a_member_reads_their_events_payload_never_the_shared_raw_bytes(
    client: TestClient, runtime: Runtime, people: People
) -> None:
    acme_event, globex_event = shared_request(runtime, ["acme", "globex"])
    for role in ("viewer", "member", "admin"):
        headers = people.headers("acme", role)
        answer = client.get(f"/api/v1/events/{acme_event}", headers=headers)
        assert answer.status_code == 200
        assert "globex-only" not in answer.text  # nothing of the other tenant's event
        detail = answer.json()
        assert detail["body"] is None and detail["headers"] is None
        if role != "viewer":
            assert detail["payload"] == {"tenant": "acme", "secret": "acme-only"}
        assert client.get(f"/api/v1/events/{globex_event}", headers=headers).status_code == 404
        listed = client.get("/api/v1/events", headers=headers)
        assert {e["id"] for e in listed.json()["items"]} == {acme_event}
        assert "globex" not in listed.text
        # The dashboard, logged in as that person: the event's page and the lists.
        login(client, f"{role}@acme.example.com")
        for path in (f"/ui/events/{acme_event}", "/ui/events", "/ui/events?status=pending"):
            page = page_of(client, path)
            assert "globex-only" not in page and "acme" in page
        page_of(client, f"/ui/events/{globex_event}", 404)
        client.cookies.clear()
    raw = client.get(f"/api/v1/events/{acme_event}", headers=people.superadmin()).json()
    assert "globex-only" in raw["body"] and raw["headers"] == {"content-type": "application/json"}


def test_existing_events_move_their_bytes_to_requests(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0012")
    now = datetime.now(UTC)
    with empty_engine.begin() as conn:
        conn.execute(
            insert(_events_0012()),
            [{"source": "c2s", "provider": "c2s", "event_type": "on_create_lead",
              "dedup_key": f"k{i}", "status": "done", "attempts": 1, "next_attempt_at": now,
              "origin": "webhook", "replay_count": 0, "headers": {"x-n": str(i)},
              "body": b'{"id": %d}' % i, "payload": None, "received_at": now}
             for i in range(3)],
        )  # fmt: skip
    upgrade(empty_engine)
    inbox = EventStore(empty_engine)
    for event_id in (1, 2, 3):
        row = inbox.get(event_id)
        assert row is not None
        assert row["payload"] == {"id": event_id - 1} and row["request_id"] == event_id
        assert row["headers"] == {"x-n": str(event_id - 1)}
    # New requests take ids after the moved ones.
    new = NewEvent("c2s", "c2s", None, "on_create_lead", "k9", None, None, {}, b"{}", None, now)
    [event_id] = inbox.insert_batch([new]).values()
    row = inbox.get(event_id)
    assert row is not None and row["request_id"] == 4


def _events_0012() -> Table:
    """`events` as migration 0012 left it (with the body and headers of its request)."""
    return Table(
        "events", MetaData(),
        Column("id", Id, primary_key=True), Column("source", String), Column("provider", String),
        Column("event_type", String), Column("dedup_key", String), Column("status", String),
        Column("attempts", Integer), Column("next_attempt_at", UTCDateTime()),
        Column("origin", String), Column("replay_count", Integer), Column("headers", JSON),
        Column("body", LargeBinary), Column("payload", JSON(none_as_null=True)),
        Column("received_at", UTCDateTime()),
    )  # fmt: skip
