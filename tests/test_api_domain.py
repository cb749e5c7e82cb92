"""The domain routes of the management API (10DLC messaging, WhatsApp templates, leads): what
each role may do, that no tenant ever sees another's rows, and that viewers see personal data
masked. The rows are made by the domains' own event handlers, as webhooks would make them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from hookyard.api.privacy import mask_document, mask_personal, mask_text
from hookyard.app import create_app
from hookyard.domain.tendlc.enums import STANDARD_USE_CASES, UseCase
from hookyard.runtime import Runtime
from hookyard.testing.fakes.server import serving
from tests.domain_support import (
    HOUR,
    PERSON,
    STEPS,
    T0,
    leads_state,
    meta,
    template_id,
    tendlc_state,
    whatsapp_state,
)
from tests.people import TENANTS, People

V1 = "/api/v1"
DOMAIN_PREFIXES = (
    f"{V1}/messaging/",
    f"{V1}/leads",
    f"{V1}/whatsapp/templates",
    f"{V1}/whatsapp/alerts",
    f"{V1}/whatsapp/campaigns",
)


# -- the two tenants' rows, made by the domains' handlers (tests/domain_support.py) -------


@dataclass
class World:
    acme_templates: dict[str, int]
    globex_template: int
    acme_campaign: int  # paused by its template's pause
    globex_campaign: int  # paused by its template's disabling
    acme_lead: int  # enriched
    acme_failed_lead: int
    globex_lead: int


@pytest.fixture
def world(runtime: Runtime, people: People) -> World:
    engine = runtime.engine
    tendlc_state(engine)
    acme_campaign, globex_campaign = whatsapp_state(engine, runtime.settings)
    acme_lead, failed, globex_lead = leads_state(engine)
    return World(
        {m: template_id(engine, m) for m in ("5001", "5002", "5003")},
        template_id(engine, "6001"),
        acme_campaign,
        globex_campaign,
        acme_lead,
        failed,
        globex_lead,
    )


def get(api: TestClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = api.get(V1 + path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def brand_ids(api: TestClient, headers: dict[str, str], **params: Any) -> set[str]:
    return {b["brand_id"] for b in get(api, "/messaging/brands", headers, **params)["items"]}


def visible(api: TestClient, headers: dict[str, str]) -> dict[str, set[Any]]:
    """What each list route shows these headers' holder."""
    return {
        "brands": brand_ids(api, headers),
        "campaigns": {c["campaign_id"] for c in get(api, "/messaging/campaigns", headers)["items"]},
        "templates": {
            t["meta_template_id"] for t in get(api, "/whatsapp/templates", headers)["items"]
        },
        "critical": {
            t["meta_template_id"]
            for t in get(api, "/whatsapp/templates/critical", headers)["items"]
        },
        "alerts": {
            a["meta_template_id"]
            for a in get(api, "/whatsapp/alerts", headers, state="all")["items"]
        },
        "wa_campaigns": {c["name"] for c in get(api, "/whatsapp/campaigns", headers)["items"]},
        "leads": {lead["c2s_lead_id"] for lead in get(api, "/leads", headers)["items"]},
        "templates_total": {get(api, "/whatsapp/templates/quality-summary", headers)["total"]},
    }


ACME_SEES = {
    "brands": {"BACME01", "BACME02"},
    "campaigns": {"CACME01"},
    "templates": {"5001", "5002", "5003"},
    "critical": {"5001", "5002"},
    "alerts": {"5001"},
    "wa_campaigns": {"Spring sale"},
    "leads": {"c2s-acme-1", "c2s-acme-2"},
    "templates_total": {3},
}
GLOBEX_SEES = {
    "brands": {"BGLOB01"},
    "campaigns": {"CGLOB01"},
    "templates": {"6001"},
    "critical": {"6001"},
    "alerts": {"6001"},
    "wa_campaigns": {"Globex launch"},
    "leads": {"c2s-globex-1"},
    "templates_total": {1},
}
EVERYONE_SEES = {key: ACME_SEES[key] | GLOBEX_SEES[key] for key in ACME_SEES} | {
    "templates_total": {4}
}


