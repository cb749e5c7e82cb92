"""A fake webhook receiver: the service a destination POSTs to. It records every request and
answers from a script (status, headers, body; 200 once the script is used up), and can hold
requests unanswered until released (a receiver that hangs while the sender dies)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class Receiver:
    """`Receiver([503, 503, 200])`, served with `testing.fakes.server.serving(r.app)`."""

    def __init__(self, answers: Iterable[int | Answer] = ()) -> None:
        self.received: list[Received] = []
        self._answers = [a if isinstance(a, Answer) else Answer(a) for a in answers]
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()  # cleared: requests wait, unanswered, until it is set
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    def answer(self, *answers: int | Answer) -> None:
        """Append to the script."""
        with self._lock:
            self._answers += [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def hold(self) -> None:
        self.release.clear()

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append(Received(request.url.path, dict(request.headers), body))
            answer = self._answers.pop(0) if self._answers else Answer()
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        return Response(answer.body, answer.status, answer.headers)


__all__ = ["Answer", "Received", "Receiver"]
