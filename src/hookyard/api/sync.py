"""Sync in the management API: customers pushed to HubSpot, the outbox and sync log,
reconciliation runs (and running one now), TCR subscriptions and brand registration."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select

from hookyard.api.auth import require_admin
from hookyard.domain.crm.rules import SERVICES, UnusableValue
from hookyard.domain.crm.tables import customers, outbox, sync_log
from hookyard.sync import hubspot as crm_sync
from hookyard.sync import tcr as tcr_sync
from hookyard.sync.client import ApiError
from hookyard.sync.services import PROVIDERS, SyncServices
from hookyard.sync.tables import reconciliation_runs

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)])


def services_of(request: Request) -> SyncServices:
    services: SyncServices = request.app.state.sync
    return services


Services = Annotated[SyncServices, Depends(services_of)]
Service = Literal["voice", "messaging", "telecom_data"]
assert set(SERVICES) == {"voice", "messaging", "telecom_data"}


class NewCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_name: str = Field(min_length=1, max_length=255)
    tenant: str | None = Field(default=None, max_length=100)
    status: str = Field(default="active", min_length=1, max_length=30)
    customer_type: str = Field(default="business", min_length=1, max_length=30)
    credit_limit: Decimal | None = Field(default=None, allow_inf_nan=False)
    current_balance: Decimal = Field(default=Decimal(0), allow_inf_nan=False)
    services: list[Service] = []


class CustomerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_name: str | None = Field(default=None, min_length=1, max_length=255)
    status: str | None = Field(default=None, min_length=1, max_length=30)
    customer_type: str | None = Field(default=None, min_length=1, max_length=30)
    current_balance: Decimal | None = Field(default=None, allow_inf_nan=False)
    services: list[Service] | None = None


class CustomerCreated(BaseModel):
    id: int
    ban: str
    hubspot_company_id: str | None
    sync: Literal["synced", "queued"]
    error: str | None = None


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


class SyncLogRow(BaseModel):
    id: int
    customer_id: int | None
    ban: str | None
    direction: str
    operation: str
    properties: dict[str, Any] | None
    result: str
    detail: str | None
    at: datetime


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


class BrandRegistration(BaseModel):
    """TCR's brand fields (camelCase, as TCR names them); extra fields go to TCR as given."""

    model_config = ConfigDict(extra="allow")

    entityType: str = Field(min_length=1, max_length=50)  # TCR's own (camelCase) names
    companyName: str = Field(min_length=1, max_length=255)
    displayName: str | None = Field(default=None, max_length=255)
    vertical: str = Field(min_length=1, max_length=50)
    brandRelationship: str = Field(min_length=1, max_length=50)
    tenant: str | None = Field(default=None, max_length=100)


def _engine(services: SyncServices) -> Engine:
    return services.store.writer


@router.post("/customers", status_code=201, response_model=CustomerCreated)
def create_customer(services: Services, body: NewCustomer) -> Any:
    try:
        created = crm_sync.create_customer(
            _engine(services),
            services.hubspot,
            body.tenant,
            body.company_name,
            services.policy,
            status=body.status,
            customer_type=body.customer_type,
            credit_limit=body.credit_limit,
            current_balance=body.current_balance,
            services=body.services,
        )
    except UnusableValue as exc:
        raise HTTPException(400, str(exc)) from None
    except crm_sync.CustomerRefused as exc:
        return JSONResponse(
            {"detail": f"HubSpot refused the customer: {exc}", "fields": exc.fields},
            status_code=400,
        )
    return CustomerCreated(
        id=created.customer_id,
        ban=created.ban,
        hubspot_company_id=created.hubspot_company_id,
        sync="synced" if created.hubspot_company_id else "queued",
        error=created.error,
    )


