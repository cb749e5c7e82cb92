"""Applying TCR events to the 10DLC tables, inside the worker's transaction.

Rules that make redelivery, reordering and partial knowledge safe:
- Each row remembers the provider time of the last event applied to it; an event older than
  that changes nothing and is `superseded` (equal times apply, in arrival order).
- An event naming a brand or campaign not known yet creates it (a brand is owned by the
  source's tenant): the replaced system retried such events forever.
- Rows are created with insert-if-missing and then locked (`FOR UPDATE` on PostgreSQL), so
  concurrent workers neither collide on a new brand nor interleave updates of one row.
- A payload field that is missing or malformed is left alone, never an error; an event
  without the id it needs is `ignored` (retrying could not help), and so is a mock delivery
  (`"mock": true`, TCR's test webhooks): stored, never applied.

A claimed batch is applied together (`apply_batch`, hookyard.domain.batch): the rows its
events name are read with one statement per table, the brands, campaigns and vetting results
its events will create are inserted together beforehand (carrier rows, which nothing refers
to by id, once at the end, as the batch leaves them), and the events are then applied in
order to those rows in memory, each seeing what the earlier ones did (a row inserted ahead
stays out of sight until the event that creates it runs). Rows are locked where handling one
event at a time locked them: brands only for brand events (their owner may change),
campaigns, carriers and vetting results always; in the order campaigns, brands, carriers,
vetting results, each in key order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection

from hookyard.domain.batch import Batch
from hookyard.domain.tendlc.catalogue import CATALOGUE, Action
from hookyard.domain.tendlc.payload import TcrEvent
from hookyard.domain.tendlc.tables import brands, campaigns
from hookyard.domain.tendlc.transitions import BatchState
from hookyard.logs import log
from hookyard.providers.base import Outcome, StoredEvent


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None) -> Outcome:
    """Apply one TCR event inside `tx` (see `apply_batch`)."""
    return apply_batch([event], tx, default_tenant)[event.id]


def apply_batch(
    events: Sequence[StoredEvent], tx: Connection, default_tenant: str | None
) -> dict[int, Outcome]:
    """Apply TCR events in order inside `tx`; `default_tenant` (the source's) owns the brands
    they create. The outcome of each event by id."""
    outcomes: dict[int, Outcome] = {}
    todo: list[TcrEvent] = []
    for event in events:
        kind = CATALOGUE.get(event.event_type)
        if kind is None or kind.action is Action.IGNORE:
            log.debug("tcr_event_ignored", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
            continue
        if is_mock(event):
            # A test delivery (TCR's "mock" webhook): kept as received, never applied.
            log.info("tcr_mock_ignored", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
            continue
        todo.append(TcrEvent.of(event, kind))
    if not todo:
        return outcomes
    batch = Batch(tx)
    foreign = _of_other_tenants(batch, todo, default_tenant)
    for item in foreign:
        # A source of one tenant never changes another tenant's brands or campaigns (as for
        # CRM customers and WhatsApp templates): the event is kept, ignored.
        log.warning(
            "tcr_tenant_mismatch",
            event_id=item.event.id,
            source=item.event.source,
            entity=item.event.entity_key,
        )
        outcomes[item.event.id] = Outcome.IGNORED
    todo = [item for item in todo if item not in foreign]
    if not todo:
        return outcomes
    state = BatchState.read(batch, todo, default_tenant, datetime.now(UTC))
    for item in todo:
        outcome = _ACTIONS[item.kind.action](state, item)
        attribute_event(state.batch, item.event, state.owner(item))
        outcomes[item.event.id] = outcome
        if outcome is not Outcome.DONE:
            log.debug(
                "tcr_event_" + outcome.value,
                event_id=item.event.id,
                event_type=item.event.event_type,
                entity=item.event.entity_key,
            )
    state.finish()
    return outcomes


def is_mock(event: StoredEvent) -> bool:
    """TCR marks its test deliveries `"mock": true` (real ones carry `false` or nothing)."""
    return isinstance(event.payload, dict) and event.payload.get("mock") is True


def _of_other_tenants(
    batch: Batch, todo: Sequence[TcrEvent], default_tenant: str | None
) -> list[TcrEvent]:
    """The events whose brand (named, or their campaign's) another tenant than the receiving
    source's owns. Read before the batch plans anything: within one source's batch ownership
    only goes from nobody to that source's tenant, which changes no answer here."""
    known = batch.rows(campaigns, "campaign_id", {i.campaign_id for i in todo if i.campaign_id})
    brand_of = {
        item.event.id: item.brand_id
        or (known[item.campaign_id]["brand_id"] if item.campaign_id in known else None)
        for item in todo
    }
    named = {b for b in brand_of.values() if b is not None}
    owners = {k: row["tenant"] for k, row in batch.rows(brands, "brand_id", named).items()}
    foreign = []
    for item in todo:
        receiver = item.event.tenant or default_tenant
        owner = owners.get(brand_of[item.event.id])
        if receiver is not None and owner is not None and owner != receiver:
            foreign.append(item)
    return foreign


def attribute_event(batch: Batch, event: StoredEvent, owner: str | None) -> None:
    """The event belongs to the tenant owning the brand it names (written with the batch, so
    the event's tenant and its effects commit together)."""
    batch.attribute(event.id, owner, event.tenant)


_ACTIONS: dict[Action, Callable[[BatchState, TcrEvent], Outcome]] = {
    Action.BRAND: BatchState.apply_brand,
    Action.CAMPAIGN: BatchState.apply_campaign,
    Action.CARRIER: BatchState.apply_carrier,
    Action.VETTING: BatchState.apply_vetting,
    Action.RECORD: BatchState.apply_record,
}
