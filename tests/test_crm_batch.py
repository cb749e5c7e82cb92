"""HubSpot company events handled as a claimed batch: the same outcomes, rows and live changes
as one at a time in the same order, with a number of statements that does not grow with the
batch."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, select, update

from hookyard.app import create_app
from hookyard.domain import batch as batch_module
from hookyard.domain.crm import service as crm
from hookyard.domain.crm.rules import RULES
from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts
from hookyard.live.change import Change
from hookyard.providers.base import Outcome, StoredEvent
from hookyard.runtime import Runtime
from hookyard.testing import simulate
from tests.support import counted

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PUSHED_NAME = "Ringer Pushed"  # the name we last sent HubSpot: its webhook back is an echo
_companies = itertools.count(7_000_000)
_event_ids = itertools.count(5_000_000)


@dataclass(frozen=True)
class Spec:
    """One HubSpot event, independent of which customer it names."""

    kind: str
    prop: str | None = None
    value: Any = None
    minutes: int = 0  # provider time: T0 + minutes (the customer's own fields date from T0)
    change_source: str | None = "CRM_UI"
    tenant: str | None = None


def stored(spec: Spec, company: int, event_id: int) -> StoredEvent:
    at = T0 + timedelta(minutes=spec.minutes)
    payload: dict[str, Any] = {
        "eventId": event_id,
        "subscriptionType": spec.kind,
        "objectId": company,
        "occurredAt": int(at.timestamp() * 1000),
    }
    if spec.prop is not None:
        payload |= {"propertyName": spec.prop, "propertyValue": spec.value}
    if spec.change_source is not None:
        payload["changeSource"] = spec.change_source
    return StoredEvent(
        id=event_id,
        source="hubspot",
        provider="hubspot",
        tenant=spec.tenant,
        event_type=spec.kind,
        dedup_key=f"event:{event_id}",
        entity_key=f"company:{company}",
        provider_ts=at,
        payload=payload,
        headers={},
        attempts=1,
        origin="webhook",
    )


def new_customer(tx: Connection, *, field_states: bool = True) -> tuple[int, int]:
    """A linked customer of tenant acme (its fields ours since T0, our name pushed); its id
    and HubSpot company id."""
    company = next(_companies)
    customer_id = crm.create_customer(
        tx, "acme", "Ringer Networks", credit_limit="1000", services=["voice"],
        hubspot_company_id=company, at=T0,
    )  # fmt: skip
    tx.execute(
        update(field_state)
        .where(field_state.c.customer_id == customer_id, field_state.c.field == "company_name")
        .values(pushed_value=PUSHED_NAME, pushed_at=T0)
    )
    if not field_states:  # a customer from before field states, or a partial import
        tx.execute(delete(field_state).where(field_state.c.customer_id == customer_id))
    return customer_id, company


# -- one entity: a batch is the same as one at a time ------------------------------------------

PROPERTIES = {
    "name": ["Ringer Networks", "Ringer LLC", PUSHED_NAME, ""],
    "hookyard_status": ["active", "suspended", "churned"],
    "hookyard_customer_type": ["business", "residential"],
    "hookyard_credit_limit": ["1000", "2500.5", "", "lots"],
    "hookyard_current_balance": ["12.50", "99"],
    "hookyard_services": ["voice", "voice;messaging", "fax"],
    "hookyard_ban": ["ZZ000000000"],
    "not_a_rule": ["x"],
}

property_changes = st.sampled_from(sorted(PROPERTIES)).flatmap(
    lambda prop: st.builds(
        Spec,
        kind=st.just("company.propertyChange"),
        prop=st.just(prop),
        value=st.sampled_from(PROPERTIES[prop]),
        minutes=st.integers(-2, 4),  # ties, older than ours, newer than ours
        change_source=st.sampled_from(["CRM_UI", "INTEGRATION", None]),
        tenant=st.sampled_from([None, None, None, "acme", "globex"]),
    )
)
other_events = st.builds(
    Spec,
    kind=st.sampled_from(["company.deletion", "company.creation"]),
    minutes=st.integers(-2, 4),
)
# A step is a new event, the replay of an earlier one (same event) or a copy of an earlier
# one's content (another event: the poller found what a webhook already said).
steps = st.lists(
    st.one_of(
        property_changes,
        property_changes,
        other_events,
        st.tuples(st.sampled_from(["replay", "copy"]), st.integers(0, 30)),
    ),
    min_size=1,
    max_size=14,
)


class World:
    """One customer and the events handed to it, with what they did."""

    def __init__(self, tx: Connection, live: list[Change], *, field_states: bool) -> None:
        self.tx = tx
        self.live = live
        self.customer_id, self.company = new_customer(tx, field_states=field_states)
        self.events: list[StoredEvent] = []
        self.labels: dict[int, int] = {}  # event id -> the step that first named it
        self.batched: set[int] = set()

    def event(self, step: Spec | tuple[str, int], *, batch: bool = False) -> StoredEvent:
        """The step's event. A claimed batch holds an event once: in one, a replay repeats an
        event handled before it (else it is a copy)."""
        if isinstance(step, Spec):
            made = stored(step, self.company, next(_event_ids))
        else:
            how, index = step
            if not self.events:  # nothing to repeat yet: a new event
                return self.event(Spec("company.propertyChange", "name", "Ringer LLC", index))
            earlier = self.events[index % len(self.events)]
            if how == "replay" and batch and earlier.id in self.batched:
                how = "copy"
            made = earlier if how == "replay" else replace(earlier, id=next(_event_ids))
        self.labels.setdefault(made.id, len(self.events))
        self.events.append(made)
        if batch:
            self.batched.add(made.id)
        return made

    def label(self, event_id: int | None) -> int | None:
        return None if event_id is None else self.labels[event_id]

    def state(self) -> dict[str, Any]:
        """What the events did, naming events by step and without the customer's ids."""
        row = self.tx.execute(
            select(customers).where(customers.c.id == self.customer_id)
        ).mappings().one()  # fmt: skip
        fields = {}
        for s in self.tx.execute(
            select(field_state).where(field_state.c.customer_id == self.customer_id)
        ).mappings():
            ours = None if s["field"] == "ban" else s["our_value"]  # each world has its BAN
            fields[s["field"]] = (ours, s["our_changed_at"], s["their_value"],
                                  s["their_changed_at"], self.label(s["their_event_id"]),
                                  s["pushed_value"])  # fmt: skip
        conflicts = sorted(
            (k["field"], k["our_value"], k["their_value"], self.label(k["event_id"]),
             k["provider_ts"], k["tenant"], k["resolution"], k["resolved_by"])
            for k in self.tx.execute(
                select(sync_conflicts).where(sync_conflicts.c.customer_id == self.customer_id)
            ).mappings()
        )  # fmt: skip
        columns = {  # the BAN aside: each world's customer has its own
            c: row[c]
            for c in (*(c for r in RULES for c in r.columns(None)), "hubspot_deleted_at")
            if c != "ban"
        }
        live = [
            (
                c.status,
                c.tenant,
                {**c.data, "ban": None, "event_id": self.label(c.data.get("event_id"))},
            )
            for c in self.live
            if c.id == self.customer_id
        ]
        return {"customer": columns, "sync_source": row["sync_source"], "fields": fields,
                "conflicts": conflicts, "live": live}  # fmt: skip


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> list[Change]:
    """Every live change the batches publish (still published)."""
    published: list[Change] = []
    real = batch_module.publish

    def recording(tx: Connection, *changes: Change) -> None:
        published.extend(changes)
        real(tx, *changes)

    monkeypatch.setattr(batch_module, "publish", recording)
    return published


