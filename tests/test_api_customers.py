"""Customers, sync conflicts and the outbox over the management API: who may do what, and
that no tenant ever sees another's rows.

Most tests run without a HubSpot API (creation answers `sync: queued`): a customer is
linked to a HubSpot company by hand, and HubSpot's webhooks are signed deliveries through
ingress, handled by a worker. The last tests run the fake HubSpot (conftest.py's `world`)
to see a decision reach HubSpot and its echo come back.

Customers hold no personal data of the kinds masked for viewers (e-mail, phone, document
numbers): a viewer sees exactly what an admin sees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts, sync_log
from hookyard.runtime import Runtime
from hookyard.testing.simulate import hubspot_delivery, hubspot_property_change
from tests.conftest import SECRETS
from tests.customers_support import Books, create, link, tie
from tests.people import People
from tests.support import count, rows, wait_for
from tests.sync_support import World, create_customer

# -- helpers --------------------------------------------------------------------------------


# -- roles ----------------------------------------------------------------------------------

RANK = {"viewer": 0, "member": 1, "admin": 2, "superadmin": 3}
# (method, path, body, minimum role) per route; `{…}` are filled from acme's Books.
ROUTES = [
    ("GET", "/api/v1/customers", None, "viewer"),
    ("GET", "/api/v1/customers/{customer}", None, "viewer"),
    ("GET", "/api/v1/customers/by-ban/{ban}", None, "viewer"),
    ("GET", "/api/v1/customers/{customer}/sync-log", None, "viewer"),
    ("POST", "/api/v1/customers", {"company_name": "New Co"}, "member"),
    ("PATCH", "/api/v1/customers/{customer}", {"customer_type": "wholesale"}, "member"),
    ("DELETE", "/api/v1/customers/{customer}", None, "admin"),
    ("GET", "/api/v1/sync-conflicts", None, "viewer"),
    ("GET", "/api/v1/sync-conflicts/{conflict}", None, "viewer"),
    ("POST", "/api/v1/sync-conflicts/{conflict}/resolve", {"resolution": "keep_ours"}, "admin"),
    ("GET", "/api/v1/sync/outbox", None, "viewer"),
    ("GET", "/api/v1/sync-log", None, "viewer"),
    ("GET", "/api/v1/hubspot/companies/search?q=acme", None, "member"),
    ("POST", "/api/v1/sync/outbox/{failed_row}/retry", None, "admin"),
    ("GET", "/api/v1/reconciliations", None, "superadmin"),
    ("POST", "/api/v1/reconciliations/hubspot?dry_run=true", None, "superadmin"),
    ("GET", "/api/v1/tcr/subscriptions", None, "superadmin"),
    ("POST", "/api/v1/messaging/brands",
     {"entityType": "PRIVATE_PROFIT", "companyName": "Acme", "vertical": "TECHNOLOGY",
      "brandRelationship": "BASIC_ACCOUNT"}, "member"),
]  # fmt: skip


@pytest.mark.parametrize("method, template, body, minimum", ROUTES)
def test_each_route_needs_its_role(
    api: TestClient,
    people: People,
    acme: Books,
    method: str,
    template: str,
    body: Any,
    minimum: str,
) -> None:
    path = template.format(
        customer=acme.customer["id"],
        ban=acme.customer["ban"],
        conflict=acme.conflict,
        failed_row=acme.failed_row,
    )
    assert api.request(method, path, json=body).status_code == 401
    for role, headers in people.every("acme").items():
        response = api.request(method, path, json=body, headers=headers)
        if RANK[role] < RANK[minimum]:
            assert response.status_code == 403, (role, response.text)
            assert minimum in response.json()["detail"]
        else:
            # Let through: what follows is the route's own answer (a 404 here is "the TCR
            # API is not configured", a 409 the conflict an earlier role resolved).
            assert response.status_code not in (401, 403), (role, response.text)
            assert response.status_code < 500, (role, response.text)


def test_a_viewer_reads_but_cannot_create_change_close_or_resolve(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    viewer = people.headers("acme", "viewer")
    cid = acme.customer["id"]
    assert [c["id"] for c in api.get("/api/v1/customers", headers=viewer).json()["items"]] == [cid]
    assert api.get("/api/v1/sync-conflicts", headers=viewer).json()["total"] == 1
    assert [r["id"] for r in api.get("/api/v1/sync/outbox", headers=viewer).json()] == [
        acme.failed_row,
        *[r["id"] for r in rows(runtime.engine, outbox, outbox.c.status == "done")],
    ]
    refused = [
        api.post("/api/v1/customers", json={"company_name": "X"}, headers=viewer),
        api.patch(f"/api/v1/customers/{cid}", json={"status": "closed"}, headers=viewer),
        api.delete(f"/api/v1/customers/{cid}", headers=viewer),
        api.post(
            f"/api/v1/sync-conflicts/{acme.conflict}/resolve",
            json={"resolution": "take_theirs"},
            headers=viewer,
        ),
        api.post(f"/api/v1/sync/outbox/{acme.failed_row}/retry", headers=viewer),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert count(runtime.engine, customers) == 1
    after = api.get(f"/api/v1/customers/{cid}", headers=viewer).json()
    assert (after["status"], after["open_conflicts"]) == ("active", 1)
    # No personal data in a customer: the viewer sees what an admin sees.
    assert (
        after == api.get(f"/api/v1/customers/{cid}", headers=people.headers("acme", "admin")).json()
    )


def test_a_member_creates_and_changes_but_cannot_close_or_resolve(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    member = people.headers("acme", "member")
    created = create(api, member, company_name="Initech", credit_limit="2500.5",
                     current_balance="-12.346", services=["messaging", "voice"])  # fmt: skip
    assert created["sync"] == "queued" and created["hubspot_company_id"] is None
    assert created["error"] == "HubSpot is not configured"
    shown = api.get(f"/api/v1/customers/{created['id']}", headers=member).json()
    assert (shown["tenant"], shown["ban"], shown["company_name"]) == (
        "acme", created["ban"], "Initech",
    )  # fmt: skip
    assert (shown["credit_limit"], shown["current_balance"]) == ("2500.50", "-12.35")
    assert shown["services"] == ["voice", "messaging"] and shown["sync_pending"] is True
    changed = api.patch(
        f"/api/v1/customers/{created['id']}",
        json={"status": "suspended", "services": ["telecom_data"], "current_balance": 99.5},
        headers=member,
    )
    assert changed.status_code == 202, changed.text
    assert changed.json() == {"queued": False, "fields": ["current_balance", "services", "status"]}
    after = api.get(f"/api/v1/customers/{created['id']}", headers=member).json()
    assert (after["status"], after["services"]) == ("suspended", ["telecom_data"])
    assert after["current_balance"] == "99.50"
    states = {f["field"]: f for f in after["fields"]}
    assert states["status"]["our_value"] == "suspended"
    assert states["services"]["our_value"] == "telecom_data"
    # Nothing to change, a value the rules refuse, a tenant field: refused, nothing written.
    path = f"/api/v1/customers/{created['id']}"
    assert api.patch(path, json={}, headers=member).status_code == 400
    assert api.patch(path, json={"status": "   "}, headers=member).status_code == 422
    assert api.patch(path, json={"status": None}, headers=member).status_code == 422
    assert api.patch(path, json={"current_balance": "1e99"}, headers=member).status_code == 422
    assert api.post("/api/v1/customers", json={"company_name": "X", "tenant": "globex"},
                    headers=member).status_code == 403  # fmt: skip
    assert count(runtime.engine, customers, customers.c.company_name == "X") == 0
    # Not a member's: closing and deciding conflicts.
    assert api.delete(path, headers=member).status_code == 403
    resolve = f"/api/v1/sync-conflicts/{acme.conflict}/resolve"
    assert api.post(resolve, json={"resolution": "keep_ours"}, headers=member).status_code == 403
    assert (
        api.post(f"/api/v1/sync/outbox/{acme.failed_row}/retry", headers=member).status_code == 403
    )
    assert count(runtime.engine, sync_conflicts, sync_conflicts.c.resolved_at.is_(None)) == 1


def test_a_superadmin_picks_the_tenant_to_create_for(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    body = {"company_name": "Hooli"}
    by_id = create(api, people.superadmin("acme"), company_name="Hooli")
    by_ban = create(api, people.superadmin("GX000000002"), company_name="Pied Piper")
    tenants = {r["id"]: r["tenant"] for r in rows(runtime.engine, customers)}
    assert tenants == {by_id["id"]: "acme", by_ban["id"]: "globex"}
    assert (by_id["tenant"], by_ban["tenant"]) == ("acme", "globex")
    # Picking none creates the customer as a new tenant (tests/test_tenants.py).
    unpicked = create(api, people.superadmin(), company_name="Hooli")
    assert unpicked["tenant"] == "hooli"
    # Without picking, a superadmin reads every tenant; picking one narrows it.
    every = api.get("/api/v1/customers", headers=people.superadmin()).json()
    assert every["total"] == 3
    picked = api.get("/api/v1/customers", headers=people.superadmin("globex")).json()
    assert [c["id"] for c in picked["items"]] == [by_ban["id"]]
    unknown = api.post("/api/v1/customers", json=body, headers=people.superadmin("nope"))
    assert unknown.status_code == 404


def test_an_admin_closes_and_resolves(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    admin = people.headers("acme", "admin")
    resolved = api.post(
        f"/api/v1/sync-conflicts/{acme.conflict}/resolve",
        json={"resolution": "take_theirs"},
        headers=admin,
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert (body["resolution"], body["queued"], body["field"]) == (
        "take_theirs", False, "company_name",
    )  # fmt: skip
    assert body["resolved_by"].startswith("user:") and body["resolved_at"]
    closed = api.delete(f"/api/v1/customers/{acme.customer['id']}", headers=admin)
    assert closed.status_code == 202
    assert closed.json() == {
        "id": acme.customer["id"], "status": "closed", "changed": True, "queued": False,
    }  # fmt: skip
    retried = api.post(f"/api/v1/sync/outbox/{acme.failed_row}/retry", headers=admin)
    assert retried.status_code == 200 and retried.json() == {
        "id": acme.failed_row, "status": "pending",
    }  # fmt: skip
    [row] = rows(runtime.engine, outbox, outbox.c.id == acme.failed_row)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert (
        api.post(f"/api/v1/sync/outbox/{acme.failed_row}/retry", headers=admin).status_code == 404
    )


# -- tenant isolation -----------------------------------------------------------------------


def test_no_route_shows_or_touches_another_tenants_rows(
    api: TestClient, people: People, runtime: Runtime, acme: Books, globex: Books
) -> None:
    engine = runtime.engine
    gid, gban = globex.customer["id"], globex.customer["ban"]
    for role in ("viewer", "member", "admin"):
        headers = people.headers("acme", role)
        listed = api.get("/api/v1/customers", headers=headers).json()
        assert [c["id"] for c in listed["items"]] == [acme.customer["id"]]
        assert listed["total"] == 1
        for params in ({"customer_type": "wholesale"}, {"q": "globex"}, {"status": "active",
                       "q": "Networks"}):  # fmt: skip
            filtered = api.get("/api/v1/customers", params=params, headers=headers).json()
            assert filtered == {"items": [], "total": 0, "limit": 50, "offset": 0}, params
        conflicts = api.get("/api/v1/sync-conflicts", params={"state": "all"}, headers=headers)
        assert [k["id"] for k in conflicts.json()["items"]] == [acme.conflict]
        by_customer = api.get(
            "/api/v1/sync-conflicts", params={"customer_id": gid}, headers=headers
        ).json()
        assert by_customer["items"] == [] and by_customer["total"] == 0
        shown = api.get("/api/v1/sync/outbox", headers=headers).json()
        assert {r["tenant"] for r in shown} == {"acme"}
        assert api.get("/api/v1/sync/outbox", params={"customer_id": gid},
                       headers=headers).json() == []  # fmt: skip
        # Guessed ids and BANs look exactly like missing ones.
        for guessed, missing in (
            (f"/api/v1/customers/{gid}", "/api/v1/customers/999999"),
            (f"/api/v1/customers/by-ban/{gban}", "/api/v1/customers/by-ban/ZZ999999999"),
            (f"/api/v1/customers/{gid}/sync-log", "/api/v1/customers/999999/sync-log"),
            (f"/api/v1/sync-conflicts/{globex.conflict}", "/api/v1/sync-conflicts/999999"),
        ):
            answers = [api.get(p, headers=headers) for p in (guessed, missing)]
            assert [a.status_code for a in answers] == [404, 404], guessed
            assert all(set(a.json()) == {"detail"} for a in answers)
    # Changes aimed at globex's rows are 404s and change nothing.
    admin = people.headers("acme", "admin")
    member = people.headers("acme", "member")
    attempts = [
        api.patch(f"/api/v1/customers/{gid}", json={"status": "closed"}, headers=member),
        api.delete(f"/api/v1/customers/{gid}", headers=admin),
        api.post(
            f"/api/v1/sync-conflicts/{globex.conflict}/resolve",
            json={"resolution": "take_theirs"},
            headers=admin,
        ),
        api.post(f"/api/v1/sync/outbox/{globex.failed_row}/retry", headers=admin),
    ]
    assert [r.status_code for r in attempts] == [404] * 4
    [theirs] = rows(engine, customers, customers.c.id == gid)
    assert theirs["status"] == "active"
    [conflict] = rows(engine, sync_conflicts, sync_conflicts.c.id == globex.conflict)
    assert conflict["resolved_at"] is None
    [failed] = rows(engine, outbox, outbox.c.id == globex.failed_row)
    assert failed["status"] == "failed"
    # Naming the other tenant is refused outright.
    other = people.headers("acme", "viewer") | {"X-Customer-ID": "globex"}
    assert api.get("/api/v1/customers", headers=other).status_code == 403


def test_a_sync_log_row_of_a_removed_customer_never_shows_under_its_reused_id(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    """A refused creation leaves its log row; on SQLite the next customer can get the
    removed one's id. The log is matched on id and BAN, so it never shows under another."""
    cid = acme.customer["id"]
    with runtime.engine.begin() as tx:
        tx.execute(
            insert(sync_log).values(
                tenant="globex", customer_id=cid, ban="GX123456789", direction="out",
                operation="create", properties={"name": "Globex secret"}, result="refused",
                detail="HubSpot refused", at=datetime.now(UTC),
            )
        )  # fmt: skip
        tx.execute(
            insert(sync_log).values(
                tenant="acme", customer_id=cid, ban=acme.customer["ban"], direction="out",
                operation="update", properties={"hookyard_status": "active"}, result="ok",
                detail=None, at=datetime.now(UTC),
            )
        )  # fmt: skip
    log = api.get(f"/api/v1/customers/{cid}/sync-log", headers=people.headers("acme", "viewer"))
    assert [(e["operation"], e["ban"]) for e in log.json()] == [("update", acme.customer["ban"])]


