"""The alert rules, as data: what each one measures, over which subjects, against which
setting, and which gauge shows the value.

A rule's `measure` reads the database and returns one Measurement per subject it looked at
(a source, a template, a reconciliation job, the queue). A measurement fires when it is
eligible and its value reaches the rule's threshold; `evaluate.py` turns firings into
alerts. Every rule reads state that already exists (the events table, the templates'
quality, the reconciliation runs); none keeps a second copy of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    FromClause,
    false,
    func,
    select,
)

from hookyard.config import Settings
from hookyard.destinations import circuit as destination_circuits
from hookyard.domain.crm.tables import customers
from hookyard.domain.tendlc.tables import brands
from hookyard.domain.tendlc.tables import campaigns as tcr_campaigns
from hookyard.domain.whatsapp.service import Quality, TemplateStatus
from hookyard.domain.whatsapp.tables import templates
from hookyard.inbox import queries as inbox
from hookyard.metrics import ALERT_GAUGES
from hookyard.sync.tables import reconciliation_runs


class AlertKind(StrEnum):
    FAILURE_RATE = "failure_rate"
    DEAD_EVENTS = "dead_events"
    OLDEST_PENDING = "oldest_pending"
    RED_QUALITY = "red_quality"
    RECONCILIATION_DRIFT = "reconciliation_drift"
    TEMPLATE_DISABLED = "template_disabled"
    TEMPLATE_REJECTED = "template_rejected"
    DESTINATION_CIRCUIT_OPEN = "destination_circuit_open"


class RuleScope(StrEnum):
    SOURCE = "source"  # a subject per source, the source's tenant
    TENANT = "tenant"  # a subject per entity of a tenant (a template, a job's drift)
    GLOBAL = "global"  # one subject and no tenant: superadmins only


@dataclass(frozen=True, slots=True)
class Measurement:
    subject: str  # "source:meta", "template:12", "job:tcr.campaigns.review", "queue"
    tenant: str | None
    labels: Mapping[str, str]  # the gauge's labels for this subject
    value: float
    detail: str  # what a person reads on the alert
    eligible: bool = True  # False: too little data to judge (the failure rate's minimum)


@dataclass(frozen=True, slots=True)
class RuleContext:
    now: datetime
    settings: Settings
    # Each configured source's tenant. A source's alerts are its tenant's; a source of no
    # tenant (one that serves several, or a removed one) is shared: its alerts are global.
    # Not the events' own tenant: a handler attributes an event to its owner only when it
    # succeeds, so a failing event of a shared source has none yet, and a rate split by
    # event tenant would put every failure on one side and every success on the other.
    source_tenants: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    kind: AlertKind
    scope: RuleScope
    setting: str  # the Settings field of the threshold; 0 (or false) turns the alerts off
    metric: str  # its gauge (hookyard.metrics.ALERT_GAUGES)
    measure: Callable[[Connection, RuleContext], list[Measurement]]

    def threshold(self, settings: Settings) -> float | None:
        """The value at which a measurement fires; None when the rule is off."""
        limit = float(getattr(settings, self.setting))
        return limit if limit > 0 else None


def _tenant_label(tenant: str | None) -> str:
    return tenant or ""


# -- events: failure rate, dead events, the oldest due event --------------------------------


def failure_rate(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    s = ctx.settings
    since = ctx.now - timedelta(seconds=s.alert_failure_window_seconds)
    minutes = s.alert_failure_window_seconds / 60
    found = []
    for source, judged, failing in inbox.judged_by_source(conn, since):
        found.append(
            Measurement(
                subject=f"source:{source}",
                tenant=ctx.source_tenants.get(source),
                labels={"source": source},
                value=failing / judged,
                detail=(
                    f"{failing} of the {judged} events handled from source {source} "
                    f"(received in the last {minutes:g} min) are failing"
                ),
                eligible=judged >= s.alert_failure_min_events,
            )
        )
    return found


def dead_events(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    return [
        Measurement(
            subject=f"source:{source}",
            tenant=ctx.source_tenants.get(source),
            labels={"source": source},
            value=float(n),
            detail=f"{n} dead events from source {source} wait to be replayed",
        )
        for source, n in inbox.dead_by_source(conn)
    ]


def oldest_pending(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    """How long the oldest due event has waited for a worker: since it became due (received,
    replayed, or its retry time came), so a retry's backoff is not counted as waiting."""
    oldest = inbox.oldest_due(conn, ctx.now)
    if oldest is None:
        waited, detail = 0.0, "no event is waiting for a worker"
    else:
        waited = max((ctx.now - oldest.next_attempt_at).total_seconds(), 0.0)
        detail = (
            f"event {oldest.id} (source {oldest.source}) has waited {waited:.0f} s for a worker"
        )
    return [Measurement(subject="queue", tenant=None, labels={}, value=waited, detail=detail)]


