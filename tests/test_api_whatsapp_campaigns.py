"""WhatsApp campaigns over the management API (`/api/v1/whatsapp/campaigns`): created by
members, paused by a signed DISABLED webhook through ingress and the worker, resumed in one
admin action once Meta reinstates the template; what the critical templates and the quality
summary say of them; who may do what; and that no tenant reaches another's campaigns or
templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hookyard.api.params import MAX_ID
from hookyard.runtime import Runtime
from tests.people import People
from tests.whatsapp_support import (
    GLOBEX_META_PATH,
    GLOBEX_WABA,
    TENANT_SOURCES,
    template_status,
)

V1 = "/api/v1"
T0 = 1_763_800_000
ORDERS, PROMO, NOTICE = "7001", "7002", "8001"  # acme's two templates, globex's one


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(TENANT_SOURCES)
    return path


def webhook(api: TestClient, runtime: Runtime, template: str, name: str, event: str,
            minute: int, *, globex: bool = False) -> None:  # fmt: skip
    """Meta's signed status webhook through ingress, then the worker."""
    kwargs: dict[str, Any] = {"waba": GLOBEX_WABA, "path": GLOBEX_META_PATH} if globex else {}
    delivery = template_status("", template, name, event, T0 + 60 * minute, **kwargs)
    answer = api.post(delivery.url, content=delivery.body, headers=delivery.headers)
    assert answer.status_code == 200, answer.text
    assert runtime.make_worker().drain() == 1


@pytest.fixture
def templates(api: TestClient, runtime: Runtime, people: People) -> dict[str, int]:
    """acme's orders and promo, globex's notice, all APPROVED: hookyard's ids by Meta id."""
    webhook(api, runtime, ORDERS, "orders", "APPROVED", 0)
    webhook(api, runtime, PROMO, "promo", "APPROVED", 0)
    webhook(api, runtime, NOTICE, "notice", "APPROVED", 0, globex=True)
    found = {}
    for tenant in ("acme", "globex"):
        for t in call(api, "GET", "/whatsapp/templates", people.headers(tenant, "viewer"))["items"]:
            found[t["meta_template_id"]] = t["id"]
    return found


def call(api: TestClient, method: str, path: str, headers: dict[str, str], expect: int = 200,
         **kwargs: Any) -> Any:  # fmt: skip
    answer = api.request(method, V1 + path, headers=headers, **kwargs)
    assert answer.status_code == expect, (method, path, answer.text)
    return answer.json()


def create(api: TestClient, headers: dict[str, str], name: str, template: int, **more: Any) -> Any:
    return call(api, "POST", "/whatsapp/campaigns", headers, 201,
                json={"name": name, "template_id": template, **more})  # fmt: skip


def status(api: TestClient, people: People, campaign: int) -> tuple[str, str | None]:
    found = call(api, "GET", f"/whatsapp/campaigns/{campaign}", people.headers("acme", "viewer"))
    return found["status"], found["paused_reason"]


# -- the whole story ------------------------------------------------------------------------