def test_a_batch_of_one_customer_is_the_same_as_one_at_a_time(
    runtime: Runtime, live: list[Change]
) -> None:
    @given(
        before=steps,
        batch=steps,
        field_states=st.booleans(),
    )
    @settings(max_examples=60, suppress_health_check=list(HealthCheck))
    def run(
        before: list[Spec | tuple[str, int]],
        batch: list[Spec | tuple[str, int]],
        field_states: bool,
    ) -> None:
        live.clear()
        # One transaction per example, rolled back: each starts from the same rows.
        with runtime.engine.connect() as conn:
            single = World(conn, live, field_states=field_states)
            together = World(conn, live, field_states=field_states)
            # Events handled earlier (the replays' first handling), one at a time in both.
            for step in before:
                for world in (single, together):
                    crm.apply(world.event(step), conn, "acme")
            alone = [crm.apply(single.event(step, batch=True), conn, "acme") for step in batch]
            events = [together.event(step, batch=True) for step in batch]
            outcomes = crm.apply_batch(events, conn, "acme")
            assert [outcomes[e.id] for e in events] == alone
            assert together.state() == single.state()
            conn.rollback()

    run()


def test_the_batch_keeps_the_order_of_a_customers_events(runtime: Runtime) -> None:
    """In and out of provider-time order, with a replayed event: each event sees what the
    batch's earlier events of the customer did."""
    with runtime.engine.begin() as tx:
        customer_id, company = new_customer(tx)
        change = "company.propertyChange"
        # HubSpot's name in the very millisecond of ours: the rule cannot decide.
        first_conflict = stored(Spec(change, "name", "Ringer Tie", 0), company, next(_event_ids))
        assert crm.apply(first_conflict, tx, "acme") == Outcome.DONE
        events = [
            stored(spec, company, next(_event_ids))
            for spec in (
                Spec(change, "hookyard_credit_limit", "3000", 5),
                Spec(change, "hookyard_credit_limit", "100", 3),  # older than the one before
                Spec(change, "hookyard_status", "churned", 2),  # ours: re-pushed
                Spec(change, "name", PUSHED_NAME, 2, "INTEGRATION"),  # our push coming back
                Spec(change, "hookyard_status", "active", 3),  # agreement
                Spec(change, "name", "Ringer LLC", 6),  # newer: applied, closes the conflict
                Spec(change, "hookyard_current_balance", "1", 6),  # ours: re-pushed
                Spec("company.deletion", minutes=7),
            )
        ]
        events.insert(4, first_conflict)  # replayed: older than the name seen since
        outcomes = crm.apply_batch(events, tx, "acme")
        assert [outcomes[e.id] for e in events] == [
            Outcome.DONE,
            Outcome.SUPERSEDED,
            Outcome.DONE,
            Outcome.IGNORED,
            Outcome.SUPERSEDED,
            Outcome.DONE,
            Outcome.DONE,
            Outcome.DONE,
            Outcome.DONE,
        ]
        row = tx.execute(select(customers).where(customers.c.id == customer_id)).mappings().one()
        assert (row["credit_limit_cents"], row["company_name"], row["status"]) == (
            300000,
            "Ringer LLC",
            "active",
        )
        assert row["hubspot_deleted_at"] == T0 + timedelta(minutes=7)
        status = tx.execute(
            select(field_state).where(
                field_state.c.customer_id == customer_id, field_state.c.field == "status"
            )
        ).mappings().one()  # fmt: skip
        assert (status["their_value"], status["their_event_id"]) == ("active", events[5].id)
        # The conflict closed by hookyard, by the newer name.
        k = sync_conflicts.c
        found = tx.execute(select(k.event_id, k.resolution, k.resolved_by).order_by(k.id)).all()
        assert [tuple(k) for k in found] == [(first_conflict.id, "superseded", "hookyard")]
        # The fields we own that HubSpot changed: one outbox row, to push ours again.
        queued = tx.execute(select(outbox.c.customer_id, outbox.c.fields, outbox.c.status)).all()
        assert [tuple(q) for q in queued] == [
            (customer_id, ["current_balance", "status"], "pending")
        ]