@router.patch("/customers/{customer_id}", status_code=202)
def change_customer(services: Services, customer_id: int, body: CustomerChange) -> Any:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(400, "nothing to change")
    if "services" in changes:
        changes["services"] = list(changes["services"])
    try:
        found = crm_sync.update_customer(_engine(services), customer_id, changes)
    except UnusableValue as exc:
        raise HTTPException(400, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no customer {customer_id}")
    if services.on_fed is not None:
        services.on_fed()  # wake a worker: the outbox row is due now
    return {"queued": services.hubspot is not None, "fields": sorted(changes)}


@router.get("/customers/{customer_id}/sync-log", response_model=list[SyncLogRow])
def customer_sync_log(services: Services, customer_id: int) -> Any:
    with _engine(services).connect() as conn:
        if (
            conn.execute(select(customers.c.id).where(customers.c.id == customer_id)).first()
            is None
        ):
            raise HTTPException(404, f"no customer {customer_id}")
        return (
            conn.execute(
                select(sync_log)
                .where(sync_log.c.customer_id == customer_id)
                .order_by(sync_log.c.id.desc())
                .limit(200)
            )
            .mappings()
            .all()
        )


@router.get("/sync/outbox", response_model=list[OutboxRow])
def list_outbox(
    services: Services,
    status: Literal["pending", "sending", "done", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(outbox.c.status == status)
    with _engine(services).connect() as conn:
        return conn.execute(query).mappings().all()


@router.post("/sync/outbox/{row_id}/retry")
def retry_outbox(services: Services, row_id: int) -> dict[str, Any]:
    if not crm_sync.retry_failed(_engine(services), row_id):
        raise HTTPException(404, f"no failed outbox row {row_id}")
    if services.on_fed is not None:
        services.on_fed()
    return {"id": row_id, "status": "pending"}


@router.get("/reconciliations", response_model=list[RunRow])
def list_runs(
    services: Services,
    provider: Literal["tcr", "hubspot", "meta"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    query = select(reconciliation_runs).order_by(reconciliation_runs.c.id.desc()).limit(limit)
    if provider is not None:
        query = query.where(reconciliation_runs.c.provider == provider)
    with _engine(services).connect() as conn:
        return conn.execute(query).mappings().all()


@router.post("/reconciliations/{provider}")
def reconcile_now(
    services: Services, provider: Literal["tcr", "hubspot", "meta"], dry_run: bool = False
) -> dict[str, Any]:
    assert provider in PROVIDERS
    try:
        reconcilers = services.reconcilers(provider)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    runs = [services.reconcile(r, dry_run=dry_run) for r in reconcilers]
    return {
        "runs": [
            {
                "id": r.run_id,
                "job": r.job,
                "checked": r.checked,
                "drift": [d.as_dict() for d in r.drift],
                "fed": r.fed,
                "error": r.error,
            }
            for r in runs
        ]
    }


def _tcr(services: SyncServices) -> Any:
    if services.tcr is None:
        raise HTTPException(404, "the TCR API is not configured: set HOOKYARD_TCR_API_KEY/SECRET")
    return services.tcr


@router.get("/tcr/subscriptions")
def tcr_subscriptions(services: Services) -> Any:
    try:
        found = _tcr(services).subscriptions()
    except ApiError as exc:
        raise HTTPException(503, f"TCR: {exc}") from None
    # The endpoint carries the source's token: shown without it.
    return [s | {"webhookEndpoint": str(s.get("webhookEndpoint", "")).split("?")[0]} for s in found]


@router.post("/messaging/brands", status_code=201)
def register_brand(services: Services, body: BrandRegistration) -> Any:
    client = _tcr(services)
    brand = body.model_dump(exclude_none=True)
    tenant = brand.pop("tenant", None)
    try:
        return tcr_sync.register_brand(_engine(services), client, tenant, brand, timeout=10.0)
    except ApiError as exc:
        if exc.retryable or exc.status is None:
            return JSONResponse(
                {"detail": f"TCR did not answer: {exc}"},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        return JSONResponse(
            {"detail": "TCR refused the brand", "errors": tcr_sync.tcr_errors(exc)},
            status_code=400,
        )