def read_routes(world: World) -> list[str]:
    """A path of every read route, naming acme's rows."""
    return [
        "/messaging/brands",
        "/messaging/brands/BACME01",
        "/messaging/campaigns",
        "/messaging/campaigns/CACME01",
        "/messaging/enums",
        "/whatsapp/templates",
        "/whatsapp/templates/critical",
        "/whatsapp/templates/quality-summary",
        f"/whatsapp/templates/{world.acme_templates['5001']}",
        f"/whatsapp/templates/{world.acme_templates['5001']}/status-history",
        "/whatsapp/alerts",
        "/whatsapp/campaigns",
        f"/whatsapp/campaigns/{world.acme_campaign}",
        "/leads",
        f"/leads/{world.acme_lead}",
    ]


BODIES = {"PATCH": {"name": "renamed"}}  # a valid body, so that only the row is in question


def globex_rows(world: World) -> list[tuple[str, str]]:
    """Every route naming one of globex's rows by id."""
    return [
        ("GET", "/messaging/brands/BGLOB01"),
        ("GET", "/messaging/campaigns/CGLOB01"),
        ("GET", f"/whatsapp/templates/{world.globex_template}"),
        ("GET", f"/whatsapp/templates/{world.globex_template}/status-history"),
        ("POST", f"/whatsapp/templates/{world.globex_template}/acknowledge-alert"),
        ("POST", f"/whatsapp/templates/{world.globex_template}/resume-campaigns"),
        ("GET", f"/whatsapp/campaigns/{world.globex_campaign}"),
        ("PATCH", f"/whatsapp/campaigns/{world.globex_campaign}"),
        ("DELETE", f"/whatsapp/campaigns/{world.globex_campaign}"),
        ("POST", f"/whatsapp/campaigns/{world.globex_campaign}/resume"),
        ("GET", f"/leads/{world.globex_lead}"),
    ]


# -- authentication and roles ---------------------------------------------------------------


ROUTE_TEMPLATES = [
    ("GET", "/messaging/brands"),
    ("GET", "/messaging/brands/{brand_id}"),
    ("GET", "/messaging/campaigns"),
    ("GET", "/messaging/campaigns/{campaign_id}"),
    ("GET", "/messaging/enums"),
    ("PATCH", "/messaging/brands/{brand_id}"),
    ("GET", "/messaging/brand-registrations"),
    ("GET", "/messaging/brand-registrations/{registration_id}"),
    ("POST", "/messaging/brand-registrations/{registration_id}/retry"),
    ("GET", "/whatsapp/templates"),
    ("GET", "/whatsapp/templates/critical"),
    ("GET", "/whatsapp/templates/quality-summary"),
    ("GET", "/whatsapp/templates/{template_id}"),
    ("GET", "/whatsapp/templates/{template_id}/status-history"),
    ("POST", "/whatsapp/templates/{template_id}/acknowledge-alert"),
    ("POST", "/whatsapp/templates/{template_id}/resume-campaigns"),
    ("GET", "/whatsapp/alerts"),
    ("GET", "/whatsapp/campaigns"),
    ("POST", "/whatsapp/campaigns"),
    ("GET", "/whatsapp/campaigns/{campaign_id}"),
    ("PATCH", "/whatsapp/campaigns/{campaign_id}"),
    ("DELETE", "/whatsapp/campaigns/{campaign_id}"),
    ("POST", "/whatsapp/campaigns/{campaign_id}/resume"),
    ("GET", "/leads"),
    ("GET", "/leads/{lead_id}"),
    ("POST", "/leads/{lead_id}/re-enrich"),
]
# Each of them with a value in place of its path parameters (refused before any lookup).
ROUTES = [
    (
        method,
        path.format(brand_id="B1", campaign_id=1, template_id=1, lead_id=1, registration_id=1),
    )
    for method, path in ROUTE_TEMPLATES
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer hk_00000000_not-a-key-anyone-has"},
        {"Authorization": "Bearer not-the-admin-token"},
        {"Authorization": "Basic dmlld2VyOnB3"},
    ],
    ids=["none", "unknown-key", "unknown-token", "basic"],
)
def test_every_route_refuses_missing_or_unknown_credentials(
    api: TestClient, world: World, headers: dict[str, str]
) -> None:
    guessed = headers.get("Authorization", "").startswith("Bearer")
    for n, (method, path) in enumerate(ROUTES):
        response = api.request(method, V1 + path, headers=headers)
        # A wrong key or token counts against the client: after 10 of them, 429 (throttle).
        expected = 429 if guessed and n >= 10 else 401
        assert response.status_code == expected, (method, path, response.text)
        assert response.json()["detail"]