# -- many customers: a few statements whatever the batch's size ----------------------------


def mixed_batch(tx: Connection, size: int) -> list[StoredEvent]:
    """`size` events of as many customers (made here), every kind of change among them."""
    change = "company.propertyChange"
    kinds = [
        Spec(change, "name", "Ringer LLC", 5),  # latest, newer than ours: applied
        Spec(change, "name", "Ringer Old", -1),  # latest, older than ours: superseded
        Spec(change, "hookyard_credit_limit", "2000", 5),  # theirs: applied
        Spec(change, "hookyard_current_balance", "7", 5),  # ours: re-pushed
        Spec(change, "hookyard_status", "suspended", 5),  # ours: re-pushed
        Spec(change, "name", "Ringer Tie", 0),  # latest, at the time of ours: a conflict
        Spec(change, "name", "Ringer Networks", 5),  # agreement: closes an open conflict
        Spec(change, "name", PUSHED_NAME, 5, "INTEGRATION"),  # an echo: ignored
        Spec("company.deletion", minutes=5),
        Spec(change, "name", "Nobody's", 5),  # a company no customer is linked to: ignored
    ]
    events = []
    for i in range(size):
        spec = kinds[i % len(kinds)]
        if spec.value == "Nobody's":
            events.append(stored(spec, next(_companies), next(_event_ids)))
            continue
        _, company = new_customer(tx)
        if spec.value == "Ringer Networks":  # the open conflict this agreement closes
            raised = replace(spec, value="Ringer Tie", minutes=0)
            crm.apply(stored(raised, company, next(_event_ids)), tx, "acme")
        events.append(stored(spec, company, next(_event_ids)))
    return events


