"""Reconciliation: compare the provider's current state with ours and repair the difference
through the webhook path.

A reconciler reads our tables and the provider's API and yields a Finding per entity it
checked. Where they differ, the finding carries the body the provider would have sent had
its webhook arrived; that body goes through the source's own adapter (`parse`) into the
inbox with `origin='polling'`, and the same handler applies it: one code path for a state
change, whoever reported it, and the same ordering rule. The synthesised event carries the
time the state was observed, so a late webhook reporting the same change is older and is
superseded instead of firing a second time.

A run is recorded in `reconciliation_runs` (what was checked, the drift, what was fed),
dry runs included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, update

from hookyard.inbox.model import NewEvent, Origin
from hookyard.inbox.queries import polled_event_waiting
from hookyard.inbox.store import EventStore
from hookyard.logs import log
from hookyard.metrics import RECONCILE_DRIFT, RECONCILE_RUNS
from hookyard.providers.base import Source, WebhookRequest
from hookyard.sync.tables import reconciliation_runs

MAX_DETAILS = 200  # drift items kept on a run's row


@dataclass(frozen=True, slots=True)
class Drift:
    entity: str  # "brand:B123", "campaign:C1", "template:594…", "company:184…"
    field: str
    ours: Any
    theirs: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "field": self.field,
            "ours": self.ours,
            "theirs": self.theirs,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str
    tenant: str | None = None
    drift: tuple[Drift, ...] = ()
    # The webhook bodies that repair the drift, fed through the provider's adapter.
    bodies: tuple[bytes, ...] = ()
    # Prefer the provider's source whose path holds this word (TCR: a campaign's events are
    # stored under the campaigns source, as its webhooks would have been).
    source_hint: str | None = None
    # A repair that is not an inbound event (a value of ours to publish again): run in a
    # transaction, returns how many changes it queued.
    repair: Callable[[Connection], int] | None = None


class Reconciler(Protocol):
    provider: str
    job: str

    def check(self) -> Iterator[Finding]: ...


@dataclass
class RunResult:
    run_id: int
    provider: str
    job: str
    dry_run: bool
    checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    fed: int = 0
    skipped: int = 0  # entities whose earlier repair is still waiting in the inbox
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def pick_source(
    sources: Sequence[Source], provider: str, tenant: str | None, hint: str | None = None
) -> Source | None:
    """The source a synthesised event is stored under: the tenant's own source of that
    provider, else one without a tenant, else any of that provider (among those whose path
    holds `hint`, when there are any)."""
    mine = [s for s in sources if s.config.provider == provider]
    if hint is not None:
        mine = [s for s in mine if hint in s.path.lower()] or mine
    for wanted in (tenant, None):
        for source in mine:
            if source.config.tenant == wanted:
                return source
    return mine[0] if mine else None


def run(
    reconciler: Reconciler,
    store: EventStore,
    sources: Sequence[Source],
    *,
    dry_run: bool = False,
    on_fed: Callable[[], None] | None = None,
) -> RunResult:
    engine = store.writer
    started = datetime.now(UTC)
    with engine.begin() as tx:
        run_id = tx.execute(
            insert(reconciliation_runs)
            .values(
                provider=reconciler.provider,
                job=reconciler.job,
                dry_run=dry_run,
                status="running",
                started_at=started,
                checked=0,
                drift=0,
                fed=0,
            )
            .returning(reconciliation_runs.c.id)
        ).scalar_one()
    result = RunResult(int(run_id), reconciler.provider, reconciler.job, dry_run)
    log.info("reconcile_started", provider=reconciler.provider, job=reconciler.job, run=run_id)
    try:
        for finding in reconciler.check():
            result.checked += 1
            if not finding.drift:
                continue
            result.drift.extend(finding.drift)
            if dry_run:
                continue
            result.fed += _repair(engine, store, sources, reconciler.provider, finding, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log.error(
            "reconcile_failed", provider=reconciler.provider, job=reconciler.job, run=run_id,
            error=result.error[:300],
        )  # fmt: skip
    RECONCILE_RUNS.labels(reconciler.job, "ok" if result.ok else "failed").inc()
    RECONCILE_DRIFT.labels(reconciler.job).inc(len(result.drift))
    if result.fed and on_fed is not None:
        on_fed()
    with engine.begin() as tx:
        tx.execute(
            update(reconciliation_runs)
            .where(reconciliation_runs.c.id == run_id)
            .values(
                status="ok" if result.ok else "failed",
                finished_at=datetime.now(UTC),
                checked=result.checked,
                drift=len(result.drift),
                fed=result.fed,
                details=[d.as_dict() for d in result.drift[:MAX_DETAILS]] or None,
                error=result.error,
            )
        )
    log.info(
        "reconcile_finished", provider=reconciler.provider, job=reconciler.job, run=run_id,
        checked=result.checked, drift=len(result.drift), fed=result.fed, skipped=result.skipped,
        dry_run=dry_run, ok=result.ok,
    )  # fmt: skip
    return result


def _repair(
    engine: Engine,
    store: EventStore,
    sources: Sequence[Source],
    provider: str,
    finding: Finding,
    result: RunResult,
) -> int:
    fed = 0
    if finding.repair is not None:
        with engine.begin() as tx:
            fed += finding.repair(tx)
    if not finding.bodies:
        return fed
    source = pick_source(sources, provider, finding.tenant, finding.source_hint)
    if source is None:
        raise LookupError(f"no {provider} source is configured to feed polled events into")
    now = datetime.now(UTC)
    new = []
    for body in finding.bodies:
        request = WebhookRequest("POST", "polling:" + source.path, source.path, {}, {}, body)
        new.extend(_events(engine, source, provider, finding, request, now, result))
    if new:
        fed += len(store.insert_batch(new))
    return fed


def _events(
    engine: Engine,
    source: Source,
    provider: str,
    finding: Finding,
    request: WebhookRequest,
    now: datetime,
    result: RunResult,
) -> list[NewEvent]:
    new = []
    for parsed in source.adapter.parse(request):
        if parsed.entity_key is not None and _repair_waiting(engine, source, parsed.entity_key):
            result.skipped += 1
            continue
        new.append(
            NewEvent.of(
                source,
                parsed,
                headers={},
                body=request.body,
                received_at=now,
                origin=Origin.POLLING,
                tenant=finding.tenant,
            )
        )
    return new


def _repair_waiting(engine: Engine, source: Source, entity_key: str) -> bool:
    """An earlier polled event of this entity is not processed yet: it repairs the same drift
    (or a newer one is found on the next run), so no second one is fed."""
    with engine.connect() as conn:
        return polled_event_waiting(conn, source.name, entity_key)
