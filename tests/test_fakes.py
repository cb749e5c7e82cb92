"""The fake provider platforms, driven over real HTTP: their API shapes, auth, paging,
errors, failure injection and control surface, and — the point of them — that the webhooks
they send are accepted by a real hookyard and land as events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import pytest
from hubspot.utils.signature import Signature as HubSpotSDK
from sqlalchemy import Table, select

from hookyard.app import create_app as create_gateway
from hookyard.domain.crm import service as crm
from hookyard.domain.crm.tables import customers
from hookyard.domain.tendlc.catalogue import CATALOGUE
from hookyard.domain.tendlc.tables import brands, campaign_carriers
from hookyard.domain.whatsapp.tables import templates as whatsapp_templates
from hookyard.inbox.reads import EventFilter
from hookyard.providers.signing import hubspot_uri
from hookyard.runtime import Runtime
from hookyard.testing.fakes import hubspot, meta, tcr
from hookyard.testing.fakes.platform import FakePlatform
from hookyard.testing.fakes.server import serving
from tests.conftest import SECRETS
from tests.support import wait_for

S = TypeVar("S", bound=FakePlatform)

TCR_KEY, TCR_SECRET = "tcr-key", "tcr-secret"
HUBSPOT_TOKEN = "pat-na1-fake-token"
META_TOKEN = "EAAfakeaccesstoken"


@dataclass
class Served(Generic[S]):
    state: S
    url: str
    api: httpx.Client  # authenticated as the provider expects
    control: httpx.Client  # the /_fake/... surface, no credentials


@pytest.fixture
def gateway(runtime: Runtime) -> Iterator[str]:
    """A real hookyard on a free port (workers off: tests drain them when they want)."""
    with serving(create_gateway(runtime, run_workers=False)) as url:
        yield url


def _serve(state: S, app: Any, **api_options: Any) -> Iterator[Served[S]]:
    with (
        serving(app) as url,
        httpx.Client(base_url=url, timeout=10, **api_options) as api,
        httpx.Client(base_url=url, timeout=10) as control,
    ):
        yield Served(state, url, api, control)


@pytest.fixture
def fake_tcr() -> Iterator[Served[tcr.TCRState]]:
    state = tcr.TCRState(TCR_KEY, TCR_SECRET, verify_delay=0.05)
    yield from _serve(state, tcr.create_app(state), auth=(TCR_KEY, TCR_SECRET))
    state.close()


@pytest.fixture
def fake_hubspot() -> Iterator[Served[hubspot.HubSpotState]]:
    state = hubspot.HubSpotState(HUBSPOT_TOKEN, SECRETS["hubspot"])
    headers = {"authorization": f"Bearer {HUBSPOT_TOKEN}"}
    yield from _serve(state, hubspot.create_app(state), headers=headers)


@pytest.fixture
def fake_meta() -> Iterator[Served[meta.MetaState]]:
    state = meta.MetaState(META_TOKEN, SECRETS["meta_app"])
    headers = {"authorization": f"Bearer {META_TOKEN}"}
    yield from _serve(state, meta.create_app(state), headers=headers)


def drain(runtime: Runtime) -> None:
    runtime.make_worker().drain()


def events(runtime: Runtime, source: str) -> list[dict[str, Any]]:
    """The source's events, oldest first."""
    return list(reversed(runtime.store.list_events(EventFilter(source=source), limit=500)))


def rows(runtime: Runtime, table: Table, **where: Any) -> list[dict[str, Any]]:
    query = select(table).where(*(table.c[k] == v for k, v in where.items()))
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def delivered(state: FakePlatform, count: int) -> list[Any]:
    """Wait until `count` deliveries were attempted; all of them must have been accepted."""
    attempts = wait_for(lambda: len(state.deliveries) >= count and state.deliveries, timeout=10)
    assert [a.status for a in attempts] == [200] * len(attempts), [a.as_json() for a in attempts]
    return list(attempts)


# -- TCR ------------------------------------------------------------------------------------


def test_tcr_refuses_requests_without_its_api_key_and_secret(
    fake_tcr: Served[tcr.TCRState],
) -> None:
    for auth in (None, (TCR_KEY, "wrong"), ("wrong", TCR_SECRET)):
        response = httpx.get(f"{fake_tcr.url}/v2/brand/B123456", auth=auth)
        assert response.status_code == 401
        [error] = response.json()
        assert set(error) == {"code", "field", "description"} and error["description"]
    unknown = fake_tcr.api.get("/v2/brand/B123456")
    assert unknown.status_code == 404
    assert unknown.json()[0]["field"] == "brandId"
    assert [r.status for r in fake_tcr.state.requests] == [401, 401, 401, 404]