# -- WhatsApp templates ---------------------------------------------------------------------
#
# The template row is the one record of a template's quality and status: these rules read
# it, so an alert opens while the template is so and resolves when a later webhook or poll
# moves it on. The WhatsApp pages and the deprecated `/api/v1/whatsapp/alerts` routes show
# these kinds (api/whatsapp.py).


def template_subject(template_id: int) -> str:
    """The subject of a template's alerts (hookyard's template id)."""
    return f"template:{template_id}"


def _templates_where(
    conn: Connection, condition: ColumnElement[bool], state: Callable[[Any], str]
) -> list[Measurement]:
    """One measurement (value 1) per template meeting `condition`; `state(row)` says what is
    wrong with it."""
    query = select(
        templates.c.id,
        templates.c.tenant,
        templates.c.meta_template_id,
        templates.c.name,
        templates.c.language,
        templates.c.reason,
    ).where(condition)
    return [
        Measurement(
            subject=template_subject(row.id),
            tenant=row.tenant,
            labels={"template": row.meta_template_id, "tenant": _tenant_label(row.tenant)},
            value=1.0,
            detail=(
                f"WhatsApp template {row.name}"
                + (f" ({row.language})" if row.language else "")
                + f" [{row.meta_template_id}] {state(row)}"
            ),
        )
        for row in conn.execute(query.order_by(templates.c.id))
    ]


