"""The events API by role and tenant: who reads, who replays, what one tenant never sees of
another's events, personal data masked for viewers, sources, and delivery statistics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookyard.api.schemas import mask_personal
from hookyard.inbox.model import RejectedRequest
from hookyard.runtime import Runtime
from tests.conftest import SECRETS, SOURCES_TOML
from tests.people import TENANTS, People
from tests.support import LEAD, TENANT_SOURCES, add, set_status


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML + TENANT_SOURCES)
    return path


def ids_of(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {e["id"] for e in response.json()["items"]}


# -- authentication and roles ---------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/1"),
    ("POST", "/api/v1/events/1/replay"),
    ("POST", "/api/v1/events/replay"),
    ("GET", "/api/v1/sources"),
    ("GET", "/api/v1/stats/deliveries"),
    ("GET", "/api/v1/rejected"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer hk_deadbeef_not-a-key-anyone-has"},
        {"Authorization": "Bearer not-the-admin-token"},
        {"Authorization": f"Basic {SECRETS['admin']}"},
    ],
)
@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_needs_known_credentials(
    api: TestClient, people: People, headers: dict[str, str], method: str, path: str
) -> None:
    response = api.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


# route -> the roles that may call it (of viewer, member, admin, superadmin acting for acme)
MINIMUM = {
    ("GET", "/api/v1/events"): {"viewer", "member", "admin", "superadmin"},
    ("GET", "/api/v1/events/{id}"): {"viewer", "member", "admin", "superadmin"},
    ("GET", "/api/v1/sources"): {"viewer", "member", "admin", "superadmin"},
    ("GET", "/api/v1/stats/deliveries"): {"viewer", "member", "admin", "superadmin"},
    ("POST", "/api/v1/events/{id}/replay"): {"admin", "superadmin"},
    ("POST", "/api/v1/events/replay"): {"admin", "superadmin"},
    ("GET", "/api/v1/rejected"): {"superadmin"},
}


@pytest.mark.parametrize("route", list(MINIMUM), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_route_admits_its_roles_and_refuses_the_rest(
    api: TestClient, people: People, runtime: Runtime, route: tuple[str, str]
) -> None:
    [event_id] = add(runtime, "acme")
    method, template = route
    path = template.replace("{id}", str(event_id))
    for role, headers in people.every("acme").items():
        response = api.request(method, path, headers=headers, json={"status": None})
        if role in MINIMUM[route]:
            assert response.status_code == 200, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert "role" in response.json()["detail"]


def test_a_viewer_reads_but_cannot_replay_and_an_admin_replays(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    [event_id] = add(runtime, "acme")
    set_status(runtime, [event_id], "dead", attempts=3)
    viewer, admin = people.headers("acme", "viewer"), people.headers("acme", "admin")
    assert api.get(f"/api/v1/events/{event_id}", headers=viewer).json()["status"] == "dead"
    assert api.post(f"/api/v1/events/{event_id}/replay", headers=viewer).status_code == 403
    assert api.post("/api/v1/events/replay", headers=viewer, json={}).status_code == 403
    assert api.get(f"/api/v1/events/{event_id}", headers=viewer).json()["status"] == "dead"

    replayed = api.post(f"/api/v1/events/{event_id}/replay", headers=admin)
    assert replayed.json() == {"replayed": 1}
    detail = api.get(f"/api/v1/events/{event_id}", headers=admin).json()
    assert (detail["status"], detail["attempts"], detail["replay_count"]) == ("pending", 0, 1)


def test_an_event_being_processed_is_not_replayed(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    [event_id] = add(runtime, "acme")
    set_status(runtime, [event_id], "processing")
    response = api.post(
        f"/api/v1/events/{event_id}/replay", headers=people.headers("acme", "admin")
    )
    assert response.status_code == 409
    assert "being processed" in response.json()["detail"]


def test_the_rejected_log_is_for_superadmins_only(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    runtime.store.insert_batch(
        [],
        [RejectedRequest("acme-hooks", "/webhooks/in/acme-hooks", 401, "bad token",
                         "198.51.100.9", {"content-type": "application/json"},
                         b'{"email": "someone@example.com"}', datetime.now(UTC))],
    )  # fmt: skip
    for headers in (people.headers("acme", "admin"), people.headers("globex", "admin")):
        assert api.get("/api/v1/rejected", headers=headers).status_code == 403
    for headers in (people.superadmin(), people.superadmin("acme")):
        [row] = api.get("/api/v1/rejected", headers=headers).json()
        assert row["reason"] == "bad token" and row["status_code"] == 401
        assert "body_excerpt" not in row and "headers" not in row


# -- tenants --------------------------------------------------------------------------------


@pytest.fixture
def two_tenants(runtime: Runtime) -> dict[str, list[int]]:
    """acme's and globex's events, named alike so that only the tenant tells them apart,
    and one event no tenant owns yet."""
    return {
        "acme": add(runtime, "acme", "acme-hooks", 2, key="order-1", entity="lead:7")
        + add(runtime, "acme", "demo", event_type="invoice.paid", key="inv-1"),
        "globex": add(runtime, "globex", "globex-hooks", 2, key="order-1", entity="lead:7")
        + add(runtime, "globex", "demo", event_type="invoice.paid", key="inv-2"),
        "none": add(runtime, None, "demo", event_type="invoice.paid", key="inv-orphan"),
    }


def every_id(groups: dict[str, list[int]]) -> list[int]:
    return [i for ids in groups.values() for i in ids]


def test_lists_filters_and_search_never_show_another_tenants_events(
    api: TestClient, people: People, two_tenants: dict[str, list[int]]
) -> None:
    acme, globex = set(two_tenants["acme"]), set(two_tenants["globex"])
    for role in ("viewer", "member", "admin"):
        headers = people.headers("acme", role)
        assert ids_of(api.get("/api/v1/events", headers=headers)) == acme
        for params in (
            {"source": "demo"},
            {"event_type": "invoice.paid"},
            {"provider": "generic"},
            {"q": "order-1"},
            {"q": "LEAD:7"},
            {"q": "invoice"},
            {"status": "pending"},
        ):
            found = ids_of(api.get("/api/v1/events", params=params, headers=headers))
            assert found and found <= acme, params
        theirs = api.get("/api/v1/events", params={"source": "globex-hooks"}, headers=headers)
        assert ids_of(theirs) == set()
    globex_viewer = people.headers("globex", "viewer")
    orders = api.get("/api/v1/events", params={"q": "order"}, headers=globex_viewer)
    assert ids_of(orders) == set(two_tenants["globex"][:2]) and len(globex) == 3


def test_paging_stays_in_the_tenant(
    api: TestClient, people: People, two_tenants: dict[str, list[int]]
) -> None:
    headers, seen, cursor = people.headers("acme", "viewer"), [], None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"before_id": cursor} if cursor else {})
        page = api.get("/api/v1/events", params=params, headers=headers).json()
        seen += [e["id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == two_tenants["acme"]


def test_another_tenants_event_by_id_is_404(
    api: TestClient, people: People, two_tenants: dict[str, list[int]]
) -> None:
    theirs = two_tenants["globex"][0]
    missing = max(every_id(two_tenants)) + 1000
    for event_id in (theirs, two_tenants["none"][0], missing):
        for role in ("viewer", "admin"):
            response = api.get(f"/api/v1/events/{event_id}", headers=people.headers("acme", role))
            assert response.status_code == 404
            assert response.json() == {"detail": f"no event {event_id}"}
        replay = api.post(
            f"/api/v1/events/{event_id}/replay", headers=people.headers("acme", "admin")
        )
        assert replay.status_code == 404
        assert replay.json() == {"detail": f"no event {event_id}"}
    own = api.get(f"/api/v1/events/{theirs}", headers=people.headers("globex", "viewer"))
    assert own.status_code == 200


def test_bulk_replay_replays_only_the_scopes_events(
    api: TestClient, people: People, runtime: Runtime, two_tenants: dict[str, list[int]]
) -> None:
    everything = every_id(two_tenants)
    set_status(runtime, everything, "dead", attempts=3)
    acme_admin = people.headers("acme", "admin")
    response = api.post("/api/v1/events/replay", headers=acme_admin, json={"q": "ORDER"})
    assert response.json() == {"replayed": 2}
    response = api.post("/api/v1/events/replay", headers=acme_admin, json={})  # every dead one
    assert response.json() == {"replayed": 1}
    statuses = {i: (runtime.store.get(i) or {})["status"] for i in everything}
    assert {statuses[i] for i in two_tenants["acme"]} == {"pending"}
    assert {statuses[i] for i in two_tenants["globex"] + two_tenants["none"]} == {"dead"}
    # A superadmin acting for globex reaches globex's; without X-Customer-ID, every one left.
    for headers, replayed in ((people.superadmin(TENANTS["globex"]), 3), (people.superadmin(), 1)):
        response = api.post("/api/v1/events/replay", headers=headers, json={})
        assert response.json() == {"replayed": replayed}


def test_a_superadmin_sees_every_tenant_or_the_one_picked(
    api: TestClient, people: People, two_tenants: dict[str, list[int]]
) -> None:
    everything = set(every_id(two_tenants))
    assert ids_of(api.get("/api/v1/events", headers=people.superadmin())) == everything
    for picked in ("globex", TENANTS["globex"]):  # a tenant id or its BAN
        headers = people.superadmin(picked)
        assert ids_of(api.get("/api/v1/events", headers=headers)) == set(two_tenants["globex"])
        acme_event = two_tenants["acme"][0]
        assert api.get(f"/api/v1/events/{acme_event}", headers=headers).status_code == 404
    unknown = api.get("/api/v1/events", headers=people.superadmin("nobody"))
    assert unknown.status_code == 404


def test_naming_another_tenant_is_refused(api: TestClient, people: People) -> None:
    headers = {**people.headers("acme", "admin"), "X-Customer-ID": "globex"}
    for method, path in ROUTES[:-1]:
        assert api.request(method, path, headers=headers, json={}).status_code == 403


# -- personal data --------------------------------------------------------------------------


def test_a_viewer_gets_the_event_without_personal_data(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    [event_id] = add(runtime, "acme", payload=LEAD, entity="lead:c2s-lead-1")
    set_status(runtime, [event_id], "failed", last_error="ValueError: boom",
               last_traceback="Traceback ...\nValueError: boom")  # fmt: skip
    response = api.get(f"/api/v1/events/{event_id}", headers=people.headers("acme", "viewer"))
    detail = response.json()
    assert detail["masked"] is True
    assert detail["payload"] == {
        "id": "c2s-lead-1",
        "hook_action": "on_create_lead",
        "attributes": {
            "customer": {"name": "***", "email": "***", "phone": "***", "cpf": "***"},
            "company_name": "Acme Imóveis",
            "phones": "***",
            "notes": None,
        },
    }
    assert detail["headers"] is None and detail["body"] is None
    assert detail["body_encoding"] is None and detail["last_traceback"] is None
    assert detail["status"] == "failed" and detail["last_error"] == "ValueError: boom"
    for secret in ("maria", "Maria", "11987654321", "12345678909", "11912345678", "203.0.113"):
        assert secret not in response.text

    for role in ("member", "admin"):
        full = api.get(f"/api/v1/events/{event_id}", headers=people.headers("acme", role)).json()
        assert full["masked"] is False
        assert full["payload"] == LEAD
        assert full["last_traceback"].startswith("Traceback")
        # The request's raw bytes and headers: superadmins only (a request can carry other
        # tenants' events).
        assert full["body"] is None and full["body_encoding"] is None and full["headers"] is None

    raw = api.get(f"/api/v1/events/{event_id}", headers=people.superadmin("acme")).json()
    assert raw["payload"] == LEAD and raw["request_id"] is not None
    assert json.loads(raw["body"]) == LEAD and raw["body_encoding"] == "utf-8"
    assert raw["headers"]["x-forwarded-for"] == "203.0.113.7"


def test_personal_keys_are_masked_at_any_depth_whatever_they_hold() -> None:
    value = {
        "E-Mail": "a@b.c",
        "customerEmail": "a@b.c",
        "mobile_phone": 5511987654321,
        "Document": {"type": "cpf", "number": "123"},
        "contacts": [{"full_name": "Ana", "wa_id": "5511"}, {"First-Name": "Bo"}],
        "address": ["street 1"],
        "birth_date": "1990-01-01",
        "event_name": "lead.created",
        "company": {"name": "Acme", "id": 7},
        "phone": None,
        "text": "plain",
    }
    assert mask_personal(value) == {
        "E-Mail": "***",
        "customerEmail": "***",
        "mobile_phone": "***",
        "Document": "***",
        "contacts": [{"full_name": "***", "wa_id": "***"}, {"First-Name": "***"}],
        "address": "***",
        "birth_date": "***",
        "event_name": "lead.created",
        "company": {"name": "***", "id": 7},  # a "name" is masked wherever it is
        "phone": None,
        "text": "plain",
    }
    assert mask_personal([1, "two", None]) == [1, "two", None]
    assert mask_personal(None) is None


# -- sources --------------------------------------------------------------------------------


def test_sources_are_the_tenants_and_the_shared_ones_without_secrets(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    add(runtime, "acme", "acme-hooks", 3)
    [dead] = add(runtime, "acme", "demo", at=datetime.now(UTC) - timedelta(days=3))
    set_status(runtime, [dead], "dead")
    add(runtime, "globex", "demo", 4)
    add(runtime, "globex", "globex-hooks", 2)
    response = api.get("/api/v1/sources", headers=people.headers("acme", "viewer"))
    sources = {s["name"]: s for s in response.json()}
    assert "globex-hooks" not in sources
    assert {"acme-hooks", "demo", "hubspot", "meta", "c2s", "tcr-brands"} <= set(sources)
    assert sources["acme-hooks"]["tenant"] == "acme" and sources["demo"]["tenant"] is None
    for name in SECRETS.values():
        assert name not in response.text
    assert "secret" not in response.text and "token" not in json.dumps(list(sources["c2s"]))
    acme_hooks, demo = sources["acme-hooks"]["health"], sources["demo"]["health"]
    assert (acme_hooks["window_hours"], acme_hooks["received"], acme_hooks["dead"]) == (24, 3, 0)
    assert acme_hooks["last_received_at"] is not None
    # globex's 4 events through the shared source are not acme's to count.
    assert (demo["received"], demo["last_received_at"], demo["dead"]) == (0, None, 1)
    assert sources["c2s"]["health"] == {
        "window_hours": 24, "received": 0, "last_received_at": None, "dead": 0,
    }  # fmt: skip

    everyone = {
        s["name"]: s for s in api.get("/api/v1/sources", headers=people.superadmin()).json()
    }
    assert {"acme-hooks", "globex-hooks"} <= set(everyone)
    assert everyone["demo"]["health"]["received"] == 4 and everyone["demo"]["health"]["dead"] == 1
    globex = api.get("/api/v1/sources", headers=people.superadmin("globex")).json()
    assert "acme-hooks" not in {s["name"] for s in globex}


# -- delivery statistics --------------------------------------------------------------------

D1 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
D2 = datetime(2024, 5, 2, tzinfo=UTC)


def finished(runtime: Runtime, tenant: str, source: str, status: str,
             at: datetime, latencies: list[float]) -> None:  # fmt: skip
    for seconds in latencies:
        [i] = add(runtime, tenant, source, at=at)
        set_status(runtime, [i], status, processed_at=at + timedelta(seconds=seconds))


def unfinished(
    runtime: Runtime, tenant: str, source: str, status: str, at: datetime, n: int
) -> None:
    set_status(runtime, add(runtime, tenant, source, n, at=at), status)


@pytest.fixture
def deliveries(runtime: Runtime) -> None:
    finished(runtime, "acme", "acme-hooks", "done", D1, [1, 2, 3, 4])
    finished(runtime, "acme", "acme-hooks", "ignored", D1, [10])
    finished(runtime, "acme", "acme-hooks", "superseded", D1, [5])
    # The last half-second of May 1st (UTC) is still May 1st.
    finished(runtime, "acme", "acme-hooks", "done", D1.replace(hour=23, minute=59, second=59,
             microsecond=500_000), [0.25])  # fmt: skip
    unfinished(runtime, "acme", "acme-hooks", "dead", D1, 2)
    unfinished(runtime, "acme", "acme-hooks", "failed", D1, 1)
    unfinished(runtime, "acme", "acme-hooks", "pending", D1, 1)
    unfinished(runtime, "acme", "acme-hooks", "processing", D1, 1)
    finished(runtime, "acme", "acme-hooks", "done", D2, [2])  # midnight: May 2nd
    unfinished(runtime, "acme", "acme-hooks", "dead", D2, 1)
    finished(runtime, "acme", "demo", "done", D1, [3])
    finished(runtime, "acme", "tokened", "done", D2, [float(s) for s in range(20, 0, -1)])
    # globex's, through a shared source and its own: never in acme's numbers.
    finished(runtime, "globex", "demo", "done", D1, [100])
    unfinished(runtime, "globex", "demo", "dead", D1, 3)
    finished(runtime, "globex", "globex-hooks", "done", D1, [1])


def stats(api: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    params = {"since": "2024-04-01T00:00:00Z", "until": "2024-06-01T00:00:00Z"} | params
    response = api.get("/api/v1/stats/deliveries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_key(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["day"], d["source"]): d for d in body["days"]}


@pytest.mark.usefixtures("deliveries")
def test_delivery_statistics_per_source_and_utc_day(api: TestClient, people: People) -> None:
    body = stats(api, people.headers("acme", "viewer"))
    days = by_key(body)
    assert list(days) == [
        ("2024-05-01", "acme-hooks"), ("2024-05-01", "demo"),
        ("2024-05-02", "acme-hooks"), ("2024-05-02", "tokened"),
    ]  # fmt: skip
    may1 = days[("2024-05-01", "acme-hooks")]
    assert {k: v for k, v in may1.items() if k != "latency"} == {
        "source": "acme-hooks", "day": "2024-05-01", "total": 12, "done": 5, "ignored": 1,
        "superseded": 1, "failed": 1, "dead": 2, "pending": 1, "processing": 1,
        "success_rate": round(7 / 9, 4),
    }  # fmt: skip
    # Latencies [0.25, 1, 2, 3, 4, 5, 10]: nearest-rank p95 is the 7th of 7.
    assert may1["latency"] == {
        "samples": 7, "average": round(25.25 / 7, 3), "p95": 10.0, "max": 10.0,
    }  # fmt: skip
    may2 = days[("2024-05-02", "acme-hooks")]
    assert (may2["total"], may2["done"], may2["dead"], may2["success_rate"]) == (2, 1, 1, 0.5)
    assert may2["latency"] == {"samples": 1, "average": 2.0, "p95": 2.0, "max": 2.0}
    # 1..20 seconds: the 19th is the p95, not the maximum.
    tokened = days[("2024-05-02", "tokened")]
    assert tokened["latency"] == {"samples": 20, "average": 10.5, "p95": 19.0, "max": 20.0}
    assert tokened["success_rate"] == 1.0
    demo = days[("2024-05-01", "demo")]
    assert (demo["total"], demo["done"], demo["dead"], demo["latency"]["max"]) == (1, 1, 0, 3.0)


@pytest.mark.usefixtures("deliveries")
def test_delivery_statistics_by_tenant_window_and_source(api: TestClient, people: People) -> None:
    globex = by_key(stats(api, people.headers("globex", "viewer")))
    assert list(globex) == [("2024-05-01", "demo"), ("2024-05-01", "globex-hooks")]
    assert globex[("2024-05-01", "demo")]["total"] == 4
    assert globex[("2024-05-01", "demo")]["success_rate"] == 0.25
    everyone = by_key(stats(api, people.superadmin()))
    assert everyone[("2024-05-01", "demo")]["total"] == 5
    assert everyone[("2024-05-01", "demo")]["latency"]["max"] == 100.0
    assert by_key(stats(api, people.superadmin("acme"))) == by_key(
        stats(api, people.headers("acme", "admin"))
    )

    acme = people.headers("acme", "member")
    may1 = stats(api, acme, since="2024-05-01T00:00:00Z", until="2024-05-02T00:00:00Z")
    assert [(d["day"], d["source"]) for d in may1["days"]] == [
        ("2024-05-01", "acme-hooks"), ("2024-05-01", "demo"),
    ]  # fmt: skip
    only = stats(api, acme, source="acme-hooks")
    assert {d["source"] for d in only["days"]} == {"acme-hooks"}
    assert stats(api, acme, source="globex-hooks")["days"] == []
    # By default the last 7 days; a window longer than 366 days is cut to those before until.
    recent = api.get("/api/v1/stats/deliveries", headers=acme).json()
    assert recent["days"] == []
    until = datetime.fromisoformat(recent["until"])
    assert until - datetime.fromisoformat(recent["since"]) == timedelta(days=7)
    long = stats(api, acme, since="1990-01-01T00:00:00Z", until="2024-06-01T00:00:00Z")
    assert long["since"].startswith("2023-06-01") and len(long["days"]) == 4
    backwards = stats(api, acme, since="2024-06-01T00:00:00Z", until="2024-04-01T00:00:00Z")
    assert backwards["days"] == []


# -- odd input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/events", {"since": "0001-01-01T00:00:00+05:00"}),
        ("/api/v1/events", {"until": "9999-12-31T23:59:59-05:00"}),
        ("/api/v1/events", {"since": "2024-05-01t00:00:00.123456789z"}),
        ("/api/v1/events", {"q": "ü💥\u202e%_'\";--"}),
        ("/api/v1/events", {"q": ""}),
        ("/api/v1/events?q=%ED%A0%80%FF", {}),  # not UTF-8
        ("/api/v1/stats/deliveries", {"until": "0001-01-01T00:00:00Z"}),
        ("/api/v1/stats/deliveries", {"since": "0001-01-01T00:00:00+05:00"}),
        ("/api/v1/stats/deliveries", {"until": "9999-12-31T23:59:59.999999-12:00"}),
    ],
)
def test_odd_but_valid_input_is_answered(
    api: TestClient, people: People, runtime: Runtime, path: str, params: dict[str, str]
) -> None:
    add(runtime, "acme", key="100%_sure")
    response = api.get(path, params=params, headers=people.headers("acme", "viewer"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body",
    ['{"source": "\\ud800"}', '{"q": "\\udfff\\ud83d\\udca5"}', '{"\\ud800": 1}', '"\\ud800"'],
)
def test_lone_surrogates_in_a_replay_filter_are_no_error(
    api: TestClient, people: People, body: str
) -> None:
    # JSON allows them, UTF-8 (hence both databases, and an error that echoes one) does not.
    headers = {**people.headers("acme", "admin"), "content-type": "application/json"}
    response = api.post("/api/v1/events/replay", content=body, headers=headers)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json() == {"replayed": 0}


def test_wildcards_in_a_search_are_plain_characters(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    [literal] = add(runtime, "acme", key="100%_sure")
    add(runtime, "acme", key="1000-sure")
    headers = people.headers("acme", "viewer")
    assert ids_of(api.get("/api/v1/events", params={"q": "0%_S"}, headers=headers)) == {literal}
    assert ids_of(api.get("/api/v1/events", params={"q": "0_s"}, headers=headers)) == set()


@pytest.mark.parametrize(
    "method, path, params, body",
    [
        ("GET", "/api/v1/events", {"q": "a\x00b"}, None),
        ("GET", "/api/v1/events", {"source": "x" * 101}, None),
        ("GET", "/api/v1/events", {"before_id": str(2**63)}, None),
        ("GET", "/api/v1/events", {"since": "10000-01-01T00:00:00Z"}, None),
        ("GET", "/api/v1/events", {"since": "2024-05-01T00:00:00"}, None),  # no offset
        ("GET", "/api/v1/events", {"until": "2024-05-01"}, None),
        ("GET", "/api/v1/events", {"until": "2024-02-30T00:00:00Z"}, None),
        ("GET", "/api/v1/stats/deliveries", {"until": "1714521600"}, None),
        ("GET", "/api/v1/stats/deliveries", {"since": "0.5"}, None),
        ("POST", "/api/v1/events/replay", {}, '{"since": 1714521600}'),
        ("GET", "/api/v1/events/9223372036854775808", {}, None),
        ("GET", "/api/v1/events/0", {}, None),
        ("POST", "/api/v1/events/0/replay", {}, None),
        ("GET", "/api/v1/stats/deliveries", {"source": "\x00"}, None),
        ("POST", "/api/v1/events/replay", {}, '{"q": "\\u0000"}'),
        ("POST", "/api/v1/events/replay", {}, '{"status": "gone"}'),
        ("POST", "/api/v1/events/replay", {}, '{"limit": 0}'),
        ("POST", "/api/v1/events/replay", {}, '{"tenant": "globex"}'),
    ],
)
def test_invalid_input_is_422(
    api: TestClient,
    people: People,
    method: str,
    path: str,
    params: dict[str, str],
    body: str | None,
) -> None:
    headers = {**people.superadmin(), "content-type": "application/json"}
    response = api.request(method, path, params=params, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_a_wrong_method_is_405_with_the_right_allow(api: TestClient, people: People) -> None:
    for method in ("GET", "OPTIONS", "DELETE", "PUT"):
        response = api.request(method, "/api/v1/events/replay", headers=people.superadmin())
        assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_an_id_that_is_no_number_is_no_route(api: TestClient, people: People) -> None:
    for path in ("/api/v1/events/abc", "/api/v1/events/-1", "/api/v1/events/1.5/replay"):
        response = api.request("GET" if path.count("/") == 4 else "POST", path,
                               headers=people.superadmin())  # fmt: skip
        assert response.status_code == 404, path


def test_every_route_declares_its_errors(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for method, path in ROUTES:
        template = path.replace("/1", "/{event_id}")
        responses = paths[template][method.lower()]["responses"]
        assert {"200", "401", "403", "404"} <= set(responses), (method, path)
    assert "409" in paths["/api/v1/events/{event_id}/replay"]["post"]["responses"]
