"""Alerts: each rule opens an alert from real data (events through the inbox and the worker,
a template's quality and status through the WhatsApp handler, reconciliation runs through
sync.reconcile), re-evaluation never duplicates one, a cleared condition resolves it, people
acknowledge by role and tenant (through the alerts routes or the deprecated WhatsApp
aliases, which act on the same alerts), and /metrics shows every rule's value."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from hookyard.alerts.evaluate import JOB_NAME, AlertEvaluator, EvaluationResult, alert_jobs
from hookyard.alerts.rules import RULES, AlertKind, Measurement, Rule, RuleContext, RuleScope
from hookyard.alerts.tables import alerts
from hookyard.config import Settings
from hookyard.domain.tendlc.tables import brands
from hookyard.domain.whatsapp.tables import templates
from hookyard.inbox.model import NewEvent
from hookyard.ingress.app import stored_headers
from hookyard.notify.tables import notifications
from hookyard.providers.base import WebhookRequest
from hookyard.queue.backoff import Backoff
from hookyard.queue.scheduler import Scheduler
from hookyard.runtime import Runtime
from hookyard.sync import reconcile
from hookyard.sync.reconcile import Drift, Finding
from tests.conftest import SECRETS, SOURCES_TOML
from tests.people import People
from tests.support import delivery

# acme's own generic sources (one handler that fails on request, one that always fails), and
# the Meta source belonging to acme; conftest's tenant-less sources stay as they are.
ALERT_SOURCES = SOURCES_TOML.replace(
    'name = "meta"\nprovider = "meta"\n', 'name = "meta"\nprovider = "meta"\ntenant = "acme"\n'
) + "".join(
    f'\n[[source]]\nname = "{name}"\nprovider = "generic"\nscheme = "standard"\n'
    f'secret = "{SECRETS["generic"]}"\nhandler = "tests.handlers:{handler}"\n'
    f'tenant = "{tenant}"\n'
    for name, handler, tenant in (
        ("acme-hooks", "record_effect", "acme"),
        ("acme-poison", "always_fail", "acme"),
    )
)
PAYLOADS = Path(__file__).parent / "payloads"
TEMPLATE = "594425479261596"
T0 = 1763800000
_seq = itertools.count()


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(ALERT_SOURCES)
    return path


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A small minimum volume, so a handful of events is judged.
    return settings.model_copy(update={"alert_failure_min_events": 4})


@pytest.fixture
def evaluator(runtime: Runtime) -> AlertEvaluator:
    return AlertEvaluator(runtime.engine, runtime.settings, runtime.sources.sources)


# -- helpers --------------------------------------------------------------------------------


def accept(
    runtime: Runtime, source: str, n: int = 1, *, received_at: datetime | None = None, **data: Any
) -> list[int]:
    """Store `n` signed deliveries to `source` as ingress does (verify, parse, the inbox),
    with the source's tenant."""
    src = runtime.sources.by_name()[source]
    new = []
    for _ in range(n):
        d = delivery(src, next(_seq), **data)
        request = WebhookRequest("POST", d.url, src.path, {}, d.headers, d.body)
        assert src.adapter.verify(request) is None
        new += [
            NewEvent(
                src.name,
                src.config.provider,
                src.config.tenant,
                p.event_type,
                p.dedup_key,
                p.entity_key,
                p.provider_ts,
                stored_headers(dict(d.headers)),
                d.body,
                None if p.payload_is_body else p.payload,
                received_at or datetime.now(UTC),
            )
            for p in src.adapter.parse(request)
        ]
    return sorted(runtime.store.insert_batch(new).values())


def send_meta(runtime: Runtime, body: dict[str, Any]) -> None:
    """A Meta webhook body through the adapter, the inbox and the worker."""
    src = runtime.sources.by_name()["meta"]
    raw = json.dumps(body).encode()
    request = WebhookRequest("POST", "http://testserver" + src.path, src.path, {}, {}, raw)
    new = [
        NewEvent(src.name, "meta", src.config.tenant, p.event_type, p.dedup_key, p.entity_key,
                 p.provider_ts, {}, raw, p.payload, datetime.now(UTC))
        for p in src.adapter.parse(request)
    ]  # fmt: skip
    runtime.store.insert_batch(new)
    runtime.make_worker().drain()


