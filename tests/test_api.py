"""The management API: the bearer token, event lists, details, replay; service endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from hookyard.app import create_app
from hookyard.runtime import Runtime
from tests.conftest import SECRETS
from tests.support import EVENT_FIELDS, accept, delivery

AUTH = {"Authorization": f"Bearer {SECRETS['admin']}"}


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/1"),
        ("POST", "/api/v1/events/1/replay"),
        ("POST", "/api/v1/events/replay"),
        ("GET", "/api/v1/sources"),
        ("GET", "/api/v1/stats/deliveries"),
        ("GET", "/api/v1/rejected"),
    ],
)
def test_management_api_needs_the_admin_token(
    client: TestClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_list_filters_and_paginates(client: TestClient, runtime: Runtime) -> None:
    effects_ids = accept(runtime, "effects", 5)
    accept(runtime, "c2s", 2)
    page = client.get(
        "/api/v1/events", params={"source": "effects", "limit": 2}, headers=AUTH
    ).json()
    assert [e["id"] for e in page["items"]] == sorted(effects_ids, reverse=True)[:2]
    seen = [e["id"] for e in page["items"]]
    while page["next_cursor"]:
        page = client.get(
            "/api/v1/events",
            params={"source": "effects", "limit": 2, "before_id": page["next_cursor"]},
            headers=AUTH,
        ).json()
        seen += [e["id"] for e in page["items"]]
    assert sorted(seen) == effects_ids
    by_provider = client.get("/api/v1/events", params={"provider": "c2s"}, headers=AUTH).json()
    assert {e["event_type"] for e in by_provider["items"]} == {"on_create_lead"}
    assert len(by_provider["items"]) == 2
    assert set(by_provider["items"][0]) >= EVENT_FIELDS
    pending = client.get("/api/v1/events", params={"status": "pending"}, headers=AUTH).json()
    assert len(pending["items"]) == 7
    assert client.get("/api/v1/events", params={"status": "nope"}, headers=AUTH).status_code == 422
    future = client.get("/api/v1/events", params={"since": "2999-01-01T00:00:00Z"}, headers=AUTH)
    assert future.json()["items"] == []
    found = client.get("/api/v1/events", params={"q": "INVOICE.", "limit": 500}, headers=AUTH)
    assert ids_of(found) >= set(effects_ids)


def ids_of(response: httpx.Response) -> set[int]:
    return {e["id"] for e in response.json()["items"]}


def test_the_admin_token_counts_deliveries_of_every_tenant(
    client: TestClient, runtime: Runtime
) -> None:
    ids = accept(runtime, "effects", 3)
    assert runtime.make_worker().drain() == 3
    stats = client.get("/api/v1/stats/deliveries", headers=AUTH).json()
    [today] = stats["days"]
    assert (today["source"], today["total"], today["done"], today["success_rate"]) == (
        "effects", 3, 3, 1.0,
    )  # fmt: skip
    assert today["latency"]["samples"] == len(ids) and today["latency"]["max"] >= 0


def test_show_and_replay_one_event(client: TestClient, runtime: Runtime) -> None:
    [event_id] = accept(runtime, "poison")
    runtime.make_worker().drain()
    detail = client.get(f"/api/v1/events/{event_id}", headers=AUTH).json()
    assert detail["status"] == "failed"
    assert detail["last_error"].startswith("ValueError")
    assert detail["payload"]["type"] == "invoice.paid"
    assert detail["body_encoding"] == "utf-8"
    assert client.get("/api/v1/events/999999", headers=AUTH).status_code == 404
    replay = client.post(f"/api/v1/events/{event_id}/replay", headers=AUTH)
    assert replay.json() == {"replayed": 1}
    assert client.get(f"/api/v1/events/{event_id}", headers=AUTH).json()["status"] == "pending"
    assert client.post("/api/v1/events/999999/replay", headers=AUTH).status_code == 404


def test_bulk_replay_of_dead_events(client: TestClient, runtime: Runtime) -> None:
    from sqlalchemy import update

    from hookyard.db.schema import events

    ids = accept(runtime, "poison", 3)
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).values(status="dead", attempts=3))
    response = client.post("/api/v1/events/replay", json={"source": "poison"}, headers=AUTH)
    assert response.json() == {"replayed": 3}
    statuses = {client.get(f"/api/v1/events/{i}", headers=AUTH).json()["status"] for i in ids}
    assert statuses == {"pending"}


def test_service_endpoints(client: TestClient, runtime: Runtime) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    accept(runtime, "effects", 2)
    metrics = client.get("/metrics", headers=AUTH).text  # docs/security.md: not public
    assert "hookyard_queue_depth 2.0" in metrics
    assert "hookyard_oldest_pending_age_seconds" in metrics
    assert "hookyard_ack_latency_seconds_bucket" in metrics
    schema = client.get("/openapi.json").json()
    assert "/api/v1/events" in schema["paths"]


def test_sources_and_rejected_lists(client: TestClient, runtime: Runtime) -> None:
    names = {s["name"] for s in client.get("/api/v1/sources", headers=AUTH).json()}
    assert {"demo", "hubspot", "meta", "c2s", "tcr-brands"} <= names
    d = delivery(runtime.sources.by_name()["c2s"])
    client.post(
        d.url.replace("http://testserver", ""),
        content=d.body,
        headers={**d.headers, "x-webhook-token": "wrong"},
    )
    from tests.support import wait_for

    rejected = wait_for(lambda: client.get("/api/v1/rejected", headers=AUTH).json())
    assert rejected[0]["status_code"] == 401 and rejected[0]["source"] == "c2s"
    # Credentials are never kept, not even wrong ones.
    [row] = runtime.store.rejected()
    assert "x-webhook-token" not in row["headers"]
    assert "content-type" in row["headers"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers?customer_type=%00z",
        "/api/v1/events?source=a%00b",
        "/api/v1/leads?status=open&q=%00",
    ],
)
def test_a_nul_in_a_filter_is_a_clear_error_not_a_5xx(client: TestClient, path: str) -> None:
    # PostgreSQL refuses NUL in text; found by schemathesis (tests/test_openapi.py).
    response = client.get(path, headers=AUTH)
    assert response.status_code in (200, 400, 422), response.text
    assert "detail" in response.json() or response.status_code == 200