@pytest.mark.parametrize("role", ["viewer", "member", "admin", "superadmin"])
def test_every_role_reads_every_route(
    api: TestClient, people: People, world: World, role: str
) -> None:
    headers = people.every("acme")[role]
    for path in read_routes(world):
        assert api.get(V1 + path, headers=headers).status_code == 200, (role, path)


def test_a_viewer_cannot_acknowledge_a_member_can_and_again_changes_nothing(
    api: TestClient, people: People, world: World
) -> None:
    path = f"{V1}/whatsapp/templates/{world.acme_templates['5001']}/acknowledge-alert"
    viewer, member = people.headers("acme", "viewer"), people.headers("acme", "member")
    refused = api.post(path, headers=viewer)
    assert refused.status_code == 403 and "member" in refused.json()["detail"]
    [still_open] = get(api, "/whatsapp/alerts", viewer)["items"]
    assert still_open["kind"] == "red_quality" and still_open["acknowledged_at"] is None

    done = api.post(path, headers=member)
    assert done.status_code == 200
    member_subject = get(api, "/me", member)["subject"]
    [alert] = done.json()["acknowledged"]
    assert alert["id"] == still_open["id"]
    assert alert["acknowledged_by"] == member_subject and alert["acknowledged_at"]

    # Idempotent: nothing left to acknowledge, and the first acknowledgement is kept.
    admin = people.headers("acme", "admin")
    again = api.post(path, headers=admin)
    assert again.status_code == 200 and again.json()["acknowledged"] == []
    assert get(api, "/whatsapp/alerts", viewer)["items"] == []
    [kept] = get(api, "/whatsapp/alerts", viewer, state="all")["items"]
    assert kept["acknowledged_by"] == member_subject
    critical = get(api, "/whatsapp/templates/critical", viewer)["items"]
    assert {t["meta_template_id"]: t["open_alerts"] for t in critical}["5001"] == []


def test_only_an_admin_resumes_a_paused_campaign(
    api: TestClient, runtime: Runtime, people: People, world: World
) -> None:
    path = f"{V1}/whatsapp/campaigns/{world.acme_campaign}/resume"
    for role in ("viewer", "member"):
        refused = api.post(path, headers=people.headers("acme", role))
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    viewer = people.headers("acme", "viewer")
    paused = get(api, f"/whatsapp/campaigns/{world.acme_campaign}", viewer)
    assert paused["status"] == "paused" and paused["paused_reason"] == "TEMPLATE_PAUSED"
    assert [entry["action"] for entry in paused["log"]] == ["paused"]

    admin = people.headers("acme", "admin")
    blocked = api.post(path, headers=admin)  # not while its template (promo) is PAUSED
    assert blocked.status_code == 409 and "is PAUSED" in blocked.json()["detail"]

    meta(runtime.engine, "acme", "111", "5002", T0 + 2 * HOUR, event="REINSTATED")
    resumed = api.post(path, headers=admin)
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert body["status"] == "active" and body["paused_reason"] is None
    assert [e["action"] for e in body["log"]][:1] == ["resumed"]
    assert "paused" in [e["action"] for e in body["log"]]
    assert body["log"][0]["actor"] == get(api, "/me", admin)["subject"]

    again = api.post(path, headers=admin)
    assert again.status_code == 409 and "not paused" in again.json()["detail"]
    assert api.post(f"{V1}/whatsapp/campaigns/999999/resume", headers=admin).status_code == 404


# -- tenant isolation -----------------------------------------------------------------------


