"""One HTTP client for calls to other services: the provider APIs (`sync/`) and the lead
enrichment services (`domain/leads/steps.py`). Timeouts, a request rate, retries where they
are safe, Retry-After, and errors in the service's own words.

A request is tried again within the call (with the one backoff, `queue/backoff.py`) only when
that cannot do anything twice:
- a connection that never opened (connect error or timeout, no free connection in the pool)
  did not reach the service: always;
- anything else that may pass by itself (a read timeout, a dropped connection, 408, 425, 429,
  5xx) only for an idempotent request: GET, HEAD, PUT, DELETE, OPTIONS, or one the caller
  declares idempotent (a search sent as a POST). A POST that may have reached the service is
  not repeated by the client: the caller decides (the outbox searches before creating, the
  enrichment pipeline runs the lead again later).

A wait the service asks for (Retry-After) that is longer than the client is willing to block
is not slept through: the call raises ApiError with `retry_after` and the caller comes back
later. A refusal (another 4xx, a 3xx) raises at once, with the service's own message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hookyard import __version__
from hookyard.logs import log
from hookyard.queue.backoff import Backoff, retry_after_seconds

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
PASSING_STATUS = frozenset({408, 425, 429})  # and every 5xx
MAX_WAIT_SECONDS = 30.0  # a longer Retry-After fails the call as retryable, for the caller
# The request never left: no connection was opened (or none was free in the pool).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Our request cannot be sent as it is: trying again gives the same.
_UNSENDABLE = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


class ApiError(Exception):
    """The service refused, or could not be reached after the client's tries. `retryable`:
    the same request may succeed later (no sooner than `retry_after` seconds, when given);
    `status` None: no answer (the httpx exception is the `__cause__`)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        reason: str = "",
        body: Any = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.reason = reason  # the status's reason phrase ("Not Found")
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


def passing(status: int) -> bool:
    """Whether an error status may pass by itself (the same request may succeed later)."""
    return status in PASSING_STATUS or status >= 500


class RateLimiter:
    """At most `per_second` requests a second from this client (spaced evenly, all threads)."""

    def __init__(self, per_second: float | None, sleep: Callable[[float], None]) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request as it went, for a caller that records every attempt and decides itself
    what to do next (the destinations' deliveries): the status and the start of the answer's
    body, or the error that stopped it (`status` None: no answer)."""

    status: int | None
    headers: Mapping[str, str]
    body: bytes  # at most the `max_body` first bytes
    latency_ms: int
    error: str | None = None
    sent: bool = True  # False: no connection was opened; the request never left
    # The error's kind alone (`ConnectError`), for a caller that must not show its text
    # (it may hold the URL, a credential of some receivers).
    error_type: str | None = None


class ApiClient:
    """One service's client (or several services' without a `base_url`: absolute URLs).
    Thread-safe: one instance serves every worker thread."""

    provider: str = "api"  # names the service in errors and logs

    def __init__(
        self,
        base_url: str = "",
        *,
        provider: str | None = None,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = MAX_WAIT_SECONDS,
        rate_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if provider is not None:
            self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.backoff = Backoff(max(1, max_attempts), backoff_base, backoff_max)
        self._sleep = sleep
        self._limiter = RateLimiter(rate_per_second, sleep)
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            headers={"user-agent": f"hookyard/{__version__}", **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """The response: 2xx, or a status in `ok_statuses` the caller handles itself.
        ApiError otherwise. `content`: raw bytes to send (a signed body), instead of `json`.
        `idempotent` (default: by the method) allows repeating a request that may have
        reached the service."""
        method = method.upper()
        repeatable = method in IDEMPOTENT if idempotent is None else idempotent
        path = _path(url)
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        attempt = 0
        while True:
            attempt += 1
            last = self.backoff.exhausted(attempt)
            self._limiter.wait()
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    content=content,
                    headers=headers,
                    **extra,
                )
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                retryable = not isinstance(exc, _UNSENDABLE)
                safe = isinstance(exc, _NOT_SENT) or repeatable
                if last or not retryable or not safe:
                    raise ApiError(
                        self.provider,
                        f"{method} {path}: {type(exc).__name__}: {exc}"[:500],
                        retryable=retryable,
                    ) from exc
                self._pause(method, path, attempt, None, type(exc).__name__)
                continue
            status = response.status_code
            if 200 <= status < 300 or status in ok_statuses:
                return response
            body = _body(response)
            retryable = passing(status)
            wait = retry_after_seconds(response.headers.get("retry-after")) if retryable else None
            if last or not retryable or not repeatable or (wait or 0.0) > self.backoff.max_seconds:
                raise ApiError(
                    self.provider,
                    f"{method} {path}: {status} {describe(body)}",
                    status=status,
                    reason=response.reason_phrase,
                    body=body,
                    retryable=retryable,
                    retry_after=wait,
                )
            self._pause(method, path, attempt, wait, str(status))

    def exchange(
        self,
        method: str,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout: float | None = None,
        max_body: int = 2048,
    ) -> Exchange:
        """One attempt, no retries, whatever the answer: the caller records it and decides.
        Reads at most `max_body` bytes of the answer (a large answer is not downloaded)."""
        self._limiter.wait()
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        started = time.perf_counter()
        try:
            with self.http.stream(
                method.upper(), url, content=content, headers=headers, **extra
            ) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= max_body:
                        break
                return Exchange(
                    response.status_code,
                    dict(response.headers),
                    body[:max_body],
                    _elapsed_ms(started),
                )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # no answer, or a broken one
            return Exchange(
                None,
                {},
                b"",
                _elapsed_ms(started),
                f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__,
                sent=not isinstance(exc, _NOT_SENT),
                error_type=type(exc).__name__,
            )

    def _pause(
        self, method: str, path: str, attempt: int, retry_after: float | None, why: str
    ) -> None:
        delay = self.backoff.delay(attempt, retry_after)
        log.info(
            "api_retry",
            provider=self.provider,
            method=method,
            path=path,
            attempt=attempt,
            reason=why,
            delay=round(delay, 3),
        )
        self._sleep(delay)


def _elapsed_ms(started: float) -> int:
    return round(1000 * (time.perf_counter() - started))


def _path(url: str) -> str:
    """What logs and errors show of a URL: its path, never a query or credentials."""
    try:
        return httpx.URL(url).path
    except httpx.InvalidURL:
        return "(not a URL)"


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def describe(body: Any) -> str:
    """The service's own words for an error, short: the most useful part of its body."""
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "description"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        return "; ".join(describe(item) for item in body[:5])[:300]
    return str(body)[:300]