def red_quality(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    """The templates whose quality is RED now."""
    return _templates_where(
        conn, templates.c.quality == Quality.RED.value, lambda _: "has quality RED"
    )


def _in_status(conn: Connection, status: TemplateStatus) -> list[Measurement]:
    """The templates whose status is `status` now, with Meta's reason for it."""
    return _templates_where(
        conn,
        templates.c.status == status.value,
        lambda row: f"is {status.value}" + (f": {row.reason}" if row.reason else ""),
    )


def template_disabled(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    return _in_status(conn, TemplateStatus.DISABLED)


def template_rejected(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    return _in_status(conn, TemplateStatus.REJECTED)


# -- reconciliation drift -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    """Where the tenant of an entity a reconciler names is found."""

    key: Column[Any]
    tenant: Column[Any]
    joined: FromClause


# The entities reconcilers name (sync/reconcile.Drift.entity, "<kind>:<id>[/…]") and where
# their owner is: a campaign's is its brand's.
OWNERS: Mapping[str, Owner] = {
    "brand": Owner(brands.c.brand_id, brands.c.tenant, brands),
    "campaign": Owner(
        tcr_campaigns.c.campaign_id,
        brands.c.tenant,
        tcr_campaigns.join(brands, brands.c.brand_id == tcr_campaigns.c.brand_id),
    ),
    "template": Owner(templates.c.meta_template_id, templates.c.tenant, templates),
    "customer": Owner(customers.c.ban, customers.c.tenant, customers),
    "company": Owner(customers.c.hubspot_company_id, customers.c.tenant, customers),
}


def _entity(item: Any) -> tuple[str, str] | None:
    entity = item.get("entity") if isinstance(item, dict) else None
    if not isinstance(entity, str):
        return None
    kind, _, rest = entity.partition(":")
    key = rest.split("/", 1)[0]
    return (kind, key) if kind in OWNERS and key else None


def owners_of(conn: Connection, entities: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The tenant of each entity that has one."""
    by_kind: dict[str, set[str]] = {}
    for kind, key in entities:
        by_kind.setdefault(kind, set()).add(key)
    found: dict[tuple[str, str], str] = {}
    for kind, keys in by_kind.items():
        owner = OWNERS[kind]
        query = (
            select(owner.key, owner.tenant)
            .select_from(owner.joined)
            .where(owner.key.in_(sorted(keys)), owner.tenant.is_not(None))
        )
        for key, tenant in conn.execute(query):
            found[(kind, key)] = tenant
    return found


def reconciliation_drift(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    """The differences the last run of each job found, counted per tenant that owns them. A
    run keeps its first 200 differences; the rest, and those of entities without a tenant,
    count for no tenant (superadmins see them). Dry runs are a person's look, not the job's
    record, and repair nothing: they are left out."""
    latest = (
        select(func.max(reconciliation_runs.c.id))
        .where(reconciliation_runs.c.dry_run == false(), reconciliation_runs.c.status != "running")
        .group_by(reconciliation_runs.c.job)
    )
    runs = conn.execute(
        select(reconciliation_runs)
        .where(reconciliation_runs.c.id.in_(latest))
        .order_by(reconciliation_runs.c.job)
    ).mappings()
    found = []
    for run in runs:
        details = run["details"] if isinstance(run["details"], list) else []
        named = [_entity(item) for item in details]
        owners = owners_of(conn, [e for e in named if e is not None])
        by_tenant: dict[str | None, list[str]] = {None: []}
        for item, entity in zip(details, named, strict=True):
            tenant = owners.get(entity) if entity is not None else None
            text = f"{item.get('entity')} {item.get('field')}" if isinstance(item, dict) else "?"
            by_tenant.setdefault(tenant, []).append(text)
        unlisted = max(int(run["drift"]) - len(details), 0)
        when = run["finished_at"] or run["started_at"]
        for tenant, items in by_tenant.items():
            count = len(items) + (unlisted if tenant is None else 0)
            shown = ", ".join(items[:5]) + (" …" if len(items) > 5 else "")
            found.append(
                Measurement(
                    subject=f"job:{run['job']}",
                    tenant=tenant,
                    labels={"job": run["job"], "tenant": _tenant_label(tenant)},
                    value=float(count),
                    detail=(
                        f"the last {run['job']} run (#{run['id']}, {when:%Y-%m-%d %H:%M} UTC) "
                        f"found {count} differences" + (f": {shown}" if shown else "")
                    ),
                )
            )
    return found


# -- destinations ----------------------------------------------------------------------------


def destination_circuit_open(conn: Connection, ctx: RuleContext) -> list[Measurement]:
    """The destinations whose circuit breaker is open now (their deliveries wait for a
    probe to succeed): the destination's tenant's, a shared one's for superadmins."""
    found = []
    for name, row in destination_circuits.open_circuits(conn).items():
        since = (
            f" since {row.circuit_opened_at:%Y-%m-%d %H:%M} UTC" if row.circuit_opened_at else ""
        )
        found.append(
            Measurement(
                subject=f"destination:{name}",
                tenant=row.tenant,
                labels={"destination": name, "tenant": _tenant_label(row.tenant)},
                value=1.0,
                detail=(
                    f"destination {name}: the circuit is open{since} after"
                    f" {row.consecutive_failures} failed attempts in a row; deliveries wait"
                    " for a probe to succeed"
                ),
            )
        )
    return found


RULES: tuple[Rule, ...] = (
    Rule(
        AlertKind.FAILURE_RATE,
        RuleScope.SOURCE,
        "alert_failure_rate",
        "hookyard_alert_failure_rate",
        failure_rate,
    ),
    Rule(
        AlertKind.DEAD_EVENTS,
        RuleScope.SOURCE,
        "alert_dead_events",
        "hookyard_alert_dead_events",
        dead_events,
    ),
    Rule(
        AlertKind.OLDEST_PENDING,
        RuleScope.GLOBAL,
        "alert_oldest_pending_seconds",
        "hookyard_alert_oldest_pending_seconds",
        oldest_pending,
    ),
    Rule(
        AlertKind.RED_QUALITY,
        RuleScope.TENANT,
        "alert_red_quality",
        "hookyard_alert_red_quality",
        red_quality,
    ),
    Rule(
        AlertKind.RECONCILIATION_DRIFT,
        RuleScope.TENANT,
        "alert_reconciliation_drift",
        "hookyard_alert_reconciliation_drift",
        reconciliation_drift,
    ),
    Rule(
        AlertKind.TEMPLATE_DISABLED,
        RuleScope.TENANT,
        "alert_template_disabled",
        "hookyard_alert_template_disabled",
        template_disabled,
    ),
    Rule(
        AlertKind.TEMPLATE_REJECTED,
        RuleScope.TENANT,
        "alert_template_rejected",
        "hookyard_alert_template_rejected",
        template_rejected,
    ),
    Rule(
        AlertKind.DESTINATION_CIRCUIT_OPEN,
        RuleScope.TENANT,
        "alert_destination_circuit_open",
        "hookyard_alert_destination_circuit_open",
        destination_circuit_open,
    ),
)
# The kinds about one WhatsApp template (subject `template:<id>`).
TEMPLATE_KINDS: frozenset[AlertKind] = frozenset(
    {AlertKind.RED_QUALITY, AlertKind.TEMPLATE_DISABLED, AlertKind.TEMPLATE_REJECTED}
)
BY_KIND: Mapping[AlertKind, Rule] = {rule.kind: rule for rule in RULES}
assert set(BY_KIND) == set(AlertKind), "every alert kind needs its rule"
assert all(rule.metric in ALERT_GAUGES for rule in RULES), "every rule needs its gauge"