def test_each_tenant_lists_only_its_own_rows(api: TestClient, people: People, world: World) -> None:
    for role in ("viewer", "member", "admin"):
        assert visible(api, people.headers("acme", role)) == ACME_SEES
        assert visible(api, people.headers("globex", role)) == GLOBEX_SEES


def test_another_tenants_rows_are_not_found_by_id(
    api: TestClient, people: People, world: World
) -> None:
    for role in ("viewer", "member", "admin"):
        for method, path in globex_rows(world):
            response = api.request(
                method, V1 + path, headers=people.headers("acme", role), json=BODIES.get(method)
            )
            # A role short of the route's is refused before any lookup; no answer reveals
            # the row.
            expected = 403 if method != "GET" and role == "viewer" else 404
            admins_only = method == "DELETE" or path.endswith(("/resume", "/resume-campaigns"))
            if admins_only and role == "member":
                expected = 403
            assert response.status_code == expected, (role, method, path, response.text)
    # Nothing of globex's changed: its alert is open, its campaign paused.
    globex = people.headers("globex", "viewer")
    assert [a["meta_template_id"] for a in get(api, "/whatsapp/alerts", globex)["items"]] == [
        "6001"
    ]
    assert get(api, f"/whatsapp/campaigns/{world.globex_campaign}", globex)["status"] == "paused"


def test_filters_never_reach_another_tenants_rows(
    api: TestClient, people: People, world: World
) -> None:
    acme = people.headers("acme", "member")
    assert get(api, "/messaging/campaigns", acme, brand_id="BGLOB01")["items"] == []
    assert get(api, "/messaging/campaigns", acme, brand_id="BACME01")["items"][0][
        "campaign_id"
    ] == ("CACME01")
    assert brand_ids(api, acme, identity_status="UNVERIFIED") == set()
    assert brand_ids(api, acme, status="UNVERIFIED") == set()
    assert brand_ids(api, acme, status="VERIFIED") == {"BACME01"}
    assert brand_ids(api, acme, status="REGISTERED") == {"BACME02"}
    assert get(api, "/messaging/campaigns", acme, status="REJECTED")["items"] == []
    assert get(api, "/whatsapp/templates", acme, status="DISABLED")["items"] == []
    assert get(api, "/leads", acme, enrichment_status="pending")["items"] == []
    globex = people.headers("globex", "member")
    assert [
        c["campaign_id"]
        for c in get(api, "/messaging/campaigns", globex, status="REJECTED")["items"]
    ] == ["CGLOB01"]
    assert [
        lead["c2s_lead_id"]
        for lead in get(api, "/leads", globex, enrichment_status="pending")["items"]
    ] == ["c2s-globex-1"]


def test_a_superadmin_sees_every_tenant_or_the_one_it_picks(
    api: TestClient, people: People, world: World
) -> None:
    assert visible(api, people.superadmin()) == EVERYONE_SEES
    assert visible(api, people.superadmin("globex")) == GLOBEX_SEES
    assert visible(api, people.superadmin(TENANTS["globex"])) == GLOBEX_SEES  # by its BAN
    assert visible(api, people.superadmin(TENANTS["acme"])) == ACME_SEES
    unknown = api.get(f"{V1}/leads", headers=people.superadmin("initech"))
    assert unknown.status_code == 404
    # Picking acme hides globex's rows by id too.
    for method, path in globex_rows(world):
        response = api.request(
            method, V1 + path, headers=people.superadmin("acme"), json=BODIES.get(method)
        )
        assert response.status_code == 404, (method, path)
    for method, path in globex_rows(world):
        if method == "GET":
            assert api.get(V1 + path, headers=people.superadmin()).status_code == 200


def test_naming_another_tenant_is_refused_to_anyone_but_a_superadmin(
    api: TestClient, people: People, world: World
) -> None:
    for role in ("viewer", "member", "admin"):
        for other in ("globex", TENANTS["globex"]):
            headers = people.headers("acme", role) | {"X-Customer-ID": other}
            for path in ("/messaging/brands", "/whatsapp/templates", "/leads"):
                assert api.get(V1 + path, headers=headers).status_code == 403, (role, path)
        own = people.headers("acme", role) | {"X-Customer-ID": TENANTS["acme"]}
        assert visible(api, own) == ACME_SEES


