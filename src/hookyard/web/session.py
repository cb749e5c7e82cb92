"""Who is looking at the dashboard, and what they may do there.

A dashboard login is the management API's session (`identity.issue_session`), carried in an
HttpOnly, SameSite=Strict cookie instead of a header; the operator's admin token opens one
too. Every page resolves its `Scope` with the API's own code (`auth.authenticate_token`,
`auth.scope_of`), and calls the API's route functions through `call`, which applies the role
each of them declares: the dashboard can never show or do more than the API would.

A session is renewed while it is used (a new token once half its time has passed), so a
person working in the dashboard stays logged in and an idle one is logged out.

Changes (POST) also need the CSRF token of the login, from a header (htmx) or a form field,
and an `Origin`, when the browser sends one, of this very site.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import jwt
from fastapi import Depends, HTTPException, Request, Response
from fastapi.params import Depends as DependsParam

from hookyard.accounts.identity import KeyKind, Principal, Role, issue_session, kind_of
from hookyard.api.auth import SESSION_COOKIE, Scope, authenticate_token, scope_of, scoped
from hookyard.providers.signing import constant_time_equal
from hookyard.proxy import is_https

TENANT_COOKIE = "hookyard_tenant"
CSRF_COOKIE = "hookyard_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class LoginRequired(Exception):
    """No (valid) session: the person is sent to the login page."""


def _secure(request: Request) -> bool:
    """Cookies only over https: seen directly, or the `X-Forwarded-Proto` of a proxy the
    operator trusts (HOOKYARD_TRUST_PROXY_HEADERS), or always (HOOKYARD_SECURE_COOKIES)."""
    state = request.app.state
    if state.secure_cookies:
        return True
    return is_https(request.url.scheme, request.headers, state.trust_proxy_headers)


def open_session(request: Request, response: Response, principal: Principal) -> None:
    """Log in: the session and CSRF cookies (the tenant picked before is forgotten)."""
    state = request.app.state
    token, seconds = issue_session(
        principal, state.session_secret, state.session_minutes, state.admin_token
    )
    _set(request, response, SESSION_COOKIE, token, seconds)
    _set(request, response, CSRF_COOKIE, secrets.token_urlsafe(24), None)
    response.delete_cookie(TENANT_COOKIE, path="/")


def close_session(response: Response) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE, TENANT_COOKIE):
        response.delete_cookie(name, path="/")


def pick_tenant(request: Request, response: Response, tenant: str | None) -> None:
    if tenant is None:
        response.delete_cookie(TENANT_COOKIE, path="/")
    else:
        _set(request, response, TENANT_COOKIE, tenant, None)


def _set(request: Request, response: Response, name: str, value: str, age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",  # the live socket (/api/v1/live) reads the session too
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def ui_scope(request: Request) -> Scope:
    """The scope of the logged-in person (any role), acting for the tenant they picked."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if kind_of(token) is not KeyKind.SESSION:
        raise LoginRequired
    try:
        principal = authenticate_token(request, token)
    except HTTPException:
        raise LoginRequired from None
    _renew_if_old(request, principal, token)
    asked = request.cookies.get(TENANT_COOKIE, "") if principal.role is Role.SUPERADMIN else ""
    try:
        scope = scope_of(request, principal, Role.VIEWER, asked)
    except HTTPException:  # the picked tenant is gone: every tenant, as before the pick
        scope = scope_of(request, principal, Role.VIEWER, "")
    request.state.ui_scope = scope
    return scope


UiScope = Annotated[Scope, Depends(ui_scope)]


def _renew_if_old(request: Request, principal: Principal, token: str) -> None:
    claims = jwt.decode(token, options={"verify_signature": False})  # verified just now
    issued, expires = float(claims.get("iat", 0)), float(claims["exp"])
    if datetime.now(UTC).timestamp() > issued + (expires - issued) / 2:
        state = request.app.state
        request.state.renewed_session = issue_session(
            principal, state.session_secret, state.session_minutes, state.admin_token
        )


# Scripts and styles from this site only (htmx and live.js are served by hookyard itself),
# no framing (clickjacking), sockets to this site only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold tenants' data: never in a shared cache
}


def finish(request: Request, response: Response) -> Response:
    """Every dashboard answer passes here: the security headers, and a renewed session
    when there is one."""
    response.headers.update(SECURITY_HEADERS)
    renewed: tuple[str, int] | None = getattr(request.state, "renewed_session", None)
    if renewed is not None:
        _set(request, response, SESSION_COOKIE, *renewed)
    return response


def csrf_token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE, "")


def check_origin(request: Request) -> None:
    """No other site's page may post here (the login form included: no login CSRF)."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "a change from another site's page is refused")


async def check_csrf(request: Request) -> None:
    """For every dashboard POST once logged in: the login's CSRF token, and no other site's
    Origin."""
    check_origin(request)
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        sent = str((await request.form()).get(CSRF_FIELD, ""))
    if not expected or not constant_time_equal(sent, expected):
        raise HTTPException(403, "the form is stale or not ours: reload the page and try again")


Csrf = Depends(check_csrf)


def call(fn: Any, request: Request, scope: Scope, **given: Any) -> Any:
    """Run an API route function as FastAPI would, for the dashboard: its scope parameter
    gets `scope` once the role it declares is checked (403 otherwise), its other
    dependencies are resolved from the request (engine, store, services), and `given`
    supplies the rest."""
    kwargs: dict[str, Any] = {}
    for name, needs in _dependencies(fn):
        if name in given:
            continue
        if needs is Request:
            kwargs[name] = request
        elif isinstance(needs, scoped):
            if not scope.principal.at_least(needs.minimum):
                raise HTTPException(403, f"this needs the {needs.minimum.value} role")
            kwargs[name] = scope
        else:
            kwargs[name] = needs(request)
    return fn(**kwargs, **given)


@cache
def _dependencies(fn: Any) -> list[tuple[str, Any]]:
    """A route function's parameters that FastAPI fills in: (name, `Request` or the
    dependency callable); read once per function."""
    found: list[tuple[str, Any]] = []
    for name, hint in get_type_hints(fn, include_extras=True).items():
        if hint is Request:
            found.append((name, Request))
        elif name != "return" and get_origin(hint) is Annotated:
            marks = [m.dependency for m in get_args(hint)[1:] if isinstance(m, DependsParam)]
            if marks:
                found.append((name, marks[0]))
    return found
