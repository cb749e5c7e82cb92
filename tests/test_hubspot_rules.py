"""Issue 14's HubSpot field rules, company search and linking, and the company properties,
over HTTP against the fake HubSpot (`tests.test_sync.world`: hookyard served for real, the
fake's webhooks signed and delivered to it, workers drained by the test).

- ban, status, customer_type, current_balance, services (out only, ours): a change in
  HubSpot is not applied, and ours is pushed again;
- company_name (both ways): the latest change wins, by time;
- credit_limit (both ways, HubSpot's): applied; ours is pushed only while HubSpot has not
  changed it since the last sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hookyard import cli
from hookyard.accounts import identity
from hookyard.domain.crm.rules import FieldRules
from hookyard.domain.crm.tables import customers, outbox, sync_conflicts, sync_log
from hookyard.sync.hubspot_api import HubSpotClient
from hookyard.sync.hubspot_properties import check
from hookyard.testing.fakes.hubspot import HubSpotState
from hookyard.testing.fakes.hubspot import create_app as hubspot_app
from hookyard.testing.fakes.server import ThreadedServer
from hookyard.testing.simulate import hubspot_delivery
from tests.conftest import SECRETS
from tests.support import count, row, wait_for
from tests.sync_support import World, create_customer


def settled(w: World) -> dict[str, Any]:
    """A customer created and pushed, the webhooks of its creation (our echo) handled."""
    response = create_customer(w)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["sync"] == "synced"
    assert wait_for(lambda: len(w.hubspot.deliveries) >= 1, timeout=10)
    w.drain()
    return created


def company(w: World, company_id: str) -> dict[str, Any]:
    found = w.hubspot.company(company_id)
    assert found is not None
    props: dict[str, Any] = found["properties"]
    return props


def log_of(w: World, customer_id: int) -> list[tuple[str, str, str]]:
    with w.rt.engine.connect() as conn:
        found = conn.execute(
            select(sync_log.c.direction, sync_log.c.operation, sync_log.c.result)
            .where(sync_log.c.customer_id == customer_id)
            .order_by(sync_log.c.id)
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


def deliver_late(w: World) -> None:
    """HubSpot's webhooks that were held back (`deliver=False`), delivered now."""
    url = w.url + "/webhooks/hubspot/company"
    d = hubspot_delivery(SECRETS["hubspot"], url, [lost.payload for lost in w.hubspot.lost])
    assert httpx.post(url, content=d.body, headers=d.headers).status_code == 200


# -- the rules, row by row -------------------------------------------------------------------

OURS = [
    ("status", "hookyard_status", "closed", "active"),
    ("customer_type", "hookyard_customer_type", "residential", "business"),
    ("current_balance", "hookyard_current_balance", "999", "0.00"),
    ("services", "hookyard_services", "voice;messaging", "voice"),
    ("ban", "hookyard_ban", "ZZ000000000", None),
]


@pytest.mark.parametrize("field, prop, theirs, ours", OURS)
def test_a_hubspot_edit_of_a_field_we_own_is_overwritten_in_one_outbox_pass_and_logged(
    world: World,
    field: str,
    prop: str,
    theirs: str,
    ours: str | None,
) -> None:
    created = settled(world)
    cid, company_id = created["id"], created["hubspot_company_id"]
    ours = ours or created["ban"]
    seen = len(world.hubspot.deliveries)
    world.hubspot.edit_company(company_id, {prop: theirs})  # a person, in HubSpot
    assert wait_for(lambda: len(world.hubspot.deliveries) > seen, timeout=10)
    world.rt.make_worker()._run_events()  # the webhook only: the outbox pass comes next
    [queued] = [r for r in _outbox(world, cid) if r["status"] == "pending"]
    assert queued["fields"] == [field]
    assert company(world, company_id)[prop] == theirs  # not yet
    assert world.outbox_pass() == 1  # one pass
    assert company(world, company_id)[prop] == ours  # overwritten with ours
    detail = world.api("GET", f"/api/v1/customers/{cid}", tenant="acme").json()
    state = next(f for f in detail["fields"] if f["field"] == field)
    assert state["our_value"] == ours and state["pushed_value"] == ours
    assert detail["open_conflicts"] == 0 and count(world.rt.engine, sync_conflicts) == 0
    assert log_of(world, cid)[-2:] == [("in", "repush", "not_applied"), ("out", "update", "ok")]
    # Our overwrite comes back as HubSpot's webhook: our echo, nothing more goes out.
    wait_for(lambda: len(world.hubspot.deliveries) > seen + 1, timeout=10)
    world.drain()
    assert world.outbox_pass() == 0
    assert company(world, company_id)[prop] == ours


def test_hubspots_credit_limit_applies(world: World) -> None:
    created = settled(world)
    cid, company_id = created["id"], created["hubspot_company_id"]
    world.hubspot.edit_company(company_id, {"hookyard_credit_limit": "9000"})
    assert wait_for(lambda: len(world.hubspot.deliveries) >= 2, timeout=10)
    world.drain()
    assert row(world.rt.engine, customers, customers.c.id == cid)["credit_limit_cents"] == 900000
    assert company(world, company_id)["hookyard_credit_limit"] == "9000"  # left as HubSpot has it
    assert count(world.rt.engine, outbox, outbox.c.customer_id == cid) == 1  # the creation only


