"""Audit retention: the events of audit providers (TCR by default) outlive the retention purge
unless HOOKYARD_AUDIT_RETENTION_DAYS says otherwise; TCR's mock deliveries are kept, ignored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.schema import events, requests
from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns
from hookyard.runtime import Runtime
from tests.conftest import process_env
from tests.support import accept, count, hookyard, row

PAYLOADS = Path(__file__).parent / "payloads"


def tcr_body(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / f"tcr_{name}.json").read_text())
    payload.update(changes)
    return payload


def post_tcr(runtime: Runtime, *bodies: dict[str, Any]) -> list[int]:
    """Deliver TCR bodies through the gateway (the open TCR source); the stored event ids."""
    ids = []
    with TestClient(create_app(runtime, run_workers=False)) as client:
        for body in bodies:
            r = client.post("/webhooks/tcr/campaigns", content=json.dumps(body).encode())
            assert r.status_code == 200, r.text
            ids.extend(r.json()["events"])
    return ids


def age(runtime: Runtime, ids: list[int], days: int) -> None:
    """Make events, and the requests that carried them, `days` old."""
    at = datetime.now(UTC) - timedelta(days=days)
    carriers = [request_of(runtime, i) for i in ids]
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id.in_(ids)).values(received_at=at))
        tx.execute(update(requests).where(requests.c.id.in_(carriers)).values(received_at=at))


def present(runtime: Runtime, ids: list[int]) -> set[int]:
    return {i for i in ids if runtime.store.get(i) is not None}


def request_of(runtime: Runtime, event_id: int) -> int:
    request_id: int = row(runtime.engine, events, events.c.id == event_id)["request_id"]
    assert request_id is not None
    return request_id


@pytest.fixture
def audited(settings: Settings) -> Iterator[Runtime]:
    """A gateway keeping TCR events for a year."""
    rt = Runtime.build(settings.model_copy(update={"audit_retention_days": 365}))
    yield rt
    rt.close()


def test_the_settings_default_to_tcr_kept_forever(settings: Settings) -> None:
    assert settings.audit_providers == ("tcr",)
    assert settings.audit_retention_days == 0


@pytest.mark.parametrize(
    ("value", "providers"), [("", ()), ("tcr, C2S", ("tcr", "c2s")), ("tcr", ("tcr",))]
)
def test_audit_providers_from_the_environment(
    value: str, providers: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKYARD_AUDIT_PROVIDERS", value)
    assert Settings().audit_providers == providers


def test_a_tcr_event_outlives_the_purge_that_takes_a_generic_one_of_the_same_age(
    runtime: Runtime,
) -> None:
    [tcr] = post_tcr(runtime, tcr_body("brand_identity_status"))
    generic = accept(runtime, "effects", 2)
    assert runtime.make_worker().drain() == 3
    age(runtime, [tcr, *generic], days=400)
    tcr_request = request_of(runtime, tcr)
    generic_requests = [request_of(runtime, i) for i in generic]

    runtime.make_worker().run_once()  # housekeeping: retention with the default settings

    assert present(runtime, [tcr, *generic]) == {tcr}
    assert row(runtime.engine, events, events.c.id == tcr)["status"] == "done"
    # The TCR event's request (its body) stays; the purged events' requests go.
    assert count(runtime.engine, requests, requests.c.id == tcr_request) == 1
    assert count(runtime.engine, requests, requests.c.id.in_(generic_requests)) == 0


def test_with_audit_retention_days_an_older_tcr_event_is_purged(audited: Runtime) -> None:
    old, recent = post_tcr(
        audited,
        tcr_body("brand_identity_status"),
        tcr_body("mno_campaign_approved"),
    )
    [generic] = accept(audited, "effects")
    assert audited.make_worker().drain() == 3
    age(audited, [old], days=400)
    age(audited, [recent, generic], days=40)
    old_request = request_of(audited, old)

    audited.make_worker().run_once()

    # Past the audit's 365 days the TCR event goes; at 40 days only the generic one does.
    assert present(audited, [old, recent, generic]) == {recent}
    assert count(audited.engine, requests, requests.c.id == old_request) == 0


def test_no_audit_providers_purges_tcr_events_like_any_other(runtime: Runtime) -> None:
    [tcr] = post_tcr(runtime, tcr_body("brand_identity_status"))
    [generic] = accept(runtime, "effects")
    runtime.make_worker().drain()
    age(runtime, [tcr, generic], days=40)
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert runtime.store.purge_finished(cutoff, audit_providers=["tcr"]) == 1
    assert present(runtime, [tcr, generic]) == {tcr}
    assert runtime.store.purge_finished(cutoff, audit_providers=()) == 1
    assert present(runtime, [tcr, generic]) == set()


def test_unfinished_audit_events_are_never_purged(runtime: Runtime) -> None:
    [tcr] = post_tcr(runtime, tcr_body("brand_identity_status"))  # pending, not processed
    age(runtime, [tcr], days=400)
    cutoff = datetime.now(UTC) - timedelta(days=30)
    assert (
        runtime.store.purge_finished(cutoff, audit_providers=["tcr"], audit_older_than=cutoff) == 0
    )
    assert present(runtime, [tcr]) == {tcr}


def test_the_purge_command_keeps_audit_events_unless_told(
    settings: Settings, runtime: Runtime
) -> None:
    [tcr] = post_tcr(runtime, tcr_body("brand_identity_status"))
    [generic] = accept(runtime, "effects")
    runtime.make_worker().drain()
    age(runtime, [tcr, generic], days=40)
    env = process_env(settings)
    kept = hookyard(env, "events", "purge", "--older-than-days", "30")
    assert kept.returncode == 0 and "purged 1 finished events" in kept.stdout
    assert present(runtime, [tcr, generic]) == {tcr}
    env["HOOKYARD_AUDIT_RETENTION_DAYS"] = "35"
    assert "purged 1 " in hookyard(env, "events", "purge", "--older-than-days", "30").stdout
    assert present(runtime, [tcr]) == set()


def test_a_mock_tcr_event_is_stored_and_ignored_never_applied(runtime: Runtime) -> None:
    brand_mock, campaign_mock = post_tcr(
        runtime,
        tcr_body("brand_identity_status", mock=True),
        tcr_body("mno_campaign_approved", mock=True),
    )
    assert runtime.make_worker().drain() == 2
    for event_id in (brand_mock, campaign_mock):
        stored = runtime.store.get(event_id)
        assert stored is not None and stored["status"] == "ignored"
        assert stored["payload"]["mock"] is True  # kept as received
    for table in (brands, campaigns, campaign_carriers):
        assert count(runtime.engine, table) == 0

    # The same deliveries, real ones ("mock": false), are applied.
    real = post_tcr(runtime, tcr_body("brand_identity_status"), tcr_body("mno_campaign_approved"))
    assert runtime.make_worker().drain() == 2
    assert {row(runtime.engine, events, events.c.id == i)["status"] for i in real} == {"done"}
    assert count(runtime.engine, brands) == 1 and count(runtime.engine, campaigns) == 1
