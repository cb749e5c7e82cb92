"""One HTTP client per provider API: timeouts, a request rate, and retries that honour
Retry-After.

A request is retried on what may pass by itself (a connection that failed, a timeout, 429,
5xx), with exponential backoff and jitter, a few times within the call. A wait the provider
asks for that is longer than the client is willing to block is not slept through: the call
raises ApiError with `retry_after`, and the caller (the outbox, the scheduler) comes back
later. A refusal (any other 4xx) raises at once with the provider's own message.

A request that may have reached the provider (a read timeout on a POST) is not repeated by
the client: the caller decides whether it is safe (the outbox searches before creating).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from hookyard.logs import log

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class ApiError(Exception):
    """The provider refused, or could not be reached after the client's retries."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.body = body
        self.retryable = retryable
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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


class ApiClient:
    provider: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        rate_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._limiter = RateLimiter(rate_per_second, sleep)
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            headers={"user-agent": "hookyard", **(headers or {})},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        ok_statuses: frozenset[int] = frozenset(),
        timeout: float | None = None,
    ) -> httpx.Response:
        """The response (2xx, or a status in `ok_statuses` the caller handles itself)."""
        method = method.upper()
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        for attempt in range(1, self.max_attempts + 1):
            self._limiter.wait()
            last = attempt == self.max_attempts
            try:
                response = self._http.request(method, path, params=params, json=json, **extra)
            except httpx.TransportError as exc:
                # A connection that never opened did not reach the provider: always safe to
                # repeat. Anything later is repeated only for idempotent methods.
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if last or (sent and method not in IDEMPOTENT):
                    raise ApiError(
                        self.provider,
                        f"{method} {path}: {type(exc).__name__}: {exc}",
                        retryable=True,
                    ) from exc
                self._backoff(method, path, attempt, None, type(exc).__name__)
                continue
            status = response.status_code
            if status < 400 or status in ok_statuses:
                return response
            body = _body(response)
            if status not in RETRYABLE_STATUS:
                raise ApiError(
                    self.provider,
                    f"{method} {path}: {status} {describe(body)}",
                    status=status,
                    body=body,
                )
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if last or (wait is not None and wait > self.backoff_max):
                raise ApiError(
                    self.provider,
                    f"{method} {path}: {status} {describe(body)}",
                    status=status,
                    body=body,
                    retryable=True,
                    retry_after=wait,
                )
            self._backoff(method, path, attempt, wait, str(status))
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(
        self, method: str, path: str, attempt: int, retry_after: float | None, why: str
    ) -> None:
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = delay * (0.5 + random.random() / 2)  # jitter: retries of many clients spread
        if retry_after is not None:
            delay = max(delay, retry_after)
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


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def describe(body: Any) -> str:
    """The provider's own words for an error, short: the most useful part of its body."""
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