def test_our_credit_limit_goes_out_while_hubspot_has_not_changed_it(world: World) -> None:
    created = settled(world)
    cid, company_id = created["id"], created["hubspot_company_id"]
    changed = world.api("PATCH", f"/api/v1/customers/{cid}", json={"credit_limit": "2500"})
    assert changed.status_code == 202 and changed.json()["fields"] == ["credit_limit"]
    assert world.outbox_pass() == 1
    assert company(world, company_id)["hookyard_credit_limit"] == "2500.00"


def test_our_credit_limit_is_not_pushed_over_a_change_made_in_hubspot(world: World) -> None:
    created = settled(world)
    cid, company_id = created["id"], created["hubspot_company_id"]
    # HubSpot changes it; its webhook has not come yet when our change goes out.
    world.hubspot.edit_company(company_id, {"hookyard_credit_limit": "7000"}, deliver=False)
    world.api("PATCH", f"/api/v1/customers/{cid}", json={"credit_limit": "2500", "status": "vip"})
    assert world.outbox_pass() == 1
    props = company(world, company_id)
    assert (props["hookyard_credit_limit"], props["hookyard_status"]) == ("7000", "vip")
    after = row(world.rt.engine, customers, customers.c.id == cid)
    assert after["credit_limit_cents"] == 700000  # HubSpot's, applied
    assert ("out", "update", "not_pushed") in log_of(world, cid)


def test_company_name_latest_change_wins(world: World) -> None:
    created = settled(world)
    cid, company_id = created["id"], created["hubspot_company_id"]
    # HubSpot renames it, but its webhook comes late: after our own, later, rename.
    world.hubspot.edit_company(company_id, {"name": "Ringer Old"}, deliver=False)
    world.api("PATCH", f"/api/v1/customers/{cid}", json={"company_name": "Ringer New"})
    assert world.outbox_pass() == 1
    deliver_late(world)
    world.drain()
    assert row(world.rt.engine, customers, customers.c.id == cid)["company_name"] == "Ringer New"
    assert company(world, company_id)["name"] == "Ringer New"
    # A later rename in HubSpot wins over ours.
    seen = len(world.hubspot.deliveries)
    world.hubspot.edit_company(company_id, {"name": "Ringer Newest"})
    assert wait_for(lambda: len(world.hubspot.deliveries) > seen, timeout=10)
    world.drain()
    assert row(world.rt.engine, customers, customers.c.id == cid)["company_name"] == (
        "Ringer Newest"
    )
    assert count(world.rt.engine, sync_conflicts) == 0


def _outbox(w: World, customer_id: int) -> list[dict[str, Any]]:
    with w.rt.engine.connect() as conn:
        found = conn.execute(
            select(outbox).where(outbox.c.customer_id == customer_id).order_by(outbox.c.id)
        )
        return [dict(r) for r in found.mappings()]


# -- search and link -------------------------------------------------------------------------


def search(w: World, **params: Any) -> httpx.Response:
    return w.api("GET", "/api/v1/hubspot/companies/search", tenant="acme", params=params)


def test_search_finds_companies_by_name_domain_or_ban_page_by_page(world: World) -> None:
    for i in range(3):
        world.hubspot.create_company({"name": f"Globex Telecom {i}", "domain": f"globex{i}.com"})
    world.hubspot.create_company({"name": "Initech", "hookyard_ban": "AB123456789"})
    first = search(world, q="globex", limit=2)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] == 3 and body["after"]
    assert [c["name"] for c in body["results"]] == ["Globex Telecom 0", "Globex Telecom 1"]
    second = search(world, q="globex", limit=2, after=body["after"]).json()
    assert [c["name"] for c in second["results"]] == ["Globex Telecom 2"]
    assert second["after"] is None
    assert [c["name"] for c in search(world, q="globex2.com").json()["results"]] == [
        "Globex Telecom 2"
    ]
    [by_ban] = search(world, q="AB123456789").json()["results"]
    assert (by_ban["name"], by_ban["ban"], by_ban["linked"]) == ("Initech", "AB123456789", False)
    assert search(world, q="nothing like it").json()["results"] == []
    assert search(world, q="").status_code == 422
    # HubSpot's search API was asked, as HubSpot documents it.
    asked = [r for r in world.hubspot.requests if r.path.endswith("/companies/search")]
    assert asked[0].json["query"] == "globex" and asked[0].json["limit"] == 2
    assert asked[-2].json["filterGroups"][0]["filters"][0] == {
        "propertyName": "hookyard_ban", "operator": "EQ", "value": "AB123456789",
    }  # fmt: skip


