"""CORS for a portal on another origin (HOOKYARD_CORS_ORIGINS, docs/security.md#cors): the
management API (`/api/…`) answers those origins' preflights and lets their pages read its
answers; the dashboard, /metrics and the webhooks (answered by the ingress before this)
never take part.

Starlette's CORSMiddleware does the work, with exact origins only. A preflight from any other
origin is refused (400, no `Access-Control-Allow-Origin`), and its answers to an ordinary
request carry none either, so the browser keeps them from the page.

No credentials (`Access-Control-Allow-Credentials` is never sent): the portal calls with a
bearer token in `Authorization` (an API key or a session from `POST /api/v1/auth/login`), so
it needs no cookie, and a page of the allowed origin cannot use a dashboard session a person
happens to have. `X-CSRF-Token` is not allowed: only the dashboard's cookie-authenticated
forms need it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/"
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
HEADERS = ("Authorization", "Content-Type", "X-Customer-ID")
EXPOSED = ("Retry-After",)  # 429 and 503 say when to come back
MAX_AGE = 600  # seconds a browser may keep a preflight's answer


class ApiCors:
    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED,
            max_age=MAX_AGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(API_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
