"""WhatsApp templates, a claimed batch at once (`apply_batch`): the same outcomes, rows and live
changes as handling its events one at a time in the same order, with a number of statements
that does not grow with the batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, select

from hookyard.domain.whatsapp import campaigns as whatsapp_campaigns
from hookyard.domain.whatsapp import service as whatsapp
from hookyard.domain.whatsapp.tables import (
    accounts,
    campaign_log,
    campaigns,
    template_history,
    templates,
)
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.notify.tables import notifications
from hookyard.providers.base import Outcome, StoredEvent
from hookyard.runtime import Runtime
from tests.support import counted

WABA, OTHER_WABA = "102290129340398", "102290129340399"
PROMO, WELCOME = "594425479261596", "594425479261597"
FRESH = "594425479261598"  # not known before the events
T0 = 1763800000
TENANT = "acme"  # the Meta source's tenant: it owns a WABA first seen without one

STATUSES = ["APPROVED", "PAUSED", "DISABLED", "REJECTED", "REINSTATED", "PENDING", "FLAGGED"]
QUALITIES = ["GREEN", "YELLOW", "RED", "UNKNOWN"]


def meta_event(
    event_id: int,
    template: str,
    *,
    status: str | None = None,
    quality: str | None = None,
    minute: int | None = 0,
    name: str = "order_update",
    tenant: str | None = TENANT,
    waba: str = WABA,
    origin: str = "webhook",
) -> StoredEvent:
    """A stored status (or, with `quality`, quality) event sent at T0 + `minute` minutes
    (None: without a provider time)."""
    value: dict[str, Any] = {
        "message_template_id": int(template),
        "message_template_name": name,
        "message_template_language": "en_US",
    }
    if quality is None:
        field = whatsapp.STATUS_FIELD
        value |= {"event": status or "APPROVED", "reason": f"reason {event_id}"}
    else:
        field = whatsapp.QUALITY_FIELD
        value |= {"previous_quality_score": "GREEN", "new_quality_score": quality}
    sent = None if minute is None else T0 + 60 * minute
    return StoredEvent(
        id=event_id,
        source="meta",
        provider="meta",
        tenant=tenant,
        event_type=field,
        dedup_key=f"sha256:{event_id}",
        entity_key=f"template:{template}",
        provider_ts=None if sent is None else datetime.fromtimestamp(sent, UTC),
        payload={"waba_id": waba, "time": sent, "field": field, "value": value},
        headers={},
        attempts=1,
        origin=origin,
    )


# -- one world: the WABA, two approved templates with campaigns, then the events -------------


def start(tx: Connection) -> None:
    """What every world starts from: both templates approved, two campaigns on PROMO and one
    on WELCOME, all active."""
    for event_id, template in ((1, PROMO), (2, WELCOME)):
        assert whatsapp.apply(meta_event(event_id, template), tx) == Outcome.DONE
    ids = dict(tx.execute(select(templates.c.meta_template_id, templates.c.id)).all())
    for name, template in (("spring", PROMO), ("summer", PROMO), ("onboarding", WELCOME)):
        whatsapp_campaigns.add_campaign(tx, ids[template], name)


@contextmanager
def published() -> Iterator[list[Change]]:
    """The live changes the batches publish (still published, to the rolled-back transaction)."""
    changes: list[Change] = []

    def record(tx: Connection, *new: Change) -> None:
        changes.extend(new)
        publish(tx, *new)

    with mock.patch("hookyard.domain.batch.publish", record):
        yield changes


def world(engine: Engine, events: Sequence[StoredEvent], *, together: bool) -> dict[str, Any]:
    """Handle `events` (after `start`) one at a time or as one batch, in a transaction that is
    rolled back; the outcome of each event in order, the rows and the live changes."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            start(conn)
            with published() as changes:
                if together:
                    by_id = whatsapp.apply_batch(events, conn, TENANT)
                    outcomes = [by_id[e.id] for e in events]
                else:
                    outcomes = [whatsapp.apply(e, conn, TENANT) for e in events]
            return {"outcomes": outcomes, **snapshot(conn, changes)}
        finally:
            tx.rollback()


