"""`GET /api/v1/live`: a WebSocket pushing each state change of the caller's tenant as it
commits (docs/live.md).

Credentials and tenant scope are those of the REST API, resolved by `auth.scoped` itself:
the bearer token comes from the `Authorization` header or, since browsers cannot set
headers on a WebSocket, from `?token=` or the dashboard's session cookie (from a page of
this site only); a superadmin picks a tenant with `X-Customer-ID` or
`?customer=`. The socket is accepted first and then closed with an application code when
refused, so clients can tell why (a refused handshake is only an HTTP 403 to them):
4401 no or unknown credentials, 4403 another tenant, 4404 no such tenant.

Credentials are checked again every `RECHECK_SECONDS`: a revoked key or an expired session
closes the socket (4401) instead of streaming forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request, WebSocket
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from hookyard.accounts.identity import KeyKind, Role, kind_of
from hookyard.api.auth import CUSTOMER_HEADER, SESSION_COOKIE, Scope, scoped
from hookyard.live.change import OPT_IN, ChangeKind
from hookyard.live.hub import Hub, Subscription
from hookyard.logs import log

router = APIRouter(prefix="/api/v1", tags=["live"])

HEARTBEAT_SECONDS = 25.0  # a `ping` when nothing was sent for this long (proxies' idle timers)
RECHECK_SECONDS = 60.0
UNAUTHENTICATED, FORBIDDEN, NO_TENANT, BAD_REQUEST = 4401, 4403, 4404, 4400
TRY_AGAIN_LATER = 1013
GOING_AWAY = 1001
# 429: the client's credentials failed too often (api/throttle.py); try again later.
_CLOSE_CODES = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NO_TENANT, 429: TRY_AGAIN_LATER}
_KINDS = [kind.value for kind in ChangeKind]
_DEFAULT_KINDS = [kind.value for kind in ChangeKind if kind not in OPT_IN]  # none named
# A client that went away: Starlette's disconnect, or a send on a socket already closed.
_GONE = (WebSocketDisconnect, RuntimeError, OSError)


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        # A close frame's reason has room for 123 bytes of UTF-8.
        self.reason = reason.encode()[:120].decode(errors="ignore")


@router.websocket("/live")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        scope = await _authorise(websocket)
    except _Refused as refused:
        with contextlib.suppress(*_GONE):
            await websocket.close(refused.code, refused.reason)
        return
    hub: Hub = websocket.app.state.live
    subscription = hub.subscribe(scope.tenant)
    log.info("live_connected", subject=scope.principal.subject, tenant=scope.tenant)
    tasks: list[asyncio.Task[None]] = []
    code, reason = GOING_AWAY, "closing"
    try:
        await websocket.send_json(
            {
                "type": "welcome",
                "tenant": scope.tenant,
                "kinds": _KINDS,
                "heartbeat_seconds": HEARTBEAT_SECONDS,
            }
        )
        tasks = [
            asyncio.create_task(_send(websocket, subscription)),
            asyncio.create_task(_receive(websocket, subscription)),
            asyncio.create_task(_recheck(websocket, scope)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            ended = None if task.cancelled() else task.exception()
            if isinstance(ended, _Refused):
                code, reason = ended.code, ended.reason
            elif ended is not None and not isinstance(ended, _GONE):
                log.warning("live_socket_failed", error=f"{type(ended).__name__}: {ended}"[:300])
    except _GONE:
        pass  # the client left before its welcome
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.unsubscribe(subscription)
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(*_GONE):
            await websocket.close(code, reason)
    log.info("live_disconnected", subject=scope.principal.subject, tenant=scope.tenant)


async def _authorise(websocket: WebSocket) -> Scope:
    try:
        return await run_in_threadpool(_scope_of, websocket)
    except HTTPException as exc:
        raise _Refused(_CLOSE_CODES.get(exc.status_code, BAD_REQUEST), str(exc.detail)) from None
    except SQLAlchemyError as exc:
        log.warning("storage_error", error=str(exc)[:300])
        raise _Refused(TRY_AGAIN_LATER, "storage unavailable, retry later") from None


def _scope_of(websocket: WebSocket) -> Scope:
    """The REST API's own resolution (auth.scoped), on the credentials the socket carried.

    A header wins over its query parameter. The scoped dependency reads only the headers and
    the app's state, so it is given an HTTP view of the handshake with those two headers
    set: one code path decides who may see what, for REST and live alike.
    """
    query = websocket.query_params
    token = websocket.headers.get("authorization") or (
        f"Bearer {query['token']}" if query.get("token") else ""
    )
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if not token and cookie and kind_of(cookie) is KeyKind.SESSION:
        # The dashboard's session cookie. A browser sends it with any page's socket to this
        # host, so only a page of this very site may use it (no cross-site socket hijack).
        origin = websocket.headers.get("origin", "")
        if urlsplit(origin).netloc != websocket.headers.get("host", ""):
            raise HTTPException(403, "a session cookie is taken from this site's pages only")
        token = f"Bearer {cookie}"
    customer = websocket.headers.get(CUSTOMER_HEADER) or query.get("customer", "")
    headers = [
        (name, value)
        for name, value in websocket.scope["headers"]
        if name not in (b"authorization", CUSTOMER_HEADER.encode())
    ]
    for name, value in (("authorization", token), (CUSTOMER_HEADER, customer)):
        if value:
            headers.append((name.encode(), value.encode("latin-1", "replace")))
    request = Request({**websocket.scope, "type": "http", "method": "GET", "headers": headers})
    return scoped(Role.VIEWER)(request)


async def _send(websocket: WebSocket, subscription: Subscription) -> None:
    while True:
        messages = await subscription.next(HEARTBEAT_SECONDS)
        if messages is None:  # the hub closed: the process is stopping
            return
        if not messages:
            messages = [json.dumps({"type": "ping"})]
        for text in messages:
            await websocket.send_text(text)


async def _receive(websocket: WebSocket, subscription: Subscription) -> None:
    """Client messages: `{"type": "subscribe", "kinds": [...]}` (none or empty: every kind
    but `event_accepted`, which comes only when named) and `{"type": "ping"}`. Anything else
    is answered with an error note."""
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect:
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or message.get("bytes") or b""
        reply = await _answer(raw, subscription, websocket.app.state.live)
        await websocket.send_json(reply)


async def _answer(raw: str | bytes, subscription: Subscription, hub: Hub) -> dict[str, Any]:
    try:
        request = json.loads(raw)
    except ValueError:
        return {"type": "error", "detail": "send JSON messages"}
    kind = request.get("type") if isinstance(request, dict) else None
    if kind == "ping":
        return {"type": "pong"}
    if kind != "subscribe":
        return {"type": "error", "detail": "known messages: subscribe, ping"}
    wanted = request.get("kinds") or []
    if not isinstance(wanted, list) or not all(isinstance(k, str) for k in wanted):
        return {"type": "error", "detail": "kinds: a list of change kinds"}
    unknown = sorted(set(wanted) - set(_KINDS))
    if unknown:
        return {"type": "error", "detail": f"unknown kinds {unknown}; known: {_KINDS}"}
    # Naming `event_accepted` answers once accepted events reach this process (PostgreSQL:
    # its LISTEN is in place), so a client may send its first webhook right after.
    if not await hub.filter(subscription, [ChangeKind(k) for k in wanted]):
        return {"type": "error", "detail": "accepted events are not available yet; retry"}
    return {"type": "subscribed", "kinds": sorted(wanted) or _DEFAULT_KINDS}


async def _recheck(websocket: WebSocket, granted: Scope) -> None:
    """Raises _Refused once the credentials no longer hold, or no longer give the tenant the
    socket was opened for; a storage error is no verdict (the next check decides)."""
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            scope = await _authorise(websocket)
        except _Refused as refused:
            if refused.code == TRY_AGAIN_LATER:
                continue
            raise
        if scope.tenant != granted.tenant:
            raise _Refused(FORBIDDEN, "the credentials now give another tenant: reconnect")
