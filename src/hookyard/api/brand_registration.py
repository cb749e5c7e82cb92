"""10DLC brand registration in the management API: registering a brand with TCR (the record
kept whatever TCR answers), the registrations and their state, a person's retry, and
changing a registered brand at TCR.

Who may do what: registering and changing a brand is everyday work (members, for their own
tenant); reading registrations is for viewers; retrying a failed one is for admins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine

from hookyard.api.auth import AdminScope, ErrorBody, MemberScope, ViewerScope, engine_of
from hookyard.api.messaging import TCR_ID, Brand
from hookyard.api.params import Cursor, Limit, RowId, next_cursor
from hookyard.domain.tendlc import queries
from hookyard.domain.tendlc import registration as registrations
from hookyard.domain.tendlc.enums import EntityType, Vertical
from hookyard.domain.tendlc.registration import MissingField, RegistrationStatus
from hookyard.http import ApiError
from hookyard.sync.services import SyncServices
from hookyard.sync.tcr_registration import BrandRegistrar, EnumRefused, tcr_errors

router = APIRouter(prefix="/api/v1", tags=["messaging"])
Reader = Annotated[Engine, Depends(engine_of)]


def services_of(request: Request) -> SyncServices:
    services: SyncServices = request.app.state.sync
    return services


Services = Annotated[SyncServices, Depends(services_of)]
BrandId = Annotated[str, Path(pattern=TCR_ID, description="TCR's brand id")]

_ERRORS = {
    401: "no credentials, or unknown ones",
    403: "the caller's role is too low, or X-Customer-ID names another tenant",
    404: "no such row in the caller's tenant (or the TCR API is not configured)",
    409: "in a state that forbids it",
    503: "TCR did not answer; nothing changed, retry later",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        c: {"model": ErrorBody, "description": _ERRORS[c]} for c in sorted({401, 403, 404, *codes})
    }


class _NoTenant(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def _no_tenant(cls, data: Any) -> Any:
        # Once a body field; now the scope decides. Refused rather than sent on to TCR.
        if isinstance(data, dict) and "tenant" in data:
            raise ValueError("no `tenant` field: the brand is the caller's tenant's")
        return data


class BrandRegistration(_NoTenant):
    """TCR's brand fields (camelCase, as TCR names them); extra fields go to TCR as given.
    Omitted: `brandRelationship` is BASIC_ACCOUNT, `companyName` the display name (else the
    tenant's customer's company), `vertical` the tenant's customer's. The brand is the
    caller's tenant's (a superadmin picks one with X-Customer-ID)."""

    model_config = ConfigDict(extra="allow")

    entityType: str = Field(min_length=1, max_length=50)  # TCR's own (camelCase) names
    companyName: str | None = Field(default=None, min_length=1, max_length=255)
    displayName: str | None = Field(default=None, max_length=255)
    vertical: str | None = Field(default=None, min_length=1, max_length=50)
    brandRelationship: str | None = Field(default=None, min_length=1, max_length=50)


class BrandChange(_NoTenant):
    """The fields to change at TCR (camelCase, as TCR names them); extra fields go as given."""

    model_config = ConfigDict(extra="allow")

    entityType: str | None = Field(default=None, min_length=1, max_length=50)
    companyName: str | None = Field(default=None, min_length=1, max_length=255)
    displayName: str | None = Field(default=None, min_length=1, max_length=255)
    vertical: str | None = Field(default=None, min_length=1, max_length=50)
    brandRelationship: str | None = Field(default=None, min_length=1, max_length=50)

    @model_validator(mode="after")
    def _something(self) -> BrandChange:
        if not self.model_dump(exclude_none=True):
            raise ValueError("name at least one field to change")
        if "brandId" in self.model_dump():
            raise ValueError("no `brandId` field: the path names the brand")
        return self


class Registration(BaseModel):
    id: int
    tenant: str
    status: RegistrationStatus
    request: dict[str, Any] = Field(description="TCR's fields as sent (defaults filled in)")
    attempts: int
    next_attempt_at: datetime | None = Field(description="the next attempt, while PENDING")
    last_error: str | None = Field(description="the last failed attempt, as hookyard saw it")
    errors: list[dict[str, Any]] | None = Field(
        description="FAILED: TCR's own error list ({code, field, description}), or why TCR "
        "never answered"
    )
    answer: dict[str, Any] | None = Field(description="REGISTERED: TCR's answer, as given")
    brand_id: str | None = Field(description="REGISTERED: TCR's brand id")
    identity_status: str | None = Field(description="as TCR's answer gave it")
    trust_score: int | None = Field(description="as TCR's answer gave it")
    requested_by: str | None
    created_at: datetime
    updated_at: datetime
    registered_at: datetime | None


class RegistrationPage(BaseModel):
    items: list[Registration]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class RegistrationRefusal(ErrorBody):
    errors: list[dict[str, Any]] = Field(
        description="TCR's own error list, or ours naming the field"
    )
    registration: Registration | None = Field(
        default=None, description="the registration kept FAILED (none: refused before it)"
    )


def out(row: dict[str, Any]) -> Registration:
    answer = row["answer"] if isinstance(row["answer"], dict) else {}
    identity = answer.get("identityStatus") or answer.get("brandIdentityStatus")
    score = answer.get("trustScore")
    return Registration.model_validate(
        row
        | {
            "next_attempt_at": row["next_attempt_at"]
            if row["status"] == RegistrationStatus.PENDING
            else None,
            "identity_status": identity if isinstance(identity, str) else None,
            "trust_score": score
            if isinstance(score, int) and not isinstance(score, bool)
            else None,
        }
    )


def registrar_of(services: SyncServices) -> BrandRegistrar:
    registrar = services.registrar()
    if registrar is None:
        raise HTTPException(404, "the TCR API is not configured: set HOOKYARD_TCR_API_KEY/SECRET")
    return registrar


RELATIONSHIPS = ("BASIC_ACCOUNT", "SMALL_ACCOUNT", "MEDIUM_ACCOUNT", "LARGE_ACCOUNT", "KEY_ACCOUNT")


def choices(services: SyncServices) -> dict[str, list[str]]:
    """The values the registration form offers, TCR's field name -> TCR's values (ours when
    TCR cannot be asked: TCR checks them anyway)."""
    ours = {
        "entityType": [e.value for e in EntityType],
        "vertical": [v.value for v in Vertical],
        "brandRelationship": list(RELATIONSHIPS),
    }
    registrar = services.registrar()
    if registrar is None:
        return ours
    return {name: sorted(registrar.enums.values(name) or values) for name, values in ours.items()}


def _ours(field: str, message: str) -> JSONResponse:
    """Our own refusal before TCR is called, naming the field as TCR would."""
    body = {"detail": message, "errors": [{"code": 400, "field": field, "description": message}]}
    return JSONResponse(body, 400)


@router.post(
    "/messaging/brands",
    status_code=201,
    response_model=Registration,
    responses=errors()
    | {
        202: {"model": Registration, "description": "TCR did not answer: kept, retried later"},
        400: {
            "model": RegistrationRefusal,
            "description": "a field is not one of TCR's values, or TCR refused the brand",
        },
    },
)
def register_brand(services: Services, scope: MemberScope, body: BrandRegistration) -> Any:
    """Register a brand with TCR for the caller's tenant. The registration is kept first, then
    attempted (waiting up to 10 s for TCR): 201 REGISTERED; 400 FAILED with TCR's own
    errors; 202 PENDING when TCR did not answer (a worker tries again with backoff)."""
    tenant = scope.require_tenant()
    registrar = registrar_of(services)
    try:
        row = registrar.submit(tenant, body.model_dump(exclude_none=True), scope.principal.subject)
    except (MissingField, EnumRefused) as exc:
        return _ours(exc.field, str(exc))
    found = out(row)
    if found.status is RegistrationStatus.REGISTERED:
        return JSONResponse(jsonable_encoder(found), 201)
    if found.status is RegistrationStatus.FAILED:
        refusal = RegistrationRefusal(
            detail="TCR refused the brand", errors=found.errors or [], registration=found
        )
        return JSONResponse(jsonable_encoder(refusal), 400)
    if services.on_fed is not None:
        services.on_fed()  # wake a worker: it knows when the retry is due
    return JSONResponse(jsonable_encoder(found), 202)


@router.get("/messaging/brand-registrations", response_model=RegistrationPage, responses=errors())
def list_registrations(
    engine: Reader,
    scope: ViewerScope,
    status: RegistrationStatus | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> RegistrationPage:
    with engine.connect() as conn:
        rows = registrations.listed(
            conn, scope.tenant, status=status, limit=limit, before_id=before_id
        )
    items = [out(r) for r in rows]
    return RegistrationPage(items=items, next_cursor=next_cursor(items, limit))


@router.get(
    "/messaging/brand-registrations/{registration_id}",
    response_model=Registration,
    responses=errors(),
)
def show_registration(engine: Reader, scope: ViewerScope, registration_id: RowId) -> Registration:
    with engine.connect() as conn:
        row = registrations.get(conn, registration_id, scope.tenant)
    if row is None:
        raise HTTPException(404, f"no brand registration {registration_id}")
    return out(row)


@router.post(
    "/messaging/brand-registrations/{registration_id}/retry",
    response_model=Registration,
    responses=errors(409),
)
def retry_registration(
    services: Services, engine: Reader, scope: AdminScope, registration_id: RowId
) -> Registration:
    """Try a FAILED (or waiting) registration again now, with a fresh set of attempts; a
    worker makes the attempt."""
    registrar = registrar_of(services)
    if not registrar.retry(registration_id, tenant=scope.tenant):
        with engine.connect() as conn:
            row = registrations.get(conn, registration_id, scope.tenant)
        if row is None:
            raise HTTPException(404, f"no brand registration {registration_id}")
        raise HTTPException(409, f"brand registration {registration_id} is {row['status']}")
    if services.on_fed is not None:
        services.on_fed()
    return out(registrar.get(registration_id))


@router.patch(
    "/messaging/brands/{brand_id}",
    response_model=Brand,
    responses=errors(503)
    | {
        400: {
            "model": RegistrationRefusal,
            "description": "a field is not one of TCR's values, or TCR refused the change",
        }
    },
)
def update_brand(
    services: Services, engine: Reader, scope: MemberScope, brand_id: BrandId, body: BrandChange
) -> Any:
    """Change a brand at TCR (`PUT /v2/brand/{brandId}`), then its row as TCR answered. A
    refusal or no answer changes nothing here."""
    with engine.connect() as conn:
        if queries.find_brand(conn, scope.tenant, brand_id) is None:
            raise HTTPException(404, f"no brand {brand_id}")
    registrar = registrar_of(services)
    try:
        registrar.update_brand(brand_id, body.model_dump(exclude_none=True))
    except EnumRefused as exc:
        return _ours(exc.field, str(exc))
    except ApiError as exc:
        if exc.retryable or exc.status is None:
            return JSONResponse(
                {"detail": f"TCR did not answer: {exc}"},
                status_code=503,
                headers={"Retry-After": "30"},
            )
        return JSONResponse(
            {"detail": "TCR refused the change", "errors": tcr_errors(exc)}, status_code=400
        )
    with engine.connect() as conn:
        found = queries.find_brand(conn, scope.tenant, brand_id)
    return Brand.model_validate(found)
