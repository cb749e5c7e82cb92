"""Customers are tenants (domain/crm/tenancy.py): creating a customer creates or links the
tenant people use; any customer's BAN picks its tenant in `X-Customer-ID` and in the
dashboard's picker, for superadmins only; the picker searches customers by name and BAN;
CORS lets a portal on a configured origin call the management API, and nobody else.

The people are tests/people.py's: `acme` (BAN AC000000001) and `globex` (GX000000002), each
with an admin, member and viewer, and a superadmin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from hookyard.accounts import identity
from hookyard.accounts.tables import tenants
from hookyard.config import Settings
from hookyard.domain.crm import service as crm
from hookyard.domain.crm import tenancy
from hookyard.domain.crm.tables import customers, sync_log
from hookyard.runtime import Runtime
from tests.people import People, gateway
from tests.sync_support import World
from tests.web_support import HTML, login, post

PORTAL = "https://portal.example.com"


def create(api: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"company_name": "Ringer Network Solutions"} | fields
    response = api.post("/api/v1/customers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def tenant_rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(tenants)).mappings()}


def me(api: TestClient, headers: dict[str, str]) -> Any:
    return api.get("/api/v1/me", headers=headers)


# -- creating a customer creates or links its tenant ----------------------------------------


def test_a_customer_a_superadmin_creates_unpicked_is_a_new_tenant(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    root = people.superadmin()
    first = create(api, root, company_name="Ringer Network Solutions")
    second = create(api, root, company_name="Ringer Network Solutions")  # same name
    accented = create(api, root, company_name="Café Société")
    assert [first["tenant"], second["tenant"], accented["tenant"]] == [
        "ringer-network-solutions",
        "ringer-network-solutions-2",
        "cafe-societe",
    ]
    found = tenant_rows(runtime.engine)
    assert found["ringer-network-solutions"]["ban"] == first["ban"]
    assert found["ringer-network-solutions-2"]["ban"] == second["ban"]
    assert found["cafe-societe"]["name"] == "Café Société"
    # The tenant is the one people use: its id or the BAN pick it, and it sees its customer.
    for key in ("ringer-network-solutions", first["ban"]):
        listed = api.get("/api/v1/customers", headers=people.superadmin(key)).json()
        assert [c["id"] for c in listed["items"]] == [first["id"]], key


def test_a_superadmin_names_the_tenant_a_customer_is(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    root = people.superadmin()
    named = create(api, root, company_name="Initech", tenant="initech")
    joined = create(api, root, company_name="Acme Wholesale", tenant="acme")
    assert (named["tenant"], joined["tenant"]) == ("initech", "acme")
    found = tenant_rows(runtime.engine)
    assert (found["initech"]["name"], found["initech"]["ban"]) == ("Initech", named["ban"])
    assert found["acme"]["ban"] == "AC000000001"  # acme keeps the BAN it is
    # A tenant's id is lower case (never mistaken for a BAN); the header and the body agree.
    for bad in ("Initech", "AC000000001", "a b", ""):
        answer = api.post("/api/v1/customers", json={"company_name": "X", "tenant": bad},
                          headers=root)  # fmt: skip
        assert answer.status_code == 422, bad
    disagree = api.post(
        "/api/v1/customers",
        json={"company_name": "X", "tenant": "initech"},
        headers=people.superadmin("acme"),
    )
    assert disagree.status_code == 400
    with runtime.engine.connect() as conn:
        assert (
            conn.execute(select(customers.c.id).where(customers.c.company_name == "X")).all() == []
        )


def test_a_tenant_without_a_ban_becomes_its_first_customer(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    identity.create_tenant(runtime.engine, "hooli", "Hooli")
    first = create(api, people.superadmin("hooli"), company_name="Hooli XYZ")
    second = create(api, people.superadmin("hooli"), company_name="Hooli Cloud")
    assert tenant_rows(runtime.engine)["hooli"]["ban"] == first["ban"]
    # The second account's BAN picks the tenant too.
    for created in (first, second):
        answer = me(api, people.superadmin(created["ban"]))
        assert answer.json()["acting_for"] == "hooli"


def test_a_member_creates_customers_in_their_own_tenant_only(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    member = people.headers("acme", "member")
    created = create(api, member, company_name="Acme Resale")
    assert created["tenant"] == "acme"
    own = create(api, member, company_name="Acme Voice", tenant="acme")
    assert own["tenant"] == "acme"
    for other in ("globex", "brand-new"):
        answer = api.post("/api/v1/customers", json={"company_name": "Y", "tenant": other},
                          headers=member)  # fmt: skip
        assert answer.status_code == 403, other
    assert set(tenant_rows(runtime.engine)) == {"acme", "globex"}  # no tenant was made


def test_the_domains_create_makes_the_tenant_exist(runtime: Runtime) -> None:
    """Whoever calls it (the API, the bench, a fake): the customer's tenant exists after."""
    with runtime.engine.begin() as tx:
        named = crm.create_customer(tx, "umbrella", "Umbrella Corp")
        unnamed = crm.create_customer(tx, None, "Soylent", ban="SY123456789")
        identity.insert_tenant(tx, "tyrell", "Tyrell", "TY000000001")
        by_ban = crm.create_customer(tx, None, "Tyrell Corp", ban="TY000000001")
        owned = {r["id"]: r["tenant"] for r in tx.execute(select(customers)).mappings()}
    assert owned == {named: "umbrella", unnamed: "soylent", by_ban: "tyrell"}
    found = tenant_rows(runtime.engine)
    assert found["soylent"]["ban"] == "SY123456789"
    assert found["umbrella"]["name"] == "Umbrella Corp"
    # A BAN that is another tenant's cannot join a third one.
    with runtime.engine.begin() as tx:
        try:
            crm.create_customer(tx, "umbrella", "Tyrell Again", ban="TY000000001")
        except tenancy.BanOfAnotherTenant as exc:
            assert "tyrell" in str(exc)
        else:
            raise AssertionError("a BAN of another tenant was taken")


