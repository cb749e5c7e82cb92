"""The people of a two-tenant install, for RBAC and isolation tests: a superadmin, and an
admin, member and viewer in each of `acme` and `globex`, each with an API key.

`people.headers("acme", "viewer")` are the headers of acme's viewer; `people.superadmin()`
the superadmin's, optionally acting for a tenant (`X-Customer-ID`). The `people` fixture of
conftest.py makes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from hookyard.accounts import identity
from hookyard.accounts.identity import Role
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime

# Cheap argon2id parameters for the tests' many users (the stored hashes are still argon2id;
# production keeps argon2-cffi's defaults).
identity._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

TENANTS = {"acme": "AC000000001", "globex": "GX000000002"}  # tenant -> its BAN
ROLES = ("admin", "member", "viewer")
PASSWORD = "correct horse battery staple"


@dataclass
class People:
    keys: dict[tuple[str | None, str], str] = field(default_factory=dict)  # (tenant, role)

    def headers(self, tenant: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}

    def superadmin(self, acting_for: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[(None, 'superadmin')]}"}
        if acting_for is not None:
            headers["X-Customer-ID"] = acting_for
        return headers

    def every(self, tenant: str = "acme") -> dict[str, dict[str, str]]:
        """role -> headers for the tenant's people and the superadmin acting for it."""
        found = {role: self.headers(tenant, role) for role in ROLES}
        found["superadmin"] = self.superadmin(tenant)
        return found


def make_people(runtime: Runtime) -> People:
    engine = runtime.engine
    people = People()
    for tenant, ban in TENANTS.items():
        identity.create_tenant(engine, tenant, tenant.title(), ban)
        for role in ROLES:
            user = identity.create_user(
                engine, f"{role}@{tenant}.example.com", Role(role), tenant, PASSWORD
            )
            people.keys[(tenant, role)] = identity.create_api_key(engine, user, "tests")[1]
    root = identity.create_user(engine, "root@example.com", Role.SUPERADMIN, None, PASSWORD)
    people.keys[(None, "superadmin")] = identity.create_api_key(engine, root, "tests")[1]
    return people


@contextmanager
def gateway(settings: Settings, **changes: Any) -> Iterator[tuple[TestClient, People]]:
    """A gateway with these settings changed (`trust_proxy_headers=True`, …), and its
    people, for a test of what a setting changes."""
    runtime = Runtime.build(settings.model_copy(update=changes))
    try:
        people = make_people(runtime)
        with TestClient(create_app(runtime, run_workers=False)) as client:
            yield client, people
    finally:
        runtime.close()
