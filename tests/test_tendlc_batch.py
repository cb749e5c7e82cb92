"""10DLC (TCR), a claimed batch at once (`apply_batch`): the same outcomes, rows, e-mails, live
changes and event owners as handling its events one at a time in the same order, with a
number of statements that does not grow with the batch."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select

from hookyard.domain.batch import Batch
from hookyard.domain.tendlc import service as tendlc
from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns, vettings
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.notify.tables import notifications
from hookyard.providers.base import Outcome, StoredEvent, WebhookRequest
from hookyard.providers.tcr import TCRAdapter, TCRConfig
from tests.support import counted

TENANT = "acme"
MNOS = ["10017", "10035", "10999"]
_adapter = TCRAdapter(TCRConfig(name="tcr", provider="tcr", path="/webhooks/tcr"))


def tcr_event(
    event_id: int, event_type: str, hour: int | None = 1, origin: str = "webhook", **fields: Any
) -> StoredEvent:
    """The stored event of a TCR body (parsed by the adapter) sent at `hour` (None: no time)."""
    payload = {"eventType": event_type, **{k: v for k, v in fields.items() if v is not None}}
    if hour is not None:
        payload["timestamp"] = f"2025-12-03T{hour:02d}:00:00Z"
    body = json.dumps(payload).encode()
    [parsed] = _adapter.parse(WebhookRequest("POST", "http://x/t", "/t", {}, {}, body))
    return StoredEvent(
        event_id,
        "tcr",
        "tcr",
        None,
        parsed.event_type,
        parsed.dedup_key,
        parsed.entity_key,
        parsed.provider_ts,
        payload,
        {},
        1,
        origin,
    )


# -- one world: what is known before, then the events ----------------------------------------


def start(conn: Connection, known: str) -> None:
    """What a world starts from: nothing (`none`), or brand B1 owned by nobody yet (`nobody`)
    or by another tenant (`globex`), with campaign C1 approved by T-Mobile."""
    if known == "none":
        return
    owner = None if known == "nobody" else known
    brand: dict[str, Any] = {"brandId": "B1", "brandIdentityStatus": "UNVERIFIED"}
    carrier: dict[str, Any] = {"brandId": "B1", "campaignId": "C1"}
    carrier["mnoStatuses"] = {"10035": "APPROVED"}
    first = tcr_event(1, "BRAND_IDENTITY_STATUS_UPDATE", 0, **brand)
    approval = tcr_event(2, "MNO_CAMPAIGN_OPERATION_APPROVED", 0, **carrier)
    for setup in (first, approval):
        assert tendlc.apply(setup, conn, owner) == Outcome.DONE


@contextmanager
def observed() -> Iterator[tuple[list[Change], list[tuple[int, str | None]]]]:
    """The live changes published and the owner found for each event (both still done)."""
    changes: list[Change] = []
    owners: list[tuple[int, str | None]] = []

    def record_change(tx: Connection, *new: Change) -> None:
        changes.extend(new)
        publish(tx, *new)

    def record_owner(batch: Batch, stored: StoredEvent, owner: str | None) -> None:
        owners.append((stored.id, owner))
        original(batch, stored, owner)

    original = tendlc.attribute_event
    with (
        mock.patch("hookyard.domain.batch.publish", record_change),
        mock.patch.object(tendlc, "attribute_event", record_owner),
    ):
        yield changes, owners


def world(
    engine: Engine,
    events: Sequence[StoredEvent],
    *,
    together: bool,
    known: str = "none",
    tenant: str | None = TENANT,
) -> dict[str, Any]:
    """Handle `events` (after `start`) one at a time or as one batch, then once more (a replay
    of everything), in a transaction that is rolled back; the outcomes, rows, e-mails, live
    changes and event owners."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            start(conn, known)
            with observed() as (changes, owners):
                outcomes: list[dict[int, Outcome]] = []
                for _ in range(2):
                    if together:
                        outcomes.append(tendlc.apply_batch(events, conn, tenant))
                    else:
                        outcomes.append({e.id: tendlc.apply(e, conn, tenant) for e in events})
                return {"outcomes": outcomes, "owners": owners, **snapshot(conn, changes)}
        finally:
            tx.rollback()


