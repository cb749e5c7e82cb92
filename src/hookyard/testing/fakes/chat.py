"""A fake chat receiver (a Slack-compatible incoming webhook): it keeps every POST it is
given (headers and raw body) and answers the statuses it is told to, in order, then 200 —
`answers=[(503, None), (429, "2")]` answers 503, then 429 with Retry-After 2, then 200 for
ever. It checks the Standard Webhooks signature when given the secret, and says whether it
held (`Received.verified`), as a receiver would."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hookyard.providers.signing import constant_time_equal, standard_webhooks_signature


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the fake answered
    verified: bool | None  # None: no secret to check with

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ChatReceiver:
    secret: str | None = None
    answers: deque[tuple[int, str | None]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, *answers: tuple[int, str | None]) -> None:
        with self.lock:
            self.answers.extend(answers)

    def verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        expected = standard_webhooks_signature(self.secret, msg_id, timestamp, body)
        sent = headers.get("webhook-signature", "").split()
        return bool(msg_id and timestamp) and any(constant_time_equal(s, expected) for s in sent)

    async def handle(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            status, retry_after = self.answers.popleft() if self.answers else (200, None)
            self.received.append(
                Received(request.url.path, headers, body, status, self.verify(headers, body))
            )
        extra = {"retry-after": retry_after} if retry_after is not None else {}
        return PlainTextResponse("ok" if status < 300 else "busy", status, headers=extra)

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300]


def create_app(receiver: ChatReceiver) -> Starlette:
    return Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