# -- reading customers ----------------------------------------------------------------------


def test_list_filters_and_pages(api: TestClient, people: People) -> None:
    member = people.headers("acme", "member")
    made = [
        create(api, member, company_name="Ringer 100% Networks"),
        create(api, member, company_name="ringer_mobile", customer_type="wholesale"),
        create(api, member, company_name="Acme Voice", status="suspended"),
    ]
    ids = [m["id"] for m in made]

    def listed(**params: Any) -> list[int]:
        page = api.get("/api/v1/customers", params=params, headers=member).json()
        return [c["id"] for c in page["items"]]

    assert listed() == ids
    assert listed(q="RINGER") == ids[:2]  # case-insensitive
    assert listed(q="100%") == ids[:1] and listed(q="r_m") == ids[1:2]  # % and _ are plain
    assert listed(q="%") == ids[:1]
    assert listed(customer_type="wholesale") == ids[1:2]
    assert listed(status="suspended") == ids[2:]
    assert listed(status="active", q="ringer") == ids[:2]
    page = api.get("/api/v1/customers", params={"limit": 2, "offset": 1}, headers=member).json()
    assert ([c["id"] for c in page["items"]], page["total"]) == (ids[1:], 3)
    assert (page["limit"], page["offset"]) == (2, 1)
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"q": ""}, {"status": "x" * 31}):
        assert api.get("/api/v1/customers", params=bad, headers=member).status_code == 422, bad


