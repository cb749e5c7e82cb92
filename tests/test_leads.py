"""C2S leads: contact validation, and what on_create_lead / on_update_lead / on_close_lead do
to a lead, driven through the inbox and worker (and once through the real ingress)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Table, func, select, update

from hookyard.app import create_app
from hookyard.contacts import (
    is_fake_local,
    mask_email,
    mask_phone,
    validate_email,
    validate_phone,
)
from hookyard.domain.leads import service as leads_service
from hookyard.domain.leads.service import contact_hash
from hookyard.domain.leads.tables import lead_closures, leads
from hookyard.inbox.model import NewEvent
from hookyard.providers.base import Outcome, StoredEvent, WebhookRequest
from hookyard.runtime import Runtime
from tests.conftest import SECRETS

PAYLOADS = Path(__file__).parent / "payloads"
LEAD = "c2s-lead-8a1f"


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("maria.test@example.com", ("maria.test@example.com", None)),
        ("  Maria.Test@Example.COM ", ("maria.test@example.com", None)),
        ("joao+leads@empresa.com.br", ("joao+leads@empresa.com.br", None)),
        ("maria.silva@example.com", ("maria.silva@example.com", None)),
        ("maria99999@example.com", ("maria99999@example.com", None)),
        ("99999@example.com", ("99999@example.com", None)),  # five nines: not the pattern
        ("12345678@example.com", ("12345678@example.com", None)),
        ("999999@gmail.com", (None, "fake: a run of 6 identical digits")),
        ("111111@example.com", (None, "fake: a run of 6 identical digits")),
        ("000000@example.com", (None, "fake: a run of 6 identical digits")),
        ("0000000000@example.com", (None, "fake: a run of 6 identical digits")),
        ("123456789@hotmail.com", (None, "fake: the digits one to nine in order")),
        ("111.111.111@example.com", (None, "fake: a run of 6 identical digits")),
        ("123456789999999@example.com", (None, "fake: a run of 6 identical digits")),
        ("1199999999333@gmail.com", (None, "fake: a run of 6 identical digits")),
        ("maria999999@example.com", (None, "fake: a run of 6 identical digits")),
        ("123456789@x.com", (None, "fake: the digits one to nine in order")),
        ("11987654321@gmail.com", (None, "fake: all digits, of phone length")),
        ("11.98765.4321@gmail.com", (None, "fake: all digits, of phone length")),
        ("1198765432@gmail.com", (None, "fake: all digits, of phone length")),
        ("119876543@gmail.com", ("119876543@gmail.com", None)),  # nine digits
        ("11987654321098@gmail.com", ("11987654321098@gmail.com", None)),  # fourteen
        ("", (None, "missing")),
        ("   ", (None, "missing")),
        (None, (None, "missing")),
        (42, (None, "missing")),
    ],
)
def test_validate_email(value: object, expected: tuple[str | None, str | None]) -> None:
    assert validate_email(value) == expected


@pytest.mark.parametrize(
    "value", ["maria", "maria@", "@example.com", "maria@localhost", "ma ria@example.com", "a@@b.c"]
)
def test_validate_email_rejects_invalid_addresses(value: str) -> None:
    normalised, error = validate_email(value)
    assert normalised is None
    assert error is not None and error.startswith("invalid: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11987654321", "+5511987654321"),
        ("(11) 98765-4321", "+5511987654321"),
        ("+55 11 98765-4321", "+5511987654321"),
        ("011 3456-7890", "+551134567890"),
        (11987654321, "+5511987654321"),
        ("+1 650 253 0000", "+16502530000"),
    ],
)
def test_validate_phone_gives_e164(value: object, expected: str) -> None:
    assert validate_phone(value) == (expected, None)


@pytest.mark.parametrize("value", ["123", "abc", "+55 11 0000", "00000000000", "+999 1234567"])
def test_validate_phone_rejects_invalid_numbers(value: str) -> None:
    normalised, error = validate_phone(value)
    assert normalised is None
    assert error is not None and error.startswith("invalid: ")


@pytest.mark.parametrize("value", [None, "", "  ", True, 1.5])
def test_validate_phone_missing(value: object) -> None:
    assert validate_phone(value) == (None, "missing")


def test_default_region_is_used_for_national_numbers() -> None:
    assert validate_phone("650 253 0000", default_region="US") == ("+16502530000", None)


def test_masks_keep_only_a_hint() -> None:
    assert mask_email("maria.test@example.com") == "m***@example.com"
    assert mask_phone("+5511987654321") == "***4321"
    assert mask_email(None) is None and mask_phone("12") == "***"


# At most 7 parts: 63 characters, within the 64 an e-mail local part may have (a longer one
# is answered "too long" before the fake check).
@given(
    st.lists(st.sampled_from(["999999", "111111", "000000", "123456789"]), min_size=1, max_size=7)
)
def test_any_mix_of_the_seed_sequences_is_fake(parts: list[str]) -> None:
    assert is_fake_local(".".join(parts))
    normalised, error = validate_email("".join(parts) + "@example.com")
    assert normalised is None and error is not None and error.startswith("fake: ")


@given(st.text(max_size=40))
def test_validators_never_raise(value: str) -> None:
    for normalised, error in (validate_email(value), validate_phone(value)):
        assert (normalised is None) != (error is None)


# --- lead state ---------------------------------------------------------------------------


def body(
    action: str = "on_create_lead",
    updated_at: str = "2025-11-21T04:35:00Z",
    lead: str = LEAD,
    **customer: Any,
) -> dict[str, Any]:
    """c2s_lead_created.json with another action, time, lead or customer fields (a None value
    removes the field)."""
    data: dict[str, Any] = json.loads((PAYLOADS / "c2s_lead_created.json").read_text())
    data.update(id=lead, hook_action=action)
    data["attributes"]["updated_at"] = updated_at
    for key, value in customer.items():
        if value is None:
            data["attributes"]["customer"].pop(key, None)
        else:
            data["attributes"]["customer"][key] = value
    return data


def send(runtime: Runtime, data: dict[str, Any], source: str = "c2s") -> int:
    """Store a request's event as ingress would (parse, then the inbox); its id."""
    src = runtime.sources.by_name()[source]
    raw = json.dumps(data).encode()
    request = WebhookRequest("POST", "http://testserver" + src.path, src.path, {}, {}, raw)
    [parsed] = src.adapter.parse(request)
    new = NewEvent(
        src.name,
        src.config.provider,
        src.config.tenant,
        parsed.event_type,
        parsed.dedup_key,
        parsed.entity_key,
        parsed.provider_ts,
        {},
        raw,
        parsed.payload,
        datetime.now(UTC),
    )
    [event_id] = runtime.store.insert_batch([new]).values()
    return int(event_id)