def status_body(event: str, at: int, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((PAYLOADS / "meta_template_status.json").read_text())
    body["entry"][0]["time"] = at
    body["entry"][0]["changes"][0]["value"].update(event=event, reason=reason)
    return body


def quality_body(previous: str, new: str, at: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((PAYLOADS / "meta_template_quality.json").read_text())
    body["entry"][0]["time"] = at
    value = body["entry"][0]["changes"][0]["value"]
    value.update(
        previous_quality_score=previous, new_quality_score=new, message_template_id=int(TEMPLATE)
    )
    return body


def status(runtime: Runtime, event_id: int) -> str:
    row = runtime.store.get(event_id)
    assert row is not None
    return str(row["status"])


def drain_until(runtime: Runtime, ids: list[int], wanted: str, timeout: float = 10) -> None:
    worker = runtime.make_worker()
    deadline = time.monotonic() + timeout
    while any(status(runtime, i) != wanted for i in ids):
        assert time.monotonic() < deadline, [status(runtime, i) for i in ids]
        worker.drain()
        time.sleep(0.05)


def alert_rows(runtime: Runtime, kind: AlertKind | None = None) -> list[dict[str, Any]]:
    query = select(alerts).order_by(alerts.c.id)
    if kind is not None:
        query = query.where(alerts.c.kind == kind.value)
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def only(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    [row] = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return row


def listed(api: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/alerts", headers=headers, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def gauges(api: TestClient) -> dict[tuple[str, ...], float]:
    """The alert samples on /metrics: (name, "label=value"…) -> value."""
    scraper = {"Authorization": f"Bearer {SECRETS['admin']}"}  # /metrics is not public
    text = api.get("/metrics", headers=scraper).text
    return {
        (sample.name, *(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("hookyard_alert")
        for sample in family.samples
    }


# -- the rules ------------------------------------------------------------------------------


def test_failure_rate_opens_per_source_once_and_resolves_when_it_drops(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    # Below the minimum volume nothing is judged, even at 100 %.
    [first] = accept(runtime, "acme-hooks", fail="boom")
    runtime.make_worker().drain()
    assert status(runtime, first) == "failed"
    evaluator.run()
    assert alert_rows(runtime, AlertKind.FAILURE_RATE) == []

    accept(runtime, "acme-hooks", 3)
    accept(runtime, "acme-hooks", fail="boom")
    runtime.make_worker().drain()
    result = evaluator.run()
    assert result.error is None
    [alert] = alert_rows(runtime, AlertKind.FAILURE_RATE)
    assert (alert["tenant"], alert["subject"], alert["value"], alert["threshold"]) == (
        "acme", "source:acme-hooks", 0.4, 0.2,
    )  # fmt: skip
    assert alert["labels"] == {"source": "acme-hooks"}
    assert "2 of the 5 events handled from source acme-hooks" in alert["detail"]
    assert alert["resolved_at"] is None and alert["acknowledged_at"] is None

    # Firing again updates the one alert: its value and when it was last seen.
    accept(runtime, "acme-hooks", fail="again")
    runtime.make_worker().drain()
    later = datetime.now(UTC) + timedelta(seconds=5)
    evaluator.run(now=later)
    [again] = alert_rows(runtime, AlertKind.FAILURE_RATE)
    assert again["id"] == alert["id"] and again["value"] == 0.5
    assert again["last_seen_at"] == later and again["opened_at"] == alert["opened_at"]

    # Enough successes bring the rate under the threshold: resolved, and kept.
    accept(runtime, "acme-hooks", 10)
    runtime.make_worker().drain()
    evaluator.run()
    [resolved] = alert_rows(runtime, AlertKind.FAILURE_RATE)
    assert resolved["resolved_at"] is not None and resolved["open_key"] is None
    assert resolved["value"] == 0.5  # the last value while it fired


def test_dead_events_alert_per_tenant_and_globally_and_replay_resolves(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    acme = accept(runtime, "acme-poison")
    nobody = accept(runtime, "poison")  # conftest's source, of no tenant
    drain_until(runtime, acme + nobody, "dead")
    evaluator.run()
    rows = alert_rows(runtime, AlertKind.DEAD_EVENTS)
    assert {(r["tenant"], r["subject"], r["value"]) for r in rows} == {
        ("acme", "source:acme-poison", 1.0),
        (None, "source:poison", 1.0),
    }
    evaluator.run()
    assert len(alert_rows(runtime, AlertKind.DEAD_EVENTS)) == 2  # no duplicates

    assert runtime.store.replay(acme) == 1
    evaluator.run()
    rows = alert_rows(runtime, AlertKind.DEAD_EVENTS)
    assert only(rows, tenant="acme")["resolved_at"] is not None
    assert only(rows, tenant=None)["resolved_at"] is None

    # The replayed event dies again: a new alert, the resolved one stays in the history.
    drain_until(runtime, acme, "dead")
    evaluator.run()
    acme_rows = [r for r in alert_rows(runtime, AlertKind.DEAD_EVENTS) if r["tenant"] == "acme"]
    assert [r["resolved_at"] is None for r in acme_rows] == [False, True]


def test_oldest_pending_is_a_global_alert_that_resolves_once_workers_catch_up(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    now = datetime.now(UTC)
    accept(runtime, "acme-hooks", received_at=now - timedelta(seconds=200))
    evaluator.run(now=now)
    assert alert_rows(runtime, AlertKind.OLDEST_PENDING) == []  # 200 s < 300 s

    [old] = accept(runtime, "acme-hooks", received_at=now - timedelta(minutes=10))
    evaluator.run(now=now)
    [alert] = alert_rows(runtime, AlertKind.OLDEST_PENDING)
    assert (alert["tenant"], alert["subject"], alert["value"]) == (None, "queue", 600.0)
    assert f"event {old} (source acme-hooks) has waited 600 s" in alert["detail"]
    evaluator.run(now=now + timedelta(seconds=30))
    [alert] = alert_rows(runtime, AlertKind.OLDEST_PENDING)
    assert alert["value"] == 630.0 and alert["resolved_at"] is None

    runtime.make_worker().drain()
    evaluator.run()
    [alert] = alert_rows(runtime, AlertKind.OLDEST_PENDING)
    assert alert["resolved_at"] is not None


def test_a_red_template_alerts_its_tenant_until_its_quality_recovers(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    send_meta(runtime, quality_body("GREEN", "RED", T0))
    with runtime.engine.connect() as conn:
        template_id, tenant = conn.execute(
            select(templates.c.id, templates.c.tenant).where(
                templates.c.meta_template_id == TEMPLATE
            )
        ).one()
    assert tenant == "acme"
    evaluator.run()
    [alert] = alert_rows(runtime, AlertKind.RED_QUALITY)
    assert (alert["tenant"], alert["subject"]) == ("acme", f"template:{template_id}")
    assert alert["labels"] == {"template": TEMPLATE, "tenant": "acme"}
    assert f"[{TEMPLATE}] has quality RED" in alert["detail"]

    # People hear of it once, by the template's own notification, not again as an alert.
    with runtime.engine.connect() as conn:
        told = conn.execute(select(notifications.c.kind).where(notifications.c.tenant == "acme"))
        assert sorted(told.scalars()) == ["template_red_quality"]

    send_meta(runtime, quality_body("RED", "RED", T0 + 10))  # still RED: the same alert
    evaluator.run()
    assert len(alert_rows(runtime, AlertKind.RED_QUALITY)) == 1

    send_meta(runtime, quality_body("RED", "YELLOW", T0 + 20))
    evaluator.run()
    [alert] = alert_rows(runtime, AlertKind.RED_QUALITY)
    assert alert["resolved_at"] is not None


def test_a_disabled_or_rejected_template_alerts_until_its_status_moves_on(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    send_meta(runtime, status_body("REJECTED", T0, reason="INVALID_FORMAT"))
    evaluator.run()
    [rejected] = alert_rows(runtime)
    assert (rejected["kind"], rejected["tenant"]) == ("template_rejected", "acme")
    assert rejected["detail"] == (
        f"WhatsApp template order_update (en_US) [{TEMPLATE}] is REJECTED: INVALID_FORMAT"
    )
    send_meta(runtime, status_body("DISABLED", T0 + 10, reason="SCAM"))
    evaluator.run()
    [rejected, disabled] = alert_rows(runtime)
    assert rejected["resolved_at"] is not None and disabled["resolved_at"] is None
    assert (disabled["kind"], disabled["subject"]) == ("template_disabled", rejected["subject"])
    assert disabled["labels"] == {"template": TEMPLATE, "tenant": "acme"}
    assert disabled["detail"].endswith("is DISABLED: SCAM")

    send_meta(runtime, status_body("REINSTATED", T0 + 20))  # APPROVED again
    evaluator.run()
    assert all(a["resolved_at"] is not None for a in alert_rows(runtime))

    # Disabled again: a new alert, which the rule turned off resolves.
    send_meta(runtime, status_body("DISABLED", T0 + 30))
    evaluator.run()
    assert [a["resolved_at"] is None for a in alert_rows(runtime)] == [False, False, True]
    off = runtime.settings.model_copy(update={"alert_template_disabled": False})
    AlertEvaluator(runtime.engine, off).run()
    assert all(a["resolved_at"] is not None for a in alert_rows(runtime))


@dataclass
class StubReconciler:
    """A reconciler whose provider state is a list of findings (sync.reconcile.Reconciler)."""

    job: str
    findings: list[Finding] = field(default_factory=list)
    provider: str = "tcr"

    def check(self) -> Iterator[Finding]:
        yield from self.findings


def test_reconciliation_drift_alerts_the_tenants_owning_it_until_a_run_finds_none(
    runtime: Runtime, evaluator: AlertEvaluator
) -> None:
    now = datetime.now(UTC)
    with runtime.engine.begin() as tx:
        tx.execute(
            insert(brands).values(
                brand_id="BACME01", tenant="acme", status="UNVERIFIED",
                last_synced_at=now, sync_source="webhook", created_at=now,
            )
        )  # fmt: skip
    drifted = [
        Finding("brand:BACME01", "acme", (Drift("brand:BACME01", "identity_status", "U", "V"),)),
        Finding("brand:BNOBODY", None, (Drift("brand:BNOBODY", "exists", True, False),)),
    ]
    job = "tcr.brands.unverified"
    stub = StubReconciler(job, drifted)
    # A dry run is a person's look: it opens nothing.
    reconcile.run(stub, runtime.store, runtime.sources.sources, dry_run=True)
    evaluator.run()
    assert alert_rows(runtime, AlertKind.RECONCILIATION_DRIFT) == []

    assert len(reconcile.run(stub, runtime.store, runtime.sources.sources).drift) == 2
    evaluator.run()
    rows = alert_rows(runtime, AlertKind.RECONCILIATION_DRIFT)
    assert {(r["tenant"], r["subject"], r["value"]) for r in rows} == {
        ("acme", f"job:{job}", 1.0),
        (None, f"job:{job}", 1.0),
    }
    assert "brand:BACME01 identity_status" in only(rows, tenant="acme")["detail"]
    assert "BNOBODY" not in only(rows, tenant="acme")["detail"]  # another owner's entity

    evaluator.run()
    assert len(alert_rows(runtime, AlertKind.RECONCILIATION_DRIFT)) == 2

    stub.findings = [Finding("brand:BACME01", "acme")]  # repaired: no drift any more
    reconcile.run(stub, runtime.store, runtime.sources.sources)
    evaluator.run()
    rows = alert_rows(runtime, AlertKind.RECONCILIATION_DRIFT)
    assert all(r["resolved_at"] is not None for r in rows) and len(rows) == 2


def test_a_threshold_of_zero_turns_a_rule_off_and_resolves_its_alerts(runtime: Runtime) -> None:
    ids = accept(runtime, "acme-poison")
    drain_until(runtime, ids, "dead")
    AlertEvaluator(runtime.engine, runtime.settings, runtime.sources.sources).run()
    assert alert_rows(runtime, AlertKind.DEAD_EVENTS)[0]["resolved_at"] is None
    off = runtime.settings.model_copy(update={"alert_dead_events": 0})
    AlertEvaluator(runtime.engine, off, runtime.sources.sources).run()
    assert alert_rows(runtime, AlertKind.DEAD_EVENTS)[0]["resolved_at"] is not None


def test_a_rule_that_fails_is_reported_and_the_others_still_run(runtime: Runtime) -> None:
    def broken(_: Any, __: RuleContext) -> list[Measurement]:
        raise RuntimeError("cannot measure")

    ids = accept(runtime, "acme-poison")
    drain_until(runtime, ids, "dead")
    rules = [Rule(AlertKind.RED_QUALITY, RuleScope.TENANT, "alert_red_quality", "x", broken)]
    result = AlertEvaluator(runtime.engine, runtime.settings, rules=[*rules, *RULES]).run()
    assert result.error == "red_quality: RuntimeError: cannot measure"
    assert len(alert_rows(runtime, AlertKind.DEAD_EVENTS)) == 1


def test_the_scheduler_runs_the_evaluation_as_one_job(runtime: Runtime) -> None:
    jobs = alert_jobs(runtime.engine, runtime.settings, runtime.sources.sources)
    assert [(j.name, j.interval) for j in jobs] == [(JOB_NAME, 60.0)]
    off = runtime.settings.model_copy(update={"alert_interval_seconds": 0})
    assert alert_jobs(runtime.engine, off, runtime.sources.sources) == []

    ids = accept(runtime, "acme-poison")
    drain_until(runtime, ids, "dead")
    scheduler = Scheduler(runtime.engine, jobs, owner="test")
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0  # not due for a minute
    assert len(alert_rows(runtime, AlertKind.DEAD_EVENTS)) == 1


def test_an_open_alert_is_unique_per_rule_and_subject(runtime: Runtime) -> None:
    """The database itself refuses a second open alert (a second evaluating process)."""
    ids = accept(runtime, "acme-poison")
    drain_until(runtime, ids, "dead")
    evaluator = AlertEvaluator(runtime.engine, runtime.settings, runtime.sources.sources)
    evaluator.run()
    [alert] = alert_rows(runtime, AlertKind.DEAD_EVENTS)
    fields = {k: v for k, v in alert.items() if k != "id"}
    with runtime.engine.begin() as tx, pytest.raises(IntegrityError):
        tx.execute(insert(alerts).values(fields))
    result: EvaluationResult = evaluator.run()
    assert (result.opened, result.error) == (0, None)


# -- the API --------------------------------------------------------------------------------


def test_people_see_their_tenants_alerts_and_superadmins_the_global_ones(
    runtime: Runtime, api: TestClient, people: People, evaluator: AlertEvaluator
) -> None:
    acme_dead = accept(runtime, "acme-poison")
    drain_until(runtime, acme_dead, "dead")
    accept(runtime, "demo", received_at=datetime.now(UTC) - timedelta(hours=1))  # the queue
    evaluator.run()
    mine = {r["kind"]: r for r in alert_rows(runtime)}
    assert set(mine) == {"dead_events", "oldest_pending"}
    dead, queue = mine["dead_events"], mine["oldest_pending"]

    for role in ("viewer", "member", "admin"):
        seen = listed(api, people.headers("acme", role))
        assert [(a["id"], a["tenant"], a["state"]) for a in seen] == [(dead["id"], "acme", "open")]
        got = api.get(f"/api/v1/alerts/{queue['id']}", headers=people.headers("acme", role))
        assert got.status_code == 404
    assert listed(api, people.headers("globex", "viewer")) == []
    assert api.get(
        f"/api/v1/alerts/{dead['id']}", headers=people.headers("globex", "admin")
    ).status_code == 404  # fmt: skip

    everything = listed(api, people.superadmin())
    assert [a["id"] for a in everything] == sorted([dead["id"], queue["id"]], reverse=True)
    assert [a["id"] for a in listed(api, people.superadmin("acme"))] == [dead["id"]]
    shown = api.get(f"/api/v1/alerts/{queue['id']}", headers=people.superadmin()).json()
    assert shown["tenant"] is None and shown["kind"] == "oldest_pending"
    assert shown["subject"] == "queue" and shown["labels"] == {}

    assert [a["kind"] for a in listed(api, people.superadmin(), kind="oldest_pending")] == [
        "oldest_pending"
    ]
    assert (
        api.get("/api/v1/alerts", params={"state": "closed"}, headers=people.superadmin())
    ).status_code == 422
    assert api.get(f"/api/v1/alerts/{2**63}", headers=people.superadmin()).status_code == 422
    assert api.get("/api/v1/alerts").status_code == 401


def test_acknowledge_needs_a_member_of_the_tenant_and_is_idempotent(
    runtime: Runtime, api: TestClient, people: People, evaluator: AlertEvaluator
) -> None:
    ids = accept(runtime, "acme-poison")
    drain_until(runtime, ids, "dead")
    evaluator.run()
    [alert] = alert_rows(runtime, AlertKind.DEAD_EVENTS)
    url = f"/api/v1/alerts/{alert['id']}/acknowledge"

    assert api.post(url, headers=people.headers("acme", "viewer")).status_code == 403
    for other in ("member", "admin"):
        assert api.post(url, headers=people.headers("globex", other)).status_code == 404
    assert api.post(url, headers=people.superadmin("globex")).status_code == 404

    first = api.post(url, headers=people.headers("acme", "member"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["state"] == "acknowledged" and body["acknowledged_by"].startswith("user:")
    again = api.post(url, headers=people.headers("acme", "admin")).json()
    assert (again["acknowledged_at"], again["acknowledged_by"]) == (
        body["acknowledged_at"], body["acknowledged_by"],
    )  # fmt: skip

    viewer = people.headers("acme", "viewer")
    assert listed(api, viewer) == []  # no longer open
    assert [a["id"] for a in listed(api, viewer, state="acknowledged")] == [alert["id"]]

    # Still firing: it stays acknowledged while it is updated; then it resolves.
    evaluator.run()
    [still] = listed(api, viewer, state="acknowledged")
    assert still["acknowledged_by"] == body["acknowledged_by"]
    runtime.store.replay(ids)
    evaluator.run()
    assert listed(api, viewer, state="acknowledged") == []
    [resolved] = listed(api, viewer, state="resolved")
    assert resolved["id"] == alert["id"] and resolved["acknowledged_at"] is not None
    assert [a["id"] for a in listed(api, viewer, state="all")] == [alert["id"]]


def test_a_global_alert_is_acknowledged_by_superadmins_only(
    runtime: Runtime, api: TestClient, people: People, evaluator: AlertEvaluator
) -> None:
    accept(runtime, "acme-hooks", received_at=datetime.now(UTC) - timedelta(hours=1))
    evaluator.run()
    [queue] = alert_rows(runtime, AlertKind.OLDEST_PENDING)
    url = f"/api/v1/alerts/{queue['id']}/acknowledge"
    assert api.post(url, headers=people.headers("acme", "admin")).status_code == 404
    assert api.post(url, headers=people.superadmin("acme")).status_code == 404
    done = api.post(url, headers=people.superadmin())
    assert done.status_code == 200 and done.json()["state"] == "acknowledged"
    missing = api.post(f"/api/v1/alerts/{2**62}/acknowledge", headers=people.superadmin())
    assert missing.status_code == 404


def test_metrics_show_each_rules_value_and_the_open_alerts(
    runtime: Runtime, api: TestClient, evaluator: AlertEvaluator
) -> None:
    now = datetime.now(UTC)
    dead = accept(runtime, "acme-poison")
    drain_until(runtime, dead, "dead")
    # From here a failed event waits for its retry (not due again while the test runs).
    runtime.store.queue.backoff = Backoff(runtime.settings.max_attempts, 600.0, 600.0)
    accept(runtime, "acme-hooks", 3)
    accept(runtime, "acme-hooks", fail="boom")
    runtime.make_worker().drain()
    send_meta(runtime, quality_body("GREEN", "RED", T0))
    accept(runtime, "demo", received_at=now - timedelta(seconds=400))  # nothing drains it
    stub = StubReconciler("tcr.campaigns.review", [
        Finding("campaign:CX", None, (Drift("campaign:CX", "status", "REVIEW", "ACTIVE"),))
    ])  # fmt: skip
    reconcile.run(stub, runtime.store, runtime.sources.sources)
    evaluator.run(now=now)

    found = gauges(api)
    assert found["hookyard_alert_failure_rate", "source=acme-hooks"] == 0.25
    assert found["hookyard_alert_failure_rate", "source=acme-poison"] == 1.0
    assert found["hookyard_alert_dead_events", "source=acme-poison"] == 1.0
    assert found["hookyard_alert_oldest_pending_seconds",] == 400.0
    assert found["hookyard_alert_red_quality", f"template={TEMPLATE}", "tenant=acme"] == 1.0
    drift = ("hookyard_alert_reconciliation_drift", "job=tcr.campaigns.review", "tenant=")
    assert found[drift] == 1.0
    # failure rate: acme-hooks (0.25) only; acme-poison's one event is under the minimum.
    assert {kind: found["hookyard_alerts_open", f"kind={kind}"] for kind in AlertKind} == {
        "failure_rate": 1.0, "dead_events": 1.0, "oldest_pending": 1.0, "red_quality": 1.0,
        "reconciliation_drift": 1.0, "template_disabled": 0.0, "template_rejected": 0.0,
        "email_failing": 0.0,
        "destination_circuit_open": 0.0,
    }  # fmt: skip
    assert found["hookyard_alerts_unacknowledged", "kind=dead_events"] == 1.0

    # The values follow the evaluation: the dead event replayed, its gauge is gone.
    runtime.store.replay(dead)
    evaluator.run(now=now)
    found = gauges(api)
    assert ("hookyard_alert_dead_events", "source=acme-poison") not in found
    assert found["hookyard_alerts_open", "kind=dead_events"] == 0.0


def test_the_alert_tables_hold_history(runtime: Runtime, evaluator: AlertEvaluator) -> None:
    ids = accept(runtime, "acme-poison")
    for _ in range(2):
        drain_until(runtime, ids, "dead")
        evaluator.run()
        runtime.store.replay(ids)
        evaluator.run()
    with runtime.engine.connect() as conn:
        kept = conn.execute(
            select(func.count()).select_from(alerts).where(alerts.c.resolved_at.is_not(None))
        ).scalar_one()
    assert kept == 2


# -- the WhatsApp templates' alerts: one system, the old routes as aliases -----------------


def template_of(alert: dict[str, Any]) -> int:
    return int(alert["subject"].removeprefix("template:"))


def test_a_red_quality_webhook_opens_one_alert_acknowledged_through_either_route(
    runtime: Runtime, api: TestClient, people: People, evaluator: AlertEvaluator
) -> None:
    send_meta(runtime, quality_body("GREEN", "RED", T0))
    evaluator.run()
    viewer = people.headers("acme", "viewer")
    [alert] = listed(api, viewer)
    assert (alert["kind"], alert["state"], alert["tenant"]) == ("red_quality", "open", "acme")
    assert listed(api, people.headers("globex", "admin")) == []
    # The deprecated WhatsApp list is the same alert, naming its template.
    [legacy] = api.get("/api/v1/whatsapp/alerts", headers=viewer).json()["items"]
    assert {k: legacy[k] for k in alert} == alert
    assert (legacy["template_id"], legacy["meta_template_id"], legacy["template_name"]) == (
        template_of(alert), TEMPLATE, "order_update",
    )  # fmt: skip
    assert legacy["created_at"] == alert["opened_at"]

    alias = f"/api/v1/whatsapp/templates/{template_of(alert)}/acknowledge-alert"
    one = f"/api/v1/alerts/{alert['id']}/acknowledge"
    for url in (alias, one):
        refused = api.post(url, headers=viewer)
        assert refused.status_code == 403 and "member" in refused.json()["detail"]
        for other in ("member", "admin"):
            assert api.post(url, headers=people.headers("globex", other)).status_code == 404
        assert api.post(url, headers=people.superadmin("globex")).status_code == 404
    assert listed(api, viewer) == [alert]  # untouched

    done = api.post(alias, headers=people.headers("acme", "member"))
    assert done.status_code == 200, done.text
    [acked] = done.json()["acknowledged"]
    assert (acked["id"], acked["state"], acked["template_id"]) == (
        alert["id"], "acknowledged", template_of(alert),
    )  # fmt: skip
    assert acked["acknowledged_by"].startswith("user:")
    assert listed(api, viewer) == []
    [shown] = listed(api, viewer, state="acknowledged")
    assert (shown["id"], shown["acknowledged_by"]) == (alert["id"], acked["acknowledged_by"])
    # Either route again changes nothing: the first acknowledgement is kept.
    again = api.post(one, headers=people.headers("acme", "admin"))
    assert again.status_code == 200
    assert (again.json()["acknowledged_at"], again.json()["acknowledged_by"]) == (
        acked["acknowledged_at"], acked["acknowledged_by"],
    )  # fmt: skip
    assert api.post(alias, headers=people.headers("acme", "admin")).json()["acknowledged"] == []


def test_acknowledged_through_the_alerts_route_the_whatsapp_views_agree_and_green_resolves(
    runtime: Runtime, api: TestClient, people: People, evaluator: AlertEvaluator
) -> None:
    send_meta(runtime, quality_body("GREEN", "RED", T0))
    evaluator.run()
    viewer, member = people.headers("acme", "viewer"), people.headers("acme", "member")
    critical = api.get("/api/v1/whatsapp/templates/critical", headers=viewer).json()["items"]
    [(template, [alert])] = [(t["id"], t["open_alerts"]) for t in critical]
    assert (alert["kind"], alert["template_id"]) == ("red_quality", template)

    done = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=member)
    assert done.status_code == 200 and done.json()["state"] == "acknowledged"
    critical = api.get("/api/v1/whatsapp/templates/critical", headers=viewer).json()["items"]
    assert [t["open_alerts"] for t in critical] == [[]]
    assert api.get("/api/v1/whatsapp/alerts", headers=viewer).json()["items"] == []
    alias = f"/api/v1/whatsapp/templates/{template}/acknowledge-alert"
    assert api.post(alias, headers=member).json() == {"template_id": template, "acknowledged": []}

    # GREEN again: the evaluation resolves it, on every route.
    send_meta(runtime, quality_body("RED", "GREEN", T0 + 10))
    evaluator.run()
    [resolved] = listed(api, viewer, state="all")
    assert resolved["id"] == alert["id"] and resolved["state"] == "resolved"
    [legacy] = api.get("/api/v1/whatsapp/alerts", headers=viewer, params={"state": "all"}).json()[
        "items"
    ]
    assert legacy["state"] == "resolved" and legacy["resolved_at"] == resolved["resolved_at"]
    assert api.get("/api/v1/whatsapp/templates/critical", headers=viewer).json()["items"] == []
    # Red again: a new alert; the resolved one stays in the history.
    send_meta(runtime, quality_body("GREEN", "RED", T0 + 20))
    evaluator.run()
    assert [a["state"] for a in listed(api, viewer, state="all")] == ["open", "resolved"]
