"""The destinations API by role and tenant: destinations with their health, deliveries with
every attempt, replay of one or of a filter, pause, resume and discard; what one tenant never sees
of another's; personal data in receivers' answers masked for viewers; bad input a 4xx."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import update

from hookyard.db.schema import events
from hookyard.destinations.tables import deliveries, destinations
from hookyard.runtime import Runtime
from tests.conftest import SOURCES_TOML
from tests.destinations_support import DESTINATION_SOURCES, add_delivery, ensure_destinations
from tests.people import People
from tests.support import SECRETS, add, row


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML + DESTINATION_SOURCES)
    return path


@dataclass
class Made:
    acme_event: int
    globex_event: int
    acme_dead: int  # acme-billing, dead after a 400 with personal data in the answer
    acme_ok: int  # acme-billing, delivered
    acme_sending: int  # acme-billing, being sent
    acme_shared: int  # audit (shared), acme's event, delivered
    globex_dead: int  # globex-billing
    globex_shared: int  # audit (shared), globex's event, dead


NOW = datetime.now(UTC)


def attempt(outcome: str, latency: int | None, status: int | None = None, **more: Any) -> Any:
    return {
        "outcome": outcome,
        "latency_ms": latency,
        "status_code": status,
        "started_at": more.pop("at", NOW - timedelta(minutes=5)),
        **more,
    }


@pytest.fixture
def made(runtime: Runtime, people: People) -> Made:
    engine = runtime.engine
    ensure_destinations(engine)
    [a1, a2, a3, a4] = add(runtime, "acme", n=4)
    [g1, g2] = add(runtime, "globex", "globex-hooks", n=2)
    answer = '{"error": "bad customer", "email": "maria.test@example.com", "code": 42}'
    return Made(
        acme_event=a1,
        globex_event=g1,
        acme_dead=add_delivery(
            engine, "acme-billing", a1, "acme", status="dead", last_status_code=400,
            last_error="400 Bad Request: 'maria.test@example.com' refused",
            tries=[attempt("dead", 30, 400, response_excerpt=answer,
                           error="400 from receiver for 'maria.test@example.com'")],
        ),
        acme_ok=add_delivery(
            engine, "acme-billing", a2, "acme", status="delivered",
            tries=[attempt("retry", 1000, 503, response_excerpt="busy"),
                   attempt("retry", None, None, error="timed out"),
                   attempt("delivered", 20, 200, response_excerpt="ok")],
        ),
        acme_sending=add_delivery(engine, "acme-billing", a3, "acme", status="sending"),
        acme_shared=add_delivery(
            engine, "audit", a4, "acme", status="delivered",
            tries=[attempt("delivered", 10, 204)],
        ),
        globex_dead=add_delivery(
            engine, "globex-billing", g1, "globex", status="dead", source="globex-hooks",
            tries=[attempt("dead", 50, 404)],
        ),
        globex_shared=add_delivery(
            engine, "audit", g2, "globex", status="dead", source="globex-hooks",
            tries=[attempt("retry", 5000, 500), attempt("dead", 7000, 500)],
        ),
    )  # fmt: skip


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def ids(response: Any) -> list[int]:
    return [d["id"] for d in ok(response)["items"]]


# -- credentials and roles ------------------------------------------------------------------

# route -> the roles that may call it (viewer, member, admin, superadmin acting for acme)
READ = {"viewer", "member", "admin", "superadmin"}
WRITE = {"admin", "superadmin"}
ROUTES = {
    ("GET", "/api/v1/destinations"): READ,
    ("GET", "/api/v1/destinations/acme-billing"): READ,
    ("GET", "/api/v1/destinations/acme-billing/deliveries"): READ,
    ("GET", "/api/v1/deliveries"): READ,
    ("GET", "/api/v1/deliveries/{dead}"): READ,
    ("GET", "/api/v1/events/{event}/deliveries"): READ,
    ("POST", "/api/v1/deliveries/{dead}/replay"): WRITE,
    ("POST", "/api/v1/deliveries/replay"): WRITE,
    ("POST", "/api/v1/destinations/acme-billing/pause"): WRITE,
    ("POST", "/api/v1/destinations/acme-billing/resume"): WRITE,
}


def path_of(template: str, made: Made) -> str:
    return template.format(dead=made.acme_dead, event=made.acme_event)


@pytest.mark.parametrize("route", list(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_route_needs_credentials_and_its_role(
    api: TestClient, people: People, made: Made, route: tuple[str, str]
) -> None:
    method, template = route
    path = path_of(template, made)
    refused = api.request(method, path, json={})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    for role, headers in people.every("acme").items():
        answer = api.request(method, path, headers=headers, json={})
        if role in ROUTES[route]:
            assert answer.status_code == 200, (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.text)
            assert "role" in answer.json()["detail"]


# -- tenancy --------------------------------------------------------------------------------


def test_a_tenant_sees_its_destinations_and_the_shared_ones(
    api: TestClient, people: People, made: Made
) -> None:
    names = [
        d["name"]
        for d in ok(api.get("/api/v1/destinations", headers=people.headers("acme", "viewer")))
    ]
    assert names == ["acme-billing", "audit"]
    everyone = ok(api.get("/api/v1/destinations", headers=people.superadmin()))
    assert [d["name"] for d in everyone] == ["acme-billing", "audit", "globex-billing"]
    acting = ok(api.get("/api/v1/destinations", headers=people.superadmin("globex")))
    assert [d["name"] for d in acting] == ["audit", "globex-billing"]


# Every route, with another tenant's destination, delivery or event: a 404 like a missing one.
FOREIGN = [
    ("GET", "/api/v1/destinations/globex-billing", None),
    ("GET", "/api/v1/destinations/globex-billing/deliveries", None),
    ("GET", "/api/v1/deliveries?destination=globex-billing", None),
    ("GET", "/api/v1/deliveries/{globex_dead}", None),
    ("GET", "/api/v1/deliveries/{globex_shared}", None),
    ("GET", "/api/v1/events/{globex_event}/deliveries", None),
    ("POST", "/api/v1/deliveries/{globex_dead}/replay", None),
    ("POST", "/api/v1/deliveries/{globex_shared}/replay", None),
    ("POST", "/api/v1/deliveries/replay", {"destination": "globex-billing"}),
    ("POST", "/api/v1/destinations/globex-billing/pause", None),
    ("POST", "/api/v1/destinations/globex-billing/resume", None),
    ("GET", "/api/v1/destinations/nowhere", None),
    ("GET", "/api/v1/deliveries/999999", None),
]


@pytest.mark.parametrize("method, template, body", FOREIGN)
def test_another_tenants_rows_are_404_on_every_route(
    api: TestClient,
    people: People,
    made: Made,
    runtime: Runtime,
    method: str,
    template: str,
    body: Any,
) -> None:
    path = template.format(**made.__dict__)
    answer = api.request(method, path, headers=people.headers("acme", "admin"), json=body)
    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"].startswith("no ")
    # nothing changed
    globex = row(runtime.engine, destinations, destinations.c.name == "globex-billing")
    assert globex["state"] == "active"
    dead = row(runtime.engine, deliveries, deliveries.c.id == made.globex_dead)
    assert (dead["status"], dead["replay_count"]) == ("dead", 0)


def test_lists_hold_only_the_tenants_deliveries(
    api: TestClient, people: People, made: Made
) -> None:
    viewer = people.headers("acme", "viewer")
    acme = {made.acme_dead, made.acme_ok, made.acme_sending, made.acme_shared}
    assert set(ids(api.get("/api/v1/deliveries", headers=viewer))) == acme
    # a shared destination: acme's deliveries through it only
    shared = api.get("/api/v1/destinations/audit/deliveries", headers=viewer)
    assert ids(shared) == [made.acme_shared]
    assert ids(api.get("/api/v1/deliveries?destination=audit", headers=viewer)) == [
        made.acme_shared
    ]
    assert ids(api.get(f"/api/v1/deliveries?event_id={made.globex_event}", headers=viewer)) == []
    every = set(ids(api.get("/api/v1/deliveries", headers=people.superadmin())))
    assert every == acme | {made.globex_dead, made.globex_shared}  # fmt: skip


# -- destinations and health ----------------------------------------------------------------


def test_a_destination_shows_its_configuration_state_and_health(
    api: TestClient, people: People, made: Made
) -> None:
    found = ok(
        api.get("/api/v1/destinations/acme-billing", headers=people.headers("acme", "viewer"))
    )
    assert found["url"] == "http://billing:***@127.0.0.1:9/acme"
    assert SECRETS["generic"] not in str(found) and "pa55word" not in str(found)
    assert (found["tenant"], found["state"], found["circuit"]) == ("acme", "active", "closed")
    assert found["configured"] is True
    assert (found["sources"], found["event_types"], found["max_attempts"]) == (
        ["acme-hooks"], ["invoice.*"], 4
    )  # fmt: skip
    health = found["health"]
    # 4 attempts: dead (30 ms), retry (1000 ms), retry (no answer, no latency), delivered (20)
    assert (health["attempts"], health["delivered"], health["success_rate"]) == (4, 1, 0.25)
    assert health["latency_p95_ms"] == 1000  # nearest rank of [20, 30, 1000]
    assert (health["waiting"], health["dead"], health["window_hours"]) == (1, 1, 24)
    assert health["last_attempt_at"] is not None


def old_crm(runtime: Runtime) -> None:
    """A destination of acme's configured once, then removed from the sources file."""
    now = datetime.now(UTC)
    with runtime.store.writer.begin() as tx:
        tx.execute(
            destinations.insert().values(
                name="old-crm", tenant="acme", url="http://127.0.0.1:9/old", state="active",
                circuit="closed", consecutive_failures=0, state_changed_at=now, updated_at=now,
            )
        )  # fmt: skip