def handle(runtime: Runtime, data: dict[str, Any]) -> str:
    event_id = send(runtime, data)
    runtime.make_worker().drain()
    row = runtime.store.get(event_id)
    assert row is not None
    return str(row["status"])


def rows(runtime: Runtime, table: Table) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def lead_row(runtime: Runtime) -> dict[str, Any]:
    [row] = rows(runtime, leads)
    return row


def count(runtime: Runtime, table: Table) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def enrichment_done(runtime: Runtime) -> None:
    """What the enrichment pipeline would leave behind."""
    with runtime.engine.begin() as tx:
        tx.execute(update(leads).values(enrichment_status="done"))


def test_create_stores_a_validated_open_lead_pending_enrichment(runtime: Runtime) -> None:
    assert handle(runtime, body()) == Outcome.DONE
    lead = lead_row(runtime)
    assert lead["c2s_lead_id"] == LEAD
    assert lead["name"] == "Maria Test"
    assert lead["email"] == "maria.test@example.com"
    assert lead["phone"] == "+5511987654321"
    assert lead["validation_errors"] is None
    assert lead["status"] == "open"
    assert lead["enrichment_status"] == "pending"
    assert lead["enrichment_requested_at"] is not None
    assert lead["contact_hash"] == contact_hash("maria.test@example.com", "+5511987654321")
    assert lead["c2s_updated_at"] == datetime(2025, 11, 21, 4, 35, tzinfo=UTC)
    assert lead["sync_source"] == "webhook"
    assert lead["closed_at"] is None
    assert count(runtime, lead_closures) == 0


