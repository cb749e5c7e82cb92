"""A fake of the identity and person services the C2S lead enrichment calls.

API (bearer token when the state has one; errors are `{"error": "..."}`):

    POST /v1/identity/lookup   {"email": "..."} or {"phone": "+55..."}
                               -> {"document": "..."} or {"document": null}
    POST /v1/people/lookup     {"document": "..."}
                               -> {"person": {...}} or {"person": null}

These are hookyard's own contract for the services (docs/providers/c2s.md): one fake serves
both, so both URLs may point at it. Lookups match the normalised e-mail (lower case) and the
E.164 phone exactly, as the pipeline sends them.

Besides the shared controls (records, `fail_next`, ...), tests can hold requests
(`pause`/`resume`: they wait until resumed) and slow the next ones down (`delay_next`), to
make a run overlap a webhook or overrun a timeout.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.testing.fakes.platform import CONTROL_PREFIX, FakePlatform

IDENTITY_PATH = "/v1/identity/lookup"
PEOPLE_PATH = "/v1/people/lookup"
PAUSE_LIMIT = 60.0  # a paused request answers 503 after this, so a forgotten pause ends


class EnrichmentState(FakePlatform):
    name = "enrichment"

    def __init__(
        self,
        token: str | None = "enrichment-token",  # noqa: S107 - a fake's test credential
    ) -> None:
        super().__init__()
        self.token = token
        self._identities: dict[str, str] = {}  # "email:<address>" / "phone:<e164>" -> document
        self._people: dict[str, dict[str, Any]] = {}  # document -> person
        self._open = threading.Event()
        self._open.set()
        self._waiting = 0
        self._delays: deque[float] = deque()

    # -- data -------------------------------------------------------------------------------

    def add_person(
        self,
        document: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A person the services know: `email` and `phone` resolve to `document` (each may
        belong to another document later: the last one added wins), and `data` is what the
        person lookup answers (None: the identity resolves, the person service has nothing)."""
        if not document:
            raise ValueError("a document is required")
        with self._lock:
            if email is not None:
                self._identities[f"email:{email.lower()}"] = document
            if phone is not None:
                self._identities[f"phone:{phone}"] = document
            if data is not None:
                self._people[document] = {"document": document, **data}
            return dict(self._people.get(document, {"document": document}))

    def document_of(self, kind: str, value: str) -> str | None:
        key = f"{kind}:{value.lower() if kind == 'email' else value}"
        with self._lock:
            return self._identities.get(key)

    def person(self, document: str) -> dict[str, Any] | None:
        with self._lock:
            person = self._people.get(document)
            return dict(person) if person is not None else None

    def lookups(self, kind: str | None = None) -> list[str]:
        """The values looked up so far, in order: e-mails and phones, or only `kind`'s."""
        found = []
        for request in self.requests:
            if request.path == IDENTITY_PATH and isinstance(request.json, dict):
                found += [str(v) for k, v in request.json.items() if kind in (None, k)]
        return found

    # -- timing -----------------------------------------------------------------------------

    def pause(self) -> None:
        """API requests from now on wait (after failure injection and authentication) until
        `resume()`."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    @property
    def waiting(self) -> int:
        """Requests held by `pause()` right now."""
        with self._lock:
            return self._waiting

    def delay_next(self, n: int = 1, seconds: float = 1.0) -> None:
        """The next `n` API requests answer only after `seconds`."""
        if n < 0 or seconds < 0:
            raise ValueError("n and seconds must be 0 or more")
        with self._lock:
            self._delays.extend(seconds for _ in range(n))

    async def hold(self) -> bool:
        """Apply a pending delay and a pause; False when a pause outlasted PAUSE_LIMIT."""
        with self._lock:
            delay = self._delays.popleft() if self._delays else 0.0
        if delay:
            await asyncio.sleep(delay)
        if self._open.is_set():
            return True
        with self._lock:
            self._waiting += 1
        try:
            return bool(await run_in_threadpool(self._open.wait, PAUSE_LIMIT))
        finally:
            with self._lock:
                self._waiting -= 1

    # -- FakePlatform -----------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        if self.token is None:
            return None
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            value.encode(), self.token.encode()
        ):
            return None
        return self.error_response(401, "invalid or missing bearer token")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "identities": dict(self._identities),
                "people": [dict(p) for p in self._people.values()],
                "paused": not self._open.is_set(),
                "pending_delays": len(self._delays),
            }


def create_app(state: EnrichmentState) -> Starlette:
    s = state

    async def identity(_: Request, body: Any) -> Response:
        keys = [k for k in ("email", "phone") if isinstance(body, dict) and k in body]
        if len(keys) != 1 or not isinstance(body[keys[0]], str) or len(body) != 1:
            return s.error_response(400, "give exactly one of 'email' or 'phone', as text")
        if not await s.hold():
            return s.error_response(503, "paused too long")
        return JSONResponse({"document": s.document_of(keys[0], body[keys[0]])})

    async def people(_: Request, body: Any) -> Response:
        document = body.get("document") if isinstance(body, dict) else None
        if not isinstance(document, str) or not document:
            return s.error_response(400, "'document' is required")
        if not await s.hold():
            return s.error_response(503, "paused too long")
        return JSONResponse({"person": s.person(document)})

    routes: list[BaseRoute] = [
        *s.control_routes(),
        *_control_routes(s),
        Route(IDENTITY_PATH, s.api(identity), methods=["POST"]),
        Route(PEOPLE_PATH, s.api(people), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _control_routes(s: EnrichmentState) -> list[BaseRoute]:
    """`/_fake/...`: add people, pause and resume, slow down."""

    def add_person(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(d.get("document"), str):
            raise ValueError("document is required")
        data = d.get("data")
        if data is not None and not isinstance(data, dict):
            raise ValueError("data must be an object")
        return s.add_person(d["document"], email=d.get("email"), phone=d.get("phone"), data=data)

    def pause(_: Request, __: dict[str, Any]) -> dict[str, Any]:
        s.pause()
        return {"paused": True}

    def resume(_: Request, __: dict[str, Any]) -> dict[str, Any]:
        s.resume()
        return {"paused": False}

    def delay(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        s.delay_next(int(d.get("n", 1)), float(d.get("seconds", 1.0)))
        return {"delayed": int(d.get("n", 1))}

    p, c = CONTROL_PREFIX, s.control
    return [
        Route(f"{p}/people", c(add_person, 201), methods=["POST"]),
        Route(f"{p}/pause", c(pause), methods=["POST"]),
        Route(f"{p}/resume", c(resume), methods=["POST"]),
        Route(f"{p}/delay", c(delay), methods=["POST"]),
    ]
