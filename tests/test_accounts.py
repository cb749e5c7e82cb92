"""Accounts: login and sessions, API keys, roles, and the tenant a request acts for."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from hookyard.accounts import identity
from hookyard.accounts.identity import Role
from hookyard.runtime import Runtime
from tests.conftest import SECRETS
from tests.people import PASSWORD, TENANTS, People

ROOT = {"Authorization": f"Bearer {SECRETS['admin']}"}


def login(api: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_login_gives_a_short_lived_session_for_the_user(api: TestClient, people: People) -> None:
    response = api.post(
        "/api/v1/auth/login", json={"email": "Member@ACME.example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "subject": me.json()["subject"], "role": "member", "tenant": "acme",
        "acting_for": "acme", "via": "session",
    }  # fmt: skip


@pytest.mark.parametrize(
    "email, password",
    [
        ("member@acme.example.com", "wrong password"),
        ("nobody@acme.example.com", PASSWORD),  # the same answer: no user enumeration
    ],
)
def test_a_wrong_login_is_401(api: TestClient, people: People, email: str, password: str) -> None:
    response = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "wrong e-mail or password"}


def test_expired_forged_and_stale_sessions_are_refused(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    secret = SECRETS["session"]
    user = identity.login(runtime.engine, "viewer@acme.example.com", PASSWORD)
    expired, _ = identity.issue_session(user, secret, minutes=-1)
    forged = jwt.encode(
        {"sub": user.subject, "exp": time.time() + 60}, "not the secret, but just as long as one"
    )
    for token, reason in [(expired, "expired"), (forged, "not a valid session")]:
        response = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and reason in response.json()["detail"]
    # A session follows the user's current role: a disabled user is out at once.
    valid = login(api, "viewer@acme.example.com")
    from sqlalchemy import update

    from hookyard.accounts.tables import users

    with runtime.engine.begin() as tx:
        tx.execute(update(users).where(users.c.email == "viewer@acme.example.com").values(
            disabled_at=identity._now()))  # fmt: skip
    assert api.get("/api/v1/me", headers=valid).status_code == 401


def test_api_keys_are_shown_once_stored_hashed_and_revocable(
    api: TestClient, people: People, runtime: Runtime
) -> None:
    session = login(api, "member@acme.example.com")
    created = api.post("/api/v1/api-keys", headers=session, json={"name": "ci"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("hk_")
    headers = {"Authorization": f"Bearer {key}"}
    assert api.get("/api/v1/me", headers=headers).json()["via"] == "api_key"
    listed = api.get("/api/v1/api-keys", headers=session).json()
    assert [k["name"] for k in listed] == ["tests", "ci"]  # the member's own keys only
    assert all("key" not in k and "key_hash" not in k for k in listed)
    from sqlalchemy import select

    from hookyard.accounts.tables import api_keys

    with runtime.engine.connect() as conn:
        stored = [h for (h,) in conn.execute(select(api_keys.c.key_hash))]
    assert key not in stored and all(len(h) == 64 for h in stored)
    # Another tenant's admin cannot revoke it; the member can; then it stops working.
    key_id = created.json()["id"]
    foreign = api.delete(f"/api/v1/api-keys/{key_id}", headers=people.headers("globex", "admin"))
    assert foreign.status_code == 404
    assert api.delete(f"/api/v1/api-keys/{key_id}", headers=session).status_code == 204
    refused = api.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert api.get("/api/v1/me", headers={"Authorization": "Bearer hk_nope_x"}).status_code == 401


def test_roles_decide_who_manages_tenants_and_users(api: TestClient, people: People) -> None:
    new_user = {"email": "new@acme.example.com", "role": "member", "password": PASSWORD}
    for role, tenants_status, users_status in [
        ("viewer", 403, 403),
        ("member", 403, 403),
        ("admin", 403, 201),
    ]:
        headers = people.headers("acme", role)
        assert api.get("/api/v1/tenants", headers=headers).status_code == tenants_status
        body = new_user | {"email": f"new-{role}@acme.example.com"}
        created = api.post("/api/v1/users", headers=headers, json=body)
        assert created.status_code == users_status, created.text
    # An admin creates users in its own tenant only, and never a superadmin.
    made = api.get("/api/v1/users", headers=people.headers("acme", "admin")).json()
    assert {u["tenant"] for u in made} == {"acme"}
    escalate = api.post(
        "/api/v1/users",
        headers=people.headers("acme", "admin"),
        json={"email": "boss@acme.example.com", "role": "superadmin", "password": PASSWORD},
    )
    assert escalate.status_code == 403
    # The superadmin manages tenants, and must pick the tenant a new user belongs to.
    root = people.superadmin()
    assert {t["id"] for t in api.get("/api/v1/tenants", headers=root).json()} == set(TENANTS)
    made_tenant = api.post("/api/v1/tenants", headers=root, json={"id": "initech", "name": "I"})
    assert made_tenant.status_code == 201
    assert api.post("/api/v1/users", headers=root, json=new_user).status_code == 400
    picked = api.post("/api/v1/users", headers=people.superadmin("initech"), json=new_user)
    assert picked.status_code == 201 and picked.json()["tenant"] == "initech"
    assert (
        api.post("/api/v1/tenants", headers=root, json={"id": "initech", "name": "I"}).status_code
        == 409
    )


def test_x_customer_id_is_the_superadmins_tenant_picker(api: TestClient, people: People) -> None:
    root = people.superadmin()
    assert api.get("/api/v1/me", headers=root).json()["acting_for"] is None
    for picked in ("globex", TENANTS["globex"]):  # a tenant id or its BAN
        me = api.get("/api/v1/me", headers=people.superadmin(picked)).json()
        assert me["acting_for"] == "globex"
    unknown = api.get("/api/v1/me", headers=people.superadmin("ZZ999999999"))
    assert unknown.status_code == 404
    # Everyone else is scoped to their own tenant; naming another is refused.
    member = people.headers("acme", "member")
    assert api.get("/api/v1/me", headers=member | {"X-Customer-ID": "acme"}).status_code == 200
    other = api.get("/api/v1/me", headers=member | {"X-Customer-ID": "globex"})
    assert other.status_code == 403
    # The operator's admin token is a superadmin with no user behind it.
    assert api.get("/api/v1/me", headers=ROOT).json()["role"] == Role.SUPERADMIN
    assert api.post("/api/v1/api-keys", headers=ROOT, json={"name": "x"}).status_code == 400


def test_passwords_are_stored_as_argon2id(people: People, runtime: Runtime) -> None:
    from sqlalchemy import select

    from hookyard.accounts.tables import users

    with runtime.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(users.c.password_hash))]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert all(PASSWORD not in h for h in hashes)
