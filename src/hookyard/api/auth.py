"""Authentication and authorisation of the management API.

Every route depends on one of the scope dependencies below, which
1. identify the caller from `Authorization: Bearer …`: the operator's `HOOKYARD_ADMIN_TOKEN`
   (a superadmin), an API key (`hk_…`) or a session token from `POST /api/v1/auth/login`
   (401 otherwise);
2. check the route's minimum role: viewer < member < admin < superadmin (403 otherwise);
3. fix the tenant the request acts for: a superadmin picks one with `X-Customer-ID` (a
   tenant id, or the BAN of the tenant or of any of its customers: customers are tenants,
   domain/crm/tenancy.py) or sees every tenant without it; everyone else is scoped to their
   own tenant, and naming another one, or one that does not exist, is refused (403, the
   same answer either way: the header tells a tenant's member nothing about other tenants).

A route then filters every query with `scope.where(table.c.tenant)`, and answers 404 for a
row of another tenant: an id guessed across tenants looks exactly like a missing one.

Failed API keys and admin tokens are counted per client (and API keys per key too): too many
answer 429 (api/throttle.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Engine, true

from hookyard.accounts.identity import (
    AuthError,
    KeyKind,
    Principal,
    Role,
    authenticate_key,
    kind_of,
    operator,
    read_session,
)
from hookyard.api.throttle import AuthGuard, Credential, Throttled, api_key_account
from hookyard.domain.crm.tenancy import tenant_of
from hookyard.providers.signing import constant_time_equal

CUSTOMER_HEADER = "x-customer-id"
# The dashboard's session (web/session.py); also accepted by the live socket (api/live.py).
SESSION_COOKIE = "hookyard_session"


class ErrorBody(BaseModel):
    detail: str


# Answers every management route may give besides its own: declared once, on every router
# (app.py), so the OpenAPI document tells clients (and schemathesis) the truth.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a request the route cannot take"},
    401: {"model": ErrorBody, "description": "no or unknown credentials"},
    403: {"model": ErrorBody, "description": "the role is not enough, or another tenant"},
    404: {"model": ErrorBody, "description": "no such row (in this tenant)"},
    409: {"model": ErrorBody, "description": "in conflict with the current state"},
    413: {"model": ErrorBody, "description": "the body is over the limit (1 MiB by default)"},
    429: {
        "model": ErrorBody,
        "description": "too many failed credentials from this client or for this account;"
        " see Retry-After",
    },
    503: {"model": ErrorBody, "description": "storage or a provider unavailable; retry"},
}
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Scope:
    principal: Principal
    tenant: str | None  # None: every tenant (a superadmin who picked none)

    def where(self, column: Any) -> ColumnElement[bool]:
        """The filter for a `tenant` column: this tenant's rows (or every row)."""
        return true() if self.tenant is None else column == self.tenant

    def allows(self, tenant: str | None) -> bool:
        return self.tenant is None or tenant == self.tenant

    def require_tenant(self) -> str:
        """The tenant a new row belongs to: a superadmin must pick one first."""
        if self.tenant is None:
            raise HTTPException(400, "pick the tenant this is for with the X-Customer-ID header")
        return self.tenant


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def authenticate(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401, "send Authorization: Bearer <API key, session or admin token>", headers=_CHALLENGE
        )
    return authenticate_token(request, token)


def authenticate_token(request: Request, token: str) -> Principal:
    """Who a bearer token is, wherever it came from (a header, a socket's query, the
    dashboard's cookie): 401 when it is nobody, 429 after too many such failures."""
    state = request.app.state
    kind = kind_of(token)
    if kind is KeyKind.SESSION:  # signed: nothing to guess, so not throttled
        if not state.session_secret:
            raise HTTPException(
                401, "sessions are disabled: set HOOKYARD_SESSION_SECRET", headers=_CHALLENGE
            )
        try:
            return read_session(state.engine, token, state.session_secret, state.admin_token)
        except AuthError as exc:
            raise HTTPException(401, str(exc), headers=_CHALLENGE) from None
    guard: AuthGuard = state.auth_guard
    client = guard.client_of(request)
    credential, account = (
        (Credential.API_KEY, api_key_account(token))
        if kind is KeyKind.API_KEY
        else (Credential.ADMIN_TOKEN, None)
    )
    try:
        guard.check(credential, client, account)
    except Throttled as exc:
        raise too_many(exc) from None
    if kind is KeyKind.API_KEY:
        try:
            return authenticate_key(state.engine, token)
        except AuthError as exc:
            guard.failed(credential, client, account)
            raise HTTPException(401, str(exc), headers=_CHALLENGE) from None
    expected: str | None = state.admin_token
    if expected and constant_time_equal(token, expected):
        return operator()
    guard.failed(credential, client, account)
    raise HTTPException(401, "unknown token", headers=_CHALLENGE)


def too_many(exc: Throttled) -> HTTPException:
    return HTTPException(429, str(exc), headers={"Retry-After": str(exc.seconds)})


def scope_of(request: Request, principal: Principal, minimum: Role, asked: str) -> Scope:
    """Check the role (403) and fix the tenant, `asked` being a tenant id, a BAN or ''."""
    if not principal.at_least(minimum):
        raise HTTPException(403, f"this needs the {minimum.value} role")
    asked = asked.strip()
    if principal.role is Role.SUPERADMIN:
        if not asked:
            return Scope(principal, None)
        with engine_of(request).connect() as conn:
            tenant = tenant_of(conn, asked)
        if tenant is None:
            raise HTTPException(404, f"no tenant {asked!r} (X-Customer-ID: a tenant id or BAN)")
        return Scope(principal, tenant)
    if asked:
        with engine_of(request).connect() as conn:
            tenant = tenant_of(conn, asked)
        if tenant != principal.tenant:
            raise HTTPException(403, "X-Customer-ID names another tenant: superadmins only")
    return Scope(principal, principal.tenant)


class scoped:  # lower case: used as a function, `Depends(scoped(Role.ADMIN))`
    """The dependency of a route needing at least `minimum`; it keeps `minimum`, so that
    the dashboard, which calls the API's route functions itself, applies the same role."""

    def __init__(self, minimum: Role) -> None:
        self.minimum = minimum

    def __call__(self, request: Request) -> Scope:
        principal = authenticate(request)
        return scope_of(request, principal, self.minimum, request.headers.get(CUSTOMER_HEADER, ""))


ViewerScope = Annotated[Scope, Depends(scoped(Role.VIEWER))]
MemberScope = Annotated[Scope, Depends(scoped(Role.MEMBER))]
AdminScope = Annotated[Scope, Depends(scoped(Role.ADMIN))]
SuperadminScope = Annotated[Scope, Depends(scoped(Role.SUPERADMIN))]


def require_admin(request: Request) -> None:
    """Routes not yet tenant-aware: admins and superadmins only."""
    scoped(Role.ADMIN)(request)
