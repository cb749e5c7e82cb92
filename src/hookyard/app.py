"""create_app: the ingress hot path in front of the management API; lifespan runs the inbox
(group commit) and, unless told otherwise, the workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DataError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookyard import __version__
from hookyard.accounts.identity import Role
from hookyard.alerts import metrics as alert_metrics
from hookyard.api.accounts import router as accounts_router
from hookyard.api.alerts import router as alerts_router
from hookyard.api.auth import ERRORS, authenticate_token
from hookyard.api.brand_registration import router as brand_registration_router
from hookyard.api.cors import ApiCors
from hookyard.api.customers import router as customers_router
from hookyard.api.destinations import router as destinations_router
from hookyard.api.events import router as events_router
from hookyard.api.leads import router as leads_router
from hookyard.api.live import router as live_router
from hookyard.api.messaging import router as messaging_router
from hookyard.api.middleware import BodyLimit, StrictTransport, json_refusal
from hookyard.api.notifications import router as notifications_router
from hookyard.api.sync import router as sync_router
from hookyard.api.throttle import AuthGuard
from hookyard.api.whatsapp import router as whatsapp_router
from hookyard.deadline import Deadline
from hookyard.ingress.app import ASGIApp, Ingress
from hookyard.live.feed import LiveFeed
from hookyard.logs import log
from hookyard.metrics import QueueCollector, scrape_registry
from hookyard.providers.signing import constant_time_equal
from hookyard.runtime import Runtime
from hookyard.sources import admin_token, session_secret
from hookyard.sync.tcr import subscribe_all
from hookyard.web import app as web


def _first_problem(exc: RequestValidationError) -> str:
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())[1:])
        return f"{where}: {error.get('msg', 'not valid')}"[:200]
    return "the request is not valid"


def _replacing_decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _refusal(request: Request, status: int, detail: str) -> Response:
    """How the body limit refuses: the dashboard's page for a browser, else JSON."""
    if web.is_ui(request):
        return web.ui_error(request, HTTPException(status, detail))
    return json_refusal(request, status, detail)


