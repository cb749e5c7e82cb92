"""10DLC brand registration keeps its record: hookyard served over HTTP, the fake TCR over
HTTP, the registrations' worker job run by the test with its clock moved (never slept).

Given a registration, the contract is the row it leaves: REGISTERED with the brand row,
FAILED with TCR's own errors, or PENDING and retried with backoff until TCR answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.domain.crm import service as crm
from hookyard.domain.tendlc.tables import brand_registrations, brands
from hookyard.runtime import Runtime
from hookyard.sync.tcr import subscribe_all
from hookyard.sync.tcr_registration import BrandRegistrar, RegistrationJob
from hookyard.testing.fakes.server import ThreadedServer, serving
from hookyard.testing.fakes.tcr import TCRState
from hookyard.testing.fakes.tcr import create_app as tcr_app
from tests.conftest import SECRETS
from tests.people import People, make_people
from tests.support import MovableClock, wait_for
from tests.web_support import errors, login, page_of, post, section, text

ADMIN = {"authorization": f"Bearer {SECRETS['admin']}"}
HOUR = 3600.0
ACME_BRAND = {"entityType": "PRIVATE_PROFIT", "displayName": "Acme", "vertical": "TECHNOLOGY"}


@dataclass
class World:
    rt: Runtime
    url: str
    tcr: TCRState
    clock: MovableClock
    people: People
    tcr_url: str

    @property
    def registrar(self) -> BrandRegistrar:
        registrar = self.rt.sync.registrar()
        assert registrar is not None
        return registrar

    def api(
        self, method: str, path: str, tenant: str = "acme", role: str = "member", **kw: Any
    ) -> httpx.Response:
        """A call by one of the tenant's people (`superadmin`: the admin token acting for it)."""
        headers = (
            ADMIN | {"X-Customer-ID": tenant}
            if role == "superadmin"
            else self.people.headers(tenant, role)
        )
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def register(
        self, body: dict[str, Any], tenant: str = "acme", role: str = "member"
    ) -> httpx.Response:
        return self.api("POST", "/api/v1/messaging/brands", tenant, role, json=body)

    def count_registrations(self) -> int:
        return count(self.rt.engine, brand_registrations)

    def worker_pass(self) -> int:
        """One pass of the worker's background job for registrations (as the runtime has it)."""
        [job] = [j for j in self.rt.jobs if isinstance(j, RegistrationJob)]
        return job.run_pass("test")

    def registration(self, row_id: int) -> dict[str, Any]:
        response = self.api("GET", f"/api/v1/messaging/brand-registrations/{row_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def registrations_sent(self) -> list[Any]:
        return [r for r in self.tcr.requests if r.path == "/v2/brand/nonBlocking"]


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    tcr = TCRState("tcr-key", "tcr-secret", verify_delay=0.05)
    server = ThreadedServer(tcr_app(tcr))
    tcr_url = server.start()
    configured = settings.model_copy(
        update={
            "tcr_api_url": tcr_url,
            "tcr_api_key": "tcr-key",
            "tcr_api_secret": "tcr-secret",
            "provider_backoff_seconds": 0.01,
            "sync_max_attempts": 4,
            "sync_backoff_seconds": 30.0,
        }
    )
    rt = Runtime.build(configured)
    clock = MovableClock()
    registrar = rt.sync.registrar()
    assert registrar is not None
    registrar.queue.clock = clock
    registrar.policy = replace(registrar.policy, timeout=0.5)  # a stalled TCR times out soon
    people = make_people(rt)
    with serving(create_app(rt, run_workers=False)) as url:
        assert rt.sync.tcr is not None
        subscribe_all(rt.sync.tcr, url, rt.sources.sources)
        yield World(rt, url, tcr, clock, people, tcr_url)
    rt.close()
    tcr.close()
    server.stop()


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def brand_row(engine: Engine, brand_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(brands).where(brands.c.brand_id == brand_id)).mappings().one()
        )


# -- registered -------------------------------------------------------------------------------