def test_tcr_brand_campaign_and_operation_status_shapes(fake_tcr: Served[tcr.TCRState]) -> None:
    state = fake_tcr.state
    brand = state.add_brand(identity_status="VERIFIED", trust_score=82)
    campaign = state.add_campaign(brand_id=brand["brandId"], mno_statuses={"10017": "REVIEW"})
    state.set_carrier_status(campaign["campaignId"], "10035", "APPROVED")

    got = fake_tcr.api.get(f"/v2/brand/{brand['brandId']}").json()
    assert len(got["brandId"]) == 7 and got["brandId"].startswith("B")
    for field in ("entityType", "displayName", "companyName", "vertical", "brandRelationship"):
        assert isinstance(got[field], str) and got[field]
    assert got["identityStatus"] == "VERIFIED" and got["trustScore"] == 82

    got = fake_tcr.api.get(f"/v2/campaign/{campaign['campaignId']}").json()
    assert got["brandId"] == brand["brandId"] and got["status"] == "ACTIVE"
    assert got["usecase"] and got["createDate"].endswith("Z")
    operation = fake_tcr.api.get(f"/v2/campaign/{campaign['campaignId']}/operationStatus")
    assert operation.json() == {"10017": "REVIEW", "10035": "APPROVED"}
    assert fake_tcr.api.get("/v2/campaign/C000000/operationStatus").status_code == 404
    assert state.deliveries == []  # nothing subscribed, nothing sent


def test_tcr_registration_is_validated_then_verified_and_hookyard_applies_it(
    fake_tcr: Served[tcr.TCRState], gateway: str, runtime: Runtime
) -> None:
    endpoint = f"{gateway}/webhooks/tcr/brands?token={SECRETS['tcr']}"
    assert fake_tcr.api.put(
        "/v2/webhook/subscription", json={"eventCategory": "BRAND", "webhookEndpoint": endpoint}
    ).json() == {"eventCategory": "BRAND", "webhookEndpoint": endpoint}

    incomplete = fake_tcr.api.post(
        "/v2/brand/nonBlocking", json={"entityType": "PRIVATE_PROFIT", "companyName": "Acme"}
    )
    assert incomplete.status_code == 400
    assert {e["field"] for e in incomplete.json()} == {"brandRelationship", "vertical"}

    registered = fake_tcr.api.post(
        "/v2/brand/nonBlocking",
        json={
            "entityType": "PRIVATE_PROFIT",
            "displayName": "Acme",
            "companyName": "Acme Telecom LLC",
            "vertical": "TECHNOLOGY",
            "brandRelationship": "BASIC_ACCOUNT",
            "country": "US",
        },
    )
    assert registered.status_code == 200, registered.text
    brand = registered.json()
    assert brand["identityStatus"] == "UNVERIFIED" and brand["country"] == "US"

    attempts = delivered(fake_tcr.state, 2)
    assert sorted(e for a in attempts for e in a.events) == [
        "BRAND_ADD",
        "BRAND_IDENTITY_STATUS_UPDATE",
    ]
    assert all(a.url == endpoint for a in attempts)  # the subscribed URL, token and all
    verified = fake_tcr.api.get(f"/v2/brand/{brand['brandId']}").json()
    assert verified["identityStatus"] == "VERIFIED" and verified["trustScore"] == 75

    drain(runtime)
    landed = events(runtime, "tcr-brands")
    assert {e["event_type"] for e in landed} == {"BRAND_ADD", "BRAND_IDENTITY_STATUS_UPDATE"}
    assert {e["status"] for e in landed} == {"done"}
    assert all(e["origin"] == "webhook" and e["dedup_key"].startswith("sha256:") for e in landed)
    [row] = rows(runtime, brands, brand_id=brand["brandId"])
    assert (row["status"], row["identity_status"], row["trust_score"]) == ("VERIFIED",) * 2 + (75,)
    assert row["company_name"] == "Acme Telecom LLC"


def test_tcr_verification_can_fail(
    fake_tcr: Served[tcr.TCRState], gateway: str, runtime: Runtime
) -> None:
    # The secret as basic-auth credentials in the endpoint (what docs/providers/tcr.md shows).
    endpoint = gateway.replace("://", f"://hookyard:{SECRETS['tcr']}@") + "/webhooks/tcr/brands"
    fake_tcr.state.subscribe("BRAND", endpoint)
    fake_tcr.state.set_verification("UNVERIFIED", None)
    brand = fake_tcr.state.register_brand(
        {
            "entityType": "PRIVATE_PROFIT",
            "companyName": "Shady LLC",
            "vertical": "RETAIL",
            "brandRelationship": "BASIC_ACCOUNT",
        }
    )
    attempts = delivered(fake_tcr.state, 2)
    [update] = [a for a in attempts if a.events == ("BRAND_IDENTITY_STATUS_UPDATE",)]
    assert update.payload["brandIdentityStatus"] == "UNVERIFIED"
    drain(runtime)
    [row] = rows(runtime, brands, brand_id=brand["brandId"])
    assert row["status"] == "UNVERIFIED"