def test_a_campaign_made_over_the_api_is_paused_by_a_signed_disabled_webhook_and_resumed(
    api: TestClient, runtime: Runtime, people: People, templates: dict[str, int]
) -> None:
    member, admin = people.headers("acme", "member"), people.headers("acme", "admin")
    made = create(api, member, "Black Friday", templates[ORDERS])
    assert (made["status"], made["template_name"], made["tenant"]) == ("active", "orders", "acme")
    held = create(api, member, "Held back", templates[ORDERS], status="paused")
    assert (held["status"], held["paused_reason"]) == ("paused", "MANUAL")
    other = create(api, member, "Promo week", templates[PROMO])["id"]
    campaign = made["id"]

    webhook(api, runtime, ORDERS, "orders", "DISABLED", 1)

    assert status(api, people, campaign) == ("paused", "TEMPLATE_DISABLED")
    assert status(api, people, held["id"]) == ("paused", "MANUAL")
    assert status(api, people, other) == ("active", None)
    viewer = people.headers("acme", "viewer")
    [critical] = call(api, "GET", "/whatsapp/templates/critical", viewer)["items"]
    assert critical["id"] == templates[ORDERS]
    assert critical["campaigns_affected"] == {"count": 1, "ids": [campaign]}  # not `held`
    assert critical["action_required"].startswith("Template disabled by Meta: edit and resubmit")
    summary = call(api, "GET", "/whatsapp/templates/quality-summary", viewer)
    assert summary["campaigns_paused"] == [
        {"value": "MANUAL", "count": 1},
        {"value": "TEMPLATE_DISABLED", "count": 1},
    ]
    # Not while the template is disabled: by PATCH (409) or the template's action (409).
    refused = call(api, "PATCH", f"/whatsapp/campaigns/{campaign}", admin, 409,
                   json={"status": "active"})  # fmt: skip
    assert "DISABLED" in refused["detail"]
    path = f"/whatsapp/templates/{templates[ORDERS]}/resume-campaigns"
    assert "DISABLED" in call(api, "POST", path, admin, 409)["detail"]
    # A campaign created on the disabled template starts paused for it.
    late = create(api, member, "Late", templates[ORDERS])
    assert (late["status"], late["paused_reason"]) == ("paused", "TEMPLATE_DISABLED")

    webhook(api, runtime, ORDERS, "orders", "REINSTATED", 2)
    assert status(api, people, campaign) == ("paused", "TEMPLATE_DISABLED")  # a person decides
    assert call(api, "POST", path, member, 403)["detail"] == "this needs the admin role"

    resumed = call(api, "POST", path, admin)
    assert resumed == {"template_id": templates[ORDERS], "resumed": [campaign, late["id"]]}
    assert status(api, people, campaign) == ("active", None)
    assert status(api, people, held["id"]) == ("paused", "MANUAL")  # a person paused it
    detail = call(api, "GET", f"/whatsapp/campaigns/{campaign}", viewer)
    subject = call(api, "GET", "/me", admin)["subject"]
    assert [(e["action"], e["actor"]) for e in detail["log"]] == [
        ("resumed", subject),
        ("template_reinstated", None),
        ("paused", None),
    ]
    assert call(api, "POST", path, admin) == {"template_id": templates[ORDERS], "resumed": []}
    assert call(api, "GET", "/whatsapp/templates/critical", viewer)["items"] == []


# -- changing and deleting ------------------------------------------------------------------


def test_members_rename_move_pause_and_resume_what_a_person_paused(
    api: TestClient, runtime: Runtime, people: People, templates: dict[str, int]
) -> None:
    member = people.headers("acme", "member")
    campaign = create(api, member, "Spring", templates[ORDERS])["id"]
    path = f"/whatsapp/campaigns/{campaign}"

    changed = call(api, "PATCH", path, member,
                   json={"name": "Spring sale", "template_id": templates[PROMO]})  # fmt: skip
    assert (changed["name"], changed["template_name"], changed["status"]) == (
        "Spring sale", "promo", "active"
    )  # fmt: skip
    paused = call(api, "PATCH", path, member, json={"status": "paused"})
    assert (paused["status"], paused["paused_reason"]) == ("paused", "MANUAL")
    assert paused["paused_by"] == call(api, "GET", "/me", member)["subject"]
    assert call(api, "PATCH", path, member, json={"status": "active"})["status"] == "active"
    assert [e["action"] for e in call(api, "GET", path, member)["log"]] == [
        "resumed", "paused", "changed", "changed"
    ]  # fmt: skip

    # Moved onto a template Meta paused, it is paused for it; only an admin resumes it.
    webhook(api, runtime, ORDERS, "orders", "PAUSED", 1)
    moved = call(api, "PATCH", path, member, json={"template_id": templates[ORDERS]})
    assert (moved["status"], moved["paused_reason"]) == ("paused", "TEMPLATE_PAUSED")
    webhook(api, runtime, ORDERS, "orders", "REINSTATED", 2)
    refused = call(api, "PATCH", path, member, 403, json={"status": "active"})
    assert "an admin resumes it" in refused["detail"]
    admin = people.headers("acme", "admin")
    assert call(api, "PATCH", path, admin, json={"status": "active"})["status"] == "active"


