"""What every fake provider platform shares: its state behind one lock, the record of the API
requests it answered and the webhooks it sent (or lost), failure injection on its API, and
the `/_fake/...` control routes that drive it over HTTP.

A provider module subclasses `FakePlatform` with its own data and mutations, says how its
API authenticates and how its errors look, and how a list of webhook items becomes signed
deliveries (`_deliver`). The payloads and signatures come from `testing/simulate.py`, the one
place that knows them.

Threads: tests mutate a state from their own thread while uvicorn serves the app in another,
and webhooks go out from the thread that made the change (a test's call, a Starlette
background task after an API response, or a timer). State changes happen under the lock;
network calls never do, so a webhook receiver that calls the API back cannot deadlock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.testing.simulate import Delivery

ApiHandler = Callable[[Request, Any], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
ControlHandler = Callable[[Request, dict[str, Any]], Any]

CONTROL_PREFIX = "/_fake"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API request the fake answered (control requests are not recorded)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # the parsed body; None without one, the text when it was not JSON
    status: int  # what the fake answered

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "json": self.json,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One webhook request the fake made, and how the target answered it."""

    delivery: Delivery
    events: tuple[str, ...]  # the event types it carried, in order
    status: int | None  # the target's HTTP status; None when it could not be reached
    error: str | None  # why it could not be reached
    response: str | None  # the start of the target's answer
    at: float  # time.time() when it was sent

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def url(self) -> str:
        return self.delivery.url

    @property
    def payload(self) -> Any:
        return json.loads(self.delivery.body)

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "events": list(self.events),
            "status": self.status,
            "error": self.error,
            "response": self.response,
            "at": self.at,
            "headers": self.delivery.headers,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class LostDelivery:
    """A webhook the provider should have sent but did not (a mutation with deliver=False)."""

    events: tuple[str, ...]
    payload: Any  # the item as it would have gone out
    at: float

    def as_json(self) -> dict[str, Any]:
        return {"events": list(self.events), "payload": self.payload, "at": self.at}


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    retry_after: int | None
    body: Any  # None: the provider's usual error body for the status


