"""The operator dashboard under `/ui/` (docs/dashboard.md): login, the tenant picker, the
pages of each area (their own modules), static assets, and how dashboard errors look."""

from __future__ import annotations

from functools import partial
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookyard.accounts import identity
from hookyard.accounts.identity import AuthError, Principal, Role
from hookyard.api.throttle import AuthGuard, Credential, LoginBusy, Throttled
from hookyard.domain.crm import tenancy
from hookyard.logs import log
from hookyard.providers.signing import constant_time_equal
from hookyard.web import (
    alerts,
    conflicts,
    customers,
    destinations,
    events,
    leads,
    messaging,
    notifications,
    tenants,
    whatsapp,
)
from hookyard.web.render import back, dashboard_path, error_page, page
from hookyard.web.session import (
    Csrf,
    LoginRequired,
    UiScope,
    check_origin,
    close_session,
    open_session,
    pick_tenant,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

Text = Annotated[str, Form(max_length=1000)]
HOME = "/ui/events"  # where a login leads when it was asked for no other page
EVERY_TENANT = "*"  # the picker's "All tenants" (FastAPI reads an empty form field as absent)


@router.get("/")
def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    return page(
        request, None, "login.html", next=dashboard_path(request.query_params.get("next"), HOME)
    )


@router.post("/login", dependencies=[Depends(check_origin)])
async def login(
    request: Request,
    email: Text = "",
    password: Text = "",
    token: Text = "",
    next: Text = HOME,
) -> Response:
    """E-mail and password, or the operator's admin token; throttled like the API's login
    and bearer tokens (api/throttle.py)."""
    state = request.app.state
    if not state.session_secret:
        return _refused(request, 503, "logins are disabled: set HOOKYARD_SESSION_SECRET", next)
    guard: AuthGuard = state.auth_guard
    try:
        if token:
            principal = _operator(request, guard, token)
        else:
            principal = await guard.check_password(
                request, email, partial(identity.login, state.engine, email, password)
            )
    except Throttled as exc:
        answer = _refused(request, 429, str(exc), next)
        answer.headers["Retry-After"] = str(exc.seconds)
        return answer
    except LoginBusy:
        answer = _refused(request, 503, "too many logins are being checked at once; retry", next)
        answer.headers["Retry-After"] = "2"
        return answer
    except AuthError as exc:
        log.info("ui_login_refused", how="token" if token else "password")
        return _refused(request, 401, str(exc), next)
    log.info("ui_login", subject=principal.subject)
    response = RedirectResponse(dashboard_path(next, HOME), status_code=303)
    open_session(request, response, principal)
    return response


def _operator(request: Request, guard: AuthGuard, token: str) -> Principal:
    """The operator, for the admin token; its failures count as the API's do."""
    client = guard.client_of(request)
    guard.check(Credential.ADMIN_TOKEN, client)
    expected: str | None = request.app.state.admin_token
    if not expected or not constant_time_equal(token, expected):
        guard.failed(Credential.ADMIN_TOKEN, client)
        raise AuthError("wrong admin token")
    return identity.operator()


def _refused(request: Request, status: int, detail: str, next: str) -> Response:
    return page(
        request, None, "login.html", status=status, error=detail, next=dashboard_path(next, HOME)
    )


@router.post("/logout", dependencies=[Csrf])
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    close_session(response)
    return response


@router.post("/tenant", dependencies=[Csrf])
def choose_tenant(
    request: Request,
    scope: UiScope,
    tenant: Annotated[str | None, Form(max_length=1000)] = None,
    q: Text = "",
) -> Response:
    """A superadmin acts for one tenant, or for every tenant (`*`, or nothing): the one
    picked from the list (`tenant`), else what was typed (`q`: a tenant id or a BAN; the
    picker without scripts)."""
    if scope.principal.role is not Role.SUPERADMIN:
        raise HTTPException(403, "only superadmins pick a tenant")
    key = (q if tenant is None else tenant).strip()
    if key == EVERY_TENANT:
        key = ""
    picked = None
    if key:
        with request.app.state.engine.connect() as conn:
            picked = tenancy.tenant_of(conn, key)
        if picked is None:
            raise HTTPException(404, f"no tenant or customer {key[:100]!r}")
    response = back(request, "/ui/events", "tenant")
    pick_tenant(request, response, picked)
    return response


for area in (
    events,
    destinations,
    messaging,
    whatsapp,
    leads,
    customers,
    conflicts,
    alerts,
    notifications,
):
    router.include_router(area.router)
router.include_router(tenants.router)


def install(api: FastAPI) -> None:
    """Mount the dashboard on the management API's app."""
    api.include_router(router)
    api.mount("/ui/static", StaticFiles(packages=[("hookyard.web", "static")]), name="ui-static")

    @api.exception_handler(LoginRequired)
    async def login_required(request: Request, _: LoginRequired) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = "/ui/login?" + urlencode({"next": here})
        if "hx-request" in request.headers:  # htmx follows this header with a page load
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method != "GET":
            return error_page(request, 401, "your session ended: log in again")
        return RedirectResponse(target, status_code=303)


def is_ui(request: Request) -> bool:
    return request.url.path.startswith("/ui/")


def ui_error(request: Request, exc: StarletteHTTPException | SQLAlchemyError) -> Response:
    """How app.py's error handlers answer a dashboard request."""
    if isinstance(exc, StarletteHTTPException):
        return error_page(request, exc.status_code, str(exc.detail))
    return error_page(request, 503, "storage unavailable, retry later")
