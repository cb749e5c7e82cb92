"""HubSpot two-way sync: our customers out (a synchronous create, then an outbox for
updates) and HubSpot's companies in (the daily reconciler), by the field rules of
`domain/crm/rules.py`.

- What goes out: the fields whose direction is `out` or `both`. `in` fields never leave.
- Creating a customer pushes it at once. HubSpot refusing it (a validation error) removes
  the customer again and gives the caller HubSpot's error per field. HubSpot unreachable
  leaves the customer and queues the creation, which first searches HubSpot by BAN, so a
  creation that reached HubSpot before the connection broke is linked, not made twice.
- An update joins the customer's open outbox row; the row sends the customer's values at
  sending time. It is retried with exponential backoff (honouring Retry-After) and after
  `max_attempts` becomes `failed`: listed, logged, counted, retryable by a person.
- What we send is recorded per field (`pushed_value`), so HubSpot's webhook for our own
  change (the echo) is recognised by the CRM handler and ignored: no sync loop.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, bindparam, delete, insert, select, update

from hookyard.db.rows import locked
from hookyard.domain.crm import service as crm
from hookyard.domain.crm import tenancy
from hookyard.domain.crm.rules import (
    BY_FIELD,
    BY_PROPERTY,
    RULES,
    Authority,
    Direction,
    UnusableValue,
)
from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts, sync_log
from hookyard.http import ApiError
from hookyard.logs import log
from hookyard.metrics import CRM_SYNC_FAILED
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import record
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import LeasedQueue, LeaseLost, Spec
from hookyard.sync.hubspot_api import HubSpotClient, field_errors
from hookyard.sync.reconcile import Drift, Finding

OUTBOUND = tuple(r.field for r in RULES if r.direction is not Direction.IN)
PROPERTIES = tuple(r.hubspot_property for r in RULES)
BAN_PROPERTY = BY_FIELD["ban"].hubspot_property


class OutboxStatus:
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    FAILED = "failed"


class CustomerRefused(Exception):
    """HubSpot refused the new customer; nothing of it was kept."""

    def __init__(self, message: str, fields: Mapping[str, str]) -> None:
        super().__init__(message)
        self.fields = dict(fields)


@dataclass(frozen=True, slots=True)
class Created:
    customer_id: int
    ban: str
    hubspot_company_id: str | None  # None: queued, HubSpot could not be reached
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    max_attempts: int = 4  # the first send and three retries
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    lease_seconds: float = 120.0

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.max_attempts, self.backoff_base, self.backoff_max)


# The outbox as a leased queue (hookyard.queue): due while pending, leased while sending,
# `failed` once the attempts are used up (a person may send it again).
OUTBOX = Spec(
    outbox,
    due=(OutboxStatus.PENDING,),
    leased=OutboxStatus.SENDING,
    retry=OutboxStatus.PENDING,
    dead=OutboxStatus.FAILED,
    error="last_error",
)


def properties_of(customer: Mapping[Any, Any], fields: Sequence[str]) -> dict[str, str]:
    """HubSpot properties for our values of `fields` (a cleared value is sent as "")."""
    return {
        BY_FIELD[f].hubspot_property: BY_FIELD[f].current(customer) or ""
        for f in fields
        if f in OUTBOUND
    }


def _log(
    tx: Connection,
    customer: Mapping[Any, Any],
    operation: str,
    result: str,
    *,
    direction: str = "out",
    properties: Mapping[str, Any] | None = None,
    detail: str | None = None,
) -> None:
    tx.execute(
        insert(sync_log).values(
            tenant=customer["tenant"],
            customer_id=customer["id"],
            ban=customer["ban"],
            direction=direction,
            operation=operation,
            properties=dict(properties) if properties else None,
            result=result,
            detail=detail[:2000] if detail else None,
            at=datetime.now(UTC),
        )
    )


def enqueue(tx: Connection, customer: Mapping[Any, Any], fields: Sequence[str]) -> int:
    """Queue our `fields` of the customer for HubSpot (joining its open row); 1 if queued."""
    fields = sorted({f for f in fields if f in OUTBOUND})
    if not fields:
        return 0
    now = datetime.now(UTC)
    open_row = tx.execute(
        select(outbox.c.id, outbox.c.fields)
        .where(outbox.c.customer_id == customer["id"], outbox.c.status == OutboxStatus.PENDING)
        .order_by(outbox.c.id)
        .limit(1)
        .with_for_update()
    ).first()
    if open_row is not None:
        merged = sorted(set(open_row.fields) | set(fields))
        tx.execute(
            update(outbox).where(outbox.c.id == open_row.id).values(fields=merged, updated_at=now)
        )
        return 1
    tx.execute(
        insert(outbox).values(
            tenant=customer["tenant"],
            customer_id=customer["id"],
            operation="update" if customer["hubspot_company_id"] else "create",
            fields=fields,
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    return 1


def update_customer(
    engine: Engine, customer_id: int, changes: Mapping[str, Any], *, tenant: str | None = None
) -> bool:
    """Our side changes fields (a person, billing); outbound ones are queued for HubSpot.
    False when the customer does not exist (or is another tenant's)."""
    with engine.begin() as tx:
        where = customers.c.id == customer_id
        if tenant is not None:
            where = where & (customers.c.tenant == tenant)
        if locked(tx, customers, where) is None:
            return False
        for name, value in changes.items():
            crm.change_field(tx, customer_id, name, value)
        customer = tx.execute(select(customers).where(where)).mappings().one()
        enqueue(tx, customer, list(changes))
    return True


def create_customer(
    engine: Engine,
    client: HubSpotClient | None,
    tenant: str | None,
    company_name: str,
    policy: SyncPolicy = SyncPolicy(),
    **fields: Any,
) -> Created:
    """Create a customer and push it to HubSpot now (see the module's docstring)."""
    now = datetime.now(UTC)
    owner = _owner("create")
    with engine.begin() as tx:
        customer_id = crm.create_customer(tx, tenant, company_name, **fields)
        customer = (
            tx.execute(select(customers).where(customers.c.id == customer_id)).mappings().one()
        )
        row_id = tx.execute(
            insert(outbox)
            .values(
                tenant=tenant,
                customer_id=customer_id,
                operation="create",
                fields=list(OUTBOUND),
                status=OutboxStatus.SENDING if client else OutboxStatus.PENDING,
                attempts=1 if client else 0,
                next_attempt_at=now,
                lease_owner=owner if client else None,
                lease_until=now + timedelta(seconds=policy.lease_seconds) if client else None,
                created_at=now,
                updated_at=now,
            )
            .returning(outbox.c.id)
        ).scalar_one()
    if client is None:
        return Created(customer_id, customer["ban"], None, "HubSpot is not configured")
    sender = OutboxSender(engine, client, policy)
    try:
        company_id = sender.send(int(row_id), customer, "create", list(OUTBOUND), owner)
    except ApiError as exc:
        if exc.retryable:
            sender.retry_later(int(row_id), customer, 1, exc, owner)
            return Created(customer_id, customer["ban"], None, str(exc))
        _remove(engine, customer, exc)
        errors = {
            BY_PROPERTY[p].field if p in BY_PROPERTY else p: m for p, m in field_errors(exc).items()
        }
        raise CustomerRefused(str(exc), errors) from exc
    return Created(customer_id, customer["ban"], company_id)


def _remove(engine: Engine, customer: Mapping[Any, Any], exc: ApiError) -> None:
    """A refused creation: the customer never existed for anyone else."""
    with engine.begin() as tx:
        for table in (outbox, field_state, sync_conflicts):
            tx.execute(delete(table).where(table.c.customer_id == customer["id"]))
        tx.execute(delete(customers).where(customers.c.id == customer["id"]))
        tenancy.released(tx, customer)  # and the tenant created with it, if nothing holds it
        _log(tx, customer, "create", "refused", detail=str(exc))
    log.warning("crm_customer_refused", customer_id=customer["id"], error=str(exc)[:300])


class OutboxSender:
    """Sends outbox rows to HubSpot; `run_once` is the worker's background job."""

    def __init__(self, engine: Engine, client: HubSpotClient, policy: SyncPolicy) -> None:
        self.engine = engine
        self.client = client
        self.policy = policy
        self.queue = LeasedQueue(engine, OUTBOX, policy.backoff, policy.lease_seconds)

    def run_once(self, limit: int = 20) -> int:
        owner = _owner("outbox")
        if recovered := self.queue.recover():
            log.warning("crm_outbox_leases_expired", rows=len(recovered))
        claimed = self.queue.claim(
            owner, limit, (outbox.c.attempts,), values={"updated_at": bindparam("now")}
        )
        for claim in claimed:
            row_id, attempts = claim["id"], claim["attempts"]
            with self.engine.connect() as conn:
                row = conn.execute(select(outbox).where(outbox.c.id == row_id)).mappings().one()
                customer = (
                    conn.execute(select(customers).where(customers.c.id == row["customer_id"]))
                    .mappings()
                    .one()
                )
            operation = "update" if customer["hubspot_company_id"] else "create"
            try:
                self.send(row_id, customer, operation, row["fields"], owner)
            except LeaseLost:
                log.warning("crm_sync_lease_lost", customer_id=customer["id"], outbox_id=row_id)
            except ApiError as exc:
                if exc.retryable and not self.queue.backoff.exhausted(attempts):
                    self.retry_later(row_id, customer, attempts, exc, owner)
                else:
                    self._fail(row_id, customer, exc, owner)
        return len(claimed)

    def next_due_at(self) -> datetime | None:
        return self.queue.next_due_at()

    def send(
        self,
        row_id: int,
        customer: Mapping[Any, Any],
        operation: str,
        fields: Sequence[str],
        owner: str,
    ) -> str:
        """One send under `owner`'s lease; the HubSpot company id. Raises ApiError (the
        caller decides), or LeaseLost when another sender took the row meanwhile (its result
        stands, ours is not written)."""
        properties = properties_of(customer, fields)
        company_id = customer["hubspot_company_id"]
        if company_id is None:
            # A creation may have reached HubSpot before an earlier attempt broke off.
            found = self.client.find_by(BAN_PROPERTY, customer["ban"], [BAN_PROPERTY])
            if found is not None:
                company_id = str(found["id"])
                self.client.update_company(company_id, properties)
            else:
                company_id = str(self.client.create_company(properties)["id"])
        else:
            self.client.update_company(company_id, properties)
        now = datetime.now(UTC)
        with self.engine.begin() as tx:
            done = {"status": OutboxStatus.DONE, "sent_at": now, "updated_at": now}
            self.queue.finish(tx, [row_id], owner, {**done, "last_error": None})
            tx.execute(
                update(customers)
                .where(customers.c.id == customer["id"])
                .values(hubspot_company_id=company_id, last_synced_at=now)
            )
            for name in fields:
                if name not in OUTBOUND:
                    continue
                tx.execute(
                    update(field_state)
                    .where(field_state.c.customer_id == customer["id"], field_state.c.field == name)
                    .values(pushed_value=BY_FIELD[name].current(customer), pushed_at=now)
                )
            _log(tx, customer, operation, "ok", properties=properties)
        log.info(
            "crm_synced", customer_id=customer["id"], operation=operation, fields=len(properties)
        )
        return str(company_id)

    def retry_later(
        self, row_id: int, customer: Mapping[Any, Any], attempts: int, exc: ApiError, owner: str
    ) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as tx:
            failure = self.queue.retry_or_dead(
                row_id,
                owner,
                attempts,
                error=str(exc),
                retry_after=exc.retry_after,
                values={"updated_at": now},
                tx=tx,
            )
            if failure.recorded:
                _log(tx, customer, "update", "retry", detail=str(exc))
        if failure.retry_at is None:  # lease lost, or (by the caller's check) never
            return
        log.warning(
            "crm_sync_retry", customer_id=customer["id"], attempts=attempts,
            retry_at=failure.retry_at.isoformat(), error=str(exc)[:300],
        )  # fmt: skip

    def _fail(self, row_id: int, customer: Mapping[Any, Any], exc: ApiError, owner: str) -> None:
        now = datetime.now(UTC)
        errors = field_errors(exc)
        detail = str(exc) + (f" fields: {json.dumps(errors)}" if errors else "")
        with self.engine.begin() as tx:
            before = locked(tx, outbox, outbox.c.id == row_id)
            failure = self.queue.retry_or_dead(
                row_id,
                owner,
                before["attempts"] if before is not None else 0,
                error=detail,
                transient=False,
                values={"updated_at": now},
                tx=tx,
            )
            if not failure.recorded:
                log.warning("crm_sync_lease_lost", customer_id=customer["id"], outbox_id=row_id)
                return
            _log(tx, customer, "update", "failed", detail=detail)
            if before is not None and before["status"] != OutboxStatus.FAILED:
                # The e-mail to the tenant's people, once per failure (a person's retry that
                # fails again is a new one: the row's last change tells them apart).
                record(
                    tx,
                    Kind.SYNC_FAILED,
                    tenant=customer["tenant"],
                    entity_type=EntityType.CRM_CUSTOMER,
                    entity_id=customer["id"],
                    change=f"outbox:{row_id}:{before['updated_at'].isoformat()}",
                    data={
                        "customer_id": customer["id"],
                        "ban": customer["ban"],
                        "company_name": customer["company_name"],
                        "outbox_id": row_id,
                        "attempts": before["attempts"],
                        "error": detail[:500],
                    },
                )
        CRM_SYNC_FAILED.inc()
        log.error("crm_sync_failed", customer_id=customer["id"], error=detail[:300])


def _owner(what: str) -> str:
    return f"{what}/{os.getpid()}/{secrets.token_hex(4)}"


def retry_failed(engine: Engine, row_id: int, tenant: str | None = None) -> bool:
    """A person sends a failed row again (a fresh set of attempts)."""
    where = (outbox.c.id == row_id) & (outbox.c.status == OutboxStatus.FAILED)
    if tenant is not None:
        where = where & (outbox.c.tenant == tenant)
    now = datetime.now(UTC)
    with engine.begin() as tx:
        changed = tx.execute(
            update(outbox)
            .where(where)
            .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now)
        ).rowcount
    return bool(changed)


