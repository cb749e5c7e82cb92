"""HubSpot two-way sync: our customers out (a synchronous create, then an outbox for
updates) and HubSpot's companies in (the daily reconciler), by the field rules of
`domain/crm/rules.py`.

- What goes out: every field of the rules. `credit_limit` (HubSpot's authority) only while
  HubSpot has not changed it since the last sync: the sender reads HubSpot's value first,
  and a value changed there is applied to ours instead of being overwritten.
- Creating a customer pushes it at once. Creating one with `hubspot_company_id` links an
  existing company instead (refused when another customer is linked to it, or HubSpot has
  no such company): HubSpot's credit limit, when it has one, is taken, and ours are pushed
  to the company. HubSpot refusing it (a validation error) removes
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
from sqlalchemy.exc import IntegrityError

from hookyard.db.rows import locked
from hookyard.domain.crm import service as crm
from hookyard.domain.crm import tenancy
from hookyard.domain.crm.outbox import OUTBOUND, enqueue, log_exchange, repush
from hookyard.domain.crm.rules import (
    BY_FIELD,
    Authority,
    OnTheirChange,
    UnusableValue,
    active,
)
from hookyard.domain.crm.tables import customers, field_state, outbox, sync_conflicts
from hookyard.http import ApiError
from hookyard.logs import log
from hookyard.metrics import CRM_SYNC_FAILED
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import record
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import LeasedQueue, LeaseLost, Spec
from hookyard.sync.hubspot_api import HubSpotClient, field_errors
from hookyard.sync.reconcile import Drift, Finding


def rule_properties() -> list[str]:
    """The HubSpot properties of every field, as this process names them."""
    return [r.hubspot_property for r in active().rules]


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


class LinkRefused(Exception):
    """A customer cannot be linked to that company: `status` 409 (another customer is
    linked to it), 404 (HubSpot has no such company), 400 (not a company id, or HubSpot is
    not configured)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Created:
    customer_id: int
    ban: str
    hubspot_company_id: str | None  # None: queued, HubSpot could not be reached
    error: str | None = None
    synced: bool = True  # False: queued (HubSpot not configured or not reachable)

    def __post_init__(self) -> None:
        if self.hubspot_company_id is None:
            object.__setattr__(self, "synced", False)


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
    rules = active().by_field
    return {
        rules[f].hubspot_property: rules[f].current(customer) or "" for f in fields if f in rules
    }


