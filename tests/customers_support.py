"""Customers as the CRM tests make them: created over the API, linked to a HubSpot company by
hand, changed by HubSpot's signed webhooks; and `Books`, one tenant's customer with an open
sync conflict and a failed outbox row (conftest.py's `acme` and `globex` fixtures)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select, update

from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts
from hookyard.runtime import Runtime
from hookyard.testing.simulate import hubspot_delivery, hubspot_property_change
from tests.people import People
from tests.support import SECRETS, rows

_companies = itertools.count(9_100_000_001)


def create(api: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"company_name": "Ringer Network Solutions", "services": ["voice"]} | fields
    response = api.post("/api/v1/customers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def link(engine: Engine, customer_id: int) -> int:
    """The customer as if its creation had reached HubSpot: linked to a company, the
    creation's outbox row sent."""
    company = next(_companies)
    with engine.begin() as tx:
        tx.execute(
            update(customers)
            .where(customers.c.id == customer_id)
            .values(hubspot_company_id=str(company))
        )
        tx.execute(
            update(outbox)
            .where(outbox.c.customer_id == customer_id)
            .values(status="done", sent_at=datetime.now(UTC))
        )
    return company


def hubspot_changes(
    api: TestClient, runtime: Runtime, company: int, prop: str, value: str, **fields: Any
) -> None:
    """A person changes the company in HubSpot: its signed webhook, handled by a worker."""
    url = "http://testserver/webhooks/hubspot/company"
    change = hubspot_property_change(company, prop, value, **fields)
    d = hubspot_delivery(SECRETS["hubspot"], url, [change])
    response = api.post("/webhooks/hubspot/company", content=d.body, headers=d.headers)
    assert response.status_code == 200, response.text
    assert runtime.make_worker().drain() == 1


def tie(api: TestClient, runtime: Runtime, customer_id: int, company: int, name: str) -> None:
    """HubSpot's name change at the time of our name's: a conflict."""
    [state] = rows(
        runtime.engine, field_state,
        field_state.c.customer_id == customer_id, field_state.c.field == "company_name",
    )  # fmt: skip
    at = int(state["our_changed_at"].timestamp() * 1000)
    hubspot_changes(api, runtime, company, "name", name, occurred_at=at)


@dataclass
class Books:
    """One tenant's customer, linked to HubSpot, with an open company_name conflict (HubSpot
    renamed it `<name> Inc` in the very millisecond of our name: the one case the rules
    cannot decide), and a failed outbox row."""

    customer: dict[str, Any]
    company: int
    conflict: int
    failed_row: int


def books_of(
    api: TestClient, runtime: Runtime, people: People, tenant: str, name: str, ctype: str
) -> Books:
    created = create(api, people.headers(tenant, "member"), company_name=name, customer_type=ctype)
    company = link(runtime.engine, created["id"])
    tie(api, runtime, created["id"], company, f"{name} Inc")
    now = datetime.now(UTC)
    with runtime.engine.begin() as tx:
        conflict = tx.execute(
            select(sync_conflicts.c.id).where(sync_conflicts.c.customer_id == created["id"])
        ).scalar_one()
        failed_row = tx.execute(
            insert(outbox)
            .values(
                tenant=tenant, customer_id=created["id"], operation="update",
                fields=["company_name"], status="failed", attempts=4, next_attempt_at=now,
                last_error="HTTP 503", created_at=now, updated_at=now,
            )
            .returning(outbox.c.id)
        ).scalar_one()  # fmt: skip
    return Books(created, company, int(conflict), int(failed_row))
