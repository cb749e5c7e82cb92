"""What a C2S lead event does: create, update or close a lead, validating its contact data.

Everything runs in the caller's transaction (the worker's, which also marks the event done)
and never commits. Events of one lead order by C2S's `updated_at`: an event older than the
one applied is SUPERSEDED (equal times apply; the later-handled one wins). Replays are safe:
re-applying the same data changes nothing, and a close is recorded once per event.

Enrichment is not run here (it calls other services): an event only marks the lead
`enrichment_status = pending` when its normalised e-mail or phone changed, and the pipeline
(`enrichment.py`) picks pending leads up outside the event's transaction. A change of contact
also ends the previous enrichment: its document and data described the old contact, and a run
still in flight for it finds the lead changed and discards its result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, update

from hookyard.contacts import (
    mask_email,
    mask_phone,
    validate_email,
    validate_phone,
)
from hookyard.db.rows import locked
from hookyard.domain.batch import Batch
from hookyard.domain.common import SyncSource, is_older
from hookyard.domain.leads.tables import lead_closures, leads
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import notification
from hookyard.notify.tables import notifications
from hookyard.providers.base import Outcome, StoredEvent, storable_key, storable_text

CREATE = "on_create_lead"
UPDATE = "on_update_lead"
CLOSE = "on_close_lead"
HOOK_ACTIONS = (CREATE, UPDATE, CLOSE)  # C2S's catalogue, in a lead's order
ACTIONS = frozenset(HOOK_ACTIONS)
CONTACT_FIELDS = ("email", "phone")


class LeadStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class EnrichmentStatus(StrEnum):
    NOT_NEEDED = "not_needed"  # no valid e-mail or phone to look anyone up by
    PENDING = "pending"  # waiting for its first run, or for a retry (enrichment_next_attempt_at)
    RUNNING = "running"  # a pipeline run holds the lease
    DONE = "done"  # e-mail and phone resolve to one document: the same person, enriched
    # Only one of them resolves to a document: enriched from it, not confirmed the same person.
    ENRICHED_SINGLE_SOURCE = "enriched_single_source"
    UNMATCHED = "unmatched"  # neither resolves to a document
    NOT_SAME_PERSON = "not_same_person"  # they resolve to different documents
    FAILED = "failed"  # a definitive error, or the attempts ran out (enrichment_error)


# Where a run ends (`enrichment_finished_at` set): the outcomes the statistics count.
ENRICHMENT_OUTCOMES = (
    EnrichmentStatus.DONE,
    EnrichmentStatus.ENRICHED_SINGLE_SOURCE,
    EnrichmentStatus.UNMATCHED,
    EnrichmentStatus.NOT_SAME_PERSON,
    EnrichmentStatus.FAILED,
)


# What a change of contact resets: the previous run's outcome and its retry state.
ENRICHMENT_RESET: dict[str, Any] = {
    "document": None,
    "enrichment_data": None,
    "enrichment_error": None,
    "enrichment_reason": None,
    "enrichment_attempts": 0,
    "enrichment_next_attempt_at": None,
    "enrichment_lease_owner": None,
    "enrichment_lease_until": None,
}


@dataclass(frozen=True, slots=True)
class LeadChange:
    """The part of a C2S event this module uses. `fields` holds only what the event carries
    (a close without `customer` keeps the stored contact); each as the raw value."""

    lead_id: str
    action: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: StoredEvent) -> LeadChange | None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        lead_id = payload.get("id")
        if isinstance(lead_id, bool) or not isinstance(lead_id, str | int) or not str(lead_id):
            return None
        attributes = payload.get("attributes")
        customer = attributes.get("customer") if isinstance(attributes, dict) else None
        fields: dict[str, Any] = {}
        if isinstance(customer, dict):
            fields = {k: customer[k] for k in ("name", *CONTACT_FIELDS) if k in customer}
        return cls(storable_key(str(lead_id)), event.event_type, fields)


def contact_hash(email: str | None, phone: str | None) -> str:
    return hashlib.sha256(f"{email or ''}\x00{phone or ''}".encode()).hexdigest()


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None = None) -> Outcome:
    """Apply one C2S event inside `tx` (see `apply_batch`)."""
    return apply_batch([event], tx, default_tenant)[event.id]


def apply_batch(
    events: Sequence[StoredEvent], tx: Connection, default_tenant: str | None = None
) -> dict[int, Outcome]:
    """Apply C2S events in order inside `tx`, each lead's row read (locked) and written once
    for the whole batch; `default_tenant` owns a lead seen for the first time when the event
    itself carries no tenant. The outcome of each event by id."""
    outcomes: dict[int, Outcome] = {}
    changes: list[tuple[StoredEvent, LeadChange]] = []
    for event in events:
        if event.event_type not in ACTIONS:
            outcomes[event.id] = Outcome.IGNORED
            continue
        change = LeadChange.from_event(event)
        if change is None:
            log.warning("c2s_event_unusable", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
            continue
        changes.append((event, change))
    if not changes:
        return outcomes
    now = datetime.now(UTC)
    batch = Batch(tx)
    # A lead seen for the first time belongs to the tenant of the first event naming it.
    new: dict[str, dict[str, Any]] = {}
    for event, change in changes:
        new.setdefault(
            change.lead_id, _new_lead(change.lead_id, event.tenant or default_tenant, now)
        )
    # Locked (FOR UPDATE on PostgreSQL): workers handling events of one lead serialise, so the
    # ordering check and the update see the same row.
    rows = batch.ensure(leads, "c2s_lead_id", new, lock=True)
    for event, change in changes:
        outcomes[event.id] = _apply(batch, event, change, rows[change.lead_id],
                                    event.tenant or default_tenant, now)  # fmt: skip
    batch.flush()
    return outcomes


def _new_lead(lead_id: str, tenant: str | None, now: datetime) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "c2s_lead_id": lead_id,
        "status": LeadStatus.OPEN.value,
        "contact_hash": contact_hash(None, None),
        "enrichment_status": EnrichmentStatus.NOT_NEEDED.value,
        "enrichment_attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _apply(
    batch: Batch,
    event: StoredEvent,
    change: LeadChange,
    lead: dict[str, Any],
    tenant: str | None,
    now: datetime,
) -> Outcome:
    """One event on its lead's row (`lead`, kept current in memory for the batch's later
    events of the same lead)."""
    if tenant is not None and lead["tenant"] is not None and lead["tenant"] != tenant:
        # A source of one tenant must never change another tenant's leads.
        log.warning("c2s_tenant_mismatch", event_id=event.id, source=event.source)
        return Outcome.IGNORED
    batch.attribute(event.id, lead["tenant"], event.tenant)
    applied = lead["c2s_updated_at"]
    if is_older(event.provider_ts, applied):
        log.debug("c2s_lead_superseded", event_id=event.id, lead=change.lead_id)
        return Outcome.SUPERSEDED
    values = _contact(lead, change.fields)
    new_hash = contact_hash(values["email"], values["phone"])
    if new_hash != lead["contact_hash"] or lead["last_event_id"] is None:
        # New contact data (or a new lead): enrich again when there is someone to look up.
        values.update(ENRICHMENT_RESET)
        if values["email"] or values["phone"]:
            values.update(
                enrichment_status=EnrichmentStatus.PENDING.value,
                enrichment_requested_at=now,
            )
        else:
            values["enrichment_status"] = EnrichmentStatus.NOT_NEEDED.value
    closing = change.action == CLOSE and lead["status"] != LeadStatus.CLOSED
    if closing:
        values.update(status=LeadStatus.CLOSED.value, closed_at=event.provider_ts or now)
    values.update(
        contact_hash=new_hash,
        c2s_updated_at=event.provider_ts or applied,
        last_event_id=event.id,
        last_synced_at=now,
        sync_source=SyncSource.of_origin(event.origin).value,
        updated_at=now,
    )
    lead.update(values)
    batch.update(leads, lead["id"], values)
    batch.publish(
        lead_change(
            lead["id"],
            lead["tenant"],
            lead["status"],
            change.lead_id,
            lead["enrichment_status"],
            event_id=event.id,
        )
    )
    if closing:
        batch.insert(
            lead_closures,
            {
                "lead_id": lead["id"],
                "event_id": event.id,
                "closed_at": event.provider_ts or now,
                "recorded_at": now,
            },
            unless=["event_id"],
        )
        # The e-mail to the lead's manager (found in this event's body when it is sent).
        news = notification(
            Kind.LEAD_CLOSED,
            tenant=lead["tenant"],
            entity_type=EntityType.LEAD,
            entity_id=lead["id"],
            change=f"event:{event.id}",
            event_id=event.id,
            data={
                "c2s_lead_id": change.lead_id,
                "lead_name": values["name"] or change.lead_id,
                "closed_at": event.provider_ts or now,
            },
        )
        if news is not None:
            batch.insert(notifications, news, unless=["dedup_key"])
    log.debug(
        "c2s_lead_applied",
        event_id=event.id,
        lead=change.lead_id,
        action=change.action,
        email=mask_email(values["email"]),
        phone=mask_phone(values["phone"]),
        errors=sorted(values["validation_errors"] or {}),
        enrichment=lead["enrichment_status"],
        closed=closing,
    )
    return Outcome.DONE


class ReEnrich(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"  # a run holds the lease: it finishes first
    NOTHING_TO_LOOK_UP = "nothing_to_look_up"  # no valid e-mail or phone
    NOT_FOUND = "not_found"


def request_enrichment(tx: Connection, lead_id: int, tenant: str | None) -> ReEnrich:
    """A person asks to enrich the lead again (its contact unchanged): a fresh set of
    attempts, due now. With `tenant`, another tenant's lead is NOT_FOUND."""
    where = leads.c.id == lead_id
    if tenant is not None:
        where = where & (leads.c.tenant == tenant)
    lead = locked(tx, leads, where)
    if lead is None:
        return ReEnrich.NOT_FOUND
    if lead["enrichment_status"] == EnrichmentStatus.RUNNING:
        return ReEnrich.RUNNING
    if not (lead["email"] or lead["phone"]):
        return ReEnrich.NOTHING_TO_LOOK_UP
    now = datetime.now(UTC)
    tx.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(
            **ENRICHMENT_RESET,
            enrichment_status=EnrichmentStatus.PENDING.value,
            enrichment_requested_at=now,
            updated_at=now,
        )
    )
    publish(
        tx,
        lead_change(
            lead_id,
            lead["tenant"],
            lead["status"],
            lead["c2s_lead_id"],
            EnrichmentStatus.PENDING.value,
        ),
    )
    log.info("c2s_lead_enrichment_requested", lead_id=lead_id)
    return ReEnrich.QUEUED


def lead_change(
    lead_id: int,
    tenant: str | None,
    status: str,
    c2s_lead_id: str,
    enrichment_status: str,
    **data: Any,
) -> Change:
    """A lead as live clients see it: statuses and ids, never its contact data."""
    return Change(
        ChangeKind.LEAD,
        lead_id,
        tenant,
        status,
        {"c2s_lead_id": c2s_lead_id, "enrichment_status": enrichment_status, **data},
    )


def _contact(lead: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Name, e-mail, phone and their validation errors after this event: a field the event
    carries replaces the stored one (an invalid value clears it and records the error)."""
    errors: dict[str, str] = dict(lead["validation_errors"] or {})
    values: dict[str, Any] = {"name": lead["name"], "email": lead["email"], "phone": lead["phone"]}
    if "name" in fields:
        name = fields["name"]
        values["name"] = storable_text(name, 300) if isinstance(name, str) and name else None
    for key, validate in (("email", validate_email), ("phone", validate_phone)):
        if key not in fields:
            continue
        normalised, error = validate(fields[key])
        values[key] = normalised
        if error is None:
            errors.pop(key, None)
        else:
            errors[key] = storable_text(error, 500)
    values["validation_errors"] = errors or None
    return values