def test_tcr_subscriptions_catalogue_and_mock_deliveries(
    fake_tcr: Served[tcr.TCRState], gateway: str, runtime: Runtime
) -> None:
    api = fake_tcr.api
    first = {"eventCategory": "CAMPAIGN", "webhookEndpoint": "https://old.example.com/hook"}
    second = {"eventCategory": "CAMPAIGN", "webhookEndpoint": f"{gateway}/webhooks/tcr/campaigns"}
    assert api.put("/v2/webhook/subscription", json=first).status_code == 200
    assert api.put("/v2/webhook/subscription", json=second).status_code == 200
    assert api.get("/v2/webhook/subscription").json() == [second]
    bad = api.put("/v2/webhook/subscription", json={"eventCategory": "NOPE"})
    assert bad.status_code == 400 and bad.json()[0]["field"] == "eventCategory"

    catalogue = api.get("/v2/webhook/eventType").json()
    assert len(catalogue) == len(CATALOGUE)
    assert {
        "eventType": "MNO_CAMPAIGN_OPERATION_APPROVED",
        "eventCategory": "CAMPAIGN",
        "description": CATALOGUE["MNO_CAMPAIGN_OPERATION_APPROVED"].description,
    } in catalogue

    mock = api.get("/v2/webhook/subscription/eventType/CAMPAIGN_UPDATE/mock")
    assert mock.status_code == 200, mock.text
    answer = mock.json()
    assert answer["status"] == 200 and answer["endpoint"] == second["webhookEndpoint"]
    assert json.loads(answer["request"])["mock"] is True
    assert json.loads(answer["response"])["status"] == "accepted"
    [event] = events(runtime, "tcr-open")
    assert event["event_type"] == "CAMPAIGN_UPDATE"
    assert runtime.store.get(event["id"])["payload"]["mock"] is True  # type: ignore[index]

    # BRAND is not subscribed, an unknown type is refused.
    assert api.get("/v2/webhook/subscription/eventType/BRAND_ADD/mock").status_code == 400
    assert api.get("/v2/webhook/subscription/eventType/NOT_A_TYPE/mock").status_code == 400
    assert api.delete("/v2/webhook/subscription/CAMPAIGN").status_code == 204
    assert api.delete("/v2/webhook/subscription/CAMPAIGN").status_code == 404
    assert api.get("/v2/webhook/subscription").json() == []


def test_tcr_carrier_decisions_reach_hookyard_and_a_lost_one_does_not(
    fake_tcr: Served[tcr.TCRState], gateway: str, runtime: Runtime
) -> None:
    state = fake_tcr.state
    state.subscribe("CAMPAIGN", f"{gateway}/webhooks/tcr/campaigns")
    brand = state.add_brand()  # BRAND is not subscribed: nothing goes out
    campaign_id = state.add_campaign(brand_id=brand["brandId"])["campaignId"]
    state.set_carrier_status(campaign_id, "10035", "APPROVED")
    state.set_carrier_status(campaign_id, "10017", "REJECTED", deliver=False)  # lost

    attempts = delivered(state, 2)
    assert [a.events for a in attempts] == [
        ("CAMPAIGN_ADD",),
        ("MNO_CAMPAIGN_OPERATION_APPROVED",),
    ]
    approved = attempts[1].payload
    assert approved["mnoStatuses"] == {"10035": "APPROVED"} and approved["mnoId"] == "10035"
    assert (approved["brandId"], approved["campaignId"]) == (brand["brandId"], campaign_id)
    [lost] = state.lost
    assert lost.events == ("MNO_CAMPAIGN_OPERATION_REJECTED",)
    # The registry knows what the lost webhook said: reconciliation can find it there.
    operation = fake_tcr.api.get(f"/v2/campaign/{campaign_id}/operationStatus").json()
    assert operation == {"10035": "APPROVED", "10017": "REJECTED"}

    drain(runtime)
    assert [(e["event_type"], e["status"]) for e in events(runtime, "tcr-open")] == [
        ("CAMPAIGN_ADD", "done"),
        ("MNO_CAMPAIGN_OPERATION_APPROVED", "done"),
    ]
    carriers = rows(runtime, campaign_carriers, campaign_id=campaign_id)
    assert [(c["mno_id"], c["status"]) for c in carriers] == [("10035", "APPROVED")]

    # A suspension lifted is announced as UNSUSPENDED.
    state.set_carrier_status(campaign_id, "10035", "SUSPENDED")
    state.set_carrier_status(campaign_id, "10035", "APPROVED")
    assert [a.events[0] for a in delivered(state, 4)[2:]] == [
        "MNO_CAMPAIGN_OPERATION_SUSPENDED",
        "MNO_CAMPAIGN_OPERATION_UNSUSPENDED",
    ]