def test_hubspot_refusing_a_new_customer_removes_the_tenant_made_for_it(
    world: World,
) -> None:
    world.hubspot.reject_property("hookyard_customer_type", "INVALID_OPTION")
    body = {"company_name": "Vandelay Industries", "customer_type": "wholesale"}
    refused = world.api("POST", "/api/v1/customers", json=body)  # a superadmin, unpicked
    assert refused.status_code == 400, refused.text
    assert "vandelay-industries" not in tenant_rows(world.rt.engine)
    # A tenant that was there before stays, and takes no BAN from the refused customer.
    joined = world.api("POST", "/api/v1/customers", json=body, tenant="acme")
    assert joined.status_code == 400
    assert tenant_rows(world.rt.engine)["acme"]["ban"] is None
    with world.rt.engine.connect() as conn:
        assert conn.execute(select(sync_log.c.result)).scalars().all() == ["refused", "refused"]


# -- a BAN in X-Customer-ID -----------------------------------------------------------------


def test_a_customers_ban_picks_its_tenant_for_a_superadmin(api: TestClient, people: People) -> None:
    acme = create(api, people.headers("acme", "member"), company_name="Acme Second Account")
    globex = create(api, people.headers("globex", "member"), company_name="Globex Networks")
    for key, tenant in (
        ("acme", "acme"), ("AC000000001", "acme"), (acme["ban"], "acme"),
        (globex["ban"], "globex"), (f"  {globex['ban']} ", "globex"),
    ):  # fmt: skip
        assert me(api, people.superadmin(key)).json()["acting_for"] == tenant, key
        listed = api.get("/api/v1/customers", headers=people.superadmin(key)).json()
        assert {c["tenant"] for c in listed["items"]} == {tenant}, key
    assert me(api, people.superadmin("ZZ999999999")).status_code == 404