def test_a_registration_tcr_takes_is_registered_with_its_brand_row(world: World) -> None:
    response = world.register(ACME_BRAND)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "REGISTERED" and answer["attempts"] == 1
    brand_id = answer["brand_id"]
    assert answer["answer"]["brandId"] == brand_id  # TCR's answer, as given
    assert answer["identity_status"] == "UNVERIFIED" and answer["trust_score"] is None
    # The defaults went to TCR: relationship, company name from the display name, our reference.
    [sent] = world.registrations_sent()
    assert sent.json["brandRelationship"] == "BASIC_ACCOUNT"
    assert sent.json["companyName"] == "Acme"
    assert sent.json["referenceId"] == f"hookyard-{answer['id']}"
    stored = brand_row(world.rt.engine, brand_id)
    assert (stored["status"], stored["tenant"], stored["sync_source"]) == (
        "REGISTERED", "acme", "manual",
    )  # fmt: skip

    # TCR verifies asynchronously and tells hookyard by webhook.
    def verified() -> bool:
        world.rt.make_worker().drain()
        return brand_row(world.rt.engine, brand_id)["status"] == "VERIFIED"

    wait_for(verified, timeout=10)
    listed = world.api("GET", "/api/v1/messaging/brand-registrations").json()["items"]
    assert [(r["id"], r["status"]) for r in listed] == [(answer["id"], "REGISTERED")]


def test_the_vertical_comes_from_the_tenants_customer_when_omitted(world: World) -> None:
    with world.rt.engine.begin() as tx:
        crm.create_customer(tx, "acme", "Acme Telecom LLC", customer_type="technology")
    response = world.register({"entityType": "PRIVATE_PROFIT"})
    assert response.status_code == 201, response.text
    request = response.json()["request"]
    assert (request["vertical"], request["companyName"]) == ("TECHNOLOGY", "Acme Telecom LLC")

    # A tenant without such a customer must name the vertical: nothing is kept or sent.
    refused = world.register({"entityType": "PRIVATE_PROFIT", "displayName": "O"}, "globex")
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["vertical"]
    assert (
        count(world.rt.engine, brand_registrations, brand_registrations.c.tenant == "globex") == 0
    )


# -- refused --------------------------------------------------------------------------------


def test_a_refused_registration_leaves_a_failed_record_with_the_registrys_errors(
    world: World,
) -> None:
    errors = [{"code": 516, "field": "ein", "description": "EIN does not match the company"}]
    world.tcr.fail_registrations(1, 400, body=errors)
    response = world.register(ACME_BRAND | {"ein": "12-3456789"})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "TCR refused the brand" and body["errors"] == errors
    kept = world.registration(body["registration"]["id"])
    assert (kept["status"], kept["errors"], kept["brand_id"]) == ("FAILED", errors, None)
    assert count(world.rt.engine, brands) == 0

    # A refusal is final for the worker, however much time passes...
    world.clock.advance(10 * HOUR)
    assert world.worker_pass() == 0
    # ...until an admin retries it (after fixing it at TCR's end, say).
    path = f"/api/v1/messaging/brand-registrations/{kept['id']}/retry"
    retried = world.api("POST", path, role="admin")
    assert retried.status_code == 200 and retried.json()["status"] == "PENDING"
    assert world.worker_pass() == 1
    done = world.registration(kept["id"])
    assert done["status"] == "REGISTERED" and done["errors"] is None
    assert brand_row(world.rt.engine, done["brand_id"])["tenant"] == "acme"
    assert world.api("POST", path, role="admin").status_code == 409


# -- no answer ------------------------------------------------------------------------------


def test_a_registration_tcr_does_not_answer_is_retried_to_registered(world: World) -> None:
    # TCR: a 503 first, then a registration that goes through but answers too late.
    world.tcr.fail_registrations(1, 503)
    world.tcr.fail_registrations(1, stall=3.0)
    response = world.register(ACME_BRAND)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["status"], queued["attempts"]) == ("PENDING", 1)
    assert "503" in queued["last_error"]
    assert world.worker_pass() == 0  # not due before its backoff

    world.clock.advance(HOUR)
    assert world.worker_pass() == 1  # attempt 2: registered at TCR, but timed out here
    second = world.registration(queued["id"])
    assert (second["status"], second["attempts"]) == ("PENDING", 2)
    assert len(world.tcr.snapshot()["brands"]) == 1

    world.clock.advance(HOUR)
    assert world.worker_pass() == 1  # attempt 3 finds it by our reference: no second brand
    done = world.registration(queued["id"])
    assert (done["status"], done["attempts"]) == ("REGISTERED", 3)
    [at_tcr] = world.tcr.snapshot()["brands"]
    assert done["brand_id"] == at_tcr["brandId"]
    assert at_tcr["referenceId"] == f"hookyard-{queued['id']}"
    assert brand_row(world.rt.engine, done["brand_id"])["tenant"] == "acme"


