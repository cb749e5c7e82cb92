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

import base64
import functools
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httptools
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
        self.timeout = timeout
        self._headers = {"user-agent": f"hookyard/{__version__}", **(headers or {})}
        self._connections = _Connections()
        self.http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            headers={"user-agent": f"hookyard/{__version__}", **(headers or {})},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()
        self._connections.close()

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
        Reads at most `max_body` bytes of the answer (a large answer is not downloaded).

        Written on a kept-alive socket of this thread (`_Connections`) and the answer parsed
        by httptools (llhttp, the parser uvicorn serves with): about 32 µs of CPU a request
        against 131 for http.client and 320 or more for httpx, measured; this is the hot path
        of the destinations' deliveries. For methods whose answer has a body as framed (not
        HEAD). The `timeout` bounds connecting, each write and each read. Proxies from the
        environment (HTTP(S)_PROXY) are not used here."""
        self._limiter.wait()
        started = time.perf_counter()
        wait = self.timeout if timeout is None else timeout
        try:
            target = _Target.of(self._absolute(url))
            sending = {**self._headers, **target.auth, **headers}
        except _Failure as failure:
            return failure.exchange(started)
        method = method.upper()
        reused = False
        try:
            conn, reused = self._connections.get(target, wait)
            return self._exchange_on(conn, method, target, content, sending, max_body, started)
        except _Failure as failure:
            self._connections.drop(target)
            if not (reused and failure.closed_before_answer):
                return failure.exchange(started)
        # The server closed a kept-alive connection between two requests (its idle timeout)
        # before answering a byte: the request goes once more, on a new connection. The
        # server may have read it already: the callers' receivers dedupe on a stable id (a
        # delivery's `webhook-id`, a chat message's), and deliveries are at least once anyway.
        try:
            conn, _ = self._connections.get(target, wait)
            return self._exchange_on(conn, method, target, content, sending, max_body, started)
        except _Failure as failure:
            self._connections.drop(target)
            failure.sent = True  # the first try may have reached the server
            return failure.exchange(started)

    def _exchange_on(
        self,
        conn: _Connection,
        method: str,
        target: _Target,
        content: bytes,
        headers: Mapping[str, str],
        max_body: int,
        started: float,
    ) -> Exchange:
        request = _request_bytes(method, target, content, headers)
        try:
            conn.sock.sendall(request)
        except TimeoutError as exc:
            raise _Failure("WriteTimeout", exc) from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Failure("WriteError", exc, closed_before_answer=True) from exc
        except OSError as exc:
            raise _Failure("WriteError", exc) from exc
        answer = _Answer(max_body)
        parser = httptools.HttpResponseParser(answer)
        answer.parser = parser
        received = False
        while not answer.complete:
            try:
                data = conn.sock.recv(65536)
            except TimeoutError as exc:
                raise _Failure("ReadTimeout", exc) from exc
            except ConnectionResetError as exc:
                raise _Failure("ReadError", exc, closed_before_answer=not received) from exc
            except OSError as exc:
                raise _Failure("ReadError", exc) from exc
            if not data:
                if not received:
                    closed = ConnectionError("the server closed the connection without answering")
                    raise _Failure("RemoteProtocolError", closed, closed_before_answer=True)
                if answer.headers_done and answer.until_close():
                    answer.complete = True  # an answer framed by the end of its connection
                    break
                raise _Failure("RemoteProtocolError", ConnectionError("the answer ended early"))
            received = True
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                raise _Failure("RemoteProtocolError", exc) from exc
            except httptools.HttpParserError as exc:
                raise _Failure("RemoteProtocolError", exc) from exc
            if not answer.complete and answer.too_long():
                break  # a large answer: not downloaded, the connection goes
        # Kept when the parser ended the answer itself and HTTP/1.1 allows (an answer ended
        # by its connection, or cut short, leaves keep_alive False).
        if not (answer.complete and answer.keep_alive):
            conn.close()
        status = parser.get_status_code()
        return Exchange(status, answer.headers(), bytes(answer.body), _elapsed_ms(started))

    def _absolute(self, url: str) -> str:
        if self.base_url and not url.lower().startswith(("http://", "https://")):
            return f"{self.base_url}/{url.lstrip('/')}"
        return url

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


# An answer's rest is read (and dropped) to keep its connection when it is at most this long;
# a longer one closes the connection instead.
DRAIN_BYTES = 64 * 1024
# Connections kept per thread, all hosts together (the oldest goes first).
KEPT_CONNECTIONS = 32
_URL_SAFE = "/:@!$&'()*+,;=-._~?%[]"


@dataclass(frozen=True, slots=True)
class _Target:
    """Where `exchange` sends: the connection's key and the request's target."""

    scheme: str
    host: str
    port: int
    path: str  # with the query
    auth: Mapping[str, str]  # Basic authorization from credentials in the URL

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.scheme == "https" else 80):
            host = f"{host}:{self.port}"
        return f"host: {host}"

    @classmethod
    def of(cls, url: str) -> _Target:
        """`url` parsed (the same URLs come again and again: parsed once each)."""
        return _target_of(url)

    @classmethod
    def parse(cls, url: str) -> _Target:
        try:
            parts = urlsplit(url.strip())
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise _Failure("UnsupportedProtocol", ValueError(f"scheme {scheme!r}"), sent=False)
            host = parts.hostname
            if not host:
                raise ValueError("no host")
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise _Failure("InvalidURL", exc, sent=False) from exc
        path = quote(parts.path or "/", safe=_URL_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_URL_SAFE)
        auth: dict[str, str] = {}
        if parts.username is not None:  # as httpx does: user:password@ is Basic authorization
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(scheme, host, port, path, auth)


@functools.lru_cache(maxsize=1024)
def _target_of(url: str) -> _Target:
    return _Target.parse(url)


class _Failure(Exception):
    """No (whole) answer to an exchange, named as httpx names it (`ConnectError`,
    `ReadTimeout`...): the callers' records and messages keep one vocabulary."""

    def __init__(
        self,
        kind: str,
        cause: BaseException,
        *,
        sent: bool = True,
        closed_before_answer: bool = False,
    ) -> None:
        super().__init__(kind)
        self.kind = kind
        self.cause = cause
        self.sent = sent
        self.closed_before_answer = closed_before_answer

    def exchange(self, started: float) -> Exchange:
        text = str(self.cause) or type(self.cause).__name__
        return Exchange(
            None,
            {},
            b"",
            _elapsed_ms(started),
            f"{self.kind}: {text}"[:500],
            sent=self.sent,
            error_type=self.kind,
        )