def count_statements(runtime: Runtime, size: int) -> tuple[int, dict[int, Outcome]]:
    with runtime.engine.begin() as tx:
        events = mixed_batch(tx, size)
    with counted(runtime.engine) as statements, runtime.engine.begin() as tx:
        outcomes = crm.apply_batch(events, tx, "acme")
    return len([s for s in statements if not s.startswith(("BEGIN", "COMMIT"))]), outcomes


def test_the_statements_of_a_batch_do_not_grow_with_its_size(runtime: Runtime) -> None:
    small, small_outcomes = count_statements(runtime, 18)
    large, large_outcomes = count_statements(runtime, 99)
    assert set(small_outcomes.values()) == set(large_outcomes.values()) == set(Outcome)
    assert small == large
    assert large < 16  # reads and writes per table, not per event


# -- through the worker ----------------------------------------------------------------------


def test_a_claimed_batch_through_the_worker(runtime: Runtime) -> None:
    """One delivery of several customers' events, claimed and handled together: each event's
    outcome, the customer's tenant on events from a source without one, the effects."""
    with runtime.engine.begin() as tx:
        first_id, first = new_customer(tx)
        second_id, second = new_customer(tx)
    change = "company.propertyChange"
    specs = [
        (first, Spec(change, "hookyard_credit_limit", "5000", 3)),
        (second, Spec(change, "hookyard_status", "churned", 3)),
        (first, Spec(change, "hookyard_credit_limit", "4000", 2)),  # older
        (next(_companies), Spec(change, "name", "Unlinked", 3)),
        (second, Spec("company.deletion", minutes=4)),
    ]
    items = [stored(spec, company, next(_event_ids)).payload for company, spec in specs]
    source = runtime.sources.by_name()["hubspot"]
    delivery = simulate.hubspot_delivery(
        source.config.client_secret,  # type: ignore[attr-defined]
        "http://testserver" + source.config.path,
        items,
    )
    with TestClient(create_app(runtime, run_workers=False)) as client:
        response = client.post(source.config.path, content=delivery.body,
                               headers=delivery.headers)  # fmt: skip
        assert response.status_code == 200
        ids = response.json()["events"]
        assert runtime.make_worker().drain() == len(specs)
    done = [runtime.store.get(i) for i in ids]
    assert [(e["status"], e["tenant"]) for e in done] == [  # type: ignore[index]
        ("done", "acme"),
        ("done", "acme"),
        ("superseded", "acme"),
        ("ignored", None),
        ("done", "acme"),
    ]
    with runtime.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(customers)).mappings()}
        assert rows[first_id]["credit_limit_cents"] == 500000
        assert rows[second_id]["hubspot_deleted_at"] == T0 + timedelta(minutes=4)
        # The status is ours: not applied, no conflict, pushed again.
        assert rows[second_id]["status"] == "active"
        assert conn.execute(select(sync_conflicts)).first() is None
        queued = conn.execute(select(outbox.c.customer_id, outbox.c.fields)).all()
        assert [tuple(q) for q in queued] == [(second_id, ["status"])]