# Times taken from the clock when an event is handled (a batch has one) are left out; the
# providers' times are compared. Row ids are named by what they stand for (PostgreSQL's
# sequences move on in a rolled-back world).
def snapshot(conn: Connection, changes: Sequence[Change]) -> dict[str, Any]:
    def table(t: Any, *order: Any) -> list[dict[str, Any]]:
        query = select(t).order_by(*(order or (t.c.id,)))
        return [dict(row) for row in conn.execute(query).mappings()]

    wabas = {a["id"]: a["waba_id"] for a in table(accounts)}
    template_rows = table(templates, templates.c.meta_template_id)
    meta_ids = {t["id"]: t["meta_template_id"] for t in template_rows}
    campaign_rows = table(campaigns)
    names = {c["id"]: c["name"] for c in campaign_rows}
    now_times = ("created_at", "updated_at", "last_synced_at", "recorded_at", "paused_at", "at")

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in row.items() if k not in now_times and k != "id"}
        for key, names_of in (
            ("account_id", wabas),
            ("template_id", meta_ids),
            ("campaign_id", names),
            ("entity_id", meta_ids),
        ):
            if key in row:
                row[key] = names_of[row[key]]
        if "dedup_key" in row:  # kind:entity_type:<template row id>:event:<event id>
            kind, entity, template_id, rest = row["dedup_key"].split(":", 3)
            row["dedup_key"] = f"{kind}:{entity}:{meta_ids[int(template_id)]}:{rest}"
        return row

    def live(change: Change) -> dict[str, Any]:
        message = {k: v for k, v in change.message().items() if k != "at"}
        by_kind = {ChangeKind.WHATSAPP_TEMPLATE: meta_ids, ChangeKind.WHATSAPP_CAMPAIGN: names}
        message["id"] = by_kind[change.kind][int(change.id)]
        if "template_id" in message["data"]:
            message["data"]["template_id"] = meta_ids[message["data"]["template_id"]]
        return message

    return {
        "accounts": [plain(a) for a in table(accounts)],
        "templates": [plain(t) for t in template_rows],
        "history": [plain(h) for h in table(template_history)],
        "campaigns": [plain(c) for c in campaign_rows],
        "campaign_log": [plain(c) for c in table(campaign_log)],
        "notifications": [plain(n) for n in table(notifications)],
        "live": [live(c) for c in changes],
    }


# -- (1) a batch of events of the same templates = the same events one at a time -----------


def test_a_batch_gives_what_its_events_give_one_at_a_time(runtime: Runtime) -> None:
    """A concrete case: PROMO approved, paused, a late APPROVED (sent before the pause),
    the pause delivered again, a RED quality, reinstated, and WELCOME disabled."""
    events = [
        meta_event(10, PROMO, status="PAUSED", minute=2),
        meta_event(11, PROMO, status="APPROVED", minute=1),  # late: superseded
        meta_event(12, PROMO, quality="RED", minute=1),  # quality orders on its own
        meta_event(10, PROMO, status="PAUSED", minute=2),  # replayed in the same batch
        meta_event(13, PROMO, status="REINSTATED", minute=3, name="order_update_v2"),
        meta_event(14, WELCOME, status="DISABLED", minute=1),
        meta_event(15, WELCOME, status="DISABLED", minute=1, tenant="globex"),  # not its own
    ]
    alone = world(runtime.engine, events, together=False)
    together = world(runtime.engine, events, together=True)
    assert together == alone
    assert together["outcomes"] == [
        Outcome.DONE,
        Outcome.SUPERSEDED,
        Outcome.DONE,
        Outcome.DONE,
        Outcome.DONE,
        Outcome.DONE,
        Outcome.IGNORED,
    ]
    promo, welcome = together["templates"]
    assert (promo["status"], promo["quality"], promo["name"]) == (
        "APPROVED",
        "RED",
        "order_update_v2",
    )
    assert welcome["status"] == "DISABLED"
    assert [(c["name"], c["status"], c["paused_by_event"]) for c in together["campaigns"]] == [
        ("spring", "paused", 10),
        ("summer", "paused", 10),
        ("onboarding", "paused", 14),
    ]
    assert [(c["campaign_id"], c["action"], c["event_id"]) for c in together["campaign_log"]] == [
        ("spring", "paused", 10),
        ("summer", "paused", 10),
        ("spring", "template_reinstated", 13),
        ("summer", "template_reinstated", 13),
        ("onboarding", "paused", 14),
    ]
    # The log names the template as the reinstating event found it.
    assert together["campaign_log"][2]["detail"] == "template order_update reinstated; still paused"
    assert len(together["history"]) == 2 + 5  # the two of `start`, one per event handled