class _Connection:
    """A kept-alive socket to one (scheme, host, port); `closed` once it must not serve."""

    __slots__ = ("closed", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class _Connections:
    """Kept-alive connections, each thread its own (a socket serves one request at a time),
    by (scheme, host, port). `https`: certificates verified against the system's
    authorities (ssl.create_default_context)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[dict[tuple[str, str, int], _Connection]] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def _mine(self) -> dict[tuple[str, str, int], _Connection]:
        kept: dict[tuple[str, str, int], _Connection] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = {}
            with self._lock:
                self._all.append(kept)
        return kept

    def get(self, target: _Target, timeout: float) -> tuple[_Connection, bool]:
        """The thread's connection to `target` (open), and whether it served before."""
        kept = self._mine()
        conn = kept.get(target.key)
        if conn is not None and not conn.closed and not _closed_by_peer(conn.sock):
            conn.sock.settimeout(timeout)
            return conn, True
        if conn is not None:
            conn.close()
            del kept[target.key]
        conn = self._new(target, timeout)
        if len(kept) >= KEPT_CONNECTIONS:
            oldest = next(iter(kept))
            kept.pop(oldest).close()
        kept[target.key] = conn
        return conn, False

    def _new(self, target: _Target, timeout: float) -> _Connection:
        try:
            sock = socket.create_connection((target.host, target.port), timeout)
        except TimeoutError as exc:
            raise _Failure("ConnectTimeout", exc, sent=False) from exc
        except OSError as exc:  # refused, unknown host
            raise _Failure("ConnectError", exc, sent=False) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=target.host)
            except TimeoutError as exc:
                sock.close()
                raise _Failure("ConnectTimeout", exc, sent=False) from exc
            except OSError as exc:  # a certificate not trusted, no TLS spoken
                sock.close()
                raise _Failure("ConnectError", exc, sent=False) from exc
        return _Connection(sock)

    def drop(self, target: _Target) -> None:
        """The thread's connection to `target` closed (after a failure: its state is unknown)."""
        conn = self._mine().pop(target.key, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            every = [conn for kept in self._all for conn in kept.values()]
            for kept in self._all:
                kept.clear()
        for conn in every:
            conn.close()


class _Answer:
    """The httptools parser's callbacks for one answer: its headers, the first `limit` bytes
    of its body, and how much of the body came."""

    __slots__ = (
        "body",
        "chunked",
        "complete",
        "headers_done",
        "keep_alive",
        "length",
        "limit",
        "parser",
        "raw",
        "size",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser: Any = None
        self._begin()

    def _begin(self) -> None:
        self.raw: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.size = 0
        self.length: int | None = None  # Content-Length, when given
        self.chunked = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.length = int(value) if value.strip().isdigit() else None
        elif lowered == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - len(self.body)
        if room > 0:
            self.body += chunk[:room]

    def on_message_complete(self) -> None:
        if 100 <= self.parser.get_status_code() < 200:
            self._begin()  # an interim answer (103 Early Hints): the real one follows
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # known while the answer is current

    def until_close(self) -> bool:
        """Neither a length nor chunks: the body ends with the connection."""
        return self.length is None and not self.chunked

    def too_long(self) -> bool:
        """Enough of the body is read, and the rest is too long to read and drop (to keep
        the connection): at most DRAIN_BYTES are."""
        if not self.headers_done or len(self.body) < self.limit:
            return False
        return self.size > DRAIN_BYTES or (self.length is not None and self.length > DRAIN_BYTES)

    def headers(self) -> dict[str, str]:
        answer: dict[str, str] = {}
        for raw_name, raw_value in self.raw:
            key = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            answer[key] = f"{answer[key]}, {value}" if key in answer else value
        return answer


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@functools.lru_cache(maxsize=1024)
def _header_name(name: str) -> str | None:
    """`name` as sent (None: ours to write, the framing), or LocalProtocolError when it is
    no token. Names repeat: each is checked once."""
    if not _TOKEN.fullmatch(name):
        bad = ValueError(f"header name {name!r} cannot be sent")
        raise _Failure("LocalProtocolError", bad, sent=False)
    return None if name.lower() in _FRAMING else name


def _request_bytes(
    method: str, target: _Target, content: bytes, headers: Mapping[str, str]
) -> bytes:
    """The request as it goes on the wire (HTTP/1.1, kept alive, the body's length given).
    A header that could not be sent as given (a line break, a character beyond Latin-1, a
    name that is no token) is refused: nothing is sent."""
    lines = [f"{method} {target.path} HTTP/1.1", target.host_header, "accept-encoding: identity"]
    for name, value in headers.items():
        sent = _header_name(name)
        if sent is None:
            continue
        value = str(value)
        if "\r" in value or "\n" in value or "\x00" in value:
            bad = ValueError(f"the value of header {name!r} holds a line break")
            raise _Failure("LocalProtocolError", bad, sent=False)
        lines.append(f"{sent}: {value}")
    lines.append(f"content-length: {len(content)}\r\n\r\n")
    try:
        return "\r\n".join(lines).encode("latin-1") + content
    except UnicodeEncodeError as exc:
        raise _Failure("LocalProtocolError", exc, sent=False) from exc


def _closed_by_peer(sock: Any) -> bool:
    """An idle kept-alive connection that is readable: the server closed it (or sent what
    no request asked for); either way it is not used again."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


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