# -- personal data --------------------------------------------------------------------------


def test_viewers_see_personal_data_masked_everyone_else_in_clear(
    api: TestClient, people: People, world: World
) -> None:
    viewer = people.headers("acme", "viewer")
    listed = {lead["id"]: lead for lead in get(api, "/leads", viewer)["items"]}
    assert listed[world.acme_lead]["email"] == "m***@example.com"
    assert listed[world.acme_lead]["phone"] == "***4321"
    assert listed[world.acme_lead]["name"] == "M*** T***"  # a name is personal data too
    assert listed[world.acme_lead]["personal_data_masked"] is True

    masked = get(api, f"/leads/{world.acme_lead}", viewer)
    assert (masked["email"], masked["phone"]) == ("m***@example.com", "***4321")
    enrichment = masked["enrichment"]
    assert enrichment["document"] == "***09"
    assert enrichment["data"] == {
        "name": "M*** T***",
        "document": "***09",
        "email": "m***@example.com",
        "mobile": "***4321",
        "birth_date": "***01",  # a date written in digits is masked too
        "monthly_income": 8500,
        "contacts": [{"kind": "work", "value": "m***@acme-corp.example"}],
    }
    assert enrichment["status"] == "done" and enrichment["steps"] == STEPS
    assert enrichment["attempts"] == 1
    failed = get(api, f"/leads/{world.acme_failed_lead}", viewer)["enrichment"]
    assert failed["error"] == (
        "identity: unexpected ValueError: no answer for m***@example.com or ***78"
    )
    body = str(get(api, f"/leads/{world.acme_lead}", viewer))
    for secret in ("maria.test@", "maria@", "987654321", "12345678909", "1990", "Maria Test"):
        assert secret not in body

    for headers in (
        people.headers("acme", "member"),
        people.headers("acme", "admin"),
        people.superadmin(),
    ):
        clear = get(api, f"/leads/{world.acme_lead}", headers)
        assert clear["personal_data_masked"] is False
        assert (clear["email"], clear["phone"]) == ("maria.test@example.com", "+5511987654321")
        assert clear["enrichment"]["document"] == "12345678909"
        assert clear["enrichment"]["data"] == PERSON
        failed = get(api, f"/leads/{world.acme_failed_lead}", headers)["enrichment"]
        assert "maria.nova@example.com" in failed["error"]
        listed = {lead["id"]: lead for lead in get(api, "/leads", headers)["items"]}
        assert listed[world.acme_lead]["email"] == "maria.test@example.com"


def test_masking_helpers() -> None:
    assert mask_document("12345678909") == "***09"
    assert mask_document("1234") == "***"
    assert mask_document(None) is None
    assert mask_text("lookup of a@b.example and 123.456.789-09 failed (HTTP 503)") == (
        "lookup of a***@b.example and ***09 failed (HTTP 503)"
    )
    assert mask_personal(
        {
            "CPF": 12345678909,
            "Phone Numbers": ["+1 650 253 0000"],
            "notes": "call 11987654321",
            "e-mail": "x@y.example",
            "age": 35,
            "verified": True,
            "score": 0.5,
            "rg": None,
        }
    ) == {
        "CPF": "***09",
        "Phone Numbers": ["***0000"],
        "notes": "call ***21",
        "e-mail": "x***@y.example",
        "age": 35,
        "verified": True,
        "score": 0.5,
        "rg": None,
    }


# -- what the routes answer -----------------------------------------------------------------