def test_attempts_used_up_leave_it_failed_and_a_person_retries_it(world: World) -> None:
    world.tcr.fail_registrations(4, 502)
    first = world.register(ACME_BRAND).json()
    for _ in range(3):
        world.clock.advance(HOUR)
        assert world.worker_pass() == 1
    failed = world.registration(first["id"])
    assert (failed["status"], failed["attempts"]) == ("FAILED", 4)
    assert failed["errors"][0]["description"].startswith("no answer")
    world.clock.advance(10 * HOUR)
    assert world.worker_pass() == 0

    # Retrying is an admin's: a member may not.
    path = f"/api/v1/messaging/brand-registrations/{first['id']}/retry"
    assert world.api("POST", path).status_code == 403
    assert world.api("POST", path, role="admin").status_code == 200
    assert world.worker_pass() == 1
    assert world.registration(first["id"])["status"] == "REGISTERED"


# -- checked before the call ----------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("entityType", "PRIVATE"), ("vertical", "NOPE"), ("brandRelationship", "BEST_FRIEND")],
)
def test_a_value_tcr_does_not_list_is_a_400_naming_the_field(
    world: World, field: str, value: str
) -> None:
    response = world.register(ACME_BRAND | {field: value})
    assert response.status_code == 400
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field]
    assert field in body["detail"]
    assert count(world.rt.engine, brand_registrations) == 0
    assert world.registrations_sent() == []
    # TCR's enumerations were asked once each and are kept for the process.
    world.register(ACME_BRAND | {field: value})
    asked = [r.path for r in world.tcr.requests if r.path.startswith("/v2/enum/")]
    assert sorted(asked) == sorted(set(asked)) and f"/v2/enum/{field}" in asked


def test_a_tenant_sees_only_its_own_registrations(world: World) -> None:
    mine = world.register(ACME_BRAND).json()
    shown = world.api("GET", f"/api/v1/messaging/brand-registrations/{mine['id']}", "globex")
    assert shown.status_code == 404
    assert world.api("GET", "/api/v1/messaging/brand-registrations", "globex").json()["items"] == []
    retry = f"/api/v1/messaging/brand-registrations/{mine['id']}/retry"
    assert world.api("POST", retry, "globex", "admin").status_code == 404


# -- changing a brand -----------------------------------------------------------------------


