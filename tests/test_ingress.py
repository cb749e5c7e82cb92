"""The ingest contract: given these headers and this body, this status and these rows."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hookyard.app import create_app
from hookyard.db.schema import events, rejected_requests
from hookyard.inbox.store import EventStore
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet
from tests.conftest import SECRETS
from tests.support import delivery, wait_for


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def post(client: TestClient, d, **overrides):  # type: ignore[no-untyped-def]
    headers = {**d.headers, **overrides.pop("headers", {})}
    return client.post(
        d.url.replace("http://testserver", ""),
        content=overrides.pop("body", d.body),
        headers=headers,
    )


def count(runtime: Runtime, table=events) -> int:  # type: ignore[no-untyped-def]
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_accepted_delivery_is_stored_before_the_answer(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    d = delivery(sources.by_name()["demo"], 1)
    response = post(client, d)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    [event_id] = response.json()["events"]
    row = EventStore(runtime.engine).get(event_id)
    assert row is not None
    assert row["source"] == "demo" and row["provider"] == "generic"
    assert row["status"] == "pending" and row["origin"] == "webhook" and row["attempts"] == 0
    assert row["event_type"] == "invoice.paid"
    assert row["dedup_key"] == f"id:{d.headers['webhook-id']}"
    assert row["body"] == d.body
    assert row["payload"] == json.loads(d.body)
    assert row["headers"]["webhook-id"] == d.headers["webhook-id"]


def test_duplicate_delivery_answers_200_and_is_stored_once(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    d = delivery(sources.by_name()["demo"], 1)
    first, second = post(client, d), post(client, d)
    assert first.status_code == second.status_code == 200
    assert second.json() == {"status": "duplicate", "events": [None]}
    assert count(runtime) == 1
    scraper = {"Authorization": f"Bearer {SECRETS['admin']}"}  # /metrics is not public
    assert (
        'hookyard_events_duplicate_total{source="demo"}'
        in client.get("/metrics", headers=scraper).text
    )


def test_unknown_source_is_404_with_a_reason(client: TestClient) -> None:
    response = client.post("/webhooks/in/nope", content=b"{}")
    assert response.status_code == 404
    assert "no source" in response.json()["error"]


def test_bad_signature_is_401_and_logged(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    d = delivery(sources.by_name()["demo"], 1)
    response = post(client, d, body=d.body + b" ")
    assert response.status_code == 401
    assert response.json()["error"] == "webhook-signature does not match"
    assert count(runtime) == 0
    # The rejected log is written by the inbox's writer, off the request's path.
    rows = wait_for(lambda: EventStore(runtime.engine).rejected())
    assert rows[0]["status_code"] == 401 and rows[0]["source"] == "demo"
    assert rows[0]["reason"] == "webhook-signature does not match"
    assert count(runtime, rejected_requests) == 1


def test_body_over_the_limit_is_413(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    d = delivery(sources.by_name()["demo"], 1)
    big = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    response = post(client, d, body=big)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert count(runtime) == 0


def test_wrong_content_type_is_415(client: TestClient, sources: SourceSet) -> None:
    d = delivery(sources.by_name()["demo"], 1)
    response = post(client, d, headers={"content-type": "text/xml"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_unparseable_body_is_400(client: TestClient, sources: SourceSet) -> None:
    from hookyard.providers import signing

    source = sources.by_name()["tokened"]
    response = client.post(
        "/webhooks/in/tokened",
        content=b"{not json",
        headers={"x-webhook-token": "test-shared-token", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    assert signing.constant_time_equal(source.config.secret, "test-shared-token")  # type: ignore[attr-defined]


def test_hubspot_array_becomes_one_event_per_item(
    client: TestClient, runtime: Runtime, sources: SourceSet
) -> None:
    from hookyard.providers import signing

    items = [
        {
            "eventId": 100 + i,
            "subscriptionType": "company.propertyChange",
            "objectId": 7,
            "occurredAt": 1763800000000 + i,
            "propertyName": "name",
            "propertyValue": f"v{i}",
            "portalId": 1,
            "appId": 2,
            "subscriptionId": 3,
            "attemptNumber": 0,
        }
        for i in range(3)
    ]
    body = json.dumps(items).encode()
    import time

    ts = str(int(time.time() * 1000))
    url = "http://testserver/webhooks/hubspot/company"
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signing.hubspot_v3(
            "test-hubspot-client-secret", "POST", url, body, ts
        ),
        "x-hubspot-request-timestamp": ts,
    }
    response = client.post("/webhooks/hubspot/company", content=body, headers=headers)
    assert response.status_code == 200
    ids = response.json()["events"]
    assert len(ids) == 3 and None not in ids
    stored = [EventStore(runtime.engine).get(i) for i in ids]
    assert [r["dedup_key"] for r in stored] == ["event:100", "event:101", "event:102"]  # type: ignore[index]
    assert [r["payload"]["propertyValue"] for r in stored] == ["v0", "v1", "v2"]  # type: ignore[index]
    assert {r["entity_key"] for r in stored} == {"company:7"}  # type: ignore[index]
    # HubSpot retries the same request: every item is a duplicate.
    again = client.post("/webhooks/hubspot/company", content=body, headers=headers)
    assert again.json() == {"status": "duplicate", "events": [None, None, None]}


def test_meta_handshake(client: TestClient) -> None:
    ok = client.get(
        "/api/v1/whatsapp/webhook",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "test-meta-verify-token",
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = client.get(
        "/api/v1/whatsapp/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    )
    assert bad.status_code == 403


def test_get_on_a_post_only_source_is_405(client: TestClient) -> None:
    response = client.get("/webhooks/in/demo")
    assert response.status_code == 405
    assert "POST" in response.json()["error"]


@pytest.mark.parametrize(
    "name", ["hubspot", "meta", "c2s", "tcr-brands", "tcr-open", "signed", "tokened", "demo"]
)
def test_every_simulated_provider_delivery_is_accepted(
    client: TestClient, sources: SourceSet, name: str
) -> None:
    response = post(client, delivery(sources.by_name()[name], 5))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"


def test_storage_failure_is_503_and_nothing_is_acknowledged(
    client: TestClient, runtime: Runtime, sources: SourceSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from hookyard.inbox.accept import GroupCommitter

    async def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database is gone"))

    # The commit itself fails (the real outages are in test_faults.py).
    monkeypatch.setattr(GroupCommitter, "_write", broken)
    response = post(client, delivery(sources.by_name()["demo"], 1))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "storage unavailable" in response.json()["error"]