def test_tcr_failure_injection_answers_429_with_retry_after(
    fake_tcr: Served[tcr.TCRState],
) -> None:
    brand_id = fake_tcr.state.add_brand()["brandId"]
    fake_tcr.state.fail_next(2, status=429, retry_after=3)
    for _ in range(2):
        response = fake_tcr.api.get(f"/v2/brand/{brand_id}")
        assert response.status_code == 429 and response.headers["retry-after"] == "3"
        assert response.json()[0]["code"] == 429
        # Control requests are neither failed nor recorded.
        assert fake_tcr.control.get("/_fake/state").status_code == 200
    assert fake_tcr.api.get(f"/v2/brand/{brand_id}").json()["brandId"] == brand_id
    fake_tcr.state.fail_next(1, status=503, body={"custom": True})
    failed = fake_tcr.api.put("/v2/webhook/subscription", json={"eventCategory": "BRAND"})
    assert failed.status_code == 503 and failed.json() == {"custom": True}
    recorded = fake_tcr.state.requests
    assert [(r.method, r.status) for r in recorded] == [
        ("GET", 429),
        ("GET", 429),
        ("GET", 200),
        ("PUT", 503),
    ]
    assert recorded[0].path == f"/v2/brand/{brand_id}"
    assert recorded[3].json == {"eventCategory": "BRAND"}


def test_tcr_control_surface_over_http(
    fake_tcr: Served[tcr.TCRState], gateway: str, runtime: Runtime
) -> None:
    c = fake_tcr.control
    fake_tcr.api.put(
        "/v2/webhook/subscription",
        json={"eventCategory": "BRAND", "webhookEndpoint": f"{gateway}/webhooks/tcr/brands"},
    )
    fake_tcr.api.put(
        "/v2/webhook/subscription",
        json={"eventCategory": "CAMPAIGN", "webhookEndpoint": f"{gateway}/webhooks/tcr/campaigns"},
    )
    brand = c.post("/_fake/brands", json={"identityStatus": "UNVERIFIED", "trustScore": 40})
    assert brand.status_code == 201
    brand_id = brand.json()["brandId"]
    patched = c.patch(f"/_fake/brands/{brand_id}", json={"trustScore": 88}).json()
    assert patched["trustScore"] == 88
    campaign_id = c.post("/_fake/campaigns", json={"brandId": brand_id}).json()["campaignId"]
    carriers = c.put(
        f"/_fake/campaigns/{campaign_id}/operationStatus/10999",
        json={"status": "APPROVED", "deliver": False},
    )
    assert carriers.json() == {"10999": "APPROVED"}
    assert c.put(f"/_fake/campaigns/{campaign_id}/operationStatus/10999", json={}).status_code == (
        400
    )
    assert c.patch("/_fake/brands/BNOSUCH", json={}).status_code == 404
    assert c.post("/_fake/fail", json={"n": 1, "status": 500}).json() == {"pending_failures": 1}
    assert fake_tcr.api.get(f"/v2/brand/{brand_id}").status_code == 500

    deliveries = c.get("/_fake/deliveries").json()
    # tcr-brands demands its token and this endpoint has none: TCR's delivery was refused.
    assert [(d["events"], d["status"]) for d in deliveries] == [
        (["BRAND_ADD"], 401),
        (["BRAND_SCORE_UPDATE"], 401),
        (["CAMPAIGN_ADD"], 200),
    ]
    assert deliveries[1]["payload"]["trustScore"] == 88
    assert [item["events"] for item in c.get("/_fake/lost").json()] == [
        ["MNO_CAMPAIGN_OPERATION_APPROVED"]
    ]
    assert [r["status"] for r in c.get("/_fake/requests").json()] == [200, 200, 500]
    snapshot = c.get("/_fake/state").json()
    assert snapshot["campaigns"][0]["operationStatus"] == {"10999": "APPROVED"}
    assert set(snapshot["subscriptions"]) == {"BRAND", "CAMPAIGN"}
    assert [e["event_type"] for e in events(runtime, "tcr-brands")] == []


# -- HubSpot --------------------------------------------------------------------------------