def test_both_resume_routes_refuse_while_the_template_is_paused_or_disabled(
    api: TestClient, runtime: Runtime, people: People, templates: dict[str, int]
) -> None:
    """`POST …/resume` (the older route) and `PATCH` with `status: active` are one rule
    (domain/whatsapp/campaigns.py): no campaign runs on a template Meta paused or disabled."""
    admin = people.headers("acme", "admin")
    campaign = create(api, admin, "Spring", templates[PROMO])["id"]
    path = f"/whatsapp/campaigns/{campaign}"
    for minute, event in ((1, "PAUSED"), (3, "DISABLED")):
        webhook(api, runtime, PROMO, "promo", event, minute)
        assert status(api, people, campaign) == ("paused", f"TEMPLATE_{event}")
        old = call(api, "POST", f"{path}/resume", admin, 409)["detail"]
        new = call(api, "PATCH", path, admin, 409, json={"status": "active"})["detail"]
        assert old == new == f"template promo is {event}: no campaign can run on it"
        assert status(api, people, campaign) == ("paused", f"TEMPLATE_{event}")
        webhook(api, runtime, PROMO, "promo", "REINSTATED", minute + 1)
        assert status(api, people, campaign) == ("paused", f"TEMPLATE_{event}")  # still a person's
        if event == "PAUSED":  # APPROVED again: the older route resumes it, the log says who
            resumed = call(api, "POST", f"{path}/resume", admin)
            assert (resumed["status"], resumed["paused_reason"]) == ("active", None)
            assert resumed["log"][0]["action"] == "resumed"
    assert call(api, "PATCH", path, admin, json={"status": "active"})["status"] == "active"
    detail = call(api, "POST", f"{path}/resume", admin, 409)["detail"]
    assert detail == f"campaign {campaign} is active, not paused"


def test_only_an_admin_deletes_a_campaign(
    api: TestClient, people: People, templates: dict[str, int]
) -> None:
    campaign = create(api, people.headers("acme", "member"), "Gone soon", templates[ORDERS])["id"]
    path = f"/whatsapp/campaigns/{campaign}"
    for role in ("viewer", "member"):
        assert call(api, "DELETE", path, people.headers("acme", role), 403)["detail"]
    assert call(api, "DELETE", path, people.headers("globex", "admin"), 404)["detail"]
    admin = people.headers("acme", "admin")
    assert call(api, "DELETE", path, admin) == {"id": campaign, "deleted": True}
    assert call(api, "GET", path, admin, 404)["detail"] == f"no campaign {campaign}"
    assert call(api, "DELETE", path, admin, 404)["detail"] == f"no campaign {campaign}"


# -- roles and tenants ----------------------------------------------------------------------


def test_a_viewer_reads_but_creates_and_changes_nothing(
    api: TestClient, people: People, templates: dict[str, int]
) -> None:
    campaign = create(api, people.headers("acme", "member"), "Mine", templates[ORDERS])["id"]
    viewer = people.headers("acme", "viewer")
    body = {"name": "Nope", "template_id": templates[ORDERS]}
    assert call(api, "POST", "/whatsapp/campaigns", viewer, 403, json=body)["detail"]
    path = f"/whatsapp/campaigns/{campaign}"
    assert call(api, "PATCH", path, viewer, 403, json={"name": "x"})["detail"]
    path = f"/whatsapp/templates/{templates[ORDERS]}/resume-campaigns"
    assert call(api, "POST", path, viewer, 403)["detail"]
    listed = call(api, "GET", "/whatsapp/campaigns", viewer)["items"]
    assert [c["name"] for c in listed] == ["Mine"]
    by_template = call(api, "GET", "/whatsapp/campaigns", viewer,
                       params={"template_id": templates[PROMO]})  # fmt: skip
    assert by_template["items"] == []


