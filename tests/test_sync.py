"""Reconciliation and outbound sync against the fake provider platforms, over real HTTP.

hookyard runs as a real HTTP server; the fakes deliver their webhooks to it (or lose them on
purpose) and answer hookyard's API clients. Workers are drained by the test, so every step
is deterministic.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hookyard.alerts.evaluate import AlertEvaluator
from hookyard.alerts.rules import TEMPLATE_KINDS
from hookyard.alerts.tables import alerts
from hookyard.domain.crm.tables import customers, outbox, sync_conflicts, sync_log
from hookyard.domain.tendlc.tables import brands, campaign_carriers
from hookyard.domain.whatsapp.tables import templates
from hookyard.http import ApiClient, ApiError
from hookyard.queue.scheduler import Job, Scheduler
from hookyard.queue.tables import schedule_jobs
from hookyard.runtime import Runtime
from hookyard.sync.tables import reconciliation_runs
from hookyard.sync.tcr import subscribe_all
from hookyard.testing.simulate import meta_delivery, meta_envelope
from tests.conftest import SECRETS
from tests.support import count, row, wait_for
from tests.sync_support import ADMIN, World, create_customer


def event_origins(rt: Runtime, entity: str) -> list[tuple[str, str]]:
    rows = rt.store.list_events(_filter(), limit=500)
    return [(r["origin"], r["status"]) for r in reversed(rows) if r["entity_key"] == entity]


def _filter() -> Any:
    from hookyard.inbox.reads import EventFilter

    return EventFilter(None, None, None, None, None, None)


# -- TCR ------------------------------------------------------------------------------------


def test_tcr_subscriptions_point_at_the_sources_and_are_idempotent(world: World) -> None:
    subscribed = world.tcr.subscriptions
    assert set(subscribed) == {"BRAND", "CAMPAIGN", "VETTING"}
    assert subscribed["BRAND"] == f"{world.url}/webhooks/tcr/brands?token={SECRETS['tcr']}"
    assert subscribed["CAMPAIGN"] == f"{world.url}/webhooks/tcr/campaigns"  # no token set
    assert world.rt.sync.tcr is not None
    again = subscribe_all(world.rt.sync.tcr, world.url, world.rt.sources.sources)
    assert [s.status for s in again] == ["unchanged"] * 3
    assert all("token" not in s.endpoint for s in again)  # never shown
    listed = world.api("GET", "/api/v1/tcr/subscriptions").json()
    assert {s["eventCategory"] for s in listed} == {"BRAND", "CAMPAIGN", "VETTING"}
    assert all("?" not in s["webhookEndpoint"] for s in listed)


def test_a_lost_tcr_webhook_is_repaired_by_the_next_reconcile(world: World) -> None:
    engine = world.rt.engine
    world.tcr.add_brand("BLOST01")
    world.tcr.update_brand("BLOST01", identity_status="UNVERIFIED", trust_score=40)
    world.tcr.add_campaign("CLOST01", brand_id="BLOST01", mno_statuses={"10017": "REVIEW"})
    assert world.drain() >= 3
    assert row(engine, brands, brands.c.brand_id == "BLOST01")["identity_status"] == "UNVERIFIED"

    # TCR verifies the brand and AT&T approves the campaign; both webhooks are lost.
    world.tcr.update_brand("BLOST01", identity_status="VERIFIED", trust_score=88, deliver=False)
    world.tcr.set_carrier_status("CLOST01", "10017", "APPROVED", deliver=False)
    assert world.drain() == 0

    dry = world.reconcile("tcr", dry_run=True)
    assert {(d.entity, d.field) for r in dry for d in r.drift} >= {
        ("brand:BLOST01", "identity_status"),
        ("brand:BLOST01", "trust_score"),
        ("campaign:CLOST01/mno:10017", "status"),
    }
    assert sum(r.fed for r in dry) == 0 and world.drain() == 0  # a dry run repairs nothing

    runs = world.reconcile("tcr")
    assert all(r.ok for r in runs) and sum(r.fed for r in runs) == 2
    assert world.drain() == 2
    brand = row(engine, brands, brands.c.brand_id == "BLOST01")
    assert (brand["identity_status"], brand["trust_score"], brand["status"]) == (
        "VERIFIED", 88, "VERIFIED",
    )  # fmt: skip
    assert brand["sync_source"] == "polling"
    carrier = row(engine, campaign_carriers, campaign_carriers.c.campaign_id == "CLOST01")
    assert carrier["status"] == "APPROVED"
    assert ("polling", "done") in event_origins(world.rt, "brand:BLOST01")

    # Repaired: the next run finds nothing, and the runs are on record.
    assert sum(len(r.drift) for r in world.reconcile("tcr")) == 0
    with engine.connect() as conn:
        recorded = conn.execute(select(reconciliation_runs.c.dry_run, reconciliation_runs.c.drift))
        assert sorted(recorded.all()) == sorted(
            [(True, 2), (True, 1), (False, 2), (False, 1), (False, 0), (False, 0)]
        )


def test_tcr_brand_registration_waits_for_the_registry(world: World) -> None:
    response = world.api(
        "POST",
        "/api/v1/messaging/brands",
        tenant="acme",
        json={"entityType": "PRIVATE_PROFIT", "companyName": "Acme Telecom LLC",
              "displayName": "Acme", "vertical": "TECHNOLOGY",
              "brandRelationship": "BASIC_ACCOUNT"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    brand_id = response.json()["brand_id"]
    stored = row(world.rt.engine, brands, brands.c.brand_id == brand_id)
    assert (stored["status"], stored["tenant"], stored["sync_source"]) == (
        "REGISTERED", "acme", "manual",
    )  # fmt: skip

    # TCR verifies asynchronously (BRAND_ADD, then the identity update) and tells hookyard.
    def verified() -> bool:
        world.drain()
        found = row(world.rt.engine, brands, brands.c.brand_id == brand_id)
        return found["identity_status"] == "VERIFIED"

    wait_for(verified, timeout=10)


def test_tcr_refusing_a_brand_gives_the_registrys_own_errors(world: World) -> None:
    # The whole contract (kept FAILED, retried later) is tests/test_brand_registration.py.
    errors = [{"code": 501, "field": "vertical", "description": "invalid vertical"}]
    world.tcr.fail_registrations(1, 400, body=errors)
    response = world.api(
        "POST",
        "/api/v1/messaging/brands",
        tenant="acme",
        json={"entityType": "PRIVATE_PROFIT", "companyName": "Acme", "vertical": "TECHNOLOGY",
              "brandRelationship": "BASIC_ACCOUNT"},
    )  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert (body["detail"], body["errors"]) == ("TCR refused the brand", errors)
    assert body["registration"]["status"] == "FAILED"
    assert count(world.rt.engine, brands) == 0
    world.tcr.fail_registrations(1, 503)
    down = world.api(
        "POST",
        "/api/v1/messaging/brands",
        tenant="acme",
        json={"entityType": "PRIVATE_PROFIT", "companyName": "Acme", "vertical": "TECHNOLOGY",
              "brandRelationship": "BASIC_ACCOUNT"},
    )  # fmt: skip
    assert down.status_code == 202 and down.json()["status"] == "PENDING"


# -- Meta -----------------------------------------------------------------------------------


def alerts_after_evaluation(rt: Runtime) -> int:
    """How many template alerts the alert rules hold once evaluated now (the scheduled job)."""
    AlertEvaluator(rt.engine, rt.settings).run()
    return count(rt.engine, alerts, alerts.c.kind.in_(TEMPLATE_KINDS))


def test_webhook_and_polling_reporting_one_change_alert_once(world: World) -> None:
    engine = world.rt.engine
    template = world.meta.add_template("order_update")
    tid = template["id"]
    assert world.drain() == 1
    # Meta disables the template; the webhook is late. Polling finds it first.
    world.meta.set_template_status(tid, "DISABLED", reason="SCAM", deliver=False)
    assert world.reconcile("meta", "open")[0].drift == []  # the hourly job: APPROVED is final
    [run] = world.reconcile("meta")
    assert run.fed == 1 and world.drain() == 1
    assert row(engine, templates, templates.c.meta_template_id == tid)["status"] == "DISABLED"
    assert alerts_after_evaluation(world.rt) == 1
    # The webhook arrives after all: it is older than what polling observed.
    lost = world.meta.lost[-1].payload
    envelope = meta_envelope([lost], sent=int(datetime.now(UTC).timestamp()) - 60)
    d = meta_delivery(SECRETS["meta_app"], world.url + "/api/v1/whatsapp/webhook", envelope)
    assert httpx.post(d.url, headers=d.headers, content=d.body).status_code == 200
    assert world.drain() == 1
    assert alerts_after_evaluation(world.rt) == 1  # still one alert
    assert [s for _, s in event_origins(world.rt, f"template:{tid}")] == [
        "done", "done", "superseded",
    ]  # fmt: skip

    # And the other way round: the webhook first, then a poll that finds nothing to do.
    world.meta.set_template_quality(tid, "RED")
    assert world.drain() == 1
    assert alerts_after_evaluation(world.rt) == 2
    [run] = world.reconcile("meta")
    assert run.drift == [] and run.fed == 0
    assert alerts_after_evaluation(world.rt) == 2


def test_meta_templates_missing_here_are_added_by_polling(world: World) -> None:
    world.meta.add_template("welcome", status="PENDING", deliver=False)
    world.meta.add_template("order_update")  # its webhook makes the account known
    assert world.drain() == 1
    [run] = world.reconcile("meta", "open")
    assert [d.field for d in run.drift] == ["status"] and world.drain() == 1
    assert count(world.rt.engine, templates) == 2


# -- HubSpot --------------------------------------------------------------------------------


def test_a_new_customer_is_pushed_to_hubspot_at_once(world: World) -> None:
    response = create_customer(world)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["sync"] == "synced" and created["hubspot_company_id"]
    company = world.hubspot.company(created["hubspot_company_id"])
    assert company is not None
    props = company["properties"]
    assert props["hookyard_ban"] == created["ban"]
    assert props["name"] == "Ringer Network Solutions"
    assert props["hookyard_services"] == "voice"
    assert props["hookyard_credit_limit"] == "1500.00"  # ours goes out; HubSpot's authority
    # HubSpot's webhooks for our own creation come back: recognised, no conflict.
    assert wait_for(lambda: world.hubspot.deliveries, timeout=10)
    world.drain()
    assert count(world.rt.engine, sync_conflicts) == 0
    log = world.api("GET", f"/api/v1/customers/{created['id']}/sync-log").json()
    assert [(e["operation"], e["result"]) for e in log] == [("create", "ok")]


def test_hubspot_refusing_a_new_customer_rolls_it_back_with_the_field_error(world: World) -> None:
    world.hubspot.reject_property("hookyard_customer_type", "INVALID_OPTION")
    response = create_customer(world, customer_type="wholesale")
    assert response.status_code == 400
    body = response.json()
    assert "HubSpot refused" in body["detail"]
    assert set(body["fields"]) == {"customer_type"}
    assert count(world.rt.engine, customers) == 0
    assert world.hubspot.companies == []
    with world.rt.engine.connect() as conn:
        logged = conn.execute(select(sync_log.c.operation, sync_log.c.result)).all()
    assert logged == [("create", "refused")]


def test_updates_go_out_through_the_outbox_and_their_echo_is_ignored(world: World) -> None:
    created = create_customer(world).json()
    cid, company_id = created["id"], created["hubspot_company_id"]
    wait_for(lambda: world.hubspot.deliveries, timeout=10)
    world.drain()
    first = world.api("PATCH", f"/api/v1/customers/{cid}", json={"status": "suspended"})
    assert first.status_code == 202
    assert world.outbox_pass() == 1
    assert world.hubspot.company(company_id)["properties"]["hookyard_status"] == "suspended"  # type: ignore[index]
    # Before the echo of "suspended" arrives, we change the status again.
    second = world.api("PATCH", f"/api/v1/customers/{cid}", json={"status": "active"})
    assert second.status_code == 202
    wait_for(lambda: len(world.hubspot.deliveries) >= 2, timeout=10)
    world.drain()
    # The echo was ours: no conflict, and our newer value stands and goes out.
    assert count(world.rt.engine, sync_conflicts) == 0
    assert row(world.rt.engine, customers, customers.c.id == cid)["status"] == "active"
    world.outbox_pass()  # (the worker's drain runs the outbox job too)
    assert world.hubspot.company(company_id)["properties"]["hookyard_status"] == "active"  # type: ignore[index]
    # A person changing it in HubSpot is not an echo: status is ours, so theirs is not
    # applied and ours goes back (tests/test_hubspot_rules.py has each rule).
    world.hubspot.edit_company(company_id, {"hookyard_status": "closed"})
    world.drain()
    assert count(world.rt.engine, sync_conflicts) == 0
    assert world.hubspot.company(company_id)["properties"]["hookyard_status"] == "active"  # type: ignore[index]


def test_hubspot_down_retries_then_fails_visibly_and_loses_nothing(world: World) -> None:
    created = create_customer(world).json()
    cid, company_id = created["id"], created["hubspot_company_id"]
    world.hubspot.fail_next(100, 503)
    assert world.api("PATCH", f"/api/v1/customers/{cid}", json={"company_name": "Ringer 2"})
    for attempt in range(1, 5):
        assert world.outbox_pass() == 1
        state = row(world.rt.engine, outbox, outbox.c.customer_id == cid, outbox.c.id > 1)
        assert state["attempts"] == attempt
    assert state["status"] == "failed" and "503" in state["last_error"]
    assert world.outbox_pass() == 0  # no more attempts
    failed = world.api("GET", "/api/v1/sync/outbox", params={"status": "failed"}).json()
    assert [f["customer_id"] for f in failed] == [cid]
    metrics = httpx.get(world.url + "/metrics", headers=ADMIN).text
    assert "hookyard_crm_sync_failed_total 1.0" in metrics
    # A person retries; our value was never lost.
    world.hubspot.clear_records()  # HubSpot is back
    assert world.api("POST", f"/api/v1/sync/outbox/{failed[0]['id']}/retry").status_code == 200
    assert world.outbox_pass() == 1
    assert world.hubspot.company(company_id)["properties"]["name"] == "Ringer 2"  # type: ignore[index]


def test_hubspot_drift_is_fixed_by_the_field_rules(world: World) -> None:
    created = create_customer(world).json()
    cid, company_id = created["id"], created["hubspot_company_id"]
    wait_for(lambda: world.hubspot.deliveries, timeout=10)
    world.drain()
    # Someone edits in HubSpot; the webhooks are lost.
    world.hubspot.edit_company(
        company_id,
        {"hookyard_credit_limit": "9000", "hookyard_status": "closed", "name": "Ringer Networks"},
        deliver=False,
    )
    [run] = world.reconcile("hubspot")
    assert {d.field for d in run.drift} == {"credit_limit", "status", "company_name"}
    world.drain()
    world.outbox_pass()
    customer = row(world.rt.engine, customers, customers.c.id == cid)
    assert customer["credit_limit_cents"] == 900000  # theirs: applied
    assert customer["company_name"] == "Ringer Networks"  # latest: theirs is newer
    assert customer["status"] == "active"  # ours: kept ...
    props = world.hubspot.company(company_id)["properties"]  # type: ignore[index]
    assert props["hookyard_status"] == "active"  # ... and published again
    [again] = world.reconcile("hubspot")
    assert again.drift == []


def test_a_company_carrying_our_ban_is_linked_by_reconciliation(world: World) -> None:
    world.hubspot.fail_next(20, 503)
    created = create_customer(world).json()
    assert created["sync"] == "queued" and created["hubspot_company_id"] is None
    world.hubspot.clear_records()  # HubSpot is back
    # Someone made the company by hand in the meantime, with our BAN.
    company = world.hubspot.create_company({"name": "Ringer", "hookyard_ban": created["ban"]})
    [run] = world.reconcile("hubspot")
    assert ("hubspot_company_id", company["id"]) in {(d.field, d.theirs) for d in run.drift}
    linked = row(world.rt.engine, customers, customers.c.id == created["id"])
    assert linked["hubspot_company_id"] == company["id"]


# -- the scheduler and the client -----------------------------------------------------------


def test_each_due_job_runs_in_one_process_only(world: World) -> None:
    runs: list[str] = []
    gate = threading.Barrier(3)

    def job() -> None:
        runs.append(threading.current_thread().name)

    schedulers = [
        Scheduler(world.rt.engine, [Job("test.job", 3600, job)], owner=f"p{i}") for i in range(3)
    ]

    def tick(s: Scheduler) -> None:
        gate.wait()
        s.tick()

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert all(s.tick() == 0 for s in schedulers)  # not due again for an hour
    job_row = row(world.rt.engine, schedule_jobs, schedule_jobs.c.name == "test.job")
    assert job_row["last_status"] == "ok" and job_row["lease_owner"] is None
    assert job_row["next_run_at"] > datetime.now(UTC) + timedelta(minutes=59)
    schedulers[0].run_now("test.job")
    assert schedulers[1].tick() == 1 and len(runs) == 2


def test_the_seed_schedules_are_the_default_jobs(world: World) -> None:
    jobs = {j.name: j.interval for j in world.rt.sync.jobs()}
    assert jobs == {
        "tcr.campaigns.review": 300,
        "tcr.brands.unverified": 900,
        "tcr.campaigns.active": 86400,
        "hubspot.companies.all": 86400,
        "meta.templates.open": 3600,
    }


class _Client(ApiClient):
    provider = "test"


def test_the_client_honours_retry_after_and_refuses_at_once(world: World) -> None:
    slept: list[float] = []
    client = _Client(
        world.rt.settings.hubspot_api_url,
        headers={"authorization": "Bearer hubspot-token"},
        sleep=slept.append,
        backoff_base=0.01,
    )
    world.hubspot.fail_next(1, 429, retry_after=2)
    assert client.request("GET", "/crm/v3/objects/companies").status_code == 200
    assert slept and slept[0] >= 2.0
    world.hubspot.fail_next(1, 429, retry_after=3600)  # longer than the client blocks
    with pytest.raises(ApiError) as too_long:
        client.request("GET", "/crm/v3/objects/companies")
    assert too_long.value.retryable and too_long.value.retry_after == 3600
    with pytest.raises(ApiError) as refused:
        client.request("GET", "/crm/v3/objects/companies/nope-404")
    assert refused.value.status == 404 and not refused.value.retryable
