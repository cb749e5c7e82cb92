"""What a HubSpot company event does to customers, by the declarative rules of rules.py.

`company.propertyChange` on a linked company (customers.hubspot_company_id):
- older than the last HubSpot change of that field already seen → SUPERSEDED, nothing changes;
- otherwise HubSpot's value and time are recorded in field_state (their side), then
  - unknown property, unusable value → IGNORED;
  - direction `out` → IGNORED (recorded only: we publish that field);
  - our own change coming back (the value we last pushed, changed through the API) →
    IGNORED: no sync loop;
  - their value equals ours → DONE (in agreement; open conflicts of the field are closed);
  - authority `theirs` → applied (DONE);
  - authority `latest` → applied when the change is newer than our side's last change, else
    SUPERSEDED: our newer value stands and is what we publish, no person is asked;
  - authority `ours` → a conflict a person resolves (DONE); one per event and field, so a
    redelivered or replayed event adds none. A newer conflict of the same field closes older
    open ones (resolution `superseded`): only the latest disagreement is worth deciding.
An unlinked company creates no customer (IGNORED; sync/hubspot.py links customers: when it
pushes them, and when reconciliation finds a company carrying one of our BANs).
`company.creation` → IGNORED (no customer to link yet). `company.deletion` → the customer
keeps its row and is flagged (`hubspot_deleted_at`).

Everything runs in the caller's transaction and never commits.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select, update

from hookyard.domain.common import SyncSource, attribute_event, insert_missing, is_older, locked
from hookyard.domain.crm.rules import (
    BY_FIELD,
    BY_PROPERTY,
    RULES,
    Authority,
    FieldRule,
    UnusableValue,
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
        if tx.execute(select(customers.c.id).where(customers.c.ban == ban)).first() is None:
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
    """A customer (a generated BAN unless given), with our side of every field set at `at`."""
    now = datetime.now(UTC)
    at = at or now
    if ban is not None and not BAN_PATTERN.fullmatch(ban):
        raise ValueError(f"not a BAN: {ban!r}")
    given: Mapping[str, Any] = {
        "ban": ban or generate_ban(tx),
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


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None = None) -> Outcome:
    """Apply one HubSpot company event inside `tx`; `default_tenant` is the source's tenant
    when the event carries none."""
    if event.event_type not in (PROPERTY_CHANGE, CREATION, DELETION):
        return Outcome.IGNORED
    payload = event.payload if isinstance(event.payload, dict) else {}
    company_id = _company_id(payload.get("objectId"))
    if company_id is None:
        log.warning("crm_event_unusable", event_id=event.id, event_type=event.event_type)
        return Outcome.IGNORED
    if event.event_type == CREATION:
        log.info("crm_company_created", event_id=event.id, company=company_id)
        return Outcome.IGNORED
    # FOR UPDATE (PostgreSQL) serialises workers handling events of one customer, so the
    # ordering check and the update see the same state.
    customer = locked(tx, customers, customers.c.hubspot_company_id == company_id)
    if customer is None:
        log.info("crm_company_unlinked", event_id=event.id, company=company_id)
        return Outcome.IGNORED
    tenant = event.tenant or default_tenant
    if tenant is not None and customer["tenant"] is not None and customer["tenant"] != tenant:
        log.warning("crm_tenant_mismatch", event_id=event.id, source=event.source)
        return Outcome.IGNORED
    attribute_event(tx, event, customer["tenant"])
    now = datetime.now(UTC)
    ts = event.provider_ts or now
    source = SyncSource.of_origin(event.origin)
    if event.event_type == DELETION:
        deleted = customer["hubspot_deleted_at"]
        tx.execute(
            update(customers)
            .where(customers.c.id == customer["id"])
            .values(
                hubspot_deleted_at=ts if deleted is None else min(deleted, ts),
                **_synced(source, now),
            )
        )
        _live(tx, customer["id"], "deleted", event_id=event.id)
        log.info("crm_company_deleted", event_id=event.id, customer_id=customer["id"])
        return Outcome.DONE
    return _property_change(tx, event, payload, customer, ts, source, now)


def _property_change(
    tx: Connection,
    event: StoredEvent,
    payload: Mapping[str, Any],
    customer: RowMapping,
    ts: datetime,
    source: SyncSource,
    now: datetime,
) -> Outcome:
    name = payload.get("propertyName")
    rule = BY_PROPERTY.get(name) if isinstance(name, str) else None
    if rule is None:
        return Outcome.IGNORED
    try:
        theirs = rule.parse(payload.get("propertyValue"))
    except UnusableValue as exc:
        log.warning("crm_value_unusable", event_id=event.id, field=rule.field, reason=str(exc))
        return Outcome.IGNORED
    state = _state(tx, customer["id"], rule.field)
    if is_older(ts, state["their_changed_at"]):
        return Outcome.SUPERSEDED
    tx.execute(
        update(field_state)
        .where(field_state.c.id == state["id"])
        .values(their_value=theirs, their_changed_at=ts, their_event_id=event.id)
    )
    if not rule.inbound:
        return Outcome.IGNORED
    if _is_echo(payload, state, theirs):
        log.info(
            "crm_echo_ignored", event_id=event.id, customer_id=customer["id"], field=rule.field
        )
        return Outcome.IGNORED
    ours = rule.current(customer)
    if theirs == ours:
        _close_open(tx, customer["id"], rule.field, event.id, now)
        tx.execute(
            update(customers).where(customers.c.id == customer["id"]).values(**_synced(source, now))
        )
        return Outcome.DONE
    if rule.authority is Authority.LATEST:
        our_at = state["our_changed_at"]
        if our_at is not None and ts <= our_at:
            return Outcome.SUPERSEDED
    if rule.authority is Authority.OURS:
        _conflict(tx, customer, rule, ours, theirs, event, now)
        return Outcome.DONE
    _set_ours(tx, customer, rule, theirs, ts, source, now)
    log.info("crm_field_applied", event_id=event.id, customer_id=customer["id"], field=rule.field)
    return Outcome.DONE


# Who changed a property, as HubSpot reports it: a change by an app through the API (ours
# among them) as opposed to a person in HubSpot or an import.
_API_SOURCES = frozenset({"INTEGRATION", "API"})


def _is_echo(payload: Mapping[str, Any], state: RowMapping, theirs: str | None) -> bool:
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


def _live(tx: Connection, customer_id: int, what: str, **data: Any) -> None:
    """Publish the customer as this transaction leaves it (hookyard.live; delivered iff it
    commits): its status, ids and which change, never field values."""
    row = tx.execute(
        select(customers.c.tenant, customers.c.status, customers.c.ban).where(
            customers.c.id == customer_id
        )
    ).one()
    publish(
        tx,
        Change(
            ChangeKind.CRM_CUSTOMER,
            customer_id,
            row.tenant,
            row.status,
            {"ban": row.ban, "change": what, **data},
        ),
    )


def _conflict(
    tx: Connection,
    customer: RowMapping,
    rule: FieldRule,
    ours: str | None,
    theirs: str | None,
    event: StoredEvent,
    now: datetime,
) -> None:
    insert_missing(
        tx,
        sync_conflicts,
        keys=["event_id", "field"],
        values={
            "tenant": customer["tenant"],
            "customer_id": customer["id"],
            "field": rule.field,
            "our_value": ours,
            "their_value": theirs,
            "event_id": event.id,
            "provider_ts": event.provider_ts,
            "created_at": now,
        },
    )
    _close_open(tx, customer["id"], rule.field, event.id, now)
    _live(tx, customer["id"], "conflict", field=rule.field, event_id=event.id)
    log.info("crm_conflict", event_id=event.id, customer_id=customer["id"], field=rule.field)


def _close_open(tx: Connection, customer_id: int, field: str, event_id: int, now: datetime) -> None:
    """Close the field's open conflicts of other events: a newer HubSpot change replaced them."""
    tx.execute(
        update(sync_conflicts)
        .where(
            sync_conflicts.c.customer_id == customer_id,
            sync_conflicts.c.field == field,
            sync_conflicts.c.event_id != event_id,
            sync_conflicts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now, resolved_by=SYSTEM, resolution=Resolution.SUPERSEDED.value)
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