# Times taken from the clock when an event is handled (a batch has one) are left out; the
# providers' times are compared. Row ids are named by what they stand for: a batch inserts
# its new rows in key order, one at a time inserts them in event order.
def snapshot(conn: Connection, changes: Sequence[Change]) -> dict[str, Any]:
    def table(t: Any, *order: str) -> list[dict[str, Any]]:
        query = select(t).order_by(*(t.c[c] for c in order))
        return [dict(row) for row in conn.execute(query).mappings()]

    brand_rows = table(brands, "brand_id")
    campaign_rows = table(campaigns, "campaign_id")
    vetting_rows = table(vettings, "brand_id", "kind", "vetting_key")
    names = {
        "tendlc_brand": {r["id"]: r["brand_id"] for r in brand_rows},
        "tendlc_campaign": {r["id"]: r["campaign_id"] for r in campaign_rows},
        "tendlc_vetting": {
            r["id"]: f"{r['brand_id']}/{r['kind']}/{r['vetting_key']}" for r in vetting_rows
        },
    }

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in row.items() if k not in ("id", "created_at", "last_synced_at")}
        if "dedup_key" in row:  # kind:entity_type:<row id>:<change>
            kind, entity, row_id, rest = row["dedup_key"].split(":", 3)
            row["dedup_key"] = f"{kind}:{entity}:{names[entity][int(row_id)]}:{rest}"
            row["entity_id"] = names[entity][row["entity_id"]]
        return row

    def live(change: Change) -> dict[str, Any]:
        message = {k: v for k, v in change.message().items() if k != "at"}
        if change.kind is ChangeKind.TENDLC_VETTING:
            message["id"] = names["tendlc_vetting"][int(change.id)]
        return message

    return {
        "brands": [plain(r) for r in brand_rows],
        "campaigns": [plain(r) for r in campaign_rows],
        "carriers": [plain(r) for r in table(campaign_carriers, "campaign_id", "mno_id")],
        "vettings": [plain(r) for r in vetting_rows],
        "notifications": [plain(r) for r in table(notifications, "id")],
        "live": [live(c) for c in changes],
    }


# -- (1) a batch of events of the same entities = the same events one at a time --------------


def test_a_batch_gives_what_its_events_give_one_at_a_time(engine: Engine) -> None:
    """A concrete case: campaign C1's carriers decide in and out of order (a late rejection,
    a redelivered approval, a first word from Verizon older than the others), its brand is
    verified in between, a share event names a campaign without its brand, and a vetting
    report is scored then reported failed too late."""
    carrier = "MNO_CAMPAIGN_OPERATION_"
    c1 = {"brandId": "B1", "campaignId": "C1"}
    events = [
        tcr_event(10, carrier + "REVIEW", 1, **c1, mnoStatuses=dict.fromkeys(MNOS[:2], "REVIEW")),
        tcr_event(11, carrier + "APPROVED", 3, **c1, mnoStatuses={"10035": "APPROVED"}),
        tcr_event(12, carrier + "REJECTED", 2, **c1, mnoStatuses={"10035": "REJECTED"}),
        tcr_event(
            13, "BRAND_IDENTITY_STATUS_UPDATE", 2, brandId="B1", brandIdentityStatus="VERIFIED"
        ),
        tcr_event(14, carrier + "APPROVED", 3, "polling", **c1, mnoStatuses={"10035": "APPROVED"}),
        tcr_event(15, carrier + "REJECTED", 0, **c1, mnoId="10999", rejectionReason="OPT_IN"),
        tcr_event(16, "CAMPAIGN_SHARE_ADD", 1, campaignId="C2"),
        tcr_event(17, "CAMPAIGN_SHARE_ACCEPT", 2, campaignId="C2", brandId="B2"),
        tcr_event(18, "EVP_REPORT_SCORE", 2, brandId="B1", vettingId="V1", vettingScore=80),
        tcr_event(19, "EVP_REPORT_FAIL", 1, brandId="B1", vettingId="V1"),
        tcr_event(20, "CSP_ACTIVE", 1),
    ]
    alone = world(engine, events, together=False)
    together = world(engine, events, together=True)
    assert together == alone
    done, superseded, ignored = Outcome.DONE, Outcome.SUPERSEDED, Outcome.IGNORED
    assert [together["outcomes"][0][e.id] for e in events] == [
        done,
        done,
        superseded,
        done,
        done,
        done,
        done,
        done,
        done,
        superseded,
        ignored,
    ]
    carriers = {(r["campaign_id"], r["mno_id"]): r["status"] for r in together["carriers"]}
    assert carriers == {
        ("C1", "10017"): "REVIEW",
        ("C1", "10035"): "APPROVED",
        ("C1", "10999"): "REJECTED",
    }
    c1_row, c2_row = together["campaigns"]
    assert (c1_row["status"], c1_row["rejection_reason"]) == ("ACTIVE", "OPT_IN")
    assert (c2_row["brand_id"], c2_row["share_status"]) == ("B2", "ACCEPTED")
    assert [(b["brand_id"], b["tenant"], b["status"]) for b in together["brands"]] == [
        ("B1", TENANT, "VERIFIED"),
        ("B2", TENANT, None),
    ]
    assert sorted(n["kind"] for n in together["notifications"]) == [
        "brand_verified",
        "campaign_approved",
        "campaign_rejected",
        "vetting_complete",
    ]
    # Every event belongs to its brand's owner; the share event came before C2 had a brand
    # (the second round, the replay, finds it). The ignored one is nobody's business.
    first_round = together["owners"][:10]
    assert first_round == [(i, None if i == 16 else TENANT) for i in range(10, 20)]


