"""What every request of the management API and the dashboard passes before routing
(docs/security.md): a bounded body, and HSTS on https answers.

Webhooks never come here: the ingress answers them itself, with its own limit.

**Bounded bodies.** FastAPI parses a JSON or form body before a route's dependencies run,
authentication included, so an unbounded body would be read into memory and parsed for
anyone. `BodyLimit` reads the whole body first, refusing it with 413 as soon as it is known
to be too large — from `Content-Length` before reading anything, or while reading a
chunked one — and then hands the route exactly those bytes. The login routes take far less
than the rest (an e-mail and a password).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookyard.proxy import is_https

LOGIN_PATHS = frozenset({"/api/v1/auth/login", "/ui/login"})

# How a refusal looks: JSON `{detail}` by default; app.py gives the dashboard its pages.
Refuse = Callable[[Request, int, str], Awaitable[Response] | Response]


def json_refusal(_: Request, status: int, detail: str) -> Response:
    return Response(
        json.dumps({"detail": detail}), status_code=status, media_type="application/json"
    )


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Gone(Exception):
    """The client went away before its body ended: nobody to answer."""


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        login_max_bytes: int,
        login_paths: Collection[str] = LOGIN_PATHS,
        refuse: Refuse = json_refusal,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.login_max_bytes = login_max_bytes
        self.login_paths = login_paths
        self.refuse = refuse

    def limit_of(self, path: str) -> int:
        # `/ui/login/` is redirected to `/ui/login` by the router: the same route, same limit.
        return self.login_max_bytes if path.rstrip("/") in self.login_paths else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["path"])
        try:
            body = await self._read(scope, receive, limit)
        except _Gone:
            return
        except _Refused as refused:
            request = Request(scope)
            answer = self.refuse(request, refused.status, refused.detail)
            response = answer if isinstance(answer, Response) else await answer
            await response(scope, receive, send)
            return
        given = False

        async def replay() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, for whoever listens

        await self.app(scope, replay, send)

    @staticmethod
    async def _read(scope: Scope, receive: Receive, limit: int) -> bytes:
        too_large = f"the body is over this route's limit of {limit} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not (value.isdigit() and len(value) <= 18):
                    raise _Refused(400, "Content-Length is not a number")
                if int(value) > limit:
                    raise _Refused(413, too_large)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Refused(413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class StrictTransport:
    """`Strict-Transport-Security` on every answer to an https request (as seen directly,
    or through a trusted proxy): browsers then never try this site over plain http."""

    def __init__(self, app: ASGIApp, *, seconds: int, trust_proxy_headers: bool) -> None:
        self.app = app
        self.header = (b"strict-transport-security", f"max-age={seconds}".encode())
        self.enabled = seconds > 0
        self.trust_proxy_headers = trust_proxy_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or not self._https(scope):
            await self.app(scope, receive, send)
            return

        async def send_with_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        await self.app(scope, receive, send_with_hsts)

    def _https(self, scope: Scope) -> bool:
        forwarded = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name == b"x-forwarded-proto"
        }
        return is_https(scope.get("scheme", "http"), forwarded, self.trust_proxy_headers)