def test_hubspot_refuses_requests_without_the_access_token(
    fake_hubspot: Served[hubspot.HubSpotState],
) -> None:
    for headers in ({}, {"authorization": "Bearer not-the-token"}, {"authorization": "Basic x"}):
        response = httpx.get(f"{fake_hubspot.url}{hubspot.COMPANIES}/1", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["message"] and body["correlationId"]


def test_hubspot_create_read_update_shapes(fake_hubspot: Served[hubspot.HubSpotState]) -> None:
    api = fake_hubspot.api
    created = api.post(
        hubspot.COMPANIES, json={"properties": {"name": "Acme", "hookyard_credit_limit": 1500}}
    )
    assert created.status_code == 201, created.text
    company = created.json()
    assert set(company) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert company["archived"] is False and company["id"].isdigit()
    assert company["properties"]["hookyard_credit_limit"] == "1500"  # HubSpot's strings
    assert company["properties"]["hs_object_id"] == company["id"]

    path = f"{hubspot.COMPANIES}/{company['id']}"
    got = api.get(path, params={"properties": "name,hookyard_status"}).json()
    assert got["properties"]["name"] == "Acme" and got["properties"]["hookyard_status"] is None
    assert set(got["properties"]) == {
        "name",
        "hookyard_status",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }
    assert set(api.get(path).json()["properties"]) == set(hubspot.DEFAULT_PROPERTIES)

    updated = api.patch(path, json={"properties": {"name": "Acme Corp", "numberofemployees": 12}})
    assert updated.status_code == 200
    props = updated.json()["properties"]
    assert props["name"] == "Acme Corp" and props["numberofemployees"] == "12"
    assert props["hs_lastmodifieddate"] > props["createdate"]

    missing = api.get(f"{hubspot.COMPANIES}/999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert api.patch(f"{hubspot.COMPANIES}/999", json={"properties": {}}).status_code == 404
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.get(path, params={"archived": "true"}).json()["archived"] is True


def test_hubspot_lists_and_searches_page_by_page(
    fake_hubspot: Served[hubspot.HubSpotState],
) -> None:
    state, api = fake_hubspot.state, fake_hubspot.api
    ids = [state.create_company({"name": f"Company {n}"})["id"] for n in range(5)]
    midpoint = state.company(ids[2])["properties"]["hs_lastmodifieddate"]  # type: ignore[index]

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "properties": "name"}
    pages = 0
    while True:
        body = api.get(hubspot.COMPANIES, params=params).json()
        pages += 1
        seen += [c["id"] for c in body["results"]]
        assert all(set(c["properties"]) >= {"name"} for c in body["results"])
        if "paging" not in body:
            break
        params["after"] = body["paging"]["next"]["after"]
        assert body["paging"]["next"]["link"].startswith(fake_hubspot.url)
    assert (seen, pages) == (ids, 3)

    def search(**body: Any) -> dict[str, Any]:
        response = api.post(f"{hubspot.COMPANIES}/search", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    since = {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": midpoint}
    first = search(filterGroups=[{"filters": [since]}], limit=2, properties=["name"])
    assert first["total"] == 3 and [c["id"] for c in first["results"]] == ids[2:4]
    rest = search(
        filterGroups=[{"filters": [since]}], limit=2, after=first["paging"]["next"]["after"]
    )
    assert [c["id"] for c in rest["results"]] == ids[4:] and "paging" not in rest
    millis = {**since, "value": str(int(time.time() * 1000) + 60_000)}  # ms since the epoch
    assert search(filterGroups=[{"filters": [millis]}])["total"] == 0

    named = {"propertyName": "name", "operator": "EQ", "value": "Company 3"}
    assert [c["id"] for c in search(filterGroups=[{"filters": [named]}])["results"]] == [ids[3]]
    newest = search(sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}])
    assert [c["id"] for c in newest["results"]] == ids[::-1]
    bad = api.post(
        f"{hubspot.COMPANIES}/search",
        json={"filterGroups": [{"filters": [{"propertyName": "name", "operator": "LIKE"}]}]},
    )
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"


def test_hubspot_validation_errors_follow_hubspots_format(
    fake_hubspot: Served[hubspot.HubSpotState], gateway: str
) -> None:
    state, api = fake_hubspot.state, fake_hubspot.api
    company_id = state.create_company({"name": "Acme"}, deliver=False)["id"]
    state.configure_webhooks(f"{gateway}/webhooks/hubspot/company")
    state.reject_property("hookyard_status", "INVALID_OPTION", "closed is not a status")
    path = f"{hubspot.COMPANIES}/{company_id}"

    response = api.patch(
        path,
        json={
            "properties": {
                "name": "Changed",
                "hookyard_credit_limit": "lots",
                "hookyard_status": "closed",
                "no_such_property": "x",
                "hookyard_services": "voice;fax",
            }
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    listed = json.loads(body["message"].removeprefix(prefix))
    codes = {item["name"]: item["error"] for item in listed}
    assert codes == {
        "hookyard_credit_limit": "INVALID_FLOAT",
        "hookyard_status": "INVALID_OPTION",
        "no_such_property": "PROPERTY_DOESNT_EXIST",
        "hookyard_services": "INVALID_OPTION",
    }
    assert all(item["isValid"] is False and item["message"] for item in listed)
    assert {e["code"] for e in body["errors"]} == set(codes.values())
    assert {n for e in body["errors"] for n in e["context"]["propertyName"]} == set(codes)
    assert "closed is not a status" in {e["message"] for e in body["errors"]}

    whitespace = api.patch(path, json={"properties": {"numberofemployees": " 12"}}).json()
    assert whitespace["errors"][0]["code"] == "LEADING_TRAILING_WHITESPACE"
    decimal = api.patch(path, json={"properties": {"numberofemployees": "1.5"}}).json()
    assert decimal["errors"][0]["code"] == "INVALID_INTEGER"
    # Nothing changed, nothing was announced.
    assert state.company(company_id)["properties"]["name"] == "Acme"  # type: ignore[index]
    state.accept_property("hookyard_status")
    assert api.patch(path, json={"properties": {"hookyard_status": "closed"}}).status_code == 200
    assert [a.events for a in delivered(state, 1)] == [("company.propertyChange",)]


def test_hubspot_webhooks_are_signed_and_land_in_hookyard(
    fake_hubspot: Served[hubspot.HubSpotState], gateway: str, runtime: Runtime
) -> None:
    state, api = fake_hubspot.state, fake_hubspot.api
    target = f"{gateway}/webhooks/hubspot/company"
    state.configure_webhooks(target)
    company_id = state.create_company({"name": "Ringer"}, deliver=False)["id"]
    with runtime.engine.begin() as tx:
        customer_id = crm.create_customer(tx, None, "Ringer", hubspot_company_id=company_id)

    # Our own change through the API: INTEGRATION, sourceId = the app id; one request for both.
    patched = api.patch(
        f"{hubspot.COMPANIES}/{company_id}",
        json={"properties": {"name": "Ringer", "hookyard_credit_limit": "2500", "domain": "r.io"}},
    )
    assert patched.status_code == 200
    [echo] = delivered(state, 1)
    assert echo.events == ("company.propertyChange",) * 2  # name did not change
    for item in echo.payload:
        assert (item["changeSource"], item["sourceId"]) == ("INTEGRATION", str(state.app_id))
        assert (item["objectId"], item["appId"], item["attemptNumber"]) == (
            int(company_id),
            state.app_id,
            0,
        )
    headers = echo.delivery.headers
    assert HubSpotSDK.is_valid(
        headers["x-hubspot-signature-v3"],
        SECRETS["hubspot"],
        echo.delivery.body.decode(),
        http_uri=hubspot_uri(echo.url),
        http_method="POST",
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )

    # Someone renames it in HubSpot's UI: CRM_UI, and hookyard's rules apply it.
    state.edit_company(company_id, {"name": "Ringer Networks"})
    ui = delivered(state, 2)[1]
    [item] = ui.payload
    assert (item["propertyName"], item["propertyValue"]) == ("name", "Ringer Networks")
    assert item["changeSource"] == "CRM_UI" and item["sourceId"].startswith("userId:")

    drain(runtime)
    landed = events(runtime, "hubspot")
    assert [e["event_type"] for e in landed] == ["company.propertyChange"] * 3
    assert [e["dedup_key"] for e in landed] == [
        f"event:{i['eventId']}" for i in [*echo.payload, *ui.payload]
    ]
    assert all(e["status"] in {"done", "ignored"} for e in landed)
    [customer] = rows(runtime, customers, id=customer_id)
    assert customer["company_name"] == "Ringer Networks"
    assert customer["credit_limit_cents"] == 250000

    # HubSpot's retry of the last delivery: same events, next attemptNumber, a duplicate.
    retry = state.redeliver()
    assert retry.status == 200 and json.loads(retry.response or "")["status"] == "duplicate"
    assert retry.payload[0]["attemptNumber"] == 1
    assert len(events(runtime, "hubspot")) == 3


def test_hubspot_creation_deletion_batching_and_lost_webhooks(
    fake_hubspot: Served[hubspot.HubSpotState], gateway: str, runtime: Runtime
) -> None:
    state = fake_hubspot.state
    state.configure_webhooks(f"{gateway}/webhooks/hubspot/company")
    created = fake_hubspot.api.post(hubspot.COMPANIES, json={"properties": {"name": "New"}})
    company_id = created.json()["id"]
    [creation] = delivered(state, 1)
    assert creation.events == ("company.creation", "company.propertyChange")

    state.edit_company(company_id, {"name": "Lost rename"}, deliver=False)
    [lost] = state.lost
    assert lost.events == ("company.propertyChange",)
    assert lost.payload["propertyValue"] == "Lost rename"
    got = fake_hubspot.api.get(f"{hubspot.COMPANIES}/{company_id}").json()
    assert got["properties"]["name"] == "Lost rename"  # HubSpot has it; hookyard never heard

    with state.batched():
        state.edit_company(company_id, {"domain": "new.example"})
        state.delete_company(company_id)
    batch = delivered(state, 2)[1]
    assert batch.events == ("company.propertyChange", "company.deletion")

    drain(runtime)
    landed = [e["event_type"] for e in events(runtime, "hubspot")]
    assert landed == [
        "company.creation",
        "company.propertyChange",
        "company.propertyChange",
        "company.deletion",
    ]


def test_hubspot_failure_injection_and_unreachable_target(
    fake_hubspot: Served[hubspot.HubSpotState],
) -> None:
    state, api = fake_hubspot.state, fake_hubspot.api
    state.fail_next(1, status=429, retry_after=1)
    state.fail_next(1, status=503)
    limited = api.get(hubspot.COMPANIES)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["errorType"] == "RATE_LIMIT"
    unavailable = api.get(hubspot.COMPANIES)
    assert unavailable.status_code == 503 and unavailable.json()["status"] == "error"
    assert "retry-after" not in unavailable.headers
    assert api.get(hubspot.COMPANIES).status_code == 200

    state.configure_webhooks("http://127.0.0.1:9/nobody-listens")
    state.create_company({"name": "Unheard"})
    [attempt] = state.deliveries
    assert attempt.status is None and attempt.error and not attempt.ok


def test_hubspot_control_surface_over_http(
    fake_hubspot: Served[hubspot.HubSpotState], gateway: str, runtime: Runtime
) -> None:
    c = fake_hubspot.control
    target = f"{gateway}/webhooks/hubspot/company"
    assert c.put("/_fake/webhooks", json={"target_url": target}).json() == {"target_url": target}
    company = c.post("/_fake/companies", json={"properties": {"name": "Curl Co"}})
    assert company.status_code == 201
    company_id = company.json()["id"]
    edited = c.patch(f"/_fake/companies/{company_id}", json={"properties": {"name": "Curl Inc"}})
    assert edited.json()["properties"]["name"] == "Curl Inc"
    assert c.patch("/_fake/companies/1", json={"properties": {}}).status_code == 404
    assert c.patch(f"/_fake/companies/{company_id}", json={}).status_code == 400
    assert c.put("/_fake/validation/name", json={"code": "INVALID_STRING"}).status_code == 200
    refused = fake_hubspot.api.patch(
        f"{hubspot.COMPANIES}/{company_id}", json={"properties": {"name": "API"}}
    )
    assert refused.json()["errors"][0]["code"] == "INVALID_STRING"
    assert c.delete(f"/_fake/companies/{company_id}").json() == {"archived": True}

    deliveries = c.get("/_fake/deliveries").json()
    assert [d["events"] for d in deliveries] == [
        ["company.creation", "company.propertyChange"],
        ["company.propertyChange"],
        ["company.deletion"],
    ]
    assert all(d["status"] == 200 and "x-hubspot-signature-v3" in d["headers"] for d in deliveries)
    assert [r["status"] for r in c.get("/_fake/requests").json()] == [400]
    assert c.post("/_fake/reset").json() == {"reset": True}
    assert c.get("/_fake/deliveries").json() == []
    drain(runtime)
    assert len(events(runtime, "hubspot")) == 4


# -- Meta -----------------------------------------------------------------------------------


def test_meta_refuses_requests_without_the_access_token(
    fake_meta: Served[meta.MetaState],
) -> None:
    path = f"/v21.0/{fake_meta.state.waba_id}/message_templates"
    for headers in ({}, {"authorization": "Bearer nope"}):
        response = httpx.get(fake_meta.url + path, headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("OAuthException", 190) and error["message"]
    by_query = httpx.get(fake_meta.url + path, params={"access_token": META_TOKEN})
    assert by_query.status_code == 200 and by_query.json() == {"data": []}


def test_meta_templates_page_with_cursors_and_fields(fake_meta: Served[meta.MetaState]) -> None:
    state, api = fake_meta.state, fake_meta.api
    made = [state.add_template(f"order_update_{n}") for n in range(5)]
    state.set_template_status(made[1]["id"], "REJECTED", reason="INCORRECT_CATEGORY")
    state.set_template_quality(made[2]["id"], "YELLOW")

    url: str | None = f"/v21.0/{state.waba_id}/message_templates"
    params: dict[str, Any] | None = {"limit": 2, "fields": "name,status,quality_score"}
    seen: list[dict[str, Any]] = []
    while url is not None:
        body = api.get(url, params=params).json()
        seen += body["data"]
        assert set(body["paging"]["cursors"]) == {"before", "after"}
        url, params = body["paging"].get("next"), None  # `next` is the whole URL
    assert [t["id"] for t in seen] == [t["id"] for t in made]
    assert all(set(t) == {"id", "name", "status", "quality_score"} for t in seen)
    assert (seen[1]["status"], seen[2]["quality_score"]) == ("REJECTED", {"score": "YELLOW"})

    full = api.get(f"/v19.0/{made[1]['id']}").json()
    assert full["rejected_reason"] == "INCORRECT_CATEGORY" and full["language"] == "en_US"
    assert set(full) >= {"id", "name", "language", "status", "category", "quality_score"}
    approved = api.get(f"/v21.0/{state.waba_id}/message_templates", params={"status": "REJECTED"})
    assert [t["id"] for t in approved.json()["data"]] == [made[1]["id"]]

    for path in ("/v21.0/123/message_templates", "/v21.0/123"):
        error = api.get(path).json()["error"]
        assert (error["code"], error.get("error_subcode")) == (100, 33)
    assert api.get(f"/latest/{made[0]['id']}").status_code == 400
    bad_cursor = api.get(f"/v21.0/{state.waba_id}/message_templates", params={"after": "zzz"})
    assert bad_cursor.status_code == 400


def test_meta_subscription_handshake_against_hookyard(
    fake_meta: Served[meta.MetaState], gateway: str
) -> None:
    state = fake_meta.state
    callback = f"{gateway}/api/v1/whatsapp/webhook"
    assert state.subscribe(callback, "not-the-token") is False
    assert state.callback_url is None
    assert state.subscribe(callback, SECRETS["meta_verify"]) is True
    assert state.callback_url == callback
    assert [(h.status, h.verified) for h in state.handshakes] == [(403, False), (200, True)]


def test_meta_template_changes_land_in_hookyard(
    fake_meta: Served[meta.MetaState], gateway: str, runtime: Runtime
) -> None:
    state = fake_meta.state
    answer = fake_meta.control.post(
        "/_fake/subscribe",
        json={
            "callback_url": f"{gateway}/api/v1/whatsapp/webhook",
            "verify_token": SECRETS["meta_verify"],
        },
    )
    assert answer.json() == {"verified": True, "status": 200}
    template_id = state.add_template("order_update", quality="GREEN")["id"]
    state.set_template_quality(template_id, "RED")
    state.set_template_status(template_id, "PAUSED", reason=None, other_info={"title": "Paused"})
    with state.batched():  # Meta may send several changes in one request
        state.set_template_status(template_id, "REINSTATED")
        state.set_template_quality(template_id, "YELLOW")
    state.set_template_status(template_id, "DISABLED", deliver=False)  # lost

    attempts = delivered(state, 4)
    assert [a.events for a in attempts] == [
        ("message_template_status_update",),
        ("message_template_quality_update",),
        ("message_template_status_update",),
        ("message_template_status_update", "message_template_quality_update"),
    ]
    envelope = attempts[1].payload
    assert envelope["object"] == "whatsapp_business_account"
    [entry] = envelope["entry"]
    assert entry["id"] == state.waba_id and isinstance(entry["time"], int)
    assert entry["changes"][0]["value"] == {
        "previous_quality_score": "GREEN",
        "new_quality_score": "RED",
        "message_template_id": int(template_id),
        "message_template_name": "order_update",
        "message_template_language": "en_US",
    }
    assert attempts[2].payload["entry"][0]["changes"][0]["value"]["other_info"] == {
        "title": "Paused"
    }
    [lost] = state.lost
    assert lost.payload["value"]["event"] == "DISABLED"
    assert fake_meta.api.get(f"/v21.0/{template_id}").json()["status"] == "DISABLED"

    drain(runtime)
    landed = events(runtime, "meta")
    assert len(landed) == 5 and {e["status"] for e in landed} == {"done"}
    [row] = rows(runtime, whatsapp_templates, meta_template_id=template_id)
    # REINSTATED reads as APPROVED; the lost DISABLED never arrived.
    assert (row["status"], row["quality"]) == ("APPROVED", "YELLOW")


def test_meta_failure_injection_and_control_surface(fake_meta: Served[meta.MetaState]) -> None:
    c, api = fake_meta.control, fake_meta.api
    created = c.post("/_fake/templates", json={"name": "hello", "status": "PENDING"})
    assert created.status_code == 201
    template_id = created.json()["id"]
    assert c.put(f"/_fake/templates/{template_id}/status", json={"event": "APPROVED"}).json()[
        "status"
    ] == ("APPROVED")
    assert c.put(
        f"/_fake/templates/{template_id}/quality", json={"score": "PURPLE"}
    ).status_code == (400)
    assert c.put("/_fake/templates/1/quality", json={"score": "RED"}).status_code == 404
    c.post("/_fake/fail", json={"n": 1, "status": 429, "retry_after": 60})
    limited = api.get(f"/v21.0/{template_id}")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert limited.json()["error"]["code"] == 4
    assert api.get(f"/v21.0/{template_id}").json()["status"] == "APPROVED"
    assert [(r["path"], r["status"]) for r in c.get("/_fake/requests").json()] == [
        (f"/v21.0/{template_id}", 429),
        (f"/v21.0/{template_id}", 200),
    ]
    assert c.get("/_fake/deliveries").json() == []  # no callback subscribed
    assert c.get("/_fake/state").json()["templates"][0]["id"] == template_id