def test_by_ban_checks_the_ban_and_shows_the_customer(
    api: TestClient, people: People, acme: Books
) -> None:
    viewer = people.headers("acme", "viewer")
    found = api.get(f"/api/v1/customers/by-ban/{acme.customer['ban']}", headers=viewer)
    assert found.status_code == 200 and found.json()["id"] == acme.customer["id"]
    assert found.json() == api.get(f"/api/v1/customers/{acme.customer['id']}",
                                   headers=viewer).json()  # fmt: skip
    for bad in ("ac000000001", "AC00000000", "AC0000000012", "A1000000001", "sync-log"):
        response = api.get(f"/api/v1/customers/by-ban/{bad}", headers=viewer)
        assert response.status_code == 400, bad
        assert "two capital letters and nine digits" in response.json()["detail"]
    assert api.get("/api/v1/customers/by-ban/ZZ000000000", headers=viewer).status_code == 404


def test_the_detail_shows_each_field_on_both_sides(
    api: TestClient, people: People, acme: Books
) -> None:
    detail = api.get(
        f"/api/v1/customers/{acme.customer['id']}", headers=people.headers("acme", "viewer")
    ).json()
    assert detail["hubspot_company_id"] == str(acme.company)
    assert (detail["open_conflicts"], detail["sync_pending"]) == (1, False)
    states = {f["field"]: f for f in detail["fields"]}
    assert set(states) == {"ban", "company_name", "status", "customer_type", "credit_limit",
                           "current_balance", "services"}  # fmt: skip
    name = states["company_name"]
    assert (name["hubspot_property"], name["direction"], name["authority"]) == (
        "name", "both", "latest",
    )  # fmt: skip
    assert name["on_their_change"] == "latest change wins, by time"
    assert (name["our_value"], name["their_value"]) == ("Acme Telecom", "Acme Telecom Inc")
    assert name["our_changed_at"] and name["their_changed_at"]
    assert name["pushed_value"] is None  # never sent: HubSpot is not configured
    assert states["ban"]["our_value"] == acme.customer["ban"]
    status = states["status"]
    assert (status["hubspot_property"], status["direction"], status["authority"]) == (
        "hookyard_status", "out", "ours",
    )  # fmt: skip
    assert status["on_their_change"] == "not applied; re-pushed ours"
    assert status["their_value"] is None  # HubSpot never told us one