@dataclass
class CompanyReconciler:
    """HubSpot's companies against our customers, field by field, by the rules:
    a field HubSpot owns (`theirs`), or changed later (`latest`), is fed back as the
    propertyChange HubSpot would have sent; a field we own is queued to be sent again,
    unless a person has an open conflict about it to decide first. A customer never pushed
    is queued for creation; a company carrying one of our BANs is linked to it."""

    engine: Engine
    client: HubSpotClient
    provider: str = "hubspot"
    job: str = "hubspot.companies.all"

    def check(self) -> Iterator[Finding]:
        with self.engine.connect() as conn:
            ours = conn.execute(select(customers)).mappings().all()
            states = {
                (r["customer_id"], r["field"]): r
                for r in conn.execute(select(field_state)).mappings()
            }
            open_conflicts = {
                (cid, name)
                for cid, name in conn.execute(
                    select(sync_conflicts.c.customer_id, sync_conflicts.c.field).where(
                        sync_conflicts.c.resolved_at.is_(None)
                    )
                )
            }
        by_company = {c["hubspot_company_id"]: c for c in ours if c["hubspot_company_id"]}
        by_ban = {c["ban"]: c for c in ours if not c["hubspot_company_id"]}
        seen: set[int] = set()
        for company in self.client.companies([*PROPERTIES, "hs_lastmodifieddate"]):
            company_id = str(company["id"])
            customer = by_company.get(company_id)
            if customer is None:
                ban = company["properties"].get(BAN_PROPERTY)
                customer = by_ban.pop(ban, None) if isinstance(ban, str) else None
                if customer is None:
                    continue  # not one of ours
                yield self._link(customer, company_id)
                continue
            seen.add(customer["id"])
            yield self._compare(customer, company, states, open_conflicts)
        for customer in ours:
            if customer["id"] in seen or customer["hubspot_deleted_at"] is not None:
                continue
            entity = f"customer:{customer['ban']}"
            drift = Drift(entity, "exists", True, False)
            yield Finding(entity, customer["tenant"], (drift,), repair=_queue(customer, OUTBOUND))

    def _link(self, customer: RowMapping, company_id: str) -> Finding:
        entity = f"customer:{customer['ban']}"

        def link(tx: Connection) -> int:
            tx.execute(
                update(customers)
                .where(customers.c.id == customer["id"], customers.c.hubspot_company_id.is_(None))
                .values(hubspot_company_id=company_id)
            )
            return enqueue(tx, dict(customer) | {"hubspot_company_id": company_id}, OUTBOUND)

        drift = Drift(entity, "hubspot_company_id", None, company_id)
        return Finding(entity, customer["tenant"], (drift,), repair=link)

    def _compare(
        self,
        customer: RowMapping,
        company: Mapping[str, Any],
        states: Mapping[tuple[int, str], RowMapping],
        open_conflicts: set[tuple[int, str]],
    ) -> Finding:
        company_id = str(company["id"])
        entity = f"company:{company_id}"
        changed_at = _parse_time(company.get("updatedAt")) or datetime.now(UTC)
        drift: list[Drift] = []
        push: list[str] = []
        inbound: list[dict[str, Any]] = []
        for rule in RULES:
            raw = company["properties"].get(rule.hubspot_property)
            try:
                theirs = rule.parse(raw if raw != "" else None)
            except UnusableValue:
                theirs = raw
            ours = rule.current(customer)
            if theirs == ours:
                continue
            drift.append(Drift(entity, rule.field, ours, theirs))
            state = states.get((customer["id"], rule.field))
            our_at = state["our_changed_at"] if state is not None else None
            theirs_win = rule.inbound and (
                rule.authority is Authority.THEIRS
                or (rule.authority is Authority.LATEST and (our_at is None or changed_at > our_at))
            )
            if theirs_win:
                inbound.append(_property_change(company_id, rule.hubspot_property, raw, changed_at))
            elif (customer["id"], rule.field) not in open_conflicts:
                push.append(rule.field)
        bodies = (json.dumps(inbound).encode(),) if inbound else ()
        repair = _queue(customer, push) if push else None
        return Finding(entity, customer["tenant"], tuple(drift), bodies, repair=repair)


def _queue(customer: RowMapping, fields: Sequence[str]) -> Any:
    def repair(tx: Connection) -> int:
        return enqueue(tx, customer, fields)

    return repair


def _property_change(company_id: str, prop: str, value: Any, at: datetime) -> dict[str, Any]:
    """The event HubSpot would have sent; its id is stable for one observed change, so the
    same drift seen twice is one event."""
    millis = int(at.timestamp() * 1000)
    return {
        "eventId": f"poll-{company_id}-{prop}-{millis}",
        "subscriptionType": crm.PROPERTY_CHANGE,
        "objectId": int(company_id) if company_id.isdigit() else company_id,
        "propertyName": prop,
        "propertyValue": value,
        "occurredAt": millis,
        "changeSource": "RECONCILIATION",
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
