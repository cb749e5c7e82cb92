"""10DLC (TCR) state transitions, driven by the shared payloads and variants of them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, Table, select

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.domain.tendlc.carriers import carrier_name
from hookyard.domain.tendlc.catalogue import CATALOGUE, Action, Category
from hookyard.domain.tendlc.service import apply
from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns, vettings
from hookyard.inbox.model import NewEvent
from hookyard.providers.base import Outcome, StoredEvent, WebhookRequest
from hookyard.runtime import Runtime
from hookyard.sources import load_sources_file
from tests.conftest import BACKEND, SECRETS

PAYLOADS = Path(__file__).parent / "payloads"
TENANT = "acme"

TCR_SOURCES = """
[[source]]
name = "tcr-acme"
provider = "tcr"
path = "/webhooks/tcr/brands"
allow_unauthenticated = true
tenant = "acme"

[[source]]
name = "tcr-globex"
provider = "tcr"
path = "/webhooks/tcr/campaigns"
allow_unauthenticated = true
tenant = "globex"

[[source]]
name = "tcr-shared"
provider = "tcr"
path = "/webhooks/tcr/vetting"
allow_unauthenticated = true
"""


def seed(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / f"tcr_{name}.json").read_text())
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def identity(status: str = "VERIFIED", **changes: Any) -> dict[str, Any]:
    return seed("brand_identity_status", brandIdentityStatus=status, **changes)


def approved(**changes: Any) -> dict[str, Any]:
    return seed("mno_campaign_approved", **changes)


def at(hour: int) -> str:
    return f"2025-12-03T{hour:02d}:00:00Z"


_ids = iter(range(1, 10**6))


def stored(payload: dict[str, Any], origin: str = "webhook") -> StoredEvent:
    """The event the worker would hand over for this body (parsed by the TCR adapter)."""
    from hookyard.providers.tcr import TCRAdapter, TCRConfig

    adapter = TCRAdapter(TCRConfig(name="t", provider="tcr", path="/t"))
    body = json.dumps(payload).encode()
    [p] = adapter.parse(WebhookRequest("POST", "http://x/t", "/t", {}, {}, body))
    return StoredEvent(
        next(_ids), "t", "tcr", None, p.event_type, p.dedup_key, p.entity_key,
        p.provider_ts, payload, {}, 1, origin,
    )  # fmt: skip


def run(
    engine: Engine, payload: dict[str, Any], tenant: str | None = TENANT, origin: str = "webhook"
) -> Outcome:
    with engine.begin() as tx:
        return apply(stored(payload, origin), tx, tenant)


def rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.id)).mappings()]


def brand(engine: Engine, brand_id: str = "BBPD732") -> dict[str, Any]:
    [row] = [r for r in rows(engine, brands) if r["brand_id"] == brand_id]
    return row


def campaign(engine: Engine, campaign_id: str = "CQ4ZKDM") -> dict[str, Any]:
    [row] = [r for r in rows(engine, campaigns) if r["campaign_id"] == campaign_id]
    return row


def carriers(engine: Engine, campaign_id: str = "CQ4ZKDM") -> dict[str, str]:
    return {
        r["mno_id"]: r["status"]
        for r in rows(engine, campaign_carriers)
        if r["campaign_id"] == campaign_id
    }


# -- brands ---------------------------------------------------------------------------------


def test_brand_identity_update_creates_the_unknown_brand_for_the_sources_tenant(
    engine: Engine,
) -> None:
    before = datetime.now(UTC)
    assert run(engine, identity()) == Outcome.DONE
    row = brand(engine)
    assert row["tenant"] == TENANT
    assert (row["status"], row["identity_status"], row["trust_score"]) == (
        "VERIFIED",
        "VERIFIED",
        85,
    )
    assert row["last_event_at"] == datetime(2025, 12, 1, 3, 36, 30, tzinfo=UTC)
    assert row["last_event_type"] == "BRAND_IDENTITY_STATUS_UPDATE"
    assert row["sync_source"] == "webhook"
    assert before <= row["last_synced_at"] <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("identity_status", "status"),
    [
        ("UNVERIFIED", "UNVERIFIED"),
        ("VETTED_VERIFIED", "VETTED_VERIFIED"),
        ("SELF_DECLARED", "REGISTERED"),
        ("verified", "VERIFIED"),
        ("SOMETHING_NEW", None),  # stored as sent; the status is not guessed
    ],
)
def test_identity_status_decides_the_brand_status(
    engine: Engine, identity_status: str, status: str | None
) -> None:
    assert run(engine, identity(identity_status, trustScore=None)) == Outcome.DONE
    row = brand(engine)
    assert row["identity_status"] == identity_status.upper()
    assert row["status"] == status and row["trust_score"] is None


def test_brand_lifecycle(engine: Engine) -> None:
    add = {"eventType": "BRAND_ADD", "eventCategory": "BRAND", "brandId": "B6GZY9I"}
    run(engine, add | {"brandName": "hookingTest", "timestamp": at(1)})
    row = brand(engine, "B6GZY9I")
    assert (row["status"], row["display_name"]) == ("REGISTERED", "hookingTest")

    run(engine, identity("VERIFIED", brandId="B6GZY9I", timestamp=at(2)))
    # A second BRAND_ADD (a redelivery with another body) does not reset a known status.
    run(engine, add | {"timestamp": at(3)})
    assert brand(engine, "B6GZY9I")["status"] == "VERIFIED"

    score = {"eventType": "BRAND_SCORE_UPDATE", "brandId": "B6GZY9I", "trustScore": "75"}
    run(engine, score | {"timestamp": at(4)})
    assert brand(engine, "B6GZY9I")["trust_score"] == 75

    feedback = {"eventType": "BRAND_FEEDBACK", "brandId": "B6GZY9I", "rejectionReason": "TAX_ID"}
    run(engine, feedback | {"timestamp": at(5)})
    update = {"eventType": "BRAND_UPDATE", "brandId": "B6GZY9I", "companyName": "Hooking Inc."}
    run(
        engine,
        update | {"vertical": "TECHNOLOGY", "entityType": "PRIVATE_PROFIT", "timestamp": at(6)},
    )
    row = brand(engine, "B6GZY9I")
    assert (row["feedback"], row["company_name"]) == ("TAX_ID", "Hooking Inc.")
    assert (row["vertical"], row["entity_type"]) == ("TECHNOLOGY", "PRIVATE_PROFIT")

    run(engine, {"eventType": "BRAND_DELETE", "brandId": "B6GZY9I", "timestamp": at(7)})
    row = brand(engine, "B6GZY9I")
    assert row["status"] == "DELETED" and row["trust_score"] == 75


def test_an_older_brand_event_is_superseded_and_changes_nothing(engine: Engine) -> None:
    assert run(engine, identity("VERIFIED", timestamp=at(10))) == Outcome.DONE
    before = brand(engine)
    assert run(engine, identity("UNVERIFIED", trustScore=10, timestamp=at(9))) == Outcome.SUPERSEDED
    assert brand(engine) == before
    # The same provider time is not older: it applies, in arrival order.
    assert run(engine, identity("VETTED_VERIFIED", timestamp=at(10))) == Outcome.DONE
    assert brand(engine)["status"] == "VETTED_VERIFIED"
    # An event without a time cannot be ordered: it applies, and keeps the last known time.
    assert run(engine, identity("UNVERIFIED", timestamp=None)) == Outcome.DONE
    assert brand(engine)["status"] == "UNVERIFIED"
    assert brand(engine)["last_event_at"] == datetime(2025, 12, 3, 10, tzinfo=UTC)


def test_a_brand_keeps_its_owner(engine: Engine) -> None:
    run(engine, identity(timestamp=at(1)), tenant=None)
    assert brand(engine)["tenant"] is None  # a source without a tenant: not owned yet
    run(engine, identity(timestamp=at(2)), tenant="acme")
    assert brand(engine)["tenant"] == "acme"  # adopted by the first tenant's source
    before = brand(engine)
    # Another tenant's source naming acme's brand changes nothing: the event is ignored.
    assert run(engine, identity("UNVERIFIED", timestamp=at(3)), tenant="globex") == Outcome.IGNORED
    assert brand(engine) == before and before["tenant"] == "acme"


def test_another_tenants_campaign_is_never_changed(engine: Engine) -> None:
    assert run(engine, approved(timestamp=at(1)), tenant="acme") == Outcome.DONE
    owned, statuses = campaign(engine), carriers(engine)
    rejected = approved(timestamp=at(2), mnoStatuses={"10035": "REJECTED"})
    assert run(engine, rejected, tenant="globex") == Outcome.IGNORED
    # Naming only the campaign (share events carry no brand) is caught through its brand.
    shared = {k: v for k, v in rejected.items() if k != "brandId"}
    assert run(engine, shared | {"timestamp": at(3)}, tenant="globex") == Outcome.IGNORED
    assert campaign(engine) == owned and carriers(engine) == statuses


@pytest.mark.parametrize(
    ("origin", "source"),
    [("webhook", "webhook"), ("polling", "polling"), ("manual", "manual"), ("replay", "webhook")],
)
def test_sync_source_follows_the_event_origin(engine: Engine, origin: str, source: str) -> None:
    run(engine, approved(), origin=origin)
    for row in (brand(engine), campaign(engine), *rows(engine, campaign_carriers)):
        assert row["sync_source"] == source
        assert row["last_synced_at"] is not None


# -- campaigns and carriers -----------------------------------------------------------------


def test_carrier_approval_creates_campaign_and_its_unknown_brand(engine: Engine) -> None:
    assert run(engine, approved()) == Outcome.DONE
    row = brand(engine)
    assert row["tenant"] == TENANT and row["status"] is None and row["last_event_at"] is None
    row = campaign(engine)
    assert row["brand_id"] == "BBPD732" and row["status"] == "ACTIVE"
    assert carriers(engine) == {"10035": "APPROVED"}
    [carrier] = rows(engine, campaign_carriers)
    assert carrier["last_event_at"] == datetime(2025, 12, 2, 18, tzinfo=UTC)
    assert carrier_name(carrier["mno_id"]) == "T-Mobile"


def test_each_carrier_has_its_own_status(engine: Engine) -> None:
    review = {"eventType": "MNO_CAMPAIGN_OPERATION_REVIEW", "timestamp": at(1)}
    statuses = {"10017": "REVIEW", "10035": "REVIEW", "10999": "REVIEW"}
    run(engine, approved(**review, mnoStatuses=statuses))
    assert carriers(engine) == statuses
    assert campaign(engine)["status"] == "REVIEW"

    # TCR's own payload names one carrier by `mnoId` (here AT&T).
    run(engine, approved(mnoStatuses=None, mnoId=10017, timestamp=at(2)))
    assert carriers(engine)["10017"] == "APPROVED"
    assert campaign(engine)["status"] == "ACTIVE"

    rejected = {"eventType": "MNO_CAMPAIGN_OPERATION_REJECTED", "mnoStatuses": None}
    run(engine, approved(**rejected, mnoId="10999", rejectionReason="OPT_IN", timestamp=at(3)))
    suspended = {"eventType": "MNO_CAMPAIGN_OPERATION_SUSPENDED", "mnoStatuses": None}
    run(engine, approved(**suspended, mnoId="10017", timestamp=at(4)))
    assert carriers(engine) == {"10017": "SUSPENDED", "10035": "REVIEW", "10999": "REJECTED"}
    row = campaign(engine)
    assert row["status"] == "REVIEW" and row["rejection_reason"] == "OPT_IN"

    lifted = {"eventType": "MNO_CAMPAIGN_OPERATION_UNSUSPENDED", "mnoStatuses": None}
    run(engine, approved(**lifted, mnoId="10017", timestamp=at(5)))
    assert carriers(engine)["10017"] == "APPROVED"
    assert campaign(engine)["status"] == "ACTIVE"


def test_an_older_carrier_event_is_superseded_per_carrier(engine: Engine) -> None:
    run(engine, approved(mnoStatuses={"10035": "APPROVED"}, timestamp=at(10)))
    old = approved(
        eventType="MNO_CAMPAIGN_OPERATION_REJECTED",
        mnoStatuses={"10035": "REJECTED"},
        timestamp=at(9),
    )
    assert run(engine, old) == Outcome.SUPERSEDED
    assert carriers(engine) == {"10035": "APPROVED"}
    # Older than T-Mobile's last event, but the first word from Verizon: Verizon applies.
    old["mnoStatuses"] = {"10035": "REJECTED", "10999": "REJECTED"}
    assert run(engine, old) == Outcome.DONE
    assert carriers(engine) == {"10035": "APPROVED", "10999": "REJECTED"}
    assert campaign(engine)["status"] == "ACTIVE"


def test_all_carriers_rejecting_or_suspending_shows_on_the_campaign(engine: Engine) -> None:
    run(engine, approved(mnoStatuses={"10017": "REJECTED", "10035": "REJECTED"}))
    assert campaign(engine)["status"] == "REJECTED"
    run(engine, approved(mnoStatuses={"10017": "SUSPENDED"}, timestamp=at(1)))
    assert campaign(engine)["status"] == "SUSPENDED"


def test_campaign_lifecycle_and_expiry_stays(engine: Engine) -> None:
    add = {"eventType": "CAMPAIGN_ADD", "brandId": "B5HDZSA", "campaignId": "C8PWPWB"}
    run(engine, add | {"usecase": "MIXED", "timestamp": at(1)})
    row = campaign(engine, "C8PWPWB")
    assert (row["status"], row["use_case"], row["brand_id"]) == ("PENDING", "MIXED", "B5HDZSA")
    assert brand(engine, "B5HDZSA")["tenant"] == TENANT

    run(engine, add | {"eventType": "CAMPAIGN_EXPIRED", "timestamp": at(2)})
    assert campaign(engine, "C8PWPWB")["status"] == "EXPIRED"
    # A carrier's later word does not revive an expired campaign; its own row still changes.
    carrier = approved(brandId="B5HDZSA", campaignId="C8PWPWB", timestamp=at(3))
    run(engine, carrier)
    assert campaign(engine, "C8PWPWB")["status"] == "EXPIRED"
    assert carriers(engine, "C8PWPWB") == {"10035": "APPROVED"}
    run(engine, add | {"eventType": "CAMPAIGN_RESUBMISSION", "timestamp": at(4)})
    assert campaign(engine, "C8PWPWB")["status"] == "REVIEW"
    run(engine, add | {"eventType": "CAMPAIGN_UPDATE", "status": "ACTIVE", "timestamp": at(5)})
    assert campaign(engine, "C8PWPWB")["status"] == "ACTIVE"
    expired_late = add | {"eventType": "CAMPAIGN_EXPIRED", "timestamp": at(4)}
    assert run(engine, expired_late) == Outcome.SUPERSEDED
    assert campaign(engine, "C8PWPWB")["status"] == "ACTIVE"


def test_share_events_name_only_the_campaign(engine: Engine) -> None:
    share = {"eventType": "CAMPAIGN_SHARE_ADD", "campaignId": "CLW28YB"}
    assert run(engine, share) == Outcome.DONE
    row = campaign(engine, "CLW28YB")
    assert (row["share_status"], row["brand_id"], row["status"]) == ("NOMINATED", None, None)
    assert rows(engine, brands) == []
    run(engine, share | {"eventType": "CAMPAIGN_SHARE_ACCEPT", "brandId": "BX1"})
    row = campaign(engine, "CLW28YB")
    assert (row["share_status"], row["brand_id"]) == ("ACCEPTED", "BX1")
    assert brand(engine, "BX1")["tenant"] == TENANT
    run(engine, share | {"eventType": "CAMPAIGN_SHARE_DELETE"})
    assert campaign(engine, "CLW28YB")["share_status"] == "DECLINED"


def test_known_events_without_state_note_the_sync(engine: Engine) -> None:
    billed = {"eventType": "CAMPAIGN_BILLED", "brandId": "B1", "campaignId": "C1"}
    assert run(engine, billed | {"timestamp": at(1)}) == Outcome.DONE
    row = campaign(engine, "C1")
    assert row["status"] is None and row["last_event_at"] is None
    assert row["last_synced_at"] is not None


# -- vetting --------------------------------------------------------------------------------


def test_vetting_results(engine: Engine) -> None:
    score = {
        "eventType": "EVP_REPORT_SCORE",
        "eventCategory": "VETTING",
        "brandId": "BBPD732",
        "vettingId": "V1",
        "evpId": "AEGIS",
        "vettingClass": "STANDARD",
        "vettingScore": 75,
        "timestamp": at(2),
    }
    assert run(engine, score) == Outcome.DONE
    assert brand(engine)["tenant"] == TENANT
    old = score | {"eventType": "EVP_REPORT_FAIL", "timestamp": at(1)}
    assert run(engine, old) == Outcome.SUPERSEDED
    # Another report of the same brand is its own row.
    assert run(engine, old | {"vettingId": "V2"}) == Outcome.DONE
    auth = {"brandId": "BBPD732", "timestamp": at(3)}
    run(engine, auth | {"eventType": "BRAND_AUTHPLUS_VERIFICATION_ADD"})
    run(engine, auth | {"eventType": "BRAND_EMAIL_2FA_SEND"})
    run(engine, auth | {"eventType": "BRAND_AUTHPLUS_VERIFICATION_COMPLETE", "timestamp": at(4)})
    found = {
        (r["kind"], r["vetting_key"]): (r["status"], r["score"], r["vetting_class"])
        for r in rows(engine, vettings)
    }
    assert found == {
        ("EVP", "V1"): ("SCORED", 75, "STANDARD"),
        ("EVP", "V2"): ("FAILED", 75, "STANDARD"),
        ("AUTHPLUS", ""): ("VERIFIED", None, None),
        ("EMAIL_2FA", ""): ("SENT", None, None),
    }


# -- what is not state ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        identity(eventType="BRAND_SOMETHING_TCR_ADDS_LATER"),
        identity(eventType="CSP_ACTIVE"),
        identity(eventType="MNO_COMPLAINT"),
        identity(brandId=None),  # no entity to apply it to
        identity(brandId="B" * 51),  # not a TCR id
        approved(campaignId={"not": "an id"}),
    ],
)
def test_unknown_types_and_unusable_events_are_ignored(
    engine: Engine, payload: dict[str, Any]
) -> None:
    assert run(engine, payload) == Outcome.IGNORED
    assert rows(engine, brands) == rows(engine, campaigns) == []


def test_malformed_fields_are_left_alone(engine: Engine) -> None:
    payload = seed(
        "brand_identity_status",
        trustScore="high",
        brandIdentityStatus=7,
        displayName="A\x00B" + "x" * 300,
        vertical=["list"],
    )
    assert run(engine, payload) == Outcome.DONE
    row = brand(engine)
    assert row["trust_score"] is None and row["identity_status"] is None
    assert row["display_name"] == "AB" + "x" * 253 and row["vertical"] is None
    run(engine, identity(trustScore=10**12, timestamp=at(1)))
    assert brand(engine)["trust_score"] is None


def test_the_catalogue() -> None:
    by_category: dict[Category, list[str]] = {}
    for kind in CATALOGUE.values():
        by_category.setdefault(kind.category, []).append(kind.event_type)
    assert len(by_category[Category.CAMPAIGN]) == 16
    assert len(by_category[Category.BRAND]) <= 14 and len(by_category[Category.VETTING]) <= 19
    handled_before = [
        "BRAND_ADD",
        "BRAND_UPDATE",
        "BRAND_SCORE_UPDATE",
        "BRAND_IDENTITY_STATUS_UPDATE",
        "BRAND_FEEDBACK",
        "BRAND_DELETE",
        "CAMPAIGN_SHARE_ADD",
        "CAMPAIGN_SHARE_ACCEPT",
        "CAMPAIGN_SHARE_DELETE",
        "CAMPAIGN_SHARE_REJECT",
        "CAMPAIGN_UPDATE",
        "MNO_CAMPAIGN_OPERATION_APPROVED",
        "MNO_CAMPAIGN_OPERATION_REJECTED",
        "MNO_CAMPAIGN_OPERATION_SUSPENDED",
        "EVP_REPORT_SCORE",
        "BRAND_AUTHPLUS_VERIFICATION_ADD",
        "BRAND_AUTHPLUS_VERIFICATION_COMPLETE",
        "BRAND_AUTHPLUS_VERIFICATION_FAILED",
        "BRAND_AUTHPLUS_VERIFICATION_EXPIRED",
        "BRAND_AUTHPLUS_DOMAIN_VERIFIED",
        "BRAND_AUTHPLUS_DOMAIN_FAILED",
        "BRAND_AUTHPLUS_2FA_VERIFIED",
        "BRAND_AUTHPLUS_2FA_FAILED",
        "BRAND_EMAIL_2FA_SEND",
        "BRAND_EMAIL_2FA_OPEN",
        "BRAND_EMAIL_2FA_EXPIRED",
    ]
    for name in handled_before:
        assert CATALOGUE[name].action not in (Action.IGNORE, Action.RECORD), name


# -- through the gateway --------------------------------------------------------------------


def test_through_ingress_and_worker(runtime: Runtime) -> None:
    brand_body = (PAYLOADS / "tcr_brand_identity_status.json").read_bytes()
    campaign_body = (PAYLOADS / "tcr_mno_campaign_approved.json").read_bytes()
    with TestClient(create_app(runtime, run_workers=False)) as client:
        url = "/webhooks/tcr/brands?token=" + SECRETS["tcr"]
        r1 = client.post(url, content=brand_body, headers={"content-type": "application/json"})
        r2 = client.post("/webhooks/tcr/campaigns", content=campaign_body)
        assert r1.status_code == r2.status_code == 200
    assert runtime.make_worker().drain() == 2
    for response in (r1, r2):
        [event_id] = response.json()["events"]
        row = runtime.store.get(event_id)
        assert row is not None and row["status"] == "done"
    assert brand(runtime.engine)["status"] == "VERIFIED"
    assert carriers(runtime.engine) == {"10035": "APPROVED"}


@pytest.fixture
def tenant_runtime(settings: Settings, tmp_path: Path) -> Iterator[Runtime]:
    path = tmp_path / "tcr-sources.toml"
    path.write_text(TCR_SOURCES)
    rt = Runtime.build(settings, load_sources_file(path))
    yield rt
    rt.close()


def _enqueue(rt: Runtime, source: str, payload: dict[str, Any]) -> int:
    src = rt.sources.by_name()[source]
    body = json.dumps(payload).encode()
    [p] = src.adapter.parse(WebhookRequest("POST", "http://x" + src.path, src.path, {}, {}, body))
    new = NewEvent(
        src.name, "tcr", src.config.tenant, p.event_type, p.dedup_key, p.entity_key,
        p.provider_ts, {}, body, None, datetime.now(UTC),
    )  # fmt: skip
    [event_id] = rt.store.insert_batch([new]).values()
    return event_id


def test_out_of_order_in_one_worker_batch(tenant_runtime: Runtime) -> None:
    rt = tenant_runtime
    newer = _enqueue(rt, "tcr-acme", identity("VERIFIED", timestamp=at(12)))
    older = _enqueue(rt, "tcr-acme", identity("UNVERIFIED", timestamp=at(11)))
    other = _enqueue(rt, "tcr-globex", approved(brandId="BGLOBEX", timestamp=at(11)))
    assert rt.make_worker().drain() == 3
    statuses = {i: (rt.store.get(i) or {}).get("status") for i in (newer, older, other)}
    assert statuses == {newer: "done", older: "superseded", other: "done"}
    assert brand(rt.engine)["status"] == "VERIFIED"
    assert brand(rt.engine)["tenant"] == "acme"
    assert brand(rt.engine, "BGLOBEX")["tenant"] == "globex"


def test_an_event_belongs_to_the_tenant_that_owns_its_brand(tenant_runtime: Runtime) -> None:
    # The brand is acme's; a delivery through a source without a tenant (one TCR account
    # subscribed for everyone) and one through globex's source both name it.
    rt = tenant_runtime
    owned = _enqueue(rt, "tcr-acme", identity("VERIFIED", timestamp=at(1)))
    shared = _enqueue(rt, "tcr-shared", approved(timestamp=at(2)))
    foreign = _enqueue(rt, "tcr-globex", identity("UNVERIFIED", timestamp=at(3)))
    unknown = _enqueue(rt, "tcr-shared", identity(brandId="BNOBODY", timestamp=at(3)))
    assert rt.make_worker().drain() == 4
    tenants = {i: (rt.store.get(i) or {}).get("tenant") for i in (owned, shared, foreign, unknown)}
    # globex's source naming acme's brand changed nothing and stays globex's own event.
    assert tenants == {owned: "acme", shared: "acme", foreign: "globex", unknown: None}
    assert (rt.store.get(foreign) or {}).get("status") == "ignored"
    assert brand(rt.engine)["tenant"] == "acme" and brand(rt.engine)["status"] == "VERIFIED"


def test_a_replayed_event_applies_again_idempotently(tenant_runtime: Runtime) -> None:
    rt = tenant_runtime
    event_id = _enqueue(rt, "tcr-acme", approved(timestamp=at(1)))
    rt.make_worker().drain()
    first = campaign(rt.engine)
    assert rt.store.replay([event_id]) == 1
    rt.make_worker().drain()
    assert (rt.store.get(event_id) or {}).get("status") == "done"
    again = campaign(rt.engine)
    assert {k: v for k, v in again.items() if k != "last_synced_at"} == {
        k: v for k, v in first.items() if k != "last_synced_at"
    }
    assert again["last_synced_at"] >= first["last_synced_at"]
    assert carriers(rt.engine) == {"10035": "APPROVED"}
    assert len(rows(rt.engine, brands)) == 1


@pytest.mark.skipif(BACKEND != "postgresql", reason="concurrent writers need PostgreSQL")
def test_concurrent_workers_on_one_new_brand_neither_collide_nor_regress(engine: Engine) -> None:
    results: list[Outcome] = []
    first = engine.connect()
    tx = first.begin()
    results.append(apply(stored(identity("VERIFIED", timestamp=at(12))), first, TENANT))

    def second() -> None:  # blocks on the first's uncommitted row, then sees it
        results.append(run(engine, identity("UNVERIFIED", timestamp=at(11))))

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for the lock, not failing on a duplicate key
    tx.commit()
    first.close()
    thread.join(10)
    assert results == [Outcome.DONE, Outcome.SUPERSEDED]
    assert len(rows(engine, brands)) == 1 and brand(engine)["status"] == "VERIFIED"
