"""`/api/v1/auth/login`, `/me`, tenants, users and API keys."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from hookyard.accounts import identity
from hookyard.accounts.identity import AuthError, Role
from hookyard.api.auth import AdminScope, SuperadminScope, ViewerScope, engine_of, too_many
from hookyard.api.params import RowId
from hookyard.api.throttle import AuthGuard, LoginBusy, Throttled
from hookyard.domain.crm import tenancy

router = APIRouter(prefix="/api/v1")
Engine_ = Annotated[Engine, Depends(engine_of)]


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class Session(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 word, not a secret
    expires_in: int


class Me(BaseModel):
    subject: str
    role: Role
    tenant: str | None
    acting_for: str | None  # the tenant this request is scoped to (None: all)
    via: str


class NewTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str = Field(min_length=1, max_length=255)
    ban: str | None = Field(default=None, pattern=r"^[A-Z]{2}[0-9]{9}$")


class TenantOut(BaseModel):
    id: str
    name: str
    ban: str | None
    created_at: datetime


class TenantChoice(BaseModel):
    """A customer and the tenant it is (or a tenant that has no customer yet)."""

    tenant: str = Field(description="the tenant's id: what X-Customer-ID takes")
    name: str = Field(description="the customer's company name (else the tenant's name)")
    ban: str | None = Field(description="the customer's BAN (else the tenant's): picks it too")
    customer_id: int | None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    role: Role
    password: str | None = Field(default=None, min_length=12, max_length=1000)
    name: str | None = Field(default=None, max_length=200)


class UserOut(BaseModel):
    id: int
    email: str
    name: str | None
    role: Role
    tenant: str | None
    created_at: datetime
    disabled_at: datetime | None


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class KeyCreated(BaseModel):
    id: int
    name: str
    key: str  # shown once


class KeyOut(BaseModel):
    id: int
    prefix: str
    name: str
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@router.post("/auth/login", response_model=Session)
async def login(request: Request, engine: Engine_, body: Login) -> Session:
    """A session for an e-mail and password. Failures are counted per client address and
    per e-mail: too many in the window answer 429 with Retry-After (docs/security.md)."""
    secret: str | None = request.app.state.session_secret
    if not secret:
        raise HTTPException(503, "sessions are disabled: set HOOKYARD_SESSION_SECRET")
    guard: AuthGuard = request.app.state.auth_guard
    try:
        principal = await guard.check_password(
            request, body.email, partial(identity.login, engine, body.email, body.password)
        )
    except Throttled as exc:
        raise too_many(exc) from None
    except LoginBusy:
        raise login_busy() from None
    except AuthError as exc:
        raise HTTPException(401, str(exc)) from None
    token, seconds = identity.issue_session(principal, secret, request.app.state.session_minutes)
    return Session(access_token=token, expires_in=seconds)


def login_busy() -> HTTPException:
    return HTTPException(
        503, "too many logins are being checked at once; retry", headers={"Retry-After": "2"}
    )


@router.get("/me", response_model=Me)
def me(scope: ViewerScope) -> Me:
    p = scope.principal
    return Me(subject=p.subject, role=p.role, tenant=p.tenant, acting_for=scope.tenant, via=p.via)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(engine: Engine_, _: SuperadminScope) -> Any:
    return identity.list_tenants(engine)


@router.get("/tenants/search", response_model=list[TenantChoice])
def search_tenants(
    engine: Engine_,
    _: SuperadminScope,
    q: Annotated[
        str, Query(max_length=100, description="part of a name, a BAN or a tenant id")
    ] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    """The tenant picker's list (superadmins): customers by name and BAN, with their
    tenants, matching `q` case-insensitively; by name, the first `limit`."""
    with engine.connect() as conn:
        return tenancy.search(conn, q, limit)


@router.post("/tenants", status_code=201, response_model=TenantOut)
def create_tenant(engine: Engine_, _: SuperadminScope, body: NewTenant) -> Any:
    try:
        identity.create_tenant(engine, body.id, body.name, body.ban)
    except IntegrityError:
        raise HTTPException(409, f"tenant {body.id!r} (or its BAN) exists") from None
    return next(t for t in identity.list_tenants(engine) if t["id"] == body.id)


@router.get("/users", response_model=list[UserOut])
def list_users(engine: Engine_, scope: AdminScope) -> Any:
    return identity.list_users(engine, scope.tenant)


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(engine: Engine_, scope: AdminScope, body: NewUser) -> Any:
    if body.role is Role.SUPERADMIN:
        if scope.principal.role is not Role.SUPERADMIN:
            raise HTTPException(403, "only a superadmin creates superadmins")
        tenant = None
    else:
        tenant = scope.require_tenant()
    try:
        user_id = identity.create_user(
            engine, body.email, body.role, tenant, body.password, body.name
        )
    except IntegrityError:
        raise HTTPException(409, "a user with that e-mail exists") from None
    return next(u for u in identity.list_users(engine, tenant) if u["id"] == user_id)


@router.get("/api-keys", response_model=list[KeyOut])
def list_keys(engine: Engine_, scope: ViewerScope) -> Any:
    p = scope.principal
    if p.at_least(Role.ADMIN):  # an admin sees the tenant's keys, a superadmin everyone's
        return identity.list_api_keys(engine, None, scope.tenant)
    return identity.list_api_keys(engine, p.user_id, p.tenant)


@router.post("/api-keys", status_code=201, response_model=KeyCreated)
def create_key(engine: Engine_, scope: ViewerScope, body: NewKey) -> KeyCreated:
    if scope.principal.user_id is None:
        raise HTTPException(400, "the admin token is no user: create a superadmin user for keys")
    key_id, key = identity.create_api_key(engine, scope.principal.user_id, body.name)
    return KeyCreated(id=key_id, name=body.name, key=key)


@router.delete("/api-keys/{key_id}", status_code=204)
def revoke_key(engine: Engine_, scope: ViewerScope, key_id: RowId) -> Response:
    p = scope.principal
    user = None if p.at_least(Role.ADMIN) else p.user_id
    if user is None and not p.at_least(Role.ADMIN):
        raise HTTPException(404, f"no API key {key_id}")
    if not identity.revoke_api_key(engine, key_id, user, scope.tenant):
        raise HTTPException(404, f"no active API key {key_id}")
    return Response(status_code=204)