def test_no_tenant_reaches_another_tenants_campaigns_or_templates(
    api: TestClient, people: People, templates: dict[str, int]
) -> None:
    acme = create(api, people.headers("acme", "member"), "Acme's", templates[ORDERS])["id"]
    globex = create(api, people.headers("globex", "member"), "Globex's", templates[NOTICE])["id"]
    member, admin = people.headers("globex", "member"), people.headers("globex", "admin")
    # A template of another tenant is not found, to create on or move to.
    body = {"name": "Stolen", "template_id": templates[ORDERS]}
    assert call(api, "POST", "/whatsapp/campaigns", member, 404, json=body)["detail"] == (
        f"no template {templates[ORDERS]}"
    )
    move = {"template_id": templates[ORDERS]}
    assert call(api, "PATCH", f"/whatsapp/campaigns/{globex}", member, 404, json=move)["detail"]
    # Another tenant's campaign is not found, to read, change or delete.
    for method, json in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        found = call(api, method, f"/whatsapp/campaigns/{acme}", admin, 404, json=json)
        assert found["detail"] == f"no campaign {acme}"
    path = f"/whatsapp/templates/{templates[ORDERS]}/resume-campaigns"
    assert call(api, "POST", path, admin, 404)["detail"] == f"no template {templates[ORDERS]}"
    assert [c["id"] for c in call(api, "GET", "/whatsapp/campaigns", member)["items"]] == [globex]
    assert (
        call(api, "GET", f"/whatsapp/campaigns/{acme}", people.headers("acme", "viewer"))["name"]
        == "Acme's"
    )

    # A superadmin creates in the template's tenant, and moves only within that tenant.
    root = people.superadmin()
    made = create(api, root, "By root", templates[NOTICE])
    assert made["tenant"] == "globex"
    move = {"template_id": templates[ORDERS]}
    assert call(api, "PATCH", f"/whatsapp/campaigns/{made['id']}", root, 404, json=move)["detail"]
    acting = people.superadmin("acme")
    assert call(api, "PATCH", f"/whatsapp/campaigns/{globex}", acting, 404, json=move)["detail"]


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x"},
        {"template_id": 1},
        {"name": "", "template_id": 1},
        {"name": "   ", "template_id": 1},
        {"name": "a\x00b", "template_id": 1},
        {"name": "x" * 201, "template_id": 1},
        {"name": "x", "template_id": 0},
        {"name": "x", "template_id": MAX_ID + 1},
        {"name": "x", "template_id": "seven"},
        {"name": "x", "template_id": 1, "status": "running"},
        {"name": "x", "template_id": 1, "tenant": "globex"},
        [],
        "campaign",
    ],
)
def test_a_bad_new_campaign_is_a_422_with_the_reason(
    api: TestClient, people: People, body: Any
) -> None:
    answer = api.post(
        f"{V1}/whatsapp/campaigns", json=body, headers=people.headers("acme", "member")
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": None}, {"status": None}, {"status": "stopped"}, {"template_id": -1},
     {"name": ""}, {"colour": "red"}, []],
)  # fmt: skip
def test_a_bad_change_is_a_422_with_the_reason(
    api: TestClient, people: People, templates: dict[str, int], body: Any
) -> None:
    member = people.headers("acme", "member")
    campaign = create(api, member, "Kept", templates[ORDERS])["id"]
    answer = api.patch(f"{V1}/whatsapp/campaigns/{campaign}", json=body, headers=member)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["msg"]
    assert status(api, people, campaign) == ("active", None)


def test_bad_ids_and_bodies_are_4xx_never_500(
    api: TestClient, people: People, templates: dict[str, int]
) -> None:
    admin = people.headers("acme", "admin")
    for method, path in [
        ("PATCH", "/whatsapp/campaigns/0"),
        ("PATCH", f"/whatsapp/campaigns/{MAX_ID + 1}"),
        ("PATCH", "/whatsapp/campaigns/abc"),
        ("DELETE", "/whatsapp/campaigns/-1"),
        ("POST", f"/whatsapp/templates/{MAX_ID + 1}/resume-campaigns"),
        ("POST", "/whatsapp/templates/x/resume-campaigns"),
    ]:
        answer = api.request(method, V1 + path, json={"name": "x"}, headers=admin)
        assert answer.status_code == 422, (method, path, answer.text)
    for method, path in [
        ("PATCH", f"/whatsapp/campaigns/{MAX_ID}"),
        ("DELETE", "/whatsapp/campaigns/999999"),
        ("POST", "/whatsapp/templates/999999/resume-campaigns"),
    ]:
        answer = api.request(method, V1 + path, json={"name": "x"}, headers=admin)
        assert answer.status_code == 404, (method, path, answer.text)
    missing = {"name": "x", "template_id": 999999}
    assert call(api, "POST", "/whatsapp/campaigns", admin, 404, json=missing)["detail"] == (
        "no template 999999"
    )
    raw = api.post(f"{V1}/whatsapp/campaigns", content=b"\xff{not json",
                   headers=admin | {"content-type": "application/json"})  # fmt: skip
    assert raw.status_code == 400, raw.text