_log = log_exchange


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
    company_name: str | None,
    policy: SyncPolicy = SyncPolicy(),
    *,
    hubspot_company_id: str | None = None,
    **fields: Any,
) -> Created:
    """Create a customer and push it to HubSpot now, or link it to an existing company
    (`hubspot_company_id`) and push ours to it (see the module's docstring). LinkRefused,
    CustomerRefused, or UnusableValue for a value the rules refuse."""
    company: dict[str, Any] | None = None
    if hubspot_company_id is not None:
        company = _company_to_link(engine, client, hubspot_company_id)
        name = company["properties"].get(active().prop("company_name"))
        company_name = company_name or (name.strip() if isinstance(name, str) else None)
        credit = company["properties"].get(active().prop("credit_limit"))
        if credit not in (None, ""):  # HubSpot's authority: its limit, when it has one
            fields["credit_limit"] = BY_FIELD["credit_limit"].parse(credit)
    if not company_name:
        raise UnusableValue("company_name: required (the company in HubSpot has no name)")
    now = datetime.now(UTC)
    owner = _owner("create")
    operation = "create" if company is None else "update"
    with engine.begin() as tx:
        try:
            customer_id = crm.create_customer(
                tx, tenant, company_name, hubspot_company_id=hubspot_company_id, **fields
            )
        except IntegrityError:
            raise LinkRefused(
                409, f"another customer is linked to HubSpot company {hubspot_company_id}"
            ) from None
        if company is not None:
            _their_side(tx, customer_id, company)
        customer = (
            tx.execute(select(customers).where(customers.c.id == customer_id)).mappings().one()
        )
        row_id = tx.execute(
            insert(outbox)
            .values(
                tenant=tenant,
                customer_id=customer_id,
                operation=operation,
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
        company_id = sender.send(int(row_id), customer, operation, list(OUTBOUND), owner)
    except ApiError as exc:
        if exc.retryable:
            sender.retry_later(int(row_id), customer, 1, exc, owner)
            return Created(customer_id, customer["ban"], hubspot_company_id, str(exc), False)
        _remove(engine, customer, exc, operation)
        by_property = active().by_property
        errors = {
            by_property[p].field if p in by_property else p: m for p, m in field_errors(exc).items()
        }
        raise CustomerRefused(str(exc), errors) from exc
    return Created(customer_id, customer["ban"], company_id)


def _company_to_link(
    engine: Engine, client: HubSpotClient | None, company_id: str
) -> dict[str, Any]:
    """The company a new customer is to be linked to, as HubSpot has it (LinkRefused when
    it cannot be)."""
    if client is None:
        raise LinkRefused(400, "HubSpot is not configured: no company can be linked")
    if not company_id.isdigit() or len(company_id) > 20:
        raise LinkRefused(400, f"not a HubSpot company id: {company_id[:40]!r}")
    with engine.connect() as conn:
        taken = conn.execute(
            select(customers.c.id).where(customers.c.hubspot_company_id == company_id)
        ).first()
    if taken is not None:
        raise LinkRefused(409, f"another customer is linked to HubSpot company {company_id}")
    try:
        company = client.company(company_id, rule_properties())
    except ApiError as exc:
        if exc.status == 400:
            raise LinkRefused(400, f"HubSpot: {exc}") from exc
        raise
    if company is None:
        raise LinkRefused(404, f"HubSpot has no company {company_id}")
    return company


def _their_side(tx: Connection, customer_id: int, company: Mapping[str, Any]) -> None:
    """A linked company's values as HubSpot's side of each field, at its last change: what
    HubSpot had at the last sync (credit_limit's rule compares with it)."""
    at = _parse_time(company.get("updatedAt")) or datetime.now(UTC)
    for rule in active().rules:
        try:
            theirs = rule.parse(company["properties"].get(rule.hubspot_property) or None)
        except UnusableValue:
            continue
        tx.execute(
            update(field_state)
            .where(field_state.c.customer_id == customer_id, field_state.c.field == rule.field)
            .values(their_value=theirs, their_changed_at=at)
        )


def _remove(
    engine: Engine, customer: Mapping[Any, Any], exc: ApiError, operation: str = "create"
) -> None:
    """A refused creation (or link): the customer never existed for anyone else."""
    with engine.begin() as tx:
        for table in (outbox, field_state, sync_conflicts):
            tx.execute(delete(table).where(table.c.customer_id == customer["id"]))
        tx.execute(delete(customers).where(customers.c.id == customer["id"]))
        tenancy.released(tx, customer)  # and the tenant created with it, if nothing holds it
        _log(tx, customer, operation, "refused", detail=str(exc))
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
        company_id = customer["hubspot_company_id"]
        if company_id is not None:
            # A field with an open conflict waits for the person's decision.
            fields = [f for f in fields if f not in self._in_conflict(customer["id"])]
        properties = properties_of(customer, fields)
        ban_property = active().prop("ban")
        taken: tuple[str, str | None] | None = None  # HubSpot's credit limit, to apply
        if company_id is None:
            # A creation may have reached HubSpot before an earlier attempt broke off.
            found = self.client.find_by(ban_property, customer["ban"], [ban_property])
            if found is not None:
                company_id = str(found["id"])
                self.client.update_company(company_id, properties)
            else:
                company_id = str(self.client.create_company(properties)["id"])
        else:
            if "credit_limit" in fields:
                taken = self._hubspot_changed(company_id, customer)
                if taken is not None:
                    properties.pop(taken[0], None)
            if properties:
                self.client.update_company(company_id, properties)
        now = datetime.now(UTC)
        sent = [f for f in fields if f in OUTBOUND and (taken is None or f != "credit_limit")]
        with self.engine.begin() as tx:
            done = {"status": OutboxStatus.DONE, "sent_at": now, "updated_at": now}
            self.queue.finish(tx, [row_id], owner, {**done, "last_error": None})
            tx.execute(
                update(customers)
                .where(customers.c.id == customer["id"])
                .values(hubspot_company_id=company_id, last_synced_at=now)
            )
            for name in sent:
                tx.execute(
                    update(field_state)
                    .where(field_state.c.customer_id == customer["id"], field_state.c.field == name)
                    .values(pushed_value=BY_FIELD[name].current(customer), pushed_at=now)
                )
            if taken is not None:
                crm.take_hubspot_value(tx, customer["id"], "credit_limit", taken[1], now)
                _log(tx, customer, "update", "not_pushed", properties={taken[0]: taken[1]},
                     detail="credit_limit: HubSpot changed it since the last sync; HubSpot's "
                     "value applied, ours not pushed")  # fmt: skip
            _log(tx, customer, operation, "ok", properties=properties)
            crm.announce(tx, customer["id"], "synced", operation=operation)
        log.info(
            "crm_synced", customer_id=customer["id"], operation=operation, fields=len(properties)
        )
        return str(company_id)

    def _in_conflict(self, customer_id: int) -> set[str]:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(sync_conflicts.c.field).where(
                    sync_conflicts.c.customer_id == customer_id,
                    sync_conflicts.c.resolved_at.is_(None),
                )
            )
            return {str(f) for f in found.scalars()}

    def _hubspot_changed(
        self, company_id: str, customer: Mapping[Any, Any]
    ) -> tuple[str, str | None] | None:
        """credit_limit is HubSpot's: (property, HubSpot's value) when HubSpot changed it
        since the last sync (its value is not the one both sides last had), else None."""
        prop = active().prop("credit_limit")
        company = self.client.company(company_id, [prop])
        if company is None:
            return None  # gone: the update's own 404 says so
        try:
            theirs = BY_FIELD["credit_limit"].parse(company["properties"].get(prop) or None)
        except UnusableValue:
            return None
        with self.engine.connect() as conn:
            state = (
                conn.execute(
                    select(field_state).where(
                        field_state.c.customer_id == customer["id"],
                        field_state.c.field == "credit_limit",
                    )
                )
                .mappings()
                .first()
            )
        if state is None or theirs == crm.last_synced(state):
            return None
        return prop, theirs

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
                crm.announce(tx, customer["id"], "sync_retry")
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
            crm.announce(tx, customer["id"], "sync_failed")
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
    credit_limit changed in HubSpot since the last sync, or company_name changed there
    later than here, is fed back as the propertyChange HubSpot would have sent; a field we
    own is re-pushed (and the sync log says so), any other difference is ours to send
    again, unless a person has an open conflict about it to decide first. A customer never pushed
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
        ban_property = active().prop("ban")
        for company in self.client.companies([*rule_properties(), "hs_lastmodifieddate"]):
            company_id = str(company["id"])
            customer = by_company.get(company_id)
            if customer is None:
                ban = company["properties"].get(ban_property)
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
        overwritten: dict[str, str | None] = {}
        inbound: list[dict[str, Any]] = []
        for rule in active().rules:
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
            if (customer["id"], rule.field) in open_conflicts:
                continue  # a person decides first
            if rule.on_their_change is OnTheirChange.REPUSH:
                overwritten[rule.field] = theirs
                continue
            if rule.authority is Authority.LATEST:
                our_at = state["our_changed_at"] if state is not None else None
                theirs_win = our_at is None or changed_at > our_at
            else:  # HubSpot's: applied when changed there since the last sync
                theirs_win = state is None or theirs != crm.last_synced(state)
            if theirs_win:
                inbound.append(_property_change(company_id, rule.hubspot_property, raw, changed_at))
            else:
                push.append(rule.field)
        bodies = (json.dumps(inbound).encode(),) if inbound else ()
        repair = _queue(customer, push, overwritten) if push or overwritten else None
        return Finding(entity, customer["tenant"], tuple(drift), bodies, repair=repair)


def _queue(
    customer: RowMapping,
    fields: Sequence[str],
    overwritten: Mapping[str, str | None] | None = None,
) -> Any:
    def repair(tx: Connection) -> int:
        queued = enqueue(tx, customer, fields)
        if overwritten:
            queued = max(queued, repush(tx, customer, overwritten, "reconciliation"))
        return queued

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