step = st.one_of(
    st.fixed_dictionaries(
        {"status": st.sampled_from(STATUSES)},
        optional={
            "template": st.sampled_from([PROMO, PROMO, WELCOME, FRESH]),
            "minute": st.one_of(st.none(), st.integers(0, 5)),
            "name": st.sampled_from(["order_update", "order_update_v2"]),
            "tenant": st.sampled_from([TENANT, None, "globex"]),
            "waba": st.sampled_from([WABA, OTHER_WABA]),
            "origin": st.sampled_from(["webhook", "polling", "replay"]),
        },
    ),
    st.fixed_dictionaries(
        {"quality": st.sampled_from(QUALITIES)},
        optional={
            "template": st.sampled_from([PROMO, WELCOME]),
            "minute": st.one_of(st.none(), st.integers(0, 5)),
            "tenant": st.sampled_from([TENANT, None]),
        },
    ),
    st.integers(0, 20),  # the event at this position (modulo) is delivered again
)


def sequence(steps: Sequence[dict[str, Any] | int]) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    for s in steps:
        if isinstance(s, int):
            if events:
                events.append(events[s % len(events)])
            continue
        options = dict(s)
        template = options.pop("template", PROMO)
        events.append(meta_event(100 + len(events), template, **options))
    return events


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=12))
def test_any_batch_gives_what_its_events_give_one_at_a_time(
    runtime: Runtime, steps: list[dict[str, Any] | int]
) -> None:
    events = sequence(steps)
    assert world(runtime.engine, events, together=True) == world(
        runtime.engine, events, together=False
    )


# -- (2) statements: a few per batch, whatever its size ---------------------------------------


def statements_for(engine: Engine, events: Sequence[StoredEvent]) -> int:
    with engine.begin() as tx, counted(engine) as statements:
        outcomes = whatsapp.apply_batch(events, tx, TENANT)
    assert set(outcomes.values()) == {Outcome.DONE}
    return len(statements)


def of_templates(first: int, count: int, event_id: int, **kind: str) -> list[StoredEvent]:
    return [meta_event(event_id + i, str(first + i), minute=1, **kind) for i in range(count)]


def test_a_batch_of_distinct_templates_takes_as_many_statements_for_3_as_for_60(
    runtime: Runtime,
) -> None:
    engine = runtime.engine
    statements_for(engine, of_templates(1, 1, 1, status="APPROVED"))  # the WABA exists now

    # New templates: each is created, rejected and turns RED (an e-mail).
    def new(first: int, count: int) -> int:
        events = of_templates(first, count, first, status="REJECTED")
        events += of_templates(first, count, first + 500, quality="RED")
        return statements_for(engine, events)

    assert new(1000, 3) == new(2000, 60)

    # Known templates: approved again (nothing to tell).
    def known(first: int, count: int) -> int:
        return statements_for(engine, of_templates(first, count, first + 100, status="APPROVED"))

    assert known(1000, 3) == known(2000, 60)
    with engine.connect() as conn:
        assert len(conn.execute(select(templates).where(templates.c.quality == "RED")).all()) == 63
        assert len(conn.execute(select(notifications)).all()) == 63

    # Templates with campaigns, paused (their campaigns with them), then reinstated: the
    # campaigns are read once for the batch, not once per event.
    with engine.begin() as tx:
        ids = dict(tx.execute(select(templates.c.meta_template_id, templates.c.id)).all())
        for first, count in ((1000, 3), (2000, 60)):
            for i in range(count):
                whatsapp_campaigns.add_campaign(tx, ids[str(first + i)], f"campaign {first + i}")

    def pause_and_reinstate(first: int, count: int) -> int:
        events = of_templates(first, count, first + 200, status="PAUSED")
        events += [
            meta_event(first + 300 + i, str(first + i), status="REINSTATED", minute=2)
            for i in range(count)
        ]
        return statements_for(engine, events)

    assert pause_and_reinstate(1000, 3) == pause_and_reinstate(2000, 60)
    with engine.connect() as conn:
        paused = conn.execute(select(campaigns).where(campaigns.c.status == "paused")).all()
        logged = conn.execute(select(campaign_log)).all()
    assert len(paused) == 63 and len(logged) == 2 * 63  # paused, then told of the reinstatement