def test_brand_and_campaign_details_with_carriers_and_vettings(
    api: TestClient, people: People, world: World
) -> None:
    viewer = people.headers("acme", "viewer")
    brand = get(api, "/messaging/brands/BACME01", viewer)
    assert brand["status"] == "VERIFIED" and brand["identity_status"] == "VERIFIED"
    assert (brand["trust_score"], brand["entity_type"], brand["vertical"]) == (
        85,
        "PRIVATE_PROFIT",
        "RETAIL",
    )
    assert brand["tenant"] == "acme" and brand["sync_source"] == "webhook"
    assert [c["campaign_id"] for c in brand["campaigns"]] == ["CACME01"]
    [vetting] = brand["vettings"]
    assert (vetting["kind"], vetting["vetting_key"], vetting["status"], vetting["score"]) == (
        "EVP",
        "VET1",
        "SCORED",
        80,
    )

    found = get(api, "/messaging/campaigns/CACME01", viewer)
    assert found["status"] == "ACTIVE" and found["brand_id"] == "BACME01"
    carriers = {c["mno_id"]: (c["carrier"], c["status"]) for c in found["carriers"]}
    assert carriers == {
        "10017": ("AT&T", "APPROVED"),
        "10035": ("T-Mobile", "REVIEW"),
        "20001": ("MNO 20001", "APPROVED"),  # not in the carrier table yet: its id
    }
    assert all(c["last_synced_at"] for c in found["carriers"])
    rejected = get(api, "/messaging/campaigns/CGLOB01", people.headers("globex", "viewer"))
    assert rejected["status"] == "REJECTED"
    assert rejected["rejection_reason"] == "opt-in flow unclear"
    assert rejected["carriers"][0]["carrier"] == "Verizon Wireless"
    assert api.get(f"{V1}/messaging/brands/BNONE99", headers=viewer).status_code == 404


