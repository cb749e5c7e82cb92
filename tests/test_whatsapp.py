"""WhatsApp templates: what Meta's template events do to templates, their history, the
campaigns using them and the alerts the alert rules then find (hookyard.alerts), driven by the
shared payloads through the inbox and worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Table, func, select

from hookyard.alerts.evaluate import AlertEvaluator
from hookyard.alerts.tables import alerts
from hookyard.app import create_app
from hookyard.domain.whatsapp import campaigns as whatsapp_campaigns
from hookyard.domain.whatsapp import service as whatsapp
from hookyard.domain.whatsapp.tables import (
    accounts,
    campaign_log,
    campaigns,
    template_history,
    templates,
)
from hookyard.inbox.model import NewEvent
from hookyard.providers import signing
from hookyard.providers.base import Outcome, StoredEvent, WebhookRequest
from hookyard.runtime import Runtime
from tests.conftest import SECRETS, SOURCES_TOML

PAYLOADS = Path(__file__).parent / "payloads"
WABA = "102290129340398"
TEMPLATE = "594425479261596"
T0 = 1763800000  # entry.time of meta_template_status.json

# The Meta source belongs to tenant "acme"; a second one to "globex".
TENANT_SOURCES = SOURCES_TOML.replace(
    'name = "meta"\nprovider = "meta"\n', 'name = "meta"\nprovider = "meta"\ntenant = "acme"\n'
) + (
    f'\n[[source]]\nname = "meta-globex"\nprovider = "meta"\ntenant = "globex"\n'
    f'path = "/api/v1/whatsapp/globex"\napp_secret = "{SECRETS["meta_app"]}"\n'
    f'verify_token = "{SECRETS["meta_verify"]}"\n'
)


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(TENANT_SOURCES)
    return path


def payload(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return body


def status_body(
    event: str, time: int, template: str = TEMPLATE, waba: str = WABA, **extra: Any
) -> dict[str, Any]:
    """meta_template_status.json with another event, time, template or WABA."""
    body = payload("meta_template_status.json")
    entry = body["entry"][0]
    entry["id"], entry["time"] = waba, time
    value = entry["changes"][0]["value"]
    value.update(event=event, message_template_id=int(template), **extra)
    return body


def quality_body(previous: str, new: str, time: int, template: str = TEMPLATE) -> dict[str, Any]:
    body = payload("meta_template_quality.json")
    body["entry"][0]["time"] = time
    value = body["entry"][0]["changes"][0]["value"]
    value.update(
        previous_quality_score=previous, new_quality_score=new, message_template_id=int(template)
    )
    return body


def send(runtime: Runtime, body: dict[str, Any], source: str = "meta") -> list[int]:
    """Store a request's events as ingress would (parse, then the inbox); the new ids."""
    src = runtime.sources.by_name()[source]
    raw = json.dumps(body).encode()
    request = WebhookRequest("POST", "http://testserver" + src.path, src.path, {}, {}, raw)
    new = [
        NewEvent(
            src.name,
            src.config.provider,
            src.config.tenant,
            p.event_type,
            p.dedup_key,
            p.entity_key,
            p.provider_ts,
            {},
            raw,
            p.payload,
            datetime.now(UTC),
        )
        for p in src.adapter.parse(request)
    ]
    return sorted(runtime.store.insert_batch(new).values())


def handle(runtime: Runtime, body: dict[str, Any], source: str = "meta") -> list[str]:
    """Send and process; the status each event ended in."""
    ids = send(runtime, body, source)
    runtime.make_worker().drain()
    return [status_of(runtime, i) for i in ids]


def status_of(runtime: Runtime, event_id: int) -> str:
    row = runtime.store.get(event_id)
    assert row is not None
    return str(row["status"])


def rows(runtime: Runtime, table: Table, *order: Any) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        query = select(table).order_by(*(order or (table.c.id,)))
        return [dict(r) for r in conn.execute(query).mappings()]


def template_row(runtime: Runtime, meta_id: str = TEMPLATE) -> dict[str, Any]:
    [row] = [r for r in rows(runtime, templates) if r["meta_template_id"] == meta_id]
    return row