def test_a_ban_of_another_tenant_switches_nothing_for_its_members(
    api: TestClient, people: People
) -> None:
    """Thinking as a member of acme: globex's BANs (the tenant's and its customer's) and
    a BAN nobody has get the same 403, and no globex row comes back."""
    globex = create(api, people.headers("globex", "member"), company_name="Globex Networks")
    own = create(api, people.headers("acme", "member"), company_name="Acme Second Account")
    for role in ("viewer", "member", "admin"):
        headers = people.headers("acme", role)
        answers = [
            api.get("/api/v1/customers", headers=headers | {"X-Customer-ID": key})
            for key in (globex["ban"], "GX000000002", "globex", "ZZ999999999")
        ]
        assert {a.status_code for a in answers} == {403}, role
        assert len({a.json()["detail"] for a in answers}) == 1  # nothing to tell them apart
        mine = api.get("/api/v1/customers", headers=headers | {"X-Customer-ID": own["ban"]})
        assert {c["tenant"] for c in mine.json()["items"]} == {"acme"}, role
    refused = api.post(
        "/api/v1/customers",
        json={"company_name": "Sneaky"},
        headers=people.headers("acme", "member") | {"X-Customer-ID": globex["ban"]},
    )
    assert refused.status_code == 403


# -- the picker -----------------------------------------------------------------------------