def test_lists_page_with_a_cursor(api: TestClient, people: People, world: World) -> None:
    viewer = people.headers("acme", "viewer")
    first = get(api, "/messaging/brands", viewer, limit=1)
    second = get(api, "/messaging/brands", viewer, limit=1, before_id=first["next_cursor"])
    assert [first["items"][0]["brand_id"], second["items"][0]["brand_id"]] == [
        "BACME02",
        "BACME01",
    ]
    assert get(api, "/messaging/brands", viewer, limit=1, before_id=second["next_cursor"]) == {
        "items": [],
        "next_cursor": None,
    }
    everything = get(api, "/leads", viewer, limit=500)
    assert len(everything["items"]) == 2 and everything["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"before_id": 0}, {"status": "nope"}):
        assert api.get(f"{V1}/leads", headers=viewer, params=bad).status_code == 422


def test_enums_are_tcrs(api: TestClient, people: People) -> None:
    enums = get(api, "/messaging/enums", people.headers("acme", "viewer"))
    use_cases = {u["value"]: u for u in enums["use_cases"]}
    assert set(use_cases) == {u.value for u in UseCase}
    assert {"2FA", "MIXED", "LOW_VOLUME", "POLLING_VOTING", "K12_EDUCATION"} <= set(use_cases)
    assert use_cases["2FA"] == {
        "value": "2FA",
        "label": "Two-factor authentication",
        "special": False,
    }
    assert use_cases["POLITICAL"]["special"] is True
    assert {u for u, c in use_cases.items() if not c["special"]} == set(STANDARD_USE_CASES)
    assert [e["value"] for e in enums["entity_types"]] == [
        "PRIVATE_PROFIT",
        "PUBLIC_PROFIT",
        "NON_PROFIT",
        "GOVERNMENT",
        "SOLE_PROPRIETOR",
    ]
    assert len(enums["verticals"]) == 23
    assert {"value": "REAL_ESTATE", "label": "Real estate"} in enums["verticals"]
    assert {"mno_id": "10035", "name": "T-Mobile"} in enums["carriers"]
    assert "SUSPENDED" in [s["value"] for s in enums["carrier_statuses"]]
    assert "VETTED_VERIFIED" in [s["value"] for s in enums["brand_statuses"]]


def test_critical_templates_summary_and_history(
    api: TestClient, people: People, world: World
) -> None:
    viewer = people.headers("acme", "viewer")
    critical = {
        t["meta_template_id"]: t for t in get(api, "/whatsapp/templates/critical", viewer)["items"]
    }
    assert set(critical) == {"5001", "5002"}
    assert critical["5001"]["reasons"] == ["quality RED"]
    assert [a["kind"] for a in critical["5001"]["open_alerts"]] == ["red_quality"]
    assert critical["5002"]["reasons"] == ["status PAUSED"]
    assert critical["5002"]["open_alerts"] == [] and critical["5002"]["reason"] == "low quality"

    summary = get(api, "/whatsapp/templates/quality-summary", viewer)
    assert summary["total"] == 3
    assert {c["value"]: c["count"] for c in summary["by_quality"]} == {
        "RED": 1,
        "GREEN": 1,
        None: 1,
    }
    assert {c["value"]: c["count"] for c in summary["by_status"]} == {"APPROVED": 2, "PAUSED": 1}

    red = get(api, "/whatsapp/templates", viewer, quality="RED")["items"]
    assert [t["meta_template_id"] for t in red] == ["5001"] and red[0]["waba_id"] == "111"
    history = get(
        api, f"/whatsapp/templates/{world.acme_templates['5001']}/status-history", viewer
    )["items"]
    assert [(h["kind"], h["from_value"], h["to_value"]) for h in history] == [
        ("quality", "GREEN", "RED"),
        ("status", None, "APPROVED"),
    ]
    only_status = get(
        api,
        f"/whatsapp/templates/{world.acme_templates['5001']}/status-history",
        viewer,
        kind="status",
    )["items"]
    assert [h["event"] for h in only_status] == ["APPROVED"]
    missing = api.get(f"{V1}/whatsapp/templates/999999/status-history", headers=viewer)
    assert missing.status_code == 404

    one = get(api, f"/whatsapp/templates/{world.acme_templates['5001']}", viewer)
    assert (one["meta_template_id"], one["quality"], one["tenant"]) == ("5001", "RED", "acme")
    theirs = api.get(f"{V1}/whatsapp/templates/{world.globex_template}", headers=viewer)
    assert theirs.status_code == 404


def test_the_openapi_document_declares_models_and_refusals(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    operations = {
        (method.upper(), path): op
        for path, ops in paths.items()
        if path.startswith(DOMAIN_PREFIXES)
        for method, op in ops.items()
    }
    del operations[("POST", f"{V1}/messaging/brands")]  # registers with TCR: tested apart
    assert sorted(operations) == sorted((method, V1 + path) for method, path in ROUTE_TEMPLATES)
    for key, op in operations.items():
        # 201: created; 202: work queued (re-enrich)
        ok = next(code for code in ("201", "202", "200") if code in op["responses"])
        assert {ok, "401", "403", "404"} <= set(op["responses"]), key
        assert "$ref" in op["responses"][ok]["content"]["application/json"]["schema"], key


def test_generated_requests_with_rows_present_find_no_error_and_no_schema_violation(
    runtime: Runtime, people: People, world: World
) -> None:
    """schemathesis on these routes with both tenants' rows in place (tests/test_openapi.py
    fuzzes every route against an empty database)."""
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.content_type_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    callers = [
        people.headers("acme", "viewer"),
        people.headers("acme", "admin"),
        people.superadmin(),
    ]
    failures: list[str] = []
    with serving(create_app(runtime, run_workers=False)) as base:
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        operations = [
            result.ok()
            for result in schema.get_all_operations()
            if result.ok().path.startswith(DOMAIN_PREFIXES)
        ]
        assert len(operations) == 27  # the 26 routes here and POST /messaging/brands

        for operation in operations:
            if operation.method.upper() == "POST" and operation.path == "/api/v1/messaging/brands":
                continue  # registers with TCR: tests/test_brand_registration.py

            @given(case=operation.as_strategy())
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
            def run(case: Any) -> None:
                for headers in callers:
                    case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except Exception as exc:  # every operation's failure, then one report
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_members_ask_for_a_lead_to_be_enriched_again(
    api: TestClient, people: People, world: World
) -> None:
    path = f"{V1}/leads/{world.acme_lead}/re-enrich"
    assert api.post(path, headers=people.headers("acme", "viewer")).status_code == 403
    assert api.post(path, headers=people.headers("globex", "member")).status_code == 404
    queued = api.post(path, headers=people.headers("acme", "member"))
    assert queued.status_code == 202 and queued.json()["enrichment_status"] == "pending"
    shown = get(api, f"/leads/{world.acme_lead}", people.headers("acme", "member"))
    assert shown["enrichment"]["status"] == "pending"