def test_invalid_contact_is_recorded_and_without_any_contact_no_enrichment(
    runtime: Runtime,
) -> None:
    handle(runtime, body(email="999999@gmail.com", phone="123"))
    lead = lead_row(runtime)
    assert lead["email"] is None and lead["phone"] is None
    assert lead["validation_errors"] == {
        "email": "fake: a run of 6 identical digits",
        "phone": "invalid: not a valid number",
    }
    assert lead["enrichment_status"] == "not_needed"
    # The e-mail corrected later (the phone left out, so kept): its error goes, enrichment runs.
    update = body("on_update_lead", "2025-11-21T05:00:00Z", email="maria@example.com", phone=None)
    handle(runtime, update)
    lead = lead_row(runtime)
    assert lead["email"] == "maria@example.com"
    assert lead["validation_errors"] == {"phone": "invalid: not a valid number"}
    assert lead["enrichment_status"] == "pending"


def test_update_reenriches_only_when_contact_data_changed(runtime: Runtime) -> None:
    handle(runtime, body())
    enrichment_done(runtime)
    # Only the name (and the case of the e-mail) changed: no new enrichment.
    handle(
        runtime,
        body(
            "on_update_lead",
            "2025-11-21T05:00:00Z",
            name="Maria T.",
            email="MARIA.TEST@EXAMPLE.COM",
            phone="(11) 98765-4321",
        ),
    )
    lead = lead_row(runtime)
    assert lead["name"] == "Maria T."
    assert lead["enrichment_status"] == "done"
    assert lead["c2s_updated_at"] == datetime(2025, 11, 21, 5, tzinfo=UTC)
    # A new phone: enrich again.
    handle(runtime, body("on_update_lead", "2025-11-21T06:00:00Z", phone="11912345678"))
    lead = lead_row(runtime)
    assert lead["phone"] == "+5511912345678"
    assert lead["enrichment_status"] == "pending"


def test_an_update_without_customer_keeps_the_contact(runtime: Runtime) -> None:
    handle(runtime, body())
    enrichment_done(runtime)
    data = body("on_update_lead", "2025-11-21T05:00:00Z")
    del data["attributes"]["customer"]
    assert handle(runtime, data) == Outcome.DONE
    lead = lead_row(runtime)
    assert (lead["email"], lead["phone"], lead["name"]) == (
        "maria.test@example.com",
        "+5511987654321",
        "Maria Test",
    )
    assert lead["enrichment_status"] == "done"


def test_an_older_update_is_superseded(runtime: Runtime) -> None:
    handle(runtime, body("on_update_lead", "2025-11-21T06:00:00Z", name="Newer"))
    assert handle(runtime, body("on_update_lead", "2025-11-21T05:00:00Z", name="Older")) == (
        Outcome.SUPERSEDED
    )
    lead = lead_row(runtime)
    assert lead["name"] == "Newer"
    assert lead["c2s_updated_at"] == datetime(2025, 11, 21, 6, tzinfo=UTC)
    # Another time zone, same instant: applies (equal times apply).
    assert handle(runtime, body("on_update_lead", "2025-11-21T03:00:00-03:00", name="Same")) == (
        Outcome.DONE
    )
    assert lead_row(runtime)["name"] == "Same"


def test_close_records_the_closure_once(runtime: Runtime) -> None:
    handle(runtime, body())
    assert handle(runtime, body("on_close_lead", "2025-11-22T10:00:00Z")) == Outcome.DONE
    lead = lead_row(runtime)
    assert lead["status"] == "closed"
    assert lead["closed_at"] == datetime(2025, 11, 22, 10, tzinfo=UTC)
    [closure] = rows(runtime, lead_closures)
    assert closure["lead_id"] == lead["id"]
    assert closure["closed_at"] == lead["closed_at"]
    assert closure["notified_at"] is None
    # A later close (or an update) of a closed lead records nothing more, nor reopens it.
    handle(runtime, body("on_close_lead", "2025-11-22T11:00:00Z"))
    handle(runtime, body("on_update_lead", "2025-11-22T12:00:00Z", name="After"))
    assert count(runtime, lead_closures) == 1
    assert lead_row(runtime)["status"] == "closed"
    assert lead_row(runtime)["name"] == "After"