def test_the_picker_searches_customers_by_name_and_ban(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    made = create(api, people.superadmin(), company_name="Globe Telecom 100%")
    second = create(api, people.headers("globex", "member"), company_name="Globex Voice")
    root = people.superadmin("acme")  # the picker lists every tenant, whatever is picked

    def search(q: str, **params: Any) -> list[tuple[str, str, str | None]]:
        answer = api.get("/api/v1/tenants/search", params={"q": q, **params}, headers=root)
        assert answer.status_code == 200, answer.text
        return [(c["tenant"], c["name"], c["ban"]) for c in answer.json()]

    assert search("glob") == [
        ("globe-telecom-100", "Globe Telecom 100%", made["ban"]),
        ("globex", "Globex Voice", second["ban"]),
    ]
    assert search(second["ban"].lower()) == [("globex", "Globex Voice", second["ban"])]
    assert search("AC0000") == [("acme", "Acme", "AC000000001")]  # no customer: the tenant's
    assert search("100%") == [("globe-telecom-100", "Globe Telecom 100%", made["ban"])]
    assert search("0%") == [("globe-telecom-100", "Globe Telecom 100%", made["ban"])]
    assert search("_") == []  # `%` and `_` are plain characters
    assert len(search("", limit=2)) == 2
    for role in ("viewer", "member", "admin"):
        answer = api.get("/api/v1/tenants/search", params={"q": "glob"},
                         headers=people.headers("acme", role))  # fmt: skip
        assert answer.status_code == 403 and "Globe" not in answer.text


def test_the_dashboards_picker_lists_and_picks_by_ban(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    globex = create(api, people.headers("globex", "member"), company_name="Globex Voice")
    login(api, "root@example.com")
    listed = api.get("/ui/tenants", params={"q": "globex voice"}, headers=HTML)
    assert listed.status_code == 200
    assert '<button name="tenant" value="globex">Globex Voice' in listed.text
    assert globex["ban"] in listed.text and "Acme" not in listed.text
    page = api.get("/ui/events", headers=HTML).text
    assert 'name="q"' in page and 'hx-get="/ui/tenants"' in page

    picked = post(api, "/ui/tenant?next=/ui/events", tenant=globex["ban"])
    assert picked.status_code == 303
    assert api.cookies.get("hookyard_tenant") == "globex"
    assert (
        '<span class="tenant-name" id="tenant-picked">globex</span>'
        in api.get("/ui/events", headers=HTML).text
    )
    post(api, "/ui/tenant", tenant="*", q="acme")  # "All tenants", whatever was typed
    assert api.cookies.get("hookyard_tenant") is None
    typed = post(api, "/ui/tenant", q=globex["ban"])  # Enter in the box, without scripts
    assert typed.status_code == 303 and api.cookies.get("hookyard_tenant") == "globex"
    assert post(api, "/ui/tenant", q="ZZ999999999").status_code == 404

    login(api, "admin@acme.example.com")
    refused = api.get("/ui/tenants", params={"q": "glob"}, headers=HTML)
    assert refused.status_code == 403 and "Globex" not in refused.text
    assert post(api, "/ui/tenant", tenant=globex["ban"]).status_code == 403
    page = api.get("/ui/events", headers=HTML).text
    assert 'hx-get="/ui/tenants"' not in page


# -- CORS -----------------------------------------------------------------------------------


def preflight(client: TestClient, path: str, origin: str, headers: str = "") -> Any:
    asked = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=asked)


def test_cors_preflight_is_allowed_for_the_configured_origin_only(settings: Settings) -> None:
    with gateway(settings, cors_origins=(PORTAL,)) as (client, people):
        wanted = "authorization, content-type, x-customer-id"
        allowed = preflight(client, "/api/v1/customers", PORTAL, wanted)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == PORTAL
        assert "access-control-allow-credentials" not in allowed.headers
        allows = allowed.headers["access-control-allow-headers"].lower().split(",")
        assert {h.strip() for h in allows} >= {"authorization", "content-type", "x-customer-id"}
        assert "POST" in allowed.headers["access-control-allow-methods"]

        for other in ("https://evil.example.com", "http://portal.example.com",
                      "https://portal.example.com.evil.example", "null"):  # fmt: skip
            refused = preflight(client, "/api/v1/customers", other, wanted)
            assert refused.status_code == 400, other
            assert "access-control-allow-origin" not in refused.headers, other
        # The dashboard's CSRF header is no portal's business.
        csrf = preflight(client, "/api/v1/customers", PORTAL, "x-csrf-token")
        assert csrf.status_code == 400

        # The call itself: the portal's page may read the answer, another origin's may not.
        headers = people.superadmin("GX000000002")
        read = client.get("/api/v1/me", headers=headers | {"Origin": PORTAL})
        assert read.status_code == 200 and read.json()["acting_for"] == "globex"
        assert read.headers["access-control-allow-origin"] == PORTAL
        assert "Origin" in read.headers["vary"]
        other = client.get("/api/v1/me", headers=headers | {"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
        # Only the management API: not the dashboard, not the webhooks.
        for path in ("/ui/login", "/webhooks/hubspot/company", "/metrics"):
            answer = preflight(client, path, PORTAL, wanted)
            assert "access-control-allow-origin" not in answer.headers, path


def test_cors_is_off_by_default(api: TestClient, people: People) -> None:
    answer = preflight(api, "/api/v1/customers", PORTAL, "authorization")
    assert answer.status_code == 405
    assert "access-control-allow-origin" not in answer.headers
    read = api.get("/api/v1/me", headers=people.superadmin() | {"Origin": PORTAL})
    assert "access-control-allow-origin" not in read.headers


def test_cors_origins_are_exact_origins() -> None:
    parsed = Settings(cors_origins="https://Portal.Example.com:443/, http://localhost:3000")  # type: ignore[arg-type]
    assert parsed.cors_origins == (PORTAL, "http://localhost:3000")
    for bad in ("*", "https://*.example.com", "portal.example.com", "https://x.com/app",
                "ftp://x.com", "https://user@x.com"):  # fmt: skip
        try:
            Settings(cors_origins=bad)  # type: ignore[arg-type]
        except ValueError as exc:
            assert "HOOKYARD_CORS_ORIGINS" in str(exc), bad
        else:
            raise AssertionError(f"{bad!r} was taken")


def test_a_tenant_row_inserted_twice_is_one_row(runtime: Runtime) -> None:
    """The domain's insert never fails its transaction over a taken id (PostgreSQL would
    abort the whole transaction)."""
    with runtime.engine.begin() as tx:
        assert identity.insert_tenant(tx, "initech", "Initech", None) is True
        assert identity.insert_tenant(tx, "initech", "Initech again", None) is False
        tx.execute(
            insert(tenants).values(
                id="x", name="X", ban="XX000000001", created_at=datetime.now(UTC)
            )
        )
        assert identity.insert_tenant(tx, "other", "Other", "XX000000001") is False
    assert set(tenant_rows(runtime.engine)) >= {"initech", "x"}