class FakePlatform:
    """Records, failure injection and webhook sending; subclasses add the provider."""

    name = "fake"

    def __init__(self, *, webhook_timeout: float = 5.0) -> None:
        self.webhook_timeout = webhook_timeout
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[DeliveryAttempt] = []
        self._lost: list[LostDelivery] = []
        self._failures: deque[Failure] = deque()
        self._local = threading.local()

    # -- records ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        with self._lock:
            return list(self._deliveries)

    @property
    def lost(self) -> list[LostDelivery]:
        with self._lock:
            return list(self._lost)

    def clear_records(self) -> None:
        """Forget recorded requests, deliveries, lost webhooks and pending failures."""
        with self._lock:
            self._requests.clear()
            self._deliveries.clear()
            self._lost.clear()
            self._failures.clear()

    # -- failure injection ------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | None = None,
        body: Any = None,
    ) -> None:
        """The next `n` API requests answer `status` (with `Retry-After: retry_after` when
        given, and `body` or the provider's usual error body), before authentication."""
        if n < 0:
            raise ValueError("n must be 0 or more")
        if not 400 <= status <= 599:
            raise ValueError("an injected failure is a 4xx or 5xx status")
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be 0 or more seconds")
        with self._lock:
            self._failures.extend(Failure(status, retry_after, body) for _ in range(n))

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    # -- what a provider fills in -----------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        """None when the request may use the API, else the provider's refusal."""
        return None

    def error_body(self, status: int, message: str) -> Any:
        """The provider's error JSON for `status`."""
        return {"error": message}

    def snapshot(self) -> dict[str, Any]:
        """The provider's data, for `GET /_fake/state`."""
        return {}

    def _event_type(self, item: Any) -> str:
        raise NotImplementedError

    def _deliver(self, items: Sequence[Any]) -> list[DeliveryAttempt]:
        """Send `items` (webhook payload items) as the provider would: grouped or one by one,
        to the configured target; nothing when no target is configured."""
        raise NotImplementedError

    def _redelivery(self, attempt: DeliveryAttempt) -> Delivery:
        """What the provider sends when it retries `attempt` (by default the same request)."""
        return attempt.delivery

    # -- webhooks ---------------------------------------------------------------------------

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Changes made in this block (in this thread) go out together when it ends, where
        the provider groups webhooks (HubSpot's arrays, Meta's changes); TCR sends one each."""
        pending: list[Any] = []
        self._local.pending = pending
        try:
            yield
        finally:
            self._local.pending = None
        if pending:
            self._deliver(pending)

    def _emit(self, items: Sequence[Any], deliver: bool = True) -> list[DeliveryAttempt]:
        """Send the webhooks of one change, or record them as lost (`deliver=False`)."""
        if not items:
            return []
        if not deliver:
            now = time.time()
            with self._lock:
                self._lost.extend(
                    LostDelivery((self._event_type(item),), item, now) for item in items
                )
            return []
        pending: list[Any] | None = getattr(self._local, "pending", None)
        if pending is not None:
            pending.extend(items)
            return []
        return self._deliver(items)

    def background_delivery(self, items: Sequence[Any]) -> BackgroundTask | None:
        """The webhooks of an API change, sent after the response as providers do (Starlette
        runs the task in a thread once the response is out)."""
        return BackgroundTask(self._emit, list(items)) if items else None

    def _send(self, delivery: Delivery, events: Sequence[str]) -> DeliveryAttempt:
        status: int | None = None
        error = text = None
        try:
            with httpx.Client(timeout=self.webhook_timeout) as client:
                response = client.request(
                    delivery.method, delivery.url, headers=delivery.headers, content=delivery.body
                )
            status, text = response.status_code, response.text[:1000]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = DeliveryAttempt(delivery, tuple(events), status, error, text, time.time())
        with self._lock:
            self._deliveries.append(attempt)
        return attempt

    def redeliver(self, index: int = -1) -> DeliveryAttempt:
        """Send delivery `index` (of `deliveries`) again, as the provider's retry would."""
        with self._lock:
            if not self._deliveries:
                raise LookupError("nothing was delivered yet")
            try:
                attempt = self._deliveries[index]
            except IndexError:
                raise LookupError(f"no delivery {index}") from None
        return self._send(self._redelivery(attempt), attempt.events)

    # -- HTTP -------------------------------------------------------------------------------

    def error_response(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return JSONResponse(self.error_body(status, message), status, headers=headers)

    def _take_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def api(self, handler: ApiHandler) -> Endpoint:
        """An API endpoint: recorded, subject to injected failures, then authenticated; the
        handler gets the parsed JSON body (None without a body)."""

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body: Any = None
            bad_json = False
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    body, bad_json = raw.decode(errors="replace"), True
            response: Response | None = None
            if (failure := self._take_failure()) is not None:
                headers = (
                    {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
                )
                content = failure.body
                if content is None:
                    content = self.error_body(failure.status, "injected failure")
                response = JSONResponse(content, failure.status, headers=headers)
            if response is None:
                response = self.authenticate(request)
            if response is None and bad_json:
                response = self.error_response(400, "the request body is not valid JSON")
            if response is None:
                response = await handler(request, body)
            recorded = RecordedRequest(
                request.method,
                request.url.path,
                dict(request.query_params),
                body,
                response.status_code,
            )
            with self._lock:
                self._requests.append(recorded)
            return response

        return endpoint

    def control(self, handler: ControlHandler, status: int = 200) -> Endpoint:
        """A `/_fake/...` endpoint: a JSON object in, the handler's result as JSON out. The
        handler runs in a thread (it may send webhooks); LookupError is 404, ValueError and
        TypeError are 400."""

        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                data = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, 400)
            if not isinstance(data, dict):
                return JSONResponse({"error": "the body must be a JSON object"}, 400)
            try:
                result = await run_in_threadpool(handler, request, data)
            except LookupError as exc:
                return JSONResponse({"error": _message(exc)}, 404)
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": _message(exc)}, 400)
            return JSONResponse(result, status)

        return endpoint

    def control_routes(self) -> list[BaseRoute]:
        """The controls every fake has; a provider adds its mutations beside them."""
        p = CONTROL_PREFIX

        def fail(_: Request, data: dict[str, Any]) -> dict[str, Any]:
            self.fail_next(
                int(data.get("n", 1)),
                int(data.get("status", 503)),
                None if data.get("retry_after") is None else int(data["retry_after"]),
                data.get("body"),
            )
            return {"pending_failures": self.pending_failures}

        def redeliver(_: Request, data: dict[str, Any]) -> dict[str, Any]:
            return self.redeliver(int(data.get("index", -1))).as_json()

        def reset(_: Request, __: dict[str, Any]) -> dict[str, Any]:
            self.clear_records()
            return {"reset": True}

        return [
            Route(f"{p}/requests", self.control(lambda _, __: _records(self.requests))),
            Route(f"{p}/deliveries", self.control(lambda _, __: _records(self.deliveries))),
            Route(f"{p}/lost", self.control(lambda _, __: _records(self.lost))),
            Route(f"{p}/state", self.control(lambda _, __: self.snapshot())),
            Route(f"{p}/fail", self.control(fail), methods=["POST"]),
            Route(f"{p}/redeliver", self.control(redeliver), methods=["POST"]),
            Route(f"{p}/reset", self.control(reset), methods=["POST"]),
        ]


def _records(items: Sequence[RecordedRequest | DeliveryAttempt | LostDelivery]) -> list[Any]:
    return [item.as_json() for item in items]


def _message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def deliver_flag(data: Mapping[str, Any]) -> bool:
    """A control body's `deliver` (default true): false loses the change's webhooks."""
    value = data.get("deliver", True)
    if not isinstance(value, bool):
        raise ValueError("deliver must be true or false")
    return value