def test_a_destination_no_longer_configured_holds_its_waiting_deliveries(
    api: TestClient, runtime: Runtime, people: People, made: Made
) -> None:
    old_crm(runtime)
    [event] = add(runtime, "acme")
    waiting = add_delivery(runtime.engine, "old-crm", event, "acme", status="failed")
    done = add_delivery(runtime.engine, "old-crm", made.acme_event, "acme", status="delivered")
    viewer = people.headers("acme", "viewer")
    old = ok(api.get("/api/v1/destinations/old-crm", headers=viewer))
    assert (old["configured"], old["sources"], old["health"]["waiting"]) == (False, [], 1)
    shown = ok(api.get(f"/api/v1/deliveries/{waiting}", headers=viewer))
    assert (shown["status"], shown["held"]) == ("failed", "destination not configured")
    listed = ok(api.get("/api/v1/deliveries?destination=old-crm", headers=viewer))["items"]
    assert {d["id"]: d["held"] for d in listed} == {
        waiting: "destination not configured",
        done: None,
    }
    assert ok(api.get(f"/api/v1/deliveries/{made.acme_dead}", headers=viewer))["held"] is None


def test_a_shared_destinations_health_counts_the_tenants_attempts_only(
    api: TestClient, people: People, made: Made
) -> None:
    acme = ok(api.get("/api/v1/destinations/audit", headers=people.headers("acme", "viewer")))
    assert acme["tenant"] is None and acme["ordered"] is True
    assert (acme["health"]["attempts"], acme["health"]["success_rate"]) == (1, 1.0)
    assert (acme["health"]["latency_p95_ms"], acme["health"]["dead"]) == (10, 0)
    every = ok(api.get("/api/v1/destinations/audit", headers=people.superadmin()))
    assert (every["health"]["attempts"], every["health"]["delivered"]) == (3, 1)
    assert (every["health"]["latency_p95_ms"], every["health"]["dead"]) == (7000, 1)