def _may_scrape(request: Request, metrics_token: str | None) -> None:
    """/metrics shows sources, tenants' alert counts and traffic: a scraper sends
    `Authorization: Bearer` with HOOKYARD_METRICS_TOKEN, the admin token or a superadmin's
    API key (throttled like any bearer token)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "send Authorization: Bearer <HOOKYARD_METRICS_TOKEN, the admin token or a"
            " superadmin's API key>, or set HOOKYARD_METRICS_PUBLIC=true on a private network",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if metrics_token and constant_time_equal(token, metrics_token):
        return
    if not authenticate_token(request, token).at_least(Role.SUPERADMIN):
        raise HTTPException(403, "metrics are for superadmins and the metrics token")


def create_app(runtime: Runtime, *, run_workers: bool = True) -> ASGIApp:
    committer = runtime.committer()
    # This process's fan-out (docs/live.md), on the runtime's one LISTEN connection.
    live = LiveFeed(runtime.engine, bus=runtime.bus, listener=runtime.listener)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await committer.start()
        await live.start()
        if run_workers:
            runtime.start_workers()
        sync = runtime.sync
        if sync is not None and sync.tcr is not None and runtime.settings.tcr_subscribe_url:
            # Idempotent; a failure is logged and the gateway starts anyway (webhooks still
            # land wherever TCR already sends them, and reconciliation covers the rest).
            await asyncio.to_thread(
                subscribe_all, sync.tcr, runtime.settings.tcr_subscribe_url, runtime.sources.sources
            )
        log.info(
            "gateway_started",
            sources=len(runtime.sources.sources),
            workers=run_workers,
            database=runtime.engine.dialect.name,
        )
        try:
            yield
        finally:
            await committer.stop()
            runtime.stop_workers()
            await live.stop()

    settings = runtime.settings
    # Swagger UI and ReDoc load scripts from a CDN and list every route to anyone: off unless
    # asked for. /openapi.json stays (clients and schemathesis read it; it holds no data).
    docs = settings.api_docs
    api = FastAPI(
        title="hookyard",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    api.state.store = runtime.store
    api.state.sources = runtime.sources.sources
    api.state.destinations = runtime.sources.destinations
    api.state.wakeup = runtime.wakeup
    api.state.admin_token = admin_token(runtime.settings)
    api.state.engine = runtime.engine
    api.state.session_secret = session_secret(runtime.settings)
    api.state.session_minutes = runtime.settings.session_minutes
    api.state.sync = runtime.sync
    api.state.live = live.hub
    api.state.auth_guard = AuthGuard.from_settings(settings)
    api.state.trust_proxy_headers = settings.trust_proxy_headers
    api.state.secure_cookies = settings.secure_cookies
    for router in (
        accounts_router,
        events_router,
        customers_router,
        messaging_router,
        brand_registration_router,
        whatsapp_router,
        leads_router,
        sync_router,
        alerts_router,
        destinations_router,
        notifications_router,
    ):
        api.include_router(router, responses=ERRORS)
    api.include_router(live_router)  # a WebSocket: its refusals are close codes, not ERRORS
    # Every process's counters (under `serve`), and the gauges read from the database once.
    registry = scrape_registry(
        [QueueCollector(runtime.store.queue_stats), alert_metrics.collector(runtime.engine)]
    )

    web.install(api)
    # Outermost last: HSTS goes on every answer, the body limit's refusals included.
    api.add_middleware(
        BodyLimit,
        max_bytes=settings.api_max_body_bytes,
        login_max_bytes=settings.login_max_body_bytes,
        refuse=_refusal,
    )
    if settings.cors_origins:  # inside HSTS, outside the body limit: its 413 is readable
        api.add_middleware(ApiCors, origins=settings.cors_origins)
    api.add_middleware(
        StrictTransport,
        seconds=settings.hsts_seconds,
        trust_proxy_headers=settings.trust_proxy_headers,
    )

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if web.is_ui(request):
            return web.ui_error(request, exc)
        return await http_exception_handler(request, exc)

    @api.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        if web.is_ui(request):
            return web.ui_error(request, HTTPException(400, "a value cannot be stored"))
        # The database refused a value of the request itself (PostgreSQL takes no NUL in
        # text, no out-of-range number): the caller's to fix, not a storage outage.
        log.info("request_value_refused", error=str(exc.orig)[:200])
        return JSONResponse(
            {"detail": "a value in the request cannot be stored or compared (e.g. a NUL)"},
            status_code=400,
        )

    @api.exception_handler(SQLAlchemyError)
    async def storage_error(request: Request, exc: SQLAlchemyError) -> Response:
        log.warning("storage_error", error=str(exc)[:300])
        if web.is_ui(request):
            return web.ui_error(request, exc)
        return JSONResponse(
            {"detail": "storage unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if web.is_ui(request):
            return web.ui_error(request, HTTPException(400, _first_problem(exc)))
        # FastAPI's own 422, but encoded as ASCII JSON: its body echoes the input, and a lone
        # surrogate in that input cannot be encoded as UTF-8 (the default answer is a 500).
        # The input may also be bytes that are no UTF-8 (a JSON route posted a binary body):
        # shown with replacement characters, not a UnicodeDecodeError.
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: _replacing_decode})
        body = json.dumps({"detail": errors}, ensure_ascii=True, default=str)
        return Response(body, status_code=422, media_type="application/json")

    @api.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/ready", include_in_schema=False)
    def ready() -> JSONResponse:
        try:
            runtime.store.ping()
        except SQLAlchemyError as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)[:200]}, 503)
        return JSONResponse({"status": "ready"})

    metrics_token = settings.metrics_token
    metrics_public = settings.metrics_public

    @api.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> PlainTextResponse:
        if not metrics_public:
            _may_scrape(request, metrics_token)
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Ingress(
        list(runtime.sources.sources),
        committer,
        Deadline(api, runtime.settings.api_timeout_seconds),
        max_body_bytes=runtime.settings.max_body_bytes,
        body_timeout_seconds=runtime.settings.body_timeout_seconds,
        trust_proxy_headers=runtime.settings.trust_proxy_headers,
    )