def test_patch_changes_the_brand_at_tcr_and_here(world: World) -> None:
    brand_id = world.register(ACME_BRAND).json()["brand_id"]
    path = f"/api/v1/messaging/brands/{brand_id}"

    changed = world.api("PATCH", path, json={"displayName": "Acme Mobile", "vertical": "RETAIL"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["display_name"], changed.json()["vertical"]) == ("Acme Mobile", "RETAIL")
    at_tcr = world.tcr.brand(brand_id)
    assert at_tcr is not None and (at_tcr["displayName"], at_tcr["vertical"]) == (
        "Acme Mobile", "RETAIL",
    )  # fmt: skip
    stored = brand_row(world.rt.engine, brand_id)
    assert (stored["display_name"], stored["vertical"]) == ("Acme Mobile", "RETAIL")

    refused = world.api("PATCH", path, json={"vertical": "NOPE"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "vertical"

    world.tcr.fail_next(1, 400, body=[{"code": 511, "field": "ein", "description": "bad EIN"}])
    by_tcr = world.api("PATCH", path, json={"ein": "1"})
    assert by_tcr.status_code == 400 and by_tcr.json()["errors"][0]["code"] == 511

    world.tcr.fail_next(20, 503)
    down = world.api("PATCH", path, json={"displayName": "Never"})
    assert down.status_code == 503
    world.tcr.clear_records()
    assert brand_row(world.rt.engine, brand_id)["display_name"] == "Acme Mobile"

    assert world.api("PATCH", path, "globex", json={"displayName": "X"}).status_code == 404
    assert world.api("PATCH", path, json={}).status_code == 422


def test_who_may_register(world: World) -> None:
    assert world.register(ACME_BRAND, role="viewer").status_code == 403
    assert world.count_registrations() == 0
    # A superadmin registers for the tenant it picks, and must pick one.
    assert world.register(ACME_BRAND, role="superadmin").status_code == 201
    no_tenant = httpx.post(
        world.url + "/api/v1/messaging/brands", headers=ADMIN, json=ACME_BRAND, timeout=30
    )
    assert no_tenant.status_code == 400
    assert world.count_registrations() == 1


def test_without_the_tcr_api_registration_is_a_404(api: TestClient, people: People) -> None:
    response = api.post(
        "/api/v1/messaging/brands", headers=people.headers("acme", "member"), json=ACME_BRAND
    )
    assert response.status_code == 404 and "HOOKYARD_TCR_API_KEY" in response.json()["detail"]


# -- the dashboard ----------------------------------------------------------------------------


def dashboard(world: World, email: str) -> httpx.Client:
    client = httpx.Client(base_url=world.url, timeout=30)
    login(client, email)  # a TestClient's calls, made over HTTP
    return client


def test_the_form_registers_a_brand_and_shows_tcrs_answer(world: World) -> None:
    member = dashboard(world, "member@acme.example.com")
    overview = page_of(member, "/ui/messaging")
    assert 'id="register-brand"' in overview and "No brand registrations yet." in overview

    # A vertical TCR does not list comes back to the form, as it was filled in.
    refused = post(member, "/ui/messaging/brands", entity_type="PRIVATE_PROFIT",
                   display_name="Acme", vertical="NOPE")  # fmt: skip
    assert refused.status_code == 400
    assert errors(refused.text)[0].startswith("vertical: &#39;NOPE&#39; is not one of TCR")
    assert 'value="Acme"' in refused.text
    assert world.count_registrations() == 0

    sent = post(member, "/ui/messaging/brands", entity_type="PRIVATE_PROFIT",
                display_name="Acme", vertical="TECHNOLOGY")  # fmt: skip
    assert sent.status_code == 303
    [kept] = world.api("GET", "/api/v1/messaging/brand-registrations").json()["items"]
    assert sent.headers["location"] == f"/ui/messaging/registrations/{kept['id']}"
    shown = page_of(member, sent.headers["location"])
    answer = text(re.search(r'<dl class="facts" id="tcr-answer">.*?</dl>', shown, re.S)[0])
    assert answer.startswith(f"Brand {kept['brand_id']} Identity UNVERIFIED Trust score —")
    assert "Retry" not in shown
    listed = page_of(member, "/ui/messaging")
    assert f'data-registration-id="{kept["id"]}"' in section(listed, "registrations")


def test_a_refused_registration_shows_tcrs_errors_and_an_admin_retries_it(world: World) -> None:
    errors_ = [{"code": 516, "field": "ein", "description": "EIN does not match the company"}]
    world.tcr.fail_registrations(1, 400, body=errors_)
    member = dashboard(world, "member@acme.example.com")
    sent = post(member, "/ui/messaging/brands", entity_type="PRIVATE_PROFIT",
                display_name="Acme", vertical="TECHNOLOGY", ein="12-3456789")  # fmt: skip
    assert sent.status_code == 303
    shown = page_of(member, sent.headers["location"])
    table = re.search(r'<table class="grid" id="tcr-errors">.*?</table>', shown, re.S)
    assert table is not None
    assert text(table[0]) == "Code Field Description 516 ein EIN does not match the company"
    assert "Retry" not in shown  # an admin's

    admin = dashboard(world, "admin@acme.example.com")
    retry_path = sent.headers["location"] + "/retry"
    retried = post(admin, retry_path)
    assert (
        retried.status_code == 303 and "notice=registration_retried" in retried.headers["location"]
    )
    assert world.worker_pass() == 1
    assert "REGISTERED" in page_of(admin, sent.headers["location"])


def test_a_viewer_sees_registrations_but_no_form(world: World) -> None:
    world.register(ACME_BRAND)
    viewer = dashboard(world, "viewer@acme.example.com")
    html = page_of(viewer, "/ui/messaging")
    assert 'id="register-brand"' not in html
    assert "REGISTERED" in section(html, "registrations")
    assert post(viewer, "/ui/messaging/brands", entity_type="PRIVATE_PROFIT").status_code == 403


def test_the_fake_tcr_fails_registrations_as_told(world: World) -> None:
    """`PUT /_fake/registration-failures`: the next registrations only, other calls untouched."""
    base = world.tcr_url
    told = httpx.put(base + "/_fake/registration-failures", json={"n": 1, "status": 500})
    assert told.status_code == 200
    assert httpx.put(base + "/_fake/registration-failures", json={"n": -1}).status_code == 400
    assert httpx.put(base + "/_fake/registration-failures", json={"stall": "x"}).status_code == 400
    auth = ("tcr-key", "tcr-secret")
    assert httpx.get(base + "/v2/enum/vertical", auth=auth).status_code == 200
    brand = ACME_BRAND | {"companyName": "Acme", "brandRelationship": "BASIC_ACCOUNT"}
    assert httpx.post(base + "/v2/brand/nonBlocking", json=brand, auth=auth).status_code == 500
    assert httpx.post(base + "/v2/brand/nonBlocking", json=brand, auth=auth).status_code == 200