def test_old_attempts_and_lost_ones_leave_the_health_window(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    ensure_destinations(runtime.engine)
    [event] = add(runtime, "globex", "globex-hooks")
    add_delivery(
        runtime.engine, "globex-billing", event, "globex", status="delivered",
        tries=[attempt("retry", 900, 503, at=NOW - timedelta(hours=25)),
               attempt("lost", 800, None), attempt("delivered", 5, 200)],
    )  # fmt: skip
    health = ok(api.get("/api/v1/destinations/globex-billing", headers=people.superadmin()))[
        "health"
    ]
    assert (health["attempts"], health["success_rate"], health["latency_p95_ms"]) == (1, 1.0, 5)


def test_a_destination_without_attempts_has_no_rate(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    ensure_destinations(runtime.engine, audit={"circuit": "open", "consecutive_failures": 5})
    audit = ok(api.get("/api/v1/destinations/audit", headers=people.superadmin()))
    assert (audit["circuit"], audit["consecutive_failures"]) == ("open", 5)
    assert audit["health"] == {
        "window_hours": 24, "attempts": 0, "delivered": 0, "success_rate": None,
        "latency_p95_ms": None, "last_attempt_at": None, "waiting": 0, "dead": 0,
    }  # fmt: skip


# -- deliveries and attempts ----------------------------------------------------------------


def test_a_delivery_shows_every_attempt(api: TestClient, people: People, made: Made) -> None:
    found = ok(
        api.get(f"/api/v1/deliveries/{made.acme_ok}", headers=people.headers("acme", "member"))
    )
    assert (found["webhook_id"], found["status"], found["masked"]) == (
        f"dlv_{made.acme_ok}",
        "delivered",
        False,
    )
    log = found["attempt_log"]
    assert [(a["attempt"], a["status_code"], a["latency_ms"], a["outcome"]) for a in log] == [
        (1, 503, 1000, "retry"), (2, None, None, "retry"), (3, 200, 20, "delivered")
    ]  # fmt: skip
    assert (log[0]["response_excerpt"], log[1]["error"]) == ("busy", "timed out")


def test_a_viewer_sees_answers_and_errors_masked(
    api: TestClient, people: People, made: Made
) -> None:
    path = f"/api/v1/deliveries/{made.acme_dead}"
    member = ok(api.get(path, headers=people.headers("acme", "member")))
    assert "maria.test@example.com" in member["attempt_log"][0]["response_excerpt"]
    viewer = ok(api.get(path, headers=people.headers("acme", "viewer")))
    assert viewer["masked"] is True
    assert "maria" not in str(viewer) and "example.com" in str(viewer)  # m***@example.com
    excerpt = viewer["attempt_log"][0]["response_excerpt"]
    assert '"error": "bad customer"' in excerpt and '"code": 42' in excerpt
    listed = ok(api.get("/api/v1/deliveries?status=dead", headers=people.headers("acme", "viewer")))
    assert "maria" not in str(listed) and listed["items"][0]["last_error"].startswith("400 Bad")


def test_filters_and_paging(api: TestClient, people: People, made: Made) -> None:
    admin = people.headers("acme", "admin")
    assert ids(api.get("/api/v1/deliveries?status=dead", headers=admin)) == [made.acme_dead]
    by_event = api.get(f"/api/v1/events/{made.acme_event}/deliveries", headers=admin)
    assert ids(by_event) == [made.acme_dead]
    first = ok(api.get("/api/v1/deliveries?limit=2", headers=admin))
    assert [d["id"] for d in first["items"]] == [made.acme_shared, made.acme_sending]
    after = api.get(f"/api/v1/deliveries?limit=2&before_id={first['next_cursor']}", headers=admin)
    assert ids(after) == [made.acme_ok, made.acme_dead]
    rest = api.get("/api/v1/destinations/acme-billing/deliveries?status=delivered", headers=admin)
    assert ids(rest) == [made.acme_ok]


def test_an_accepted_events_deliveries_are_listed_with_it(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    # the fanout makes them at ingest: acme's invoice to acme's destination, its audit event
    # to the shared one; globex's invoice to globex's only
    [invoice] = add(runtime, "acme", event_type="invoice.paid")
    [audit] = add(runtime, "acme", event_type="audit.login")
    [theirs] = add(runtime, "globex", "globex-hooks", event_type="invoice.paid")
    admin = people.headers("acme", "admin")
    [sent] = ok(api.get(f"/api/v1/events/{invoice}/deliveries", headers=admin))["items"]
    assert (sent["destination"], sent["status"], sent["tenant"]) == (
        "acme-billing",
        "pending",
        "acme",
    )
    assert sent["webhook_id"] == f"dlv_{sent['id']}" and sent["event_type"] == "invoice.paid"
    [logged] = ok(api.get(f"/api/v1/events/{audit}/deliveries", headers=admin))["items"]
    assert logged["destination"] == "audit"
    assert api.get(f"/api/v1/events/{theirs}/deliveries", headers=admin).status_code == 404
    health = ok(api.get("/api/v1/destinations/acme-billing", headers=admin))["health"]
    assert (health["waiting"], health["attempts"]) == (1, 0)


# -- replay ---------------------------------------------------------------------------------


def test_replaying_one_delivery_keeps_its_webhook_id(
    api: TestClient, people: People, made: Made
) -> None:
    admin = people.headers("acme", "admin")
    assert ok(api.post(f"/api/v1/deliveries/{made.acme_dead}/replay", headers=admin)) == {
        "replayed": 1
    }
    again = ok(api.get(f"/api/v1/deliveries/{made.acme_dead}", headers=admin))
    assert (again["status"], again["attempts"], again["replay_count"]) == ("pending", 0, 1)
    assert again["webhook_id"] == f"dlv_{made.acme_dead}" and again["finished_at"] is None
    assert len(again["attempt_log"]) == 1  # the record of what happened stays
    busy = api.post(f"/api/v1/deliveries/{made.acme_sending}/replay", headers=admin)
    assert busy.status_code == 409 and "being sent" in busy.json()["detail"]


def test_a_bulk_replay_takes_the_scopes_matching_deliveries(
    api: TestClient, people: People, made: Made, runtime: Runtime
) -> None:
    admin = people.headers("acme", "admin")
    # acme's dead: one (globex's dead ones, the shared destination's included, untouched)
    assert ok(api.post("/api/v1/deliveries/replay", headers=admin, json={})) == {"replayed": 1}
    assert ok(api.post("/api/v1/deliveries/replay", headers=admin, json={})) == {"replayed": 0}
    for_audit = {"destination": "audit", "status": None}
    assert ok(api.post("/api/v1/deliveries/replay", headers=admin, json=for_audit)) == {
        "replayed": 1
    }
    # status null: any but the one being sent
    everything = ok(api.post("/api/v1/deliveries/replay", headers=admin, json={"status": None}))
    assert everything == {"replayed": 3}
    globex = row(runtime.engine, deliveries, deliveries.c.id == made.globex_shared)
    assert (globex["status"], globex["replay_count"]) == ("dead", 0)
    superadmin = ok(
        api.post("/api/v1/deliveries/replay", headers=people.superadmin(), json={"limit": 1})
    )
    assert superadmin == {"replayed": 1}


# -- pause and resume -----------------------------------------------------------------------


def test_an_admin_pauses_and_resumes_the_tenants_destination(
    api: TestClient, people: People, made: Made
) -> None:
    admin = people.headers("acme", "admin")
    paused = ok(api.post("/api/v1/destinations/acme-billing/pause", headers=admin))
    assert paused["state"] == "paused"
    assert (
        ok(api.post("/api/v1/destinations/acme-billing/pause", headers=admin))["state"] == "paused"
    )
    resumed = ok(api.post("/api/v1/destinations/acme-billing/resume", headers=admin))
    assert (resumed["state"], resumed["circuit"]) == ("active", "closed")


def test_a_disabled_destination_is_resumed_not_paused(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    ensure_destinations(
        runtime.engine,
        acme_billing={"state": "disabled", "disabled_reason": "410 Gone: endpoint removed",
                      "circuit": "open", "consecutive_failures": 7},
    )  # fmt: skip
    admin = people.headers("acme", "admin")
    shown = ok(api.get("/api/v1/destinations/acme-billing", headers=admin))
    assert shown["disabled_reason"] == "410 Gone: endpoint removed"
    refused = api.post("/api/v1/destinations/acme-billing/pause", headers=admin)
    assert refused.status_code == 409 and "resume" in refused.json()["detail"]
    resumed = ok(api.post("/api/v1/destinations/acme-billing/resume", headers=admin))
    assert (resumed["state"], resumed["disabled_reason"], resumed["circuit"]) == (
        "active",
        None,
        "closed",
    )
    assert resumed["consecutive_failures"] == 0


def test_the_deliveries_waiting_for_a_removed_destination_are_discarded(
    api: TestClient, runtime: Runtime, people: People, made: Made
) -> None:
    """They would wait forever, and keep their events from retention: an admin ends them
    as dead (each replayable); the destination's other deliveries are left as they are."""
    old_crm(runtime)
    [e1, e2] = add(runtime, "acme", n=2)
    failed = add_delivery(runtime.engine, "old-crm", e1, "acme", status="failed")
    pending = add_delivery(runtime.engine, "old-crm", e2, "acme", status="pending")
    done = add_delivery(runtime.engine, "old-crm", made.acme_event, "acme", status="delivered")
    path = "/api/v1/destinations/old-crm/discard"
    assert api.post(path).status_code == 401  # no credentials
    for role in ("viewer", "member"):
        assert api.post(path, headers=people.headers("acme", role)).status_code == 403
    assert api.post(path, headers=people.headers("globex", "admin")).status_code == 404
    admin = people.headers("acme", "admin")
    assert ok(api.post(path, headers=admin)) == {"discarded": 2}
    for delivery in (failed, pending):
        shown = ok(api.get(f"/api/v1/deliveries/{delivery}", headers=admin))
        assert (shown["status"], shown["held"]) == ("dead", None)
        assert "no longer configured" in shown["last_error"]
    assert ok(api.get(f"/api/v1/deliveries/{done}", headers=admin))["status"] == "delivered"
    assert ok(api.get("/api/v1/destinations/old-crm", headers=admin))["health"]["waiting"] == 0
    assert ok(api.post(path, headers=admin)) == {"discarded": 0}
    # Retention takes their events now (finished, and no delivery waits for them).
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id.in_([e1, e2])).values(status="done"))
    runtime.store.purge_finished(datetime.now(UTC) + timedelta(days=1))
    assert api.get(f"/api/v1/events/{e1}", headers=admin).status_code == 404
    assert api.get(f"/api/v1/deliveries/{failed}", headers=admin).status_code == 404


def test_an_active_destination_is_paused_before_its_deliveries_are_discarded(
    api: TestClient, runtime: Runtime, people: People, made: Made
) -> None:
    [event] = add(runtime, "acme")
    waiting = add_delivery(runtime.engine, "acme-billing", event, "acme", status="pending")
    admin = people.headers("acme", "admin")
    path = "/api/v1/destinations/acme-billing/discard"
    refused = api.post(path, headers=admin)
    assert refused.status_code == 409 and "pause it first" in refused.json()["detail"]
    ok(api.post("/api/v1/destinations/acme-billing/pause", headers=admin))
    assert ok(api.post(path, headers=admin)) == {"discarded": 1}  # not the one being sent
    shown = ok(api.get(f"/api/v1/deliveries/{waiting}", headers=admin))
    assert shown["status"] == "dead" and "while the destination was paused" in shown["last_error"]
    assert ok(api.get(f"/api/v1/deliveries/{made.acme_sending}", headers=admin))["status"] == (
        "sending"
    )
    assert ok(api.post(f"/api/v1/deliveries/{waiting}/replay", headers=admin))["replayed"] == 1
    shared = api.post("/api/v1/destinations/audit/discard", headers=admin)
    assert shared.status_code == 403 and "shared destination" in shared.json()["detail"]


def test_a_shared_destination_is_changed_by_superadmins_only(
    api: TestClient, people: People, made: Made
) -> None:
    for action in ("pause", "resume"):
        refused = api.post(
            f"/api/v1/destinations/audit/{action}", headers=people.headers("acme", "admin")
        )
        assert refused.status_code == 403, refused.text
        assert "shared destination" in refused.json()["detail"]
    assert (
        ok(api.get("/api/v1/destinations/audit", headers=people.superadmin()))["state"] == "active"
    )
    paused = ok(api.post("/api/v1/destinations/audit/pause", headers=people.superadmin("acme")))
    assert paused["state"] == "paused"


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/api/v1/deliveries?status=gone", None),
        ("GET", "/api/v1/deliveries?event_id=0", None),
        ("GET", f"/api/v1/deliveries?event_id={2**63}", None),
        ("GET", "/api/v1/deliveries?before_id=-1", None),
        ("GET", "/api/v1/deliveries?destination=a%00b", None),
        ("GET", "/api/v1/deliveries?destination=", None),
        ("GET", "/api/v1/deliveries?limit=501", None),
        ("GET", "/api/v1/deliveries/0", None),
        ("GET", f"/api/v1/deliveries/{2**63}", None),
        ("GET", "/api/v1/destinations/audit/deliveries?status=nope", None),
        ("GET", "/api/v1/destinations/" + "x" * 101, None),
        ("POST", "/api/v1/deliveries/replay", '{"status": "gone"}'),
        ("POST", "/api/v1/deliveries/replay", '{"limit": 0}'),
        ("POST", "/api/v1/deliveries/replay", '{"tenant": "globex"}'),
        ("POST", "/api/v1/deliveries/replay", '{"destination": "\\u0000"}'),
        ("POST", "/api/v1/deliveries/replay", "[1, 2]"),
    ],
)
def test_invalid_input_is_422(
    api: TestClient, people: People, method: str, path: str, body: str | None
) -> None:
    headers = {**people.superadmin(), "content-type": "application/json"}
    answer = api.request(method, path, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_ids_that_are_no_numbers_are_no_routes(api: TestClient, people: People) -> None:
    for method, path in [
        ("GET", "/api/v1/deliveries/abc"),
        ("POST", "/api/v1/deliveries/-1/replay"),
        ("GET", "/api/v1/events/x/deliveries"),
    ]:
        assert api.request(method, path, headers=people.superadmin()).status_code == 404, path
    wrong = api.get("/api/v1/deliveries/replay", headers=people.superadmin())
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")


@hypothesis_settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "destination", "event_id", "before_id", "limit", "x"]),
        st.text(max_size=30)
        | st.integers(-5, 2**64).map(str)
        | st.sampled_from(["dead", "audit", "globex-billing", "sending"]),
        max_size=4,
    )
)
def test_no_deliveries_query_is_a_server_error(
    api: TestClient, people: People, params: dict[str, str]
) -> None:
    answer = api.get("/api/v1/deliveries", params=params, headers=people.headers("acme", "viewer"))
    assert answer.status_code in (200, 404, 422), (params, answer.text[:300])
    if answer.status_code == 200:
        assert all(d["tenant"] == "acme" for d in answer.json()["items"])
    else:
        assert answer.json()["detail"]


def test_every_route_declares_its_errors(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for method, template in ROUTES:
        path = (
            template.replace("acme-billing", "{name}")
            .replace("{dead}", "{delivery_id}")
            .replace("{event}", "{event_id}")
        )
        responses = paths[path][method.lower()]["responses"]
        assert {"200", "401", "403", "404"} <= set(responses), (method, path)