def count(runtime: Runtime, table: Table) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def alerts_now(runtime: Runtime) -> list[dict[str, Any]]:
    """The alerts after the alert rules' evaluation (the scheduled job, run now): the
    handler raises none itself, the rules read the template rows it keeps."""
    AlertEvaluator(runtime.engine, runtime.settings).run()
    return rows(runtime, alerts)


def add_campaigns(runtime: Runtime, *names: str, meta_id: str = TEMPLATE) -> list[int]:
    template_id = template_row(runtime, meta_id)["id"]
    with runtime.engine.begin() as tx:
        return [whatsapp_campaigns.add_campaign(tx, template_id, name) for name in names]


def history(runtime: Runtime) -> list[tuple[str, str, str | None, str | None, str]]:
    return [
        (h["kind"], h["event"], h["from_value"], h["to_value"], h["outcome"])
        for h in rows(runtime, template_history)
    ]


def test_approved_creates_the_account_and_the_template(runtime: Runtime) -> None:
    [event_id] = send(runtime, payload("meta_template_status.json"))
    runtime.make_worker().drain()
    assert status_of(runtime, event_id) == Outcome.DONE
    [account] = rows(runtime, accounts)
    assert (account["waba_id"], account["tenant"]) == (WABA, "acme")
    t = template_row(runtime)
    assert (t["name"], t["language"], t["status"], t["reason"]) == (
        "order_update",
        "en_US",
        "APPROVED",
        "NONE",
    )
    assert t["account_id"] == account["id"] and t["tenant"] == "acme"
    assert t["status_event_at"] == datetime.fromtimestamp(T0, UTC)
    assert t["sync_source"] == "webhook" and t["last_synced_at"] is not None
    [h] = rows(runtime, template_history)
    assert (h["event_id"], h["from_value"], h["to_value"], h["outcome"]) == (
        event_id,
        None,
        "APPROVED",
        "applied",
    )
    assert len(alerts_now(runtime)) == 0


def test_paused_pauses_campaigns_and_reinstated_does_not_resume_them(runtime: Runtime) -> None:
    handle(runtime, status_body("APPROVED", T0))
    handle(runtime, status_body("APPROVED", T0, template="777"))
    first, second = add_campaigns(runtime, "black friday", "welcome")
    [elsewhere] = add_campaigns(runtime, "other template", meta_id="777")

    [paused_event] = send(runtime, status_body("PAUSED", T0 + 60, reason="LOW_QUALITY"))
    runtime.make_worker().drain()
    assert template_row(runtime)["status"] == "PAUSED"
    by_id = {c["id"]: c for c in rows(runtime, campaigns)}
    for c in (by_id[first], by_id[second]):
        assert (c["status"], c["paused_reason"], c["paused_by_event"]) == (
            "paused",
            "TEMPLATE_PAUSED",
            paused_event,
        )
        assert c["paused_at"] is not None
    assert by_id[elsewhere]["status"] == "active"

    [reinstated_event] = send(runtime, status_body("REINSTATED", T0 + 120))
    runtime.make_worker().drain()
    assert template_row(runtime)["status"] == "APPROVED"
    assert {c["id"]: c["status"] for c in rows(runtime, campaigns)} == {
        first: "paused",
        second: "paused",
        elsewhere: "active",
    }
    log = [(r["campaign_id"], r["action"], r["event_id"]) for r in rows(runtime, campaign_log)]
    assert log == [
        (first, "paused", paused_event),
        (second, "paused", paused_event),
        (first, "template_reinstated", reinstated_event),
        (second, "template_reinstated", reinstated_event),
    ]
    assert history(runtime)[2:] == [
        ("status", "PAUSED", "APPROVED", "PAUSED", "applied"),
        ("status", "REINSTATED", "PAUSED", "APPROVED", "applied"),
    ]
    assert len(alerts_now(runtime)) == 0  # PAUSED pauses; it is not one of the alert kinds

    # Resuming is a person's decision (an admin's, for a pause of the template's), and it is
    # recorded too.
    with runtime.engine.begin() as tx:
        with pytest.raises(whatsapp_campaigns.AdminOnly):
            whatsapp_campaigns.resume_campaign(tx, first, "maria@acme.test")
        assert whatsapp_campaigns.resume_campaign(
            tx, first, "maria@acme.test", may_resume_for_template=True
        )
        assert not whatsapp_campaigns.resume_campaign(
            tx, first, "maria@acme.test", may_resume_for_template=True
        )  # not paused now
        assert not whatsapp_campaigns.resume_campaign(tx, second, "eve", tenant="globex")
    resumed = {c["id"]: c for c in rows(runtime, campaigns)}[first]
    assert (resumed["status"], resumed["paused_reason"], resumed["paused_by_event"]) == (
        "active",
        None,
        None,
    )
    assert rows(runtime, campaign_log)[-1]["actor"] == "maria@acme.test"