# -- deciding conflicts ---------------------------------------------------------------------


def test_keep_ours_queues_our_value_for_hubspot(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    admin = people.headers("acme", "admin")
    path = f"/api/v1/sync-conflicts/{acme.conflict}/resolve"
    resolved = api.post(path, json={"resolution": "keep_ours"}, headers=admin)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["resolution"], resolved.json()["queued"]) == ("keep_ours", True)
    [customer] = rows(runtime.engine, customers, customers.c.id == acme.customer["id"])
    assert customer["company_name"] == "Acme Telecom"
    [queued] = rows(runtime.engine, outbox, outbox.c.status == "pending")
    assert (queued["customer_id"], queued["operation"], queued["fields"]) == (
        acme.customer["id"], "update", ["company_name"],
    )  # fmt: skip
    # The first decision stands.
    again = api.post(path, json={"resolution": "take_theirs"}, headers=admin)
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert rows(runtime.engine, customers, customers.c.id == acme.customer["id"])[0][
        "company_name"
    ] == ("Acme Telecom")
    assert api.post(path, json={"resolution": "superseded"}, headers=admin).status_code == 422
    missing = api.post("/api/v1/sync-conflicts/999999/resolve", json={"resolution": "keep_ours"},
                       headers=admin)  # fmt: skip
    assert missing.status_code == 404