def test_a_close_of_an_unknown_lead_creates_it_closed(runtime: Runtime) -> None:
    assert handle(runtime, body("on_close_lead", lead="other")) == Outcome.DONE
    lead = lead_row(runtime)
    assert (lead["c2s_lead_id"], lead["status"]) == ("other", "closed")
    assert lead["email"] == "maria.test@example.com"
    assert count(runtime, lead_closures) == 1


def test_redelivery_is_stored_once_and_replay_changes_nothing(runtime: Runtime) -> None:
    ids = [send(runtime, body()), send(runtime, body("on_close_lead", "2025-11-22T10:00:00Z"))]
    runtime.make_worker().drain()
    before = lead_row(runtime)
    # The same delivery again: the inbox deduplicates it (per lead, action and updated_at).
    with pytest.raises(ValueError):
        send(runtime, body("on_close_lead", "2025-11-22T10:00:00Z"))
    # The stored events applied again (a replay): the create is older than the applied close,
    # the close applies again without a second closure; the state stays the same.
    outcomes = []
    with runtime.engine.begin() as tx:
        for event_id in ids:
            row = runtime.store.get(event_id)
            assert row is not None
            outcomes.append(leads_service.apply(stored(row, origin="replay"), tx))
    assert outcomes == [Outcome.SUPERSEDED, Outcome.DONE]
    after = lead_row(runtime)
    assert count(runtime, lead_closures) == 1
    for key in ("status", "email", "phone", "contact_hash", "enrichment_status", "closed_at"):
        assert after[key] == before[key]


def stored(row: Any, **changes: Any) -> StoredEvent:
    values = {
        "id": row["id"],
        "source": row["source"],
        "provider": row["provider"],
        "tenant": row["tenant"],
        "event_type": row["event_type"],
        "dedup_key": row["dedup_key"],
        "entity_key": row["entity_key"],
        "provider_ts": row["provider_ts"],
        "payload": row["payload"],
        "headers": {},
        "attempts": 1,
        "origin": "webhook",
    }
    values.update(changes)
    return StoredEvent(**values)


def test_other_actions_and_unusable_payloads_are_ignored(runtime: Runtime) -> None:
    assert handle(runtime, body("on_delete_lead")) == Outcome.IGNORED
    event = StoredEvent(
        1, "c2s", "c2s", None, "on_create_lead", "k", None, None, {"id": ""}, {}, 1, "webhook"
    )
    with runtime.engine.begin() as tx:
        assert leads_service.apply(event, tx) == Outcome.IGNORED
    assert count(runtime, leads) == 0


def test_a_lead_of_another_tenant_is_not_changed(runtime: Runtime) -> None:
    data = body()
    event = StoredEvent(
        1, "c2s", "c2s", None, "on_create_lead", "k", None, None, data, {}, 1, "webhook"
    )
    other = StoredEvent(
        2, "c2s", "c2s", "globex", "on_close_lead", "k2", None, None, data, {}, 1, "webhook"
    )
    with runtime.engine.begin() as tx:
        assert leads_service.apply(event, tx, "acme") == Outcome.DONE
        assert leads_service.apply(other, tx, "acme") == Outcome.IGNORED
    lead = lead_row(runtime)
    assert (lead["tenant"], lead["status"]) == ("acme", "open")


# --- through the real ingress -------------------------------------------------------------


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def test_a_delivery_through_ingress_creates_and_closes_the_lead(
    client: TestClient, runtime: Runtime
) -> None:
    headers = {"content-type": "application/json", "x-webhook-token": SECRETS["c2s"]}
    raw = (PAYLOADS / "c2s_lead_created.json").read_bytes()
    assert client.post("/api/v1/webhooks/c2s", content=raw, headers=headers).status_code < 300
    bad = {**headers, "x-webhook-token": "wrong"}
    assert client.post("/api/v1/webhooks/c2s", content=raw, headers=bad).status_code == 401
    assert runtime.make_worker().drain() == 1
    assert lead_row(runtime)["enrichment_status"] == "pending"
    closed = copy.deepcopy(body("on_close_lead", "2025-11-22T10:00:00Z"))
    for _ in range(2):  # C2S retries: stored once
        response = client.post("/api/v1/webhooks/c2s", json=closed, headers=headers)
        assert response.status_code < 300
    assert runtime.make_worker().drain() == 1
    assert lead_row(runtime)["status"] == "closed"
    assert count(runtime, lead_closures) == 1
