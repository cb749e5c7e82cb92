"""Sync in the management API: the HubSpot outbox and the conflicts a person resolves,
reconciliation runs (and running one now), TCR subscriptions. Customers themselves are
`api/customers.py`, brand registration `api/brand_registration.py`.

Who may do what:
- the outbox and conflicts are a tenant's: viewers read them, admins retry a failed row or
  resolve a conflict; another tenant's row is a 404, like a missing one;
- reconciliation runs span every tenant (their drift names any tenant's values), and the TCR
  subscriptions carry a source's token in their URL: superadmins only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select

from hookyard.api.auth import (
    AdminScope,
    ErrorBody,
    SuperadminScope,
    ViewerScope,
    engine_of,
)
from hookyard.api.params import MAX_ID, RowId
from hookyard.domain.crm import queries
from hookyard.domain.crm.outbox import enqueue
from hookyard.domain.crm.queries import ConflictState
from hookyard.domain.crm.rules import BY_FIELD
from hookyard.domain.crm.service import Resolution, ResolveResult, resolve_conflict
from hookyard.domain.crm.tables import customers
from hookyard.http import ApiError
from hookyard.sync import hubspot as crm_sync
from hookyard.sync.services import PROVIDERS, SyncServices
from hookyard.sync.tables import reconciliation_runs

router = APIRouter(prefix="/api/v1")

CustomerField = Literal[
    "ban", "company_name", "status", "customer_type", "credit_limit", "current_balance",
    "services",
]  # fmt: skip
assert set(get_args(CustomerField)) == set(BY_FIELD)


def services_of(request: Request) -> SyncServices:
    services: SyncServices = request.app.state.sync
    return services


Services = Annotated[SyncServices, Depends(services_of)]
Reader = Annotated[Engine, Depends(engine_of)]


def writer(services: SyncServices) -> Engine:
    """The engine for writes (on SQLite, its transactions take the write lock at BEGIN)."""
    return services.store.writer


# -- error answers, declared for every route (the OpenAPI document is fuzzed) ---------------


_STATUS_TEXT = {
    400: "not possible as asked (the detail says why)",
    401: "no credentials, or unknown ones",
    403: "the caller's role is too low, or X-Customer-ID names another tenant",
    404: "no such row in the caller's tenant (or an unknown X-Customer-ID)",
    409: "in a state that forbids it",
    503: "the provider did not answer; retry later",
}


def errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: 401, 403 and 404 (every scoped route), plus `extra`."""
    return {
        code: {"model": ErrorBody, "description": _STATUS_TEXT[code]}
        for code in sorted({401, 403, 404, *extra})
    }


# -- the outbox -----------------------------------------------------------------------------


class OutboxRow(BaseModel):
    id: int
    tenant: str | None
    customer_id: int
    operation: str
    fields: list[str]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class OutboxRetried(BaseModel):
    id: int
    status: Literal["pending"]


@router.get("/sync/outbox", response_model=list[OutboxRow], responses=errors())
def list_outbox(
    engine: Reader,
    scope: ViewerScope,
    status: Literal["pending", "sending", "done", "failed"] | None = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    with engine.connect() as conn:
        return queries.list_outbox(
            conn, tenant=scope.tenant, status=status, customer_id=customer_id, limit=limit
        )


@router.post("/sync/outbox/{row_id}/retry", response_model=OutboxRetried, responses=errors())
def retry_outbox(services: Services, scope: AdminScope, row_id: RowId) -> OutboxRetried:
    """Send a failed row again, with a fresh set of attempts."""
    if not crm_sync.retry_failed(writer(services), row_id, tenant=scope.tenant):
        raise HTTPException(404, f"no failed outbox row {row_id}")
    if services.on_fed is not None:
        services.on_fed()
    return OutboxRetried(id=row_id, status="pending")


# -- conflicts ------------------------------------------------------------------------------


class ConflictOut(BaseModel):
    id: int
    tenant: str | None
    customer_id: int
    field: CustomerField
    our_value: str | None = Field(description="ours when HubSpot's change arrived")
    their_value: str | None
    event_id: int = Field(description="the HubSpot event that disagreed")
    provider_ts: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="`user:<id>`, `admin-token` or `hookyard`")
    resolution: Resolution | None


class ConflictPage(BaseModel):
    items: list[ConflictOut]
    total: int
    limit: int
    offset: int


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: Literal["keep_ours", "take_theirs"]


class ConflictResolved(ConflictOut):
    queued: bool = Field(description="our value was queued to be sent to HubSpot (keep_ours)")