def test_a_customer_links_a_found_company_and_a_second_link_is_refused(world: World) -> None:
    found = world.hubspot.create_company(
        {"name": "Umbrella Networks", "domain": "umbrella.example", "hookyard_credit_limit": "7000"}
    )
    [hit] = search(world, q="umbrella").json()["results"]
    assert hit["id"] == found["id"]
    linked = world.api("POST", "/api/v1/customers", tenant="acme",
                       json={"hubspot_company_id": hit["id"], "credit_limit": "100",
                             "services": ["messaging"]})  # fmt: skip
    assert linked.status_code == 201, linked.text
    body = linked.json()
    assert (body["hubspot_company_id"], body["sync"]) == (found["id"], "synced")
    customer = world.api("GET", f"/api/v1/customers/{body['id']}", tenant="acme").json()
    assert customer["company_name"] == "Umbrella Networks"  # HubSpot's name
    assert customer["credit_limit"] == "7000.00"  # HubSpot's authority
    props = company(world, found["id"])
    assert (props["hookyard_ban"], props["hookyard_services"]) == (body["ban"], "messaging")
    assert props["name"] == "Umbrella Networks" and props["hookyard_credit_limit"] == "7000.00"
    assert len(world.hubspot.companies) == 1  # linked, not made again
    [again] = search(world, q="umbrella").json()["results"]
    assert (again["linked"], again["customer_id"]) == (True, body["id"])
    # A second customer for the same company: refused, in any tenant.
    identity.create_tenant(world.rt.engine, "globex", "Globex")
    for tenant in ("acme", "globex"):
        second = world.api("POST", "/api/v1/customers", tenant=tenant,
                           json={"hubspot_company_id": found["id"]})  # fmt: skip
        assert second.status_code == 409, second.text
        assert "another customer" in second.json()["detail"]
    other = world.api("GET", "/api/v1/hubspot/companies/search", tenant="globex",
                      params={"q": "umbrella"}).json()["results"]  # fmt: skip
    assert (other[0]["linked"], other[0]["customer_id"]) == (True, None)  # not named to them
    assert count(world.rt.engine, customers) == 1


def test_linking_a_company_hubspot_does_not_have(world: World) -> None:
    missing = world.api("POST", "/api/v1/customers", tenant="acme",
                        json={"hubspot_company_id": "999999"})  # fmt: skip
    assert missing.status_code == 404 and "no company 999999" in missing.json()["detail"]
    assert world.api("POST", "/api/v1/customers", tenant="acme",
                     json={"hubspot_company_id": "abc"}).status_code == 422  # fmt: skip
    assert world.api("POST", "/api/v1/customers", tenant="acme", json={}).status_code == 422
    assert count(world.rt.engine, customers) == 0


# -- the properties HubSpot needs ------------------------------------------------------------


@pytest.fixture
def bare_hubspot() -> Iterator[tuple[HubSpotState, str]]:
    """A HubSpot portal without hookyard's custom properties."""
    state = HubSpotState("bare-token", "secret", custom_properties=False)
    server = ThreadedServer(hubspot_app(state))
    url = server.start()
    yield state, url
    server.stop()


def test_hubspot_properties_lists_the_missing_and_creates_them(
    bare_hubspot: tuple[HubSpotState, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = bare_hubspot
    monkeypatch.setenv("HOOKYARD_HUBSPOT_API_URL", url)
    monkeypatch.setenv("HOOKYARD_HUBSPOT_ACCESS_TOKEN", "bare-token")
    monkeypatch.setenv("HOOKYARD_HUBSPOT_PROPERTY_NAMES", '{"ban": "account_ban"}')
    assert cli.main(["hubspot", "properties"]) == 1
    listed = capsys.readouterr().out
    assert "account_ban" in listed and "missing" in listed and "--create" in listed
    assert "name" in state.property_names  # company_name: HubSpot's own `name`
    assert cli.main(["hubspot", "properties", "--create"]) == 0
    made = {"account_ban", "hookyard_status", "hookyard_customer_type", "hookyard_credit_limit",
            "hookyard_current_balance", "hookyard_services"}  # fmt: skip
    assert made <= state.property_names and "hookyard_ban" not in state.property_names
    definitions = {d["name"]: d for d in state.property_definitions()}
    services = definitions["hookyard_services"]
    assert (services["type"], services["fieldType"]) == ("enumeration", "checkbox")
    assert [o["value"] for o in services["options"]] == ["voice", "messaging", "telecom_data"]
    assert definitions["hookyard_credit_limit"]["type"] == "number"
    assert cli.main(["hubspot", "properties", "--json"]) == 0
    assert '"state": "present"' in capsys.readouterr().out
    # The properties take our values now (HubSpot validates them).
    client = HubSpotClient(url, "bare-token")
    values = {"account_ban": "AB123456789", "hookyard_services": "voice;messaging",
              "hookyard_credit_limit": "10.5"}  # fmt: skip
    made_company = client.create_company(values)
    assert made_company["id"]
    # Made once: a second --create finds them all, and HubSpot's 409 is never asked for.
    assert {c.state for c in check(client, FieldRules.named({"ban": "account_ban"}),
                                    create=True)} == {"present"}  # fmt: skip
    posts = [r for r in state.requests if r.method == "POST" and "properties" in r.path]
    assert len(posts) == len(made)
    client.close()


def test_hubspot_properties_needs_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOKYARD_HUBSPOT_ACCESS_TOKEN", raising=False)
    assert cli.main(["hubspot", "properties"]) == 2