def test_disabled_pauses_campaigns_and_alerts_once_even_when_replayed(runtime: Runtime) -> None:
    handle(runtime, status_body("APPROVED", T0))
    [campaign] = add_campaigns(runtime, "reminders")
    disable_info = {"disable_date": "2025-11-22"}
    body = status_body("DISABLED", T0 + 60, reason=None, disable_info=disable_info)
    [event_id] = send(runtime, body)
    runtime.make_worker().drain()

    t = template_row(runtime)
    assert (t["status"], t["disable_info"]) == ("DISABLED", disable_info)
    [c] = rows(runtime, campaigns)
    assert (c["id"], c["status"], c["paused_reason"], c["paused_by_event"]) == (
        campaign,
        "paused",
        "TEMPLATE_DISABLED",
        event_id,
    )
    [alert] = alerts_now(runtime)
    assert (alert["kind"], alert["tenant"], alert["subject"]) == (
        "template_disabled",
        "acme",
        f"template:{t['id']}",
    )

    # A redelivery is deduplicated by the inbox; a replay runs the handler again.
    assert send(runtime, body) == []
    assert runtime.store.replay([event_id]) == 1
    runtime.make_worker().drain()
    assert status_of(runtime, event_id) == Outcome.DONE
    assert len(alerts_now(runtime)) == 1
    assert count(runtime, campaign_log) == 1
    assert count(runtime, template_history) == 2


def test_rejected_alerts_once_while_it_stays_rejected(runtime: Runtime) -> None:
    handle(runtime, status_body("PENDING", T0))
    assert handle(runtime, status_body("REJECTED", T0 + 30, reason="INVALID_FORMAT")) == ["done"]
    t = template_row(runtime)
    assert (t["status"], t["reason"]) == ("REJECTED", "INVALID_FORMAT")
    [alert] = alerts_now(runtime)
    assert (alert["kind"], alert["acknowledged_at"], alert["resolved_at"]) == (
        "template_rejected",
        None,
        None,
    )
    assert alert["detail"].endswith(f"[{TEMPLATE}] is REJECTED: INVALID_FORMAT")
    # The same status again (a new event, not a transition): still the one alert.
    handle(runtime, status_body("REJECTED", T0 + 40, reason="INVALID_FORMAT"))
    assert [a["id"] for a in alerts_now(runtime)] == [alert["id"]]
    # Approved after all: resolved.
    handle(runtime, status_body("APPROVED", T0 + 50))
    [resolved] = alerts_now(runtime)
    assert resolved["resolved_at"] is not None


def test_quality_green_yellow_red_alerts_on_red_once(runtime: Runtime) -> None:
    handle(runtime, status_body("APPROVED", T0))
    handle(runtime, quality_body("UNKNOWN", "GREEN", T0 + 10))
    handle(runtime, quality_body("GREEN", "YELLOW", T0 + 20))
    assert len(alerts_now(runtime)) == 0
    send(runtime, quality_body("YELLOW", "RED", T0 + 30))
    runtime.make_worker().drain()
    handle(runtime, quality_body("RED", "RED", T0 + 40))  # still red: no second alert
    t = template_row(runtime)
    assert (t["quality"], t["status"]) == ("RED", "APPROVED")
    assert t["quality_event_at"] == datetime.fromtimestamp(T0 + 40, UTC)
    assert [h[1:4] for h in history(runtime) if h[0] == "quality"] == [
        ("GREEN", "UNKNOWN", "GREEN"),
        ("YELLOW", "GREEN", "YELLOW"),
        ("RED", "YELLOW", "RED"),
        ("RED", "RED", "RED"),
    ]
    [alert] = alerts_now(runtime)
    assert (alert["kind"], alert["detail"]) == (
        "red_quality",
        f"WhatsApp template order_update (en_US) [{TEMPLATE}] has quality RED",
    )
    # Quality alone never pauses campaigns: Meta's PAUSED status does.
    assert count(runtime, campaign_log) == 0