@router.get("/sync-conflicts", response_model=ConflictPage, responses=errors())
def list_conflicts(
    engine: Reader,
    scope: ViewerScope,
    state: ConflictState = ConflictState.OPEN,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    field: CustomerField | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ConflictPage:
    with engine.connect() as conn:
        page = queries.list_conflicts(
            conn, tenant=scope.tenant, state=state, customer_id=customer_id, field=field,
            limit=limit, offset=offset,
        )  # fmt: skip
    items = [ConflictOut.model_validate(dict(r)) for r in page.rows]
    return ConflictPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/sync-conflicts/{conflict_id}", response_model=ConflictOut, responses=errors())
def show_conflict(engine: Reader, scope: ViewerScope, conflict_id: RowId) -> ConflictOut:
    with engine.connect() as conn:
        found = queries.get_conflict(conn, conflict_id, tenant=scope.tenant)
    if found is None:
        raise HTTPException(404, f"no conflict {conflict_id}")
    return ConflictOut.model_validate(dict(found))


@router.post(
    "/sync-conflicts/{conflict_id}/resolve",
    response_model=ConflictResolved,
    responses=errors(409),
)
def resolve(
    services: Services, scope: AdminScope, conflict_id: RowId, body: Decision
) -> ConflictResolved:
    """Decide a conflict; the first decision is kept (a second one is a 409).

    A conflict is open while HubSpot holds a value of one of our fields (`ours` authority)
    that differs from ours, and while it is open the reconciler leaves the field alone. So:
    - `keep_ours` keeps the customer as it is and queues the field to HubSpot in the same
      transaction, so HubSpot converges now rather than at the next daily reconciliation
      (unless HubSpot deleted the company: nothing to update then). The sender records the
      value as `pushed_value`; HubSpot's webhook for that change is our echo and is ignored
      (and even were it not, its value equals ours: it closes, not opens, a conflict);
    - `take_theirs` applies HubSpot's value as our change and queues nothing: HubSpot holds
      that value already (a newer HubSpot change would have superseded this conflict, one
      back to our value would have closed it), so sending it would only cause an echo.
    """
    chosen = Resolution(body.resolution)
    with writer(services).begin() as tx:
        result = resolve_conflict(
            tx, conflict_id, chosen, scope.principal.subject, tenant=scope.tenant
        )
        if result is ResolveResult.NOT_FOUND:
            raise HTTPException(404, f"no conflict {conflict_id}")
        if result is ResolveResult.ALREADY_RESOLVED:
            raise HTTPException(409, f"conflict {conflict_id} is already resolved")
        conflict = queries.get_conflict(tx, conflict_id, tenant=scope.tenant)
        assert conflict is not None  # resolved in this very transaction
        queued = False
        if chosen is Resolution.KEEP_OURS:
            customer = (
                tx.execute(select(customers).where(customers.c.id == conflict["customer_id"]))
                .mappings()
                .one()
            )
            if customer["hubspot_deleted_at"] is None:
                queued = bool(enqueue(tx, customer, [conflict["field"]]))
    if queued and services.on_fed is not None:
        services.on_fed()  # wake a worker: the outbox row is due now
    return ConflictResolved.model_validate(dict(conflict) | {"queued": queued})


# -- reconciliation -------------------------------------------------------------------------


class RunRow(BaseModel):
    id: int
    provider: str
    job: str
    dry_run: bool
    status: str
    started_at: datetime
    finished_at: datetime | None
    checked: int
    drift: int
    fed: int
    details: list[dict[str, Any]] | None
    error: str | None


class DriftOut(BaseModel):
    entity: str
    field: str
    ours: Any
    theirs: Any


class RunDone(BaseModel):
    id: int
    job: str
    checked: int
    drift: list[DriftOut]
    fed: int
    error: str | None


class Reconciled(BaseModel):
    runs: list[RunDone]


Provider = Literal["tcr", "hubspot", "meta"]
assert set(get_args(Provider)) == set(PROVIDERS)


@router.get("/reconciliations", response_model=list[RunRow], responses=errors())
def list_runs(
    engine: Reader,
    _: SuperadminScope,
    provider: Provider | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    query = select(reconciliation_runs).order_by(reconciliation_runs.c.id.desc()).limit(limit)
    if provider is not None:
        query = query.where(reconciliation_runs.c.provider == provider)
    with engine.connect() as conn:
        return conn.execute(query).mappings().all()


@router.post("/reconciliations/{provider}", response_model=Reconciled, responses=errors())
def reconcile_now(
    services: Services, _: SuperadminScope, provider: Provider, dry_run: bool = False
) -> Reconciled:
    """Run the provider's reconcilers now (every tenant's entities); 404 when its API is
    not configured."""
    try:
        reconcilers = services.reconcilers(provider)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    runs = [services.reconcile(r, dry_run=dry_run) for r in reconcilers]
    return Reconciled(
        runs=[
            RunDone(
                id=r.run_id,
                job=r.job,
                checked=r.checked,
                drift=[DriftOut.model_validate(d.as_dict()) for d in r.drift],
                fed=r.fed,
                error=r.error,
            )
            for r in runs
        ]
    )


# -- TCR ------------------------------------------------------------------------------------


class TcrSubscription(BaseModel):
    """TCR's subscription, its endpoint without the query (which carries the token)."""

    model_config = ConfigDict(extra="allow")
    eventCategory: str  # TCR's own (camelCase) names
    webhookEndpoint: str


def _tcr(services: SyncServices) -> Any:
    if services.tcr is None:
        raise HTTPException(404, "the TCR API is not configured: set HOOKYARD_TCR_API_KEY/SECRET")
    return services.tcr


@router.get("/tcr/subscriptions", response_model=list[TcrSubscription], responses=errors(503))
def tcr_subscriptions(services: Services, _: SuperadminScope) -> Any:
    try:
        found = _tcr(services).subscriptions()
    except ApiError as exc:
        raise HTTPException(503, f"TCR: {exc}") from None
    # The endpoint carries the source's token: shown without it.
    return [
        s | {"eventCategory": str(s.get("eventCategory", "")),
             "webhookEndpoint": str(s.get("webhookEndpoint", "")).split("?")[0]}
        for s in found
    ]  # fmt: skip