def test_take_theirs_applies_hubspots_value_and_sends_nothing(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    resolved = api.post(
        f"/api/v1/sync-conflicts/{acme.conflict}/resolve",
        json={"resolution": "take_theirs"},
        headers=people.superadmin("acme"),
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()
    assert body["resolved_by"].startswith("user:") and body["queued"] is False
    [customer] = rows(runtime.engine, customers, customers.c.id == acme.customer["id"])
    assert customer["company_name"] == "Acme Telecom Inc"
    [state] = rows(
        runtime.engine, field_state,
        field_state.c.customer_id == acme.customer["id"], field_state.c.field == "company_name",
    )  # fmt: skip
    assert state["our_value"] == state["their_value"] == "Acme Telecom Inc"
    assert count(runtime.engine, outbox, outbox.c.status == "pending") == 0


def test_conflicts_list_by_state_customer_and_field(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    admin = people.headers("acme", "admin")
    other = create(api, people.headers("acme", "member"), company_name="Second")
    company = link(runtime.engine, other["id"])
    tie(api, runtime, other["id"], company, "Second Inc")

    def listed(**params: Any) -> list[tuple[int, str]]:
        page = api.get("/api/v1/sync-conflicts", params=params, headers=admin).json()
        assert page["total"] == len(page["items"])
        return [(k["customer_id"], k["field"]) for k in page["items"]]

    cid, oid = acme.customer["id"], other["id"]
    assert listed() == [(oid, "company_name"), (cid, "company_name")]
    api.post(f"/api/v1/sync-conflicts/{acme.conflict}/resolve",
             json={"resolution": "keep_ours"}, headers=admin)  # fmt: skip
    assert listed() == [(oid, "company_name")]
    assert listed(state="resolved") == [(cid, "company_name")]
    assert len(listed(state="all")) == 2
    assert listed(customer_id=cid, state="all") == [(cid, "company_name")]
    assert listed(field="company_name") == [(oid, "company_name")]
    assert listed(field="status", state="all") == []  # a field we own never conflicts
    shown = api.get(f"/api/v1/sync-conflicts/{acme.conflict}", headers=admin).json()
    assert (shown["our_value"], shown["their_value"], shown["resolution"]) == (
        "Acme Telecom", "Acme Telecom Inc", "keep_ours",
    )  # fmt: skip
    assert (
        api.get("/api/v1/sync-conflicts", params={"state": "nope"}, headers=admin).status_code
        == 422
    )
    assert (
        api.get("/api/v1/sync-conflicts", params={"field": "email"}, headers=admin).status_code
        == 422
    )


# -- closing --------------------------------------------------------------------------------


def test_delete_closes_the_customer_and_keeps_its_history(
    api: TestClient, people: People, runtime: Runtime, acme: Books
) -> None:
    engine = runtime.engine
    admin = people.headers("acme", "admin")
    cid = acme.customer["id"]
    before = {t.name: count(engine, t, t.c.customer_id == cid)
              for t in (field_state, sync_conflicts, outbox)}  # fmt: skip
    closed = api.delete(f"/api/v1/customers/{cid}", headers=admin)
    assert closed.status_code == 202, closed.text
    assert closed.json()["changed"] is True
    shown = api.get(f"/api/v1/customers/{cid}", headers=admin).json()
    assert shown["status"] == "closed" and shown["sync_pending"] is True
    assert shown["open_conflicts"] == 1  # still for an admin to decide
    # Queued for HubSpot like any change of ours; nothing removed.
    [queued] = rows(engine, outbox, outbox.c.customer_id == cid, outbox.c.status == "pending")
    assert queued["fields"] == ["status"]
    after = {t.name: count(engine, t, t.c.customer_id == cid)
             for t in (field_state, sync_conflicts, outbox)}  # fmt: skip
    assert after == before | {"crm_outbox": before["crm_outbox"] + 1}
    assert api.get("/api/v1/customers", params={"status": "closed"},
                   headers=admin).json()["total"] == 1  # fmt: skip
    # Closing again changes nothing; PATCH reopens.
    again = api.delete(f"/api/v1/customers/{cid}", headers=admin)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert count(engine, outbox, outbox.c.customer_id == cid) == after["crm_outbox"]
    reopened = api.patch(f"/api/v1/customers/{cid}", json={"status": "active"},
                         headers=people.headers("acme", "member"))  # fmt: skip
    assert reopened.status_code == 202
    assert api.get(f"/api/v1/customers/{cid}", headers=admin).json()["status"] == "active"
    assert api.delete("/api/v1/customers/999999", headers=admin).status_code == 404


# -- with HubSpot ---------------------------------------------------------------------------


def tie_in_hubspot(w: World, customer_id: int, company_id: str, name: str) -> None:
    """We rename the customer, and HubSpot the company in the very same millisecond (its
    signed webhook): the rule cannot decide."""
    ours = {"company_name": "Ringer Network Solutions"}
    assert w.api("PATCH", f"/api/v1/customers/{customer_id}", json=ours).status_code == 202
    with w.rt.engine.connect() as conn:
        at = conn.execute(
            select(field_state.c.our_changed_at).where(
                field_state.c.customer_id == customer_id, field_state.c.field == "company_name"
            )
        ).scalar_one()
    w.hubspot.edit_company(company_id, {"name": name}, deliver=False)
    change = hubspot_property_change(
        int(company_id), "name", name, occurred_at=int(at.timestamp() * 1000),
        change_source="CRM_UI",
    )  # fmt: skip
    url = w.url + "/webhooks/hubspot/company"
    d = hubspot_delivery(SECRETS["hubspot"], url, [change])
    assert httpx.post(url, content=d.body, headers=d.headers).status_code == 200
    w.drain()


def test_keep_ours_reaches_hubspot_and_its_echo_opens_nothing(world: World) -> None:
    engine = world.rt.engine
    created = create_customer(world, company_name="Ringer").json()
    cid, company_id = created["id"], created["hubspot_company_id"]
    assert wait_for(lambda: world.hubspot.deliveries, timeout=10)
    world.drain()
    tie_in_hubspot(world, cid, company_id, "Ringer Inc")
    page = world.api("GET", "/api/v1/sync-conflicts", tenant="acme").json()
    [conflict] = page["items"]
    assert (conflict["field"], conflict["their_value"]) == ("company_name", "Ringer Inc")
    world.outbox_pass()  # the rename waits for the decision
    assert world.hubspot.company(company_id)["properties"]["name"] == "Ringer Inc"  # type: ignore[index]
    resolved = world.api(
        "POST", f"/api/v1/sync-conflicts/{conflict['id']}/resolve", tenant="acme",
        json={"resolution": "keep_ours"},
    )  # fmt: skip
    assert resolved.status_code == 200 and resolved.json()["queued"] is True
    assert resolved.json()["resolved_by"] == "admin-token"
    delivered = len(world.hubspot.deliveries)
    assert world.outbox_pass() == 1
    assert world.hubspot.company(company_id)["properties"]["name"] == "Ringer Network Solutions"  # type: ignore[index]
    # HubSpot tells us about our own change: recognised, no new conflict.
    assert wait_for(lambda: len(world.hubspot.deliveries) > delivered, timeout=10)
    world.drain()
    assert count(engine, sync_conflicts) == 1
    detail = world.api("GET", f"/api/v1/customers/{cid}", tenant="acme").json()
    name = next(f for f in detail["fields"] if f["field"] == "company_name")
    assert (detail["company_name"], detail["open_conflicts"]) == ("Ringer Network Solutions", 0)
    assert name["our_value"] == name["their_value"] == name["pushed_value"]
    [run] = world.reconcile("hubspot")
    assert run.drift == []  # converged


def test_take_theirs_converges_without_sending(world: World) -> None:
    created = create_customer(world, company_name="Ringer").json()
    cid, company_id = created["id"], created["hubspot_company_id"]
    assert wait_for(lambda: world.hubspot.deliveries, timeout=10)
    world.drain()
    tie_in_hubspot(world, cid, company_id, "Ringer Inc")
    world.outbox_pass()  # the rename waits for the decision
    [conflict] = world.api("GET", "/api/v1/sync-conflicts", tenant="acme").json()["items"]
    resolved = world.api(
        "POST", f"/api/v1/sync-conflicts/{conflict['id']}/resolve", tenant="acme",
        json={"resolution": "take_theirs"},
    )  # fmt: skip
    assert resolved.status_code == 200 and resolved.json()["queued"] is False
    world.outbox_pass()
    detail = world.api("GET", f"/api/v1/customers/{cid}", tenant="acme").json()
    assert detail["company_name"] == "Ringer Inc"
    assert world.hubspot.company(company_id)["properties"]["name"] == "Ringer Inc"  # type: ignore[index]
    [run] = world.reconcile("hubspot")
    assert run.drift == []
