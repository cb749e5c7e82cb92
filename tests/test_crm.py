"""HubSpot CRM: what company events do to customers, by the declarative field rules."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Table, select

from hookyard.app import create_app
from hookyard.config import ConfigError
from hookyard.domain.crm import service as crm
from hookyard.domain.crm.rules import (
    BY_FIELD,
    RULES,
    Authority,
    Direction,
    FieldRules,
    OnTheirChange,
)
from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts, sync_log
from hookyard.providers import signing
from hookyard.providers.base import Outcome, StoredEvent
from hookyard.runtime import Runtime
from tests.conftest import SECRETS

PAYLOADS = Path(__file__).parent / "payloads"
COMPANY = 18442069817  # objectId of hubspot_company_property_change.json
T0 = datetime.fromtimestamp(1763800000, UTC)  # its occurredAt
_ids = iter(range(1000, 10**6))


def event(
    prop: str | None = "name",
    value: Any = "Ringer Network Solutions",
    at: datetime = T0,
    *,
    kind: str = "company.propertyChange",
    company: int = COMPANY,
    event_id: int | None = None,
    tenant: str | None = None,
) -> StoredEvent:
    payload: dict[str, Any] = {
        "eventId": 1,
        "subscriptionType": kind,
        "objectId": company,
        "occurredAt": int(at.timestamp() * 1000),
    }
    if prop is not None:
        payload.update(propertyName=prop, propertyValue=value)
    return StoredEvent(
        id=event_id if event_id is not None else next(_ids),
        source="hubspot",
        provider="hubspot",
        tenant=tenant,
        event_type=kind,
        dedup_key=f"event:{event_id}",
        entity_key=f"company:{company}",
        provider_ts=at,
        payload=payload,
        headers={},
        attempts=1,
        origin="webhook",
    )


@pytest.fixture
def tx(runtime: Runtime) -> Iterator[Connection]:
    with runtime.engine.begin() as conn:
        yield conn


def customer(tx: Connection, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "company_name": "Ringer Networks",
        "status": "active",
        "customer_type": "business",
        "credit_limit": "1000",
        "current_balance": "12.50",
        "services": ["voice"],
        "hubspot_company_id": COMPANY,
        "at": T0 - timedelta(hours=1),
    }
    values.update(extra)
    tenant = values.pop("tenant", "acme")
    cid = crm.create_customer(tx, tenant, **values)
    return row(tx, customers, cid)


def row(tx: Connection, table: Table, ident: int) -> dict[str, Any]:
    return dict(tx.execute(select(table).where(table.c.id == ident)).mappings().one())


def state(tx: Connection, customer_id: int, field: str) -> dict[str, Any]:
    query = select(field_state).where(
        field_state.c.customer_id == customer_id, field_state.c.field == field
    )
    return dict(tx.execute(query).mappings().one())


def conflicts(tx: Connection) -> list[dict[str, Any]]:
    query = select(sync_conflicts).order_by(sync_conflicts.c.id)
    return [dict(r) for r in tx.execute(query).mappings()]


def queued(tx: Connection) -> list[tuple[int, list[str], str]]:
    query = select(outbox.c.customer_id, outbox.c.fields, outbox.c.status).order_by(outbox.c.id)
    return [(r.customer_id, r.fields, r.status) for r in tx.execute(query)]


def logged(tx: Connection) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    query = select(sync_log).order_by(sync_log.c.id)
    return [(r.direction, r.operation, r.result, r.properties) for r in tx.execute(query)]


# Issue 14's table: field, property, out, in, authority, on a change from HubSpot.
TABLE = {
    "ban": ("hookyard_ban", Direction.OUT, Authority.OURS, OnTheirChange.REPUSH),
    "company_name": ("name", Direction.BOTH, Authority.LATEST, OnTheirChange.LATEST_WINS),
    "status": ("hookyard_status", Direction.OUT, Authority.OURS, OnTheirChange.REPUSH),
    "customer_type": ("hookyard_customer_type", Direction.OUT, Authority.OURS,
                      OnTheirChange.REPUSH),
    "credit_limit": ("hookyard_credit_limit", Direction.BOTH, Authority.HUBSPOT,
                     OnTheirChange.APPLIED),
    "current_balance": ("hookyard_current_balance", Direction.OUT, Authority.OURS,
                        OnTheirChange.REPUSH),
    "services": ("hookyard_services", Direction.OUT, Authority.OURS, OnTheirChange.REPUSH),
}  # fmt: skip


def test_the_rules_are_the_issues_table() -> None:
    assert {r.field: (r.hubspot_property, r.direction, r.authority, r.on_their_change)
            for r in RULES} == TABLE  # fmt: skip
    assert [r.field for r in RULES] == list(TABLE)  # one row per field, in the table's order
    assert all(r.inbound == (r.direction is Direction.BOTH) for r in RULES)


def test_property_names_are_configurable_per_field() -> None:
    named = FieldRules.named({"ban": "acct_ban", "company_name": "hookyard_company_name"})
    assert named.prop("ban") == "acct_ban"
    assert named.prop("company_name") == "hookyard_company_name"
    assert named.prop("status") == "hookyard_status"  # the others keep their defaults
    assert named.by_property["acct_ban"].field == "ban"
    assert BY_FIELD["ban"].hubspot_property == "hookyard_ban"  # the defaults are untouched
    for bad in ({"nope": "x"}, {"ban": "Has Space"}, {"ban": "hookyard_status"}):
        with pytest.raises(ConfigError, match="HOOKYARD_HUBSPOT_PROPERTY_NAMES"):
            FieldRules.named(bad)


def test_hubspots_credit_limit_is_applied(tx: Connection) -> None:
    c = customer(tx)
    assert crm.apply(event("hookyard_credit_limit", "2500.5"), tx, "acme") == Outcome.DONE
    after = row(tx, customers, c["id"])
    assert after["credit_limit_cents"] == 250050
    assert after["sync_source"] == "webhook" and after["last_synced_at"] is not None
    s = state(tx, c["id"], "credit_limit")
    assert (s["our_value"], s["their_value"], s["their_changed_at"]) == ("2500.50", "2500.50", T0)
    # HubSpot clearing the property clears ours (credit_limit may be empty).
    assert crm.apply(event("hookyard_credit_limit", "", T0 + timedelta(1)), tx) == Outcome.DONE
    assert row(tx, customers, c["id"])["credit_limit_cents"] is None
    assert conflicts(tx) == [] and queued(tx) == []  # applied: nothing to push back


@pytest.mark.parametrize(
    "field, prop, theirs, column, ours",
    [
        ("ban", "hookyard_ban", "ZZ000000000", "ban", None),
        ("status", "hookyard_status", "suspended", "status", "active"),
        ("customer_type", "hookyard_customer_type", "residential", "customer_type", "business"),
        ("current_balance", "hookyard_current_balance", "999", "current_balance_cents", 1250),
        ("services", "hookyard_services", "messaging", "service_voice", True),
    ],
)
def test_a_field_we_own_is_not_applied_but_pushed_again_and_logged(
    tx: Connection, field: str, prop: str, theirs: str, column: str, ours: Any
) -> None:
    c = customer(tx)
    ours = c["ban"] if ours is None else ours
    e = event(prop, theirs)
    assert crm.apply(e, tx, "acme") == Outcome.DONE
    assert row(tx, customers, c["id"])[column] == ours  # not applied
    assert state(tx, c["id"], field)["their_value"] == BY_FIELD[field].parse(theirs)  # recorded
    assert queued(tx) == [(c["id"], [field], "pending")]  # ours, on its way again
    [(direction, operation, result, properties)] = logged(tx)
    assert (direction, operation, result) == ("in", "repush", "not_applied")
    assert properties == {prop: BY_FIELD[field].parse(theirs)}
    assert conflicts(tx) == []  # automatic: nobody is asked
    # Redelivered or replayed: it joins the same outbox row.
    assert crm.apply(e, tx, "acme") == Outcome.DONE
    assert queued(tx) == [(c["id"], [field], "pending")]


def test_hubspot_agreeing_with_a_field_we_own_changes_nothing(tx: Connection) -> None:
    customer(tx, services=["messaging", "voice"])
    assert crm.apply(event("hookyard_status", "active"), tx) == Outcome.DONE
    # Services compare as a set, in any order.
    assert crm.apply(event("hookyard_services", "voice;messaging"), tx) == Outcome.DONE
    assert queued(tx) == [] and logged(tx) == [] and conflicts(tx) == []
    assert crm.apply(event("hookyard_services", "fax", T0 + timedelta(2)), tx) == Outcome.IGNORED


def test_latest_wins_by_time(tx: Connection) -> None:
    c = customer(tx)  # our name set an hour before T0
    assert crm.apply(event("name", "Ringer Network Solutions"), tx) == Outcome.DONE
    assert row(tx, customers, c["id"])["company_name"] == "Ringer Network Solutions"
    # We rename later; a HubSpot change older than ours loses, without a conflict.
    crm.change_field(tx, c["id"], "company_name", "Ringer Inc", at=T0 + timedelta(minutes=10))
    late = event("name", "Ringer LLC", T0 + timedelta(minutes=5))
    assert crm.apply(late, tx) == Outcome.SUPERSEDED
    assert row(tx, customers, c["id"])["company_name"] == "Ringer Inc"
    assert state(tx, c["id"], "company_name")["their_value"] == "Ringer LLC"  # recorded
    newer = event("name", "Ringer Corp", T0 + timedelta(minutes=20))
    assert crm.apply(newer, tx) == Outcome.DONE
    assert row(tx, customers, c["id"])["company_name"] == "Ringer Corp"
    assert conflicts(tx) == []


def test_latest_at_the_same_time_is_a_conflict(tx: Connection) -> None:
    c = customer(tx, at=T0)  # our name set at T0
    e = event("name", "Ringer Network Solutions", T0)  # theirs in the same millisecond
    assert crm.apply(e, tx, "acme") == Outcome.DONE
    assert crm.apply(e, tx, "acme") == Outcome.DONE  # replayed: still one conflict
    [k] = conflicts(tx)
    assert (k["field"], k["our_value"], k["their_value"], k["event_id"], k["tenant"]) == (
        "company_name", "Ringer Networks", "Ringer Network Solutions", e.id, "acme",
    )  # fmt: skip
    assert row(tx, customers, c["id"])["company_name"] == "Ringer Networks"  # a person decides
    # A newer HubSpot change decides it by time and closes the conflict.
    assert crm.apply(event("name", "Ringer Corp", T0 + timedelta(1)), tx) == Outcome.DONE
    assert row(tx, customers, c["id"])["company_name"] == "Ringer Corp"
    [k] = conflicts(tx)
    assert (k["resolution"], k["resolved_by"]) == ("superseded", "hookyard")


def test_an_older_event_is_superseded(tx: Connection) -> None:
    c = customer(tx)
    newer = event("hookyard_credit_limit", "3000", T0 + timedelta(minutes=5))
    assert crm.apply(newer, tx) == Outcome.DONE
    older = event("hookyard_credit_limit", "100", T0)
    assert crm.apply(older, tx) == Outcome.SUPERSEDED
    assert row(tx, customers, c["id"])["credit_limit_cents"] == 300000
    s = state(tx, c["id"], "credit_limit")
    assert (s["their_value"], s["their_event_id"]) == ("3000.00", newer.id)
    # Another field orders on its own.
    assert crm.apply(event("name", "Other", T0), tx) == Outcome.DONE


def test_unlinked_creation_and_other_tenant_are_ignored(tx: Connection) -> None:
    assert crm.apply(event("name", "X", company=42), tx) == Outcome.IGNORED
    assert tx.execute(select(customers)).first() is None  # no customer created
    c = customer(tx)
    assert crm.apply(event(None, kind="company.creation"), tx) == Outcome.IGNORED
    assert crm.apply(event("hookyard_status", "x"), tx, "globex") == Outcome.IGNORED
    assert crm.apply(event("unknown_property", "x"), tx) == Outcome.IGNORED
    assert crm.apply(event("name", ""), tx) == Outcome.IGNORED  # a name cannot be cleared
    assert conflicts(tx) == [] and row(tx, customers, c["id"])["company_name"] == "Ringer Networks"


def test_deletion_flags_the_customer(tx: Connection) -> None:
    c = customer(tx)
    assert crm.apply(event(None, kind="company.deletion"), tx) == Outcome.DONE
    after = row(tx, customers, c["id"])
    assert after["hubspot_deleted_at"] == T0 and after["company_name"] == "Ringer Networks"


def test_resolve_conflict(tx: Connection) -> None:
    at = T0 - timedelta(hours=1)  # when our names were set: HubSpot's ties with it
    kept_c = customer(tx, tenant="acme")
    taken_c = customer(tx, tenant="acme", hubspot_company_id=COMPANY + 1)
    crm.apply(event("name", "Ringer One", at), tx)
    crm.apply(event("name", "Ringer Two", at, company=COMPANY + 1), tx)
    kept, taken = (k["id"] for k in conflicts(tx))
    assert crm.resolve_conflict(tx, kept, "keep_ours", "ana", tenant="globex") == "not_found"
    assert crm.resolve_conflict(tx, kept, "keep_ours", "ana", tenant="acme") == "resolved"
    assert crm.resolve_conflict(tx, kept, "take_theirs", "bob") == "already_resolved"
    assert crm.resolve_conflict(tx, taken, crm.Resolution.TAKE_THEIRS, "bob") == "resolved"
    assert crm.resolve_conflict(tx, 10**9, "keep_ours", "bob") == "not_found"
    with pytest.raises(ValueError):
        crm.resolve_conflict(tx, taken, "superseded", "bob")
    assert row(tx, customers, kept_c["id"])["company_name"] == "Ringer Networks"
    after = row(tx, customers, taken_c["id"])
    assert (after["company_name"], after["sync_source"]) == ("Ringer Two", "manual")
    assert state(tx, taken_c["id"], "company_name")["our_value"] == "Ringer Two"
    k1, k2 = conflicts(tx)
    assert (k1["resolution"], k1["resolved_by"], k2["resolution"], k2["resolved_by"]) == (
        "keep_ours",
        "ana",
        "take_theirs",
        "bob",
    )


def test_ban_format_and_uniqueness(tx: Connection) -> None:
    bans = {customer(tx, hubspot_company_id=None)["ban"] for _ in range(50)}
    assert len(bans) == 50 and all(crm.BAN_PATTERN.fullmatch(b) for b in bans)
    assert len({crm.generate_ban(tx) for _ in range(200)}) == 200
    with pytest.raises(ValueError):
        customer(tx, ban="A1234", hubspot_company_id=None)
    c = customer(tx, ban="AB123456789", hubspot_company_id=None)
    assert c["ban"] == "AB123456789"


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def test_a_signed_delivery_through_ingress(client: TestClient, runtime: Runtime) -> None:
    with runtime.engine.begin() as tx:
        cid = customer(tx, tenant=None)["id"]
    name_change = json.loads((PAYLOADS / "hubspot_company_property_change.json").read_text())[0]
    status_change = dict(
        name_change, eventId=2, propertyName="hookyard_status", propertyValue="churned"
    )
    body = json.dumps([name_change, status_change]).encode()
    ts = str(int(time.time() * 1000))
    url = "http://testserver/webhooks/hubspot/company"
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signing.hubspot_v3(SECRETS["hubspot"], "POST", url, body, ts),
        "x-hubspot-request-timestamp": ts,
    }
    response = client.post("/webhooks/hubspot/company", content=body, headers=headers)
    assert response.status_code == 200
    ids = response.json()["events"]
    runtime.make_worker().drain()
    assert [runtime.store.get(i)["status"] for i in ids] == ["done", "done"]  # type: ignore[index]
    with runtime.engine.connect() as conn:
        after = row(conn, customers, cid)
        # The name is HubSpot's newer one; the status is ours, to be pushed again.
        assert (after["company_name"], after["status"]) == ("Ringer Network Solutions", "active")
        assert conflicts(conn) == []
        assert queued(conn) == [(cid, ["status"], "pending")]
        assert [(o, r) for _, o, r, _ in logged(conn)] == [("repush", "not_applied")]
