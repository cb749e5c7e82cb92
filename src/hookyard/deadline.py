"""A deadline for everything but the ingress (which has the inbox's own): a request that has
not started its answer in time gets 503.

A database that stops answering without closing its sockets (a frozen server, a partition)
would otherwise hold a request forever: a pooled connection has no read timeout. The late
handler is not cancelled — a worker thread cannot be — it is left to finish, and what it
sends is dropped.
"""

from __future__ import annotations

import asyncio
import json

from hookyard.ingress.app import ASGIApp, Message, Receive, Scope, Send
from hookyard.logs import log

_BODY = json.dumps({"detail": "timed out waiting for storage; retry later"}).encode()


class Deadline:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if task in done:
            task.result()
            return
        if started:  # already answering (e.g. a slow download): let it finish
            await task
            return
        abandoned = True
        task.add_done_callback(_consume)
        log.warning("request_deadline", path=scope["path"], seconds=self.seconds)
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", b"5"),
                    (b"content-length", str(len(_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _BODY})


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("abandoned_request_failed", error=str(exc)[:200])