ids = {
    "brandId": st.sampled_from(["B1", "B1", "B2", None]),
    "hour": st.one_of(st.none(), st.integers(0, 4)),
    "origin": st.sampled_from(["webhook", "polling", "replay"]),
}
campaign_ids = ids | {"campaignId": st.sampled_from(["C1", "C1", "C2", "C3", None])}
status_words = ["APPROVED", "REJECTED", "REVIEW", "SUSPENDED", "PENDING", "SOMETHING_NEW"]
step = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "BRAND_ADD",
                    "BRAND_UPDATE",
                    "BRAND_IDENTITY_STATUS_UPDATE",
                    "BRAND_SCORE_UPDATE",
                    "BRAND_DELETE",
                    "BRAND_FEEDBACK",
                ]
            )
        },
        optional=ids
        | {
            "brandIdentityStatus": st.sampled_from(["VERIFIED", "UNVERIFIED", "VETTED_VERIFIED"]),
            "displayName": st.sampled_from(["Acme", "Acme Telecom"]),
            "trustScore": st.integers(0, 100),
            "campaignId": st.sampled_from(["C1", "C3"]),  # the owner is then its campaign's
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "CAMPAIGN_ADD",
                    "CAMPAIGN_UPDATE",
                    "CAMPAIGN_EXPIRED",
                    "CAMPAIGN_RESUBMISSION",
                    "CAMPAIGN_SHARE_ADD",
                    "CAMPAIGN_SHARE_ACCEPT",
                    "CAMPAIGN_BILLED",
                ]
            )
        },
        optional=campaign_ids
        | {
            "status": st.sampled_from(["ACTIVE", "REVIEW"]),
            "usecase": st.sampled_from(["MIXED", "MARKETING"]),
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "MNO_CAMPAIGN_OPERATION_APPROVED",
                    "MNO_CAMPAIGN_OPERATION_REJECTED",
                    "MNO_CAMPAIGN_OPERATION_REVIEW",
                    "MNO_CAMPAIGN_OPERATION_SUSPENDED",
                    "MNO_CAMPAIGN_OPERATION_UNSUSPENDED",
                ]
            )
        },
        optional=campaign_ids
        | {
            "mnoStatuses": st.dictionaries(st.sampled_from(MNOS), st.sampled_from(status_words)),
            "mnoId": st.sampled_from(MNOS),
            "rejectionReason": st.sampled_from(["OPT_IN", "CONTENT"]),
        },
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "EVP_REPORT_SCORE",
                    "EVP_REPORT_FAIL",
                    "EVP_REPORT_UPDATE",
                    "BRAND_AUTHPLUS_VERIFICATION_COMPLETE",
                    "BRAND_AUTHPLUS_VERIFICATION_FAILED",
                    "BRAND_EMAIL_2FA_SEND",
                ]
            )
        },
        optional=ids
        | {
            "vettingId": st.sampled_from(["V1", "V2"]),
            "vettingScore": st.integers(0, 100),
            "vettingStatus": st.sampled_from(["SCORED", "FAILED"]),
            "campaignId": st.sampled_from(["C1", "C2"]),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["CSP_ACTIVE", "BRAND_SOMETHING_NEW"])}, optional=campaign_ids
    ),
    st.integers(0, 30),  # the event at this position (modulo) is handled again (same id)
    st.tuples(st.just("again"), st.integers(0, 30)),  # delivered again (another id)
)


