"""What a HubSpot company event does to customers, by the declarative rules of rules.py.

`company.propertyChange` on a linked company (customers.hubspot_company_id):
- older than the last HubSpot change of that field already seen → SUPERSEDED, nothing changes;
- otherwise HubSpot's value and time are recorded in field_state (their side), then
  - unknown property, unusable value → IGNORED;
  - our own change coming back (the value we last pushed, changed through the API) →
    IGNORED: no sync loop;
  - their value equals ours → DONE (in agreement; open conflicts of the field are closed);
  - a field we own (authority `ours`) → not applied; ours is queued to be pushed again and
    the sync log says so (DONE): automatic, no conflict;
  - authority `hubspot` → applied (DONE);
  - authority `latest` → applied when the change is newer than our side's last change,
    SUPERSEDED when older (our newer value stands and is what we publish); a change in the
    same millisecond as ours is the one case the rule cannot decide: a conflict a person
    resolves (DONE), one per event and field, so a redelivered or replayed event adds none.
    A newer conflict of the same field closes older open ones (resolution `superseded`).
An unlinked company creates no customer (IGNORED; sync/hubspot.py links customers: when it
pushes them, when a person links one to a company, and when reconciliation finds a company
carrying one of our BANs).
`company.creation` → IGNORED (no customer to link yet). `company.deletion` → the customer
keeps its row and is flagged (`hubspot_deleted_at`).

A worker hands over its claimed events together (`apply_batch`): they apply in order, as if
one at a time, with a few statements for the whole batch. Everything runs in the caller's
transaction and never commits.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, insert, select, update

from hookyard.accounts import identity
from hookyard.db.rows import insert_missing, locked
from hookyard.domain.batch import Batch
from hookyard.domain.common import SyncSource, is_older
from hookyard.domain.crm import tenancy
from hookyard.domain.crm.outbox import repush_many
from hookyard.domain.crm.rules import (
    BY_FIELD,
    RULES,
    Authority,
    FieldRule,
    OnTheirChange,
    UnusableValue,
    active,
)
from hookyard.domain.crm.tables import customers, field_state, sync_conflicts
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.providers.base import Outcome, StoredEvent

PROPERTY_CHANGE = "company.propertyChange"
CREATION = "company.creation"
DELETION = "company.deletion"

BAN_PATTERN = re.compile(r"[A-Z]{2}[0-9]{9}")
SYSTEM = "hookyard"


class Resolution(StrEnum):
    KEEP_OURS = "keep_ours"
    TAKE_THEIRS = "take_theirs"
    SUPERSEDED = "superseded"  # closed by hookyard when a newer change of the field came


class ResolveResult(StrEnum):
    RESOLVED = "resolved"
    ALREADY_RESOLVED = "already_resolved"
    NOT_FOUND = "not_found"


def generate_ban(tx: Connection) -> str:
    """A random unused BAN: two capital letters and nine digits (676 billion values)."""
    for _ in range(20):
        letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(2))
        ban = f"{letters}{secrets.randbelow(10**9):09d}"
        taken = tx.execute(select(customers.c.id).where(customers.c.ban == ban)).first()
        if taken is None and not identity.ban_taken(tx, ban):  # nor a tenant's, unlinked
            return ban
    raise RuntimeError("no unused BAN found in 20 tries")  # pragma: no cover


def create_customer(
    tx: Connection,
    tenant: str | None,
    company_name: str,
    *,
    status: str = "active",
    customer_type: str = "business",
    credit_limit: Decimal | str | None = None,
    current_balance: Decimal | str = "0",
    services: Iterable[str] = (),
    hubspot_company_id: str | int | None = None,
    ban: str | None = None,
    at: datetime | None = None,
    source: SyncSource = SyncSource.MANUAL,
) -> int:
    """A customer (a generated BAN unless given), with our side of every field set at `at`.
    The customer is a tenant: `tenant` (None: a new one, or the one holding the BAN) is
    created or linked with it (tenancy.py)."""
    now = datetime.now(UTC)
    at = at or now
    if ban is not None and not BAN_PATTERN.fullmatch(ban):
        raise ValueError(f"not a BAN: {ban!r}")
    ban = ban or generate_ban(tx)
    given: Mapping[str, Any] = {
        "ban": ban,
        "company_name": company_name,
        "status": status,
        "customer_type": customer_type,
        "credit_limit": None if credit_limit is None else str(credit_limit),
        "current_balance": str(current_balance),
        "services": ";".join(services),
    }
    values = {f: BY_FIELD[f].parse(v) for f, v in given.items()}
    row: dict[str, Any] = {}
    for rule in RULES:
        row.update(rule.columns(values[rule.field]))
    tenant = tenancy.tenant_for(tx, tenant, str(values["company_name"]), ban, now)
    customer_id = tx.execute(
        insert(customers)
        .values(
            tenant=tenant,
            hubspot_company_id=None if hubspot_company_id is None else str(hubspot_company_id),
            sync_source=source.value,
            created_at=now,
            updated_at=now,
            **row,
        )
        .returning(customers.c.id)
    ).scalar_one()
    tx.execute(
        insert(field_state),
        [
            {
                "customer_id": customer_id,
                "field": rule.field,
                "our_value": values[rule.field],
                "our_changed_at": at,
            }
            for rule in RULES
        ],
    )
    _live(tx, customer_id, "created")
    return int(customer_id)


def change_field(
    tx: Connection, customer_id: int, field: str, value: Any, *, at: datetime | None = None
) -> None:
    """Our side changes a field (a person, billing…): the row and field_state's our side."""
    rule = BY_FIELD[field]
    canonical = rule.parse(";".join(value) if isinstance(value, list | tuple) else value)
    now = datetime.now(UTC)
    customer = locked(tx, customers, customers.c.id == customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    _set_ours(tx, customer, rule, canonical, at or now, SyncSource.MANUAL, now)


def take_hubspot_value(
    tx: Connection, customer_id: int, field: str, value: str | None, at: datetime
) -> None:
    """HubSpot's value (canonical text) of a field it has the authority over becomes ours,
    on both sides of the field's state (seen by the sender or the reconciler, not a
    webhook)."""
    now = datetime.now(UTC)
    customer = locked(tx, customers, customers.c.id == customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    _set_ours(tx, customer, BY_FIELD[field], value, at, SyncSource.POLLING, now)
    tx.execute(
        update(field_state)
        .where(field_state.c.customer_id == customer_id, field_state.c.field == field)
        .values(their_value=value, their_changed_at=at)
    )


def last_synced(state: Mapping[Any, Any]) -> str | None:
    """The value both sides last had for a field: what we last pushed, or HubSpot's value
    seen after that (applied, for the fields HubSpot may change)."""
    pushed_at, their_at = state["pushed_at"], state["their_changed_at"]
    if their_at is not None and (pushed_at is None or their_at > pushed_at):
        value: str | None = state["their_value"]
        return value
    pushed: str | None = state["pushed_value"]
    return pushed


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None = None) -> Outcome:
    """Apply one HubSpot company event inside `tx` (see `apply_batch`)."""
    return apply_batch([event], tx, default_tenant)[event.id]


def apply_batch(
    events: Sequence[StoredEvent], tx: Connection, default_tenant: str | None = None
) -> dict[int, Outcome]:
    """Apply HubSpot company events in order inside `tx`; `default_tenant` is the source's
    tenant when an event carries none. The outcome of each event by id.

    The batch's customers are read (locked) with one statement, their field states and open
    conflicts with one each; every event then works on those rows in memory, kept current, so
    a later event of the same customer sees what an earlier one did; the writes go out
    together at the end (domain/batch.py)."""
    outcomes: dict[int, Outcome] = {}
    named: list[tuple[StoredEvent, Mapping[str, Any], str]] = []
    for event in events:
        if event.event_type not in (PROPERTY_CHANGE, CREATION, DELETION):
            outcomes[event.id] = Outcome.IGNORED
            continue
        body: Mapping[str, Any] = event.payload if isinstance(event.payload, dict) else {}
        company_id = _company_id(body.get("objectId"))
        if company_id is None:
            log.warning("crm_event_unusable", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
        elif event.event_type == CREATION:
            log.debug("crm_company_created", event_id=event.id, company=company_id)
            outcomes[event.id] = Outcome.IGNORED
        else:
            named.append((event, body, company_id))
    if not named:
        return outcomes
    batch = Batch(tx)
    # FOR UPDATE (PostgreSQL) serialises workers handling events of one customer, so the
    # ordering checks and the updates see the same state.
    linked = batch.rows(customers, "hubspot_company_id", (c for _, _, c in named), lock=True)
    changes: list[_Change] = []
    for event, payload, company_id in named:
        customer = linked.get(company_id)
        if customer is None:
            log.debug("crm_company_unlinked", event_id=event.id, company=company_id)
            outcomes[event.id] = Outcome.IGNORED
            continue
        tenant = event.tenant or default_tenant
        if tenant is not None and customer["tenant"] is not None and customer["tenant"] != tenant:
            log.warning("crm_tenant_mismatch", event_id=event.id, source=event.source)
            outcomes[event.id] = Outcome.IGNORED
            continue
        batch.attribute(event.id, customer["tenant"], event.tenant)
        if event.event_type == DELETION:
            changes.append(_Change(event, payload, customer))
            continue
        read = _read_property(event, payload)
        if read is None:
            outcomes[event.id] = Outcome.IGNORED
            continue
        changes.append(_Change(event, payload, customer, *read))
    # Every property change reaching a field has the field's state row (made when missing).
    states = batch.ensure(
        field_state,
        ("customer_id", "field"),
        {(c.customer["id"], c.rule.field): {"customer_id": c.customer["id"], "field": c.rule.field}
         for c in changes if c.rule is not None},
    )  # fmt: skip
    conflicts = _OpenConflicts.of(
        batch, {c.customer["id"] for c in changes if c.rule is not None and c.rule.inbound}
    )
    now = datetime.now(UTC)
    repushing: dict[int, tuple[_Change, dict[str, str | None]]] = {}
    for change in changes:
        if change.rule is None:
            outcomes[change.event.id] = _deletion(batch, change, now)
        else:
            state = states[(change.customer["id"], change.rule.field)]
            outcome = _property_change(batch, change, change.rule, state, conflicts, now)
            if not isinstance(outcome, Outcome):  # _REPUSH
                _, fields = repushing.setdefault(change.customer["id"], (change, {}))
                fields[change.rule.field] = change.theirs
                outcome = Outcome.DONE
            outcomes[change.event.id] = outcome
    conflicts.close(batch, now)
    # After the batch's writes: ours as they leave each customer, one outbox row each.
    repush_many(
        batch.tx,
        [(c.customer, fields, f"HubSpot event {c.event.id}") for c, fields in repushing.values()],
    )
    return outcomes


# `_property_change` says so for a field we own that HubSpot changed: the batch re-pushes
# ours once per customer (the event's outcome is DONE).
_REPUSH = object()


@dataclass(frozen=True, slots=True)
class _Change:
    """An event of a linked customer, in its tenant: a deletion (no rule), or a change of the
    rule's property to `theirs` (HubSpot's value as canonical text)."""

    event: StoredEvent
    payload: Mapping[str, Any]
    customer: dict[str, Any]  # the row, kept current through the batch
    rule: FieldRule | None = None
    theirs: str | None = None

    @property
    def source(self) -> SyncSource:
        return SyncSource.of_origin(self.event.origin)


def _read_property(
    event: StoredEvent, payload: Mapping[str, Any]
) -> tuple[FieldRule, str | None] | None:
    """The changed property's rule and HubSpot's value; None for a property without a rule
    or a value its field cannot hold."""
    name = payload.get("propertyName")
    rule = active().by_property.get(name) if isinstance(name, str) else None
    if rule is None:
        return None
    try:
        return rule, rule.parse(payload.get("propertyValue"))
    except UnusableValue as exc:
        log.warning("crm_value_unusable", event_id=event.id, field=rule.field, reason=str(exc))
        return None


def _deletion(batch: Batch, change: _Change, now: datetime) -> Outcome:
    customer, event = change.customer, change.event
    ts = event.provider_ts or now
    deleted = customer["hubspot_deleted_at"]
    values = {
        "hubspot_deleted_at": ts if deleted is None else min(deleted, ts),
        **_synced(change.source, now),
    }
    _update_customer(batch, customer, values)
    batch.publish(_customer_change(customer, "deleted", event_id=event.id))
    log.debug("crm_company_deleted", event_id=event.id, customer_id=customer["id"])
    return Outcome.DONE


def _property_change(
    batch: Batch,
    change: _Change,
    rule: FieldRule,
    state: dict[str, Any],
    conflicts: _OpenConflicts,
    now: datetime,
) -> Outcome | object:
    """One change of `rule`'s property on the customer's row and the field's `state` (both
    kept current in memory for the batch's later events); `_REPUSH` for a field we own."""
    event, customer, theirs = change.event, change.customer, change.theirs
    ts = event.provider_ts or now
    if is_older(ts, state["their_changed_at"]):
        return Outcome.SUPERSEDED
    _update_state(
        batch, state, {"their_value": theirs, "their_changed_at": ts, "their_event_id": event.id}
    )
    if _is_echo(change.payload, state, theirs):
        log.debug("crm_echo_ignored", event_id=event.id, customer_id=customer["id"],
                  field=rule.field)  # fmt: skip
        return Outcome.IGNORED
    ours = rule.current(customer)
    if theirs == ours:
        conflicts.close_others(customer["id"], rule.field, event.id)
        _update_customer(batch, customer, _synced(change.source, now))
        return Outcome.DONE
    if rule.on_their_change is OnTheirChange.REPUSH:
        batch.publish(_customer_change(customer, "repushed", field=rule.field, event_id=event.id))
        log.info("crm_field_repushed", event_id=event.id, customer_id=customer["id"],
                 field=rule.field)  # fmt: skip
        return _REPUSH
    if rule.authority is Authority.LATEST:
        our_at = state["our_changed_at"]
        if our_at is not None and _millis(ts) == _millis(our_at):
            return _conflict(batch, change, rule, ours, conflicts, now)
        if our_at is not None and ts < our_at:
            return Outcome.SUPERSEDED
    conflicts.close_others(customer["id"], rule.field, event.id)  # decided by the newer change
    _update_customer(batch, customer, {**rule.columns(theirs), **_synced(change.source, now)})
    _update_state(batch, state, {"our_value": theirs, "our_changed_at": ts})
    batch.publish(_customer_change(customer, "field_changed", field=rule.field,
                                   sync_source=change.source.value))  # fmt: skip
    log.debug("crm_field_applied", event_id=event.id, customer_id=customer["id"], field=rule.field)
    return Outcome.DONE


def _millis(at: datetime) -> int:
    """HubSpot's clock has milliseconds: two changes in one are at the same time."""
    return int(at.timestamp() * 1000)


def _conflict(
    batch: Batch,
    change: _Change,
    rule: FieldRule,
    ours: str | None,
    conflicts: _OpenConflicts,
    now: datetime,
) -> Outcome:
    """Both sides changed a two-way field at the same time: a person decides. One conflict
    per event and field: a redelivered or replayed event adds none."""
    event, customer = change.event, change.customer
    batch.insert(
        sync_conflicts,
        {
            "tenant": customer["tenant"],
            "customer_id": customer["id"],
            "field": rule.field,
            "our_value": ours,
            "their_value": change.theirs,
            "event_id": event.id,
            "provider_ts": event.provider_ts,
            "created_at": now,
        },
        unless=["event_id", "field"],
    )
    conflicts.opened(customer["id"], rule.field, event.id)
    conflicts.close_others(customer["id"], rule.field, event.id)
    batch.publish(_customer_change(customer, "conflict", field=rule.field, event_id=event.id))
    log.debug("crm_conflict", event_id=event.id, customer_id=customer["id"], field=rule.field)
    return Outcome.DONE


def _update_customer(batch: Batch, customer: dict[str, Any], values: Mapping[str, Any]) -> None:
    customer.update(values)
    # Every column an event may change, from the locked row kept current: each customer is
    # then written with the same statement (one for the batch, not one per mix of changes).
    batch.update(customers, customer["id"], {c: customer[c] for c in _EVENT_COLUMNS})


def _update_state(batch: Batch, state: dict[str, Any], values: Mapping[str, Any]) -> None:
    state.update(values)
    batch.update(field_state, state["id"], {c: state[c] for c in _STATE_COLUMNS})


# The customer columns an event writes: a deletion's flag, the sync stamp, and the columns of
# the fields whose HubSpot value may be applied (inbound, not ours to decide).
_EVENT_COLUMNS = (
    "hubspot_deleted_at",
    "last_synced_at",  # the columns of _synced
    "sync_source",
    "updated_at",
    *(c for r in RULES if r.inbound and r.authority is not Authority.OURS for c in r.columns(None)),
)
_STATE_COLUMNS = (
    "our_value",
    "our_changed_at",
    "their_value",
    "their_changed_at",
    "their_event_id",
)


class _OpenConflicts:
    """The open conflicts of the batch's customers by (customer, field): the events whose
    conflict is open. A conflict closed by a newer change of its field is closed at the end
    of the batch (`close`), with one statement for the batch; only conflicts still open then
    are touched, so a person's decision made meanwhile stands."""

    def __init__(self, open_events: dict[tuple[int, str], set[int]]) -> None:
        self._open = open_events
        self._closing: list[tuple[int, str, int]] = []

    @classmethod
    def of(cls, batch: Batch, customer_ids: Collection[int]) -> _OpenConflicts:
        found: dict[tuple[int, str], set[int]] = {}
        if customer_ids:
            rows = batch.execute(_OPEN_CONFLICTS, {"customers": sorted(customer_ids)})
            for row in rows:
                found.setdefault((row.customer_id, row.field), set()).add(row.event_id)
        return cls(found)

    def opened(self, customer_id: int, field: str, event_id: int) -> None:
        self._open.setdefault((customer_id, field), set()).add(event_id)

    def close_others(self, customer_id: int, field: str, event_id: int) -> None:
        """Close the field's open conflicts of other events: a newer HubSpot change replaced
        them."""
        events = self._open.get((customer_id, field))
        if not events:
            return
        self._closing.extend((customer_id, field, e) for e in sorted(events) if e != event_id)
        events &= {event_id}

    def close(self, batch: Batch, now: datetime) -> None:
        """Write the batch, then close the conflicts found replaced (after the batch's new
        conflicts are in: an event may replace one an earlier event of the batch raised)."""
        batch.flush()
        if self._closing:
            closing, self._closing = self._closing, []
            batch.tx.execute(
                _CLOSE_CONFLICT,
                [{"b_customer": c, "b_field": f, "b_event": e, "b_now": now}
                 for c, f, e in closing],
            )  # fmt: skip


_OPEN_CONFLICTS = select(
    sync_conflicts.c.customer_id, sync_conflicts.c.field, sync_conflicts.c.event_id
).where(
    sync_conflicts.c.customer_id.in_(bindparam("customers", expanding=True)),
    sync_conflicts.c.resolved_at.is_(None),
)

# Matched on the conflict's unique key and its customer, and only while it is open: a person
# may have decided it since the batch read it.
_CLOSE_CONFLICT = (
    update(sync_conflicts)
    .where(
        sync_conflicts.c.event_id == bindparam("b_event"),
        sync_conflicts.c.field == bindparam("b_field"),
        sync_conflicts.c.customer_id == bindparam("b_customer"),
        sync_conflicts.c.resolved_at.is_(None),
    )
    .values(
        resolved_at=bindparam("b_now"),
        resolved_by=SYSTEM,
        resolution=Resolution.SUPERSEDED.value,
    )
)


# Who changed a property, as HubSpot reports it: a change by an app through the API (ours
# among them) as opposed to a person in HubSpot or an import.
_API_SOURCES = frozenset({"INTEGRATION", "API"})


def _is_echo(payload: Mapping[str, Any], state: Mapping[str, Any], theirs: str | None) -> bool:
    """HubSpot telling us about our own change: the value we last pushed for the field,
    changed through the API. Applying it would undo a newer change of ours waiting in the
    outbox, or raise a conflict with ourselves."""
    if state["pushed_at"] is None or theirs != state["pushed_value"]:
        return False
    source = payload.get("changeSource")
    return source is None or source in _API_SOURCES


def _company_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if text and len(text) <= 64 else None


def _synced(source: SyncSource, now: datetime) -> dict[str, Any]:
    return {"last_synced_at": now, "sync_source": source.value, "updated_at": now}


def _state(tx: Connection, customer_id: int, field: str) -> RowMapping:
    where = (field_state.c.customer_id == customer_id) & (field_state.c.field == field)
    row = tx.execute(select(field_state).where(where)).mappings().first()
    if row is None:
        insert_missing(
            tx, field_state, {"customer_id": customer_id, "field": field}, ["customer_id", "field"]
        )
        row = tx.execute(select(field_state).where(where)).mappings().one()
    return row


def _set_ours(
    tx: Connection,
    customer: RowMapping,
    rule: FieldRule,
    value: str | None,
    at: datetime,
    source: SyncSource,
    now: datetime,
) -> None:
    tx.execute(
        update(customers)
        .where(customers.c.id == customer["id"])
        .values(**rule.columns(value), **_synced(source, now))
    )
    state = _state(tx, customer["id"], rule.field)
    tx.execute(
        update(field_state)
        .where(field_state.c.id == state["id"])
        .values(our_value=value, our_changed_at=at)
    )
    _live(tx, customer["id"], "field_changed", field=rule.field, sync_source=source.value)


def announce(tx: Connection, customer_id: int, what: str, **data: Any) -> None:
    """Tell live clients the customer's sync state changed (sent, retried, failed)."""
    _live(tx, customer_id, what, **data)


def _live(tx: Connection, customer_id: int, what: str, **data: Any) -> None:
    """Publish the customer as this transaction leaves it (hookyard.live; delivered iff it
    commits)."""
    row = tx.execute(
        select(customers.c.tenant, customers.c.status, customers.c.ban).where(
            customers.c.id == customer_id
        )
    ).one()
    publish(tx, _customer_change({"id": customer_id, **row._mapping}, what, **data))


def _customer_change(customer: Mapping[str, Any], what: str, **data: Any) -> Change:
    """The customer as live clients see it: its status, ids and which change, never field
    values."""
    return Change(
        ChangeKind.CRM_CUSTOMER,
        customer["id"],
        customer["tenant"],
        customer["status"],
        {"ban": customer["ban"], "change": what, **data},
    )


def resolve_conflict(
    tx: Connection,
    conflict_id: int,
    resolution: Resolution | str,
    by: str,
    *,
    tenant: str | None = None,
) -> ResolveResult:
    """A person decides a conflict: `keep_ours` leaves the customer as it is, `take_theirs`
    applies HubSpot's value. The first decision is the one kept. With `tenant`, a conflict
    of another tenant is NOT_FOUND (never revealed, never changed)."""
    chosen = Resolution(resolution)
    if chosen is Resolution.SUPERSEDED:
        raise ValueError("a person resolves with keep_ours or take_theirs")
    scope = sync_conflicts.c.id == conflict_id
    if tenant is not None:
        scope = scope & (sync_conflicts.c.tenant == tenant)
    conflict = locked(tx, sync_conflicts, scope)
    if conflict is None:
        return ResolveResult.NOT_FOUND
    if conflict["resolved_at"] is not None:
        return ResolveResult.ALREADY_RESOLVED
    now = datetime.now(UTC)
    tx.execute(
        update(sync_conflicts)
        .where(sync_conflicts.c.id == conflict_id)
        .values(resolved_at=now, resolved_by=by, resolution=chosen.value)
    )
    _live(tx, conflict["customer_id"], "conflict_resolved", field=conflict["field"],
          resolution=chosen.value)  # fmt: skip
    if chosen is Resolution.TAKE_THEIRS:
        customer = locked(tx, customers, customers.c.id == conflict["customer_id"])
        assert customer is not None  # a foreign key
        rule = BY_FIELD[conflict["field"]]
        _set_ours(tx, customer, rule, conflict["their_value"], now, SyncSource.MANUAL, now)
    log.info("crm_conflict_resolved", conflict_id=conflict_id, resolution=chosen.value, by=by)
    return ResolveResult.RESOLVED