def test_quality_payload_for_an_unknown_template_creates_it_and_alerts(runtime: Runtime) -> None:
    assert handle(runtime, payload("meta_template_quality.json")) == ["done"]
    t = template_row(runtime)
    assert (t["name"], t["quality"], t["status"]) == ("order_update", "RED", None)
    assert history(runtime) == [("quality", "RED", "GREEN", "RED", "applied")]
    assert [a["kind"] for a in alerts_now(runtime)] == ["red_quality"]


def test_older_status_after_newer_is_superseded(runtime: Runtime) -> None:
    handle(runtime, status_body("APPROVED", T0))
    handle(runtime, status_body("PAUSED", T0 + 120))
    [late] = send(runtime, status_body("APPROVED", T0 + 60))  # sent before PAUSED, came after
    runtime.make_worker().drain()
    assert status_of(runtime, late) == Outcome.SUPERSEDED
    t = template_row(runtime)
    assert t["status"] == "PAUSED"
    assert t["status_event_at"] == datetime.fromtimestamp(T0 + 120, UTC)
    assert history(runtime)[-1] == ("status", "APPROVED", "PAUSED", "APPROVED", "superseded")
    # Replaying it does not change that.
    runtime.store.replay([late])
    runtime.make_worker().drain()
    assert status_of(runtime, late) == Outcome.SUPERSEDED
    assert template_row(runtime)["status"] == "PAUSED"


def test_older_quality_after_newer_is_superseded(runtime: Runtime) -> None:
    handle(runtime, quality_body("YELLOW", "RED", T0 + 100))
    assert handle(runtime, quality_body("GREEN", "YELLOW", T0 + 50)) == ["superseded"]
    assert template_row(runtime)["quality"] == "RED"
    assert len(alerts_now(runtime)) == 1


def test_a_late_status_change_still_applies_after_a_newer_quality_change(
    runtime: Runtime,
) -> None:
    # Status and quality are ordered separately: the pause is news, whatever quality did.
    handle(runtime, status_body("APPROVED", T0))
    add_campaigns(runtime, "promo")
    handle(runtime, quality_body("YELLOW", "RED", T0 + 200))
    assert handle(runtime, status_body("PAUSED", T0 + 100)) == ["done"]
    t = template_row(runtime)
    assert (t["status"], t["quality"]) == ("PAUSED", "RED")
    assert [c["status"] for c in rows(runtime, campaigns)] == ["paused"]


def test_events_of_one_request_are_applied_in_order(runtime: Runtime) -> None:
    body = status_body("APPROVED", T0)
    body["entry"][0]["changes"] += quality_body("GREEN", "RED", T0)["entry"][0]["changes"]
    body["entry"].append(status_body("DISABLED", T0 + 5)["entry"][0])
    assert handle(runtime, body) == ["done", "done", "done"]
    t = template_row(runtime)
    assert (t["status"], t["quality"]) == ("DISABLED", "RED")
    assert sorted(a["kind"] for a in alerts_now(runtime)) == ["red_quality", "template_disabled"]


def test_other_fields_are_stored_and_ignored(runtime: Runtime) -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA,
                "time": T0,
                "changes": [
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                    {"field": "messages", "value": {"statuses": [{"status": "read"}]}},
                    {
                        "field": "template_category_update",
                        "value": {"message_template_id": 1, "new_category": "MARKETING"},
                    },
                ],
            }
        ],
    }
    assert handle(runtime, body) == ["ignored"] * 3
    assert count(runtime, accounts) == count(runtime, templates) == 0


def test_a_template_change_without_a_template_id_is_ignored(runtime: Runtime) -> None:
    body = status_body("APPROVED", T0)
    del body["entry"][0]["changes"][0]["value"]["message_template_id"]
    assert handle(runtime, body) == ["ignored"]
    assert count(runtime, templates) == 0