def sequence(steps: Sequence[dict[str, Any] | int | tuple[str, int]]) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    for s in steps:
        if isinstance(s, int | tuple):
            if events:
                position = s if isinstance(s, int) else s[1]
                earlier = events[position % len(events)]
                if isinstance(s, tuple):
                    earlier = replace(earlier, id=100 + len(events))
                events.append(earlier)
            continue
        fields = dict(s)
        event_type = fields.pop("type")
        hour = fields.pop("hour", 1)
        origin = fields.pop("origin", "webhook")
        events.append(tcr_event(100 + len(events), event_type, hour, origin, **fields))
    return events


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(step, min_size=1, max_size=14),
    st.sampled_from(["none", "nobody", "globex"]),
    st.sampled_from([TENANT, None]),
)
def test_any_batch_gives_what_its_events_give_one_at_a_time(
    engine: Engine,
    steps: list[dict[str, Any] | int | tuple[str, int]],
    known: str,
    tenant: str | None,
) -> None:
    events = sequence(steps)
    assert world(engine, events, together=True, known=known, tenant=tenant) == world(
        engine, events, together=False, known=known, tenant=tenant
    )


# -- (2) statements: a few per batch, whatever its size ---------------------------------------


def of_entities(first: int, count: int, hour: int) -> list[StoredEvent]:
    """For each of `count` brands and campaigns: the brand verified, two carriers deciding on
    its campaign (each an e-mail), the campaign updated and billed, a vetting report scored,
    and a share event naming another campaign only."""
    events: list[StoredEvent] = []
    for n in range(first, first + count):
        brand: dict[str, Any] = {"brandId": f"B{n}"}
        campaign: dict[str, Any] = brand | {"campaignId": f"C{n}"}
        statuses = {"10017": "APPROVED", "10035": "REJECTED"} if hour % 2 else {"10017": "REVIEW"}
        steps: list[tuple[str, dict[str, Any]]] = [
            ("BRAND_IDENTITY_STATUS_UPDATE", brand | {"brandIdentityStatus": "VERIFIED"}),
            ("MNO_CAMPAIGN_OPERATION_APPROVED", campaign | {"mnoStatuses": statuses}),
            ("CAMPAIGN_UPDATE", campaign | {"usecase": "MIXED"}),
            ("CAMPAIGN_BILLED", campaign),
            ("EVP_REPORT_SCORE", brand | {"vettingId": "V1", "vettingScore": 80}),
            ("CAMPAIGN_SHARE_ADD", {"campaignId": f"S{n}"}),
        ]
        for event_type, fields in steps:
            events.append(tcr_event(10 * n + len(events) % 6, event_type, hour, **fields))
    return events


def statements_for(engine: Engine, events: Sequence[StoredEvent]) -> int:
    with engine.begin() as tx, counted(engine) as statements:
        outcomes = tendlc.apply_batch(events, tx, TENANT)
    assert set(outcomes.values()) == {Outcome.DONE}
    return len(statements)


def test_a_batch_of_distinct_entities_takes_as_many_statements_for_2_as_for_40(
    engine: Engine,
) -> None:
    # New brands, campaigns, carriers, vetting reports: created, then changed.
    assert statements_for(engine, of_entities(1000, 2, 1)) == statements_for(
        engine, of_entities(2000, 40, 1)
    )
    # The same entities again, known now (and their carriers change again).
    assert statements_for(engine, of_entities(1000, 2, 2)) == statements_for(
        engine, of_entities(2000, 40, 2)
    )
    with engine.connect() as conn:
        assert len(conn.execute(select(brands)).all()) == 42
        assert len(conn.execute(select(campaign_carriers)).all()) == 2 * 42
        # Verified once, approved and rejected once per campaign, vetting completed once.
        assert len(conn.execute(select(notifications)).all()) == 4 * 42