@pytest.mark.parametrize(
    "value, outcome",
    [
        ({"event": "APPROVED", "message_template_id": "9" * 65}, "ignored"),  # id too long
        ({"event": 7, "message_template_id": True}, "ignored"),
        ({"event": "", "message_template_id": 5}, "ignored"),
        ({"event": "APPROVED" * 10, "message_template_id": 5, "reason": "x\x00" * 2000}, "done"),
        (
            {
                "event": "NEW_META_STATUS",
                "message_template_id": "5",
                "message_template_name": "a\x00b",
            },
            "done",
        ),
    ],
)
def test_odd_values_are_stored_or_ignored_never_failed(
    runtime: Runtime, value: dict[str, Any], outcome: str
) -> None:
    body = status_body("APPROVED", T0)
    body["entry"][0]["changes"][0]["value"] = value
    assert handle(runtime, body) == [outcome]


def test_a_source_of_another_tenant_cannot_change_this_tenants_templates(
    runtime: Runtime,
) -> None:
    handle(runtime, status_body("APPROVED", T0))
    add_campaigns(runtime, "promo")
    assert handle(runtime, status_body("DISABLED", T0 + 60), source="meta-globex") == ["ignored"]
    assert template_row(runtime)["status"] == "APPROVED"
    assert [c["status"] for c in rows(runtime, campaigns)] == ["active"]
    assert len(alerts_now(runtime)) == 0
    # Nor through its own WABA naming this tenant's template.
    forged = status_body("DISABLED", T0 + 60, waba="555")
    assert handle(runtime, forged, source="meta-globex") == ["ignored"]
    assert template_row(runtime)["status"] == "APPROVED"
    # Its own WABA's templates are its own.
    handle(runtime, status_body("APPROVED", T0, template="888", waba="555"), source="meta-globex")
    assert template_row(runtime, "888")["tenant"] == "globex"


def test_apply_takes_the_default_tenant_when_the_event_has_none(runtime: Runtime) -> None:
    event = StoredEvent(
        id=1,
        source="meta",
        provider="meta",
        tenant=None,
        event_type="message_template_status_update",
        dedup_key="k",
        entity_key=f"template:{TEMPLATE}",
        provider_ts=datetime.fromtimestamp(T0, UTC),
        payload={
            "waba_id": WABA,
            "time": T0,
            **status_body("APPROVED", T0)["entry"][0]["changes"][0],
        },
        headers={},
        attempts=1,
        origin="polling",
    )
    with runtime.engine.begin() as tx:
        assert whatsapp.apply(event, tx, "initech") == Outcome.DONE
        assert whatsapp.apply(event, tx, "initech") == Outcome.DONE  # the event is the unit
    assert rows(runtime, accounts)[0]["tenant"] == "initech"
    assert template_row(runtime)["sync_source"] == "polling"
    assert count(runtime, template_history) == 1


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def test_a_signed_delivery_through_ingress_disables_the_template(
    client: TestClient, runtime: Runtime
) -> None:
    handle(runtime, status_body("APPROVED", T0))
    add_campaigns(runtime, "promo")
    raw = json.dumps(status_body("DISABLED", T0 + 60)).encode()
    response = client.post(
        "/api/v1/whatsapp/webhook",
        content=raw,
        headers={
            "content-type": "application/json",
            "x-hub-signature-256": signing.meta_signature(SECRETS["meta_app"], raw),
        },
    )
    assert response.status_code == 200
    assert runtime.make_worker().drain() == 1
    assert template_row(runtime)["status"] == "DISABLED"
    assert [c["status"] for c in rows(runtime, campaigns)] == ["paused"]
    assert [a["kind"] for a in alerts_now(runtime)] == ["template_disabled"]
    # The same delivery again (Meta retries): answered, stored once, no second alert.
    again = client.post(
        "/api/v1/whatsapp/webhook",
        content=raw,
        headers={
            "content-type": "application/json",
            "x-hub-signature-256": signing.meta_signature(SECRETS["meta_app"], raw),
        },
    )
    assert again.status_code == 200
    assert runtime.make_worker().drain() == 0
    assert len(alerts_now(runtime)) == 1
