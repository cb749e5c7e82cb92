"""The hot path: raw body (bounded) → source by path → verify → parse → inbox.accept → answer.

A plain ASGI app, so that nothing but these steps runs per webhook. Every answer other than
2xx carries a JSON reason; 2xx is sent only after the commit holding the event returned.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from hookyard.inbox.accept import GroupCommitter, StorageUnavailable, Unstorable
from hookyard.inbox.model import NewEvent, RejectedRequest
from hookyard.logs import log
from hookyard.metrics import ACCEPTED, ACK_LATENCY, DUPLICATES, RECEIVED, REJECTED
from hookyard.providers.base import ParseError, Source, WebhookRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WEBHOOK_PREFIXES = ("/webhooks/",)

# Headers that may carry credentials are never stored.
_SECRET_HEADER_WORDS = (
    "authorization",
    "cookie",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
)


@functools.lru_cache(maxsize=1024)
def _may_hold_credentials(name: str) -> bool:
    return any(word in name for word in _SECRET_HEADER_WORDS)


def stored_headers(headers: dict[str, str], secret: frozenset[str] = frozenset()) -> dict[str, str]:
    """The headers kept of a request: none that may hold a credential, nor `secret` (the
    source's signature and credential headers, `Adapter.secret_headers`)."""
    return {
        name: value
        for name, value in headers.items()
        if name not in secret and not _may_hold_credentials(name)
    }


class _Reject(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def _json(status: int, body: dict[str, Any]) -> tuple[int, bytes]:
    return status, _encode(body).encode()


def _accepted(ids: list[int | None]) -> bytes:
    # The hot path's answer, built directly: {"status":"accepted","events":[1,null]}.
    status = b"accepted" if any(i is not None for i in ids) else b"duplicate"
    listed = b",".join(b"null" if i is None else str(i).encode() for i in ids)
    return b'{"status":"' + status + b'","events":[' + listed + b"]}"


class Ingress:
    def __init__(
        self,
        sources: list[Source],
        committer: GroupCommitter,
        fallback: ASGIApp,
        *,
        max_body_bytes: int = 1024 * 1024,
        body_timeout_seconds: float = 15.0,
        trust_proxy_headers: bool = False,
    ) -> None:
        self.routes = {s.path: s for s in sources}
        for source in sources:
            if not source.adapter.verifiers:  # the sources file said so: allow_unauthenticated
                log.warning("source_unauthenticated", source=source.name, path=source.path)
        # Labelled metric children, looked up once per source rather than per request.
        self._received = {s.name: RECEIVED.labels(s.name) for s in sources}
        self._accepted = {s.name: ACCEPTED.labels(s.name) for s in sources}
        self._duplicates = {s.name: DUPLICATES.labels(s.name) for s in sources}
        self.committer = committer
        self.fallback = fallback
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.trust_proxy_headers = trust_proxy_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        path: str = scope["path"]
        # The path as mounted, or with one trailing slash (never `…/demo//`, nor `…/demo/%2F`).
        source = self.routes.get(path) or (
            self.routes.get(path[:-1]) if path.endswith("/") else None
        )
        if source is None:
            if path.startswith(WEBHOOK_PREFIXES):
                REJECTED.labels("", "unknown_source").inc()
                await _respond(
                    send,
                    *_json(404, {"error": "no source is mounted at this path", "path": path[:200]}),
                )
                return
            await self.fallback(scope, receive, send)
            return
        await self.handle(source, scope, receive, send)

    async def handle(self, source: Source, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        self._received[source.name].inc()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        request: WebhookRequest | None = None
        try:
            method = scope["method"]
            if method not in ("POST", "GET", "HEAD"):
                raise _Reject(405, "method", f"{method} is not accepted; providers POST")
            if method != "POST":
                request = self._request(scope, headers, b"")
                answer = source.adapter.handshake(request)
                if answer is None:
                    raise _Reject(405, "method", "this source only accepts POST")
                await _respond(send, answer.status, answer.body, answer.content_type)
                return
            body = await self._read_body(headers, receive)
            self._check_content_type(source, headers)
            request = self._request(scope, headers, body)
            reason = source.adapter.verify(request)
            if reason is not None:
                raise _Reject(401, "signature", reason)
            try:
                parsed = source.adapter.parse(request)
            except ParseError as exc:
                raise _Reject(400, "parse", str(exc)) from None
            except Exception as exc:  # an adapter bug must still answer 4xx, never 500
                log.exception("parse_crashed", source=source.name)
                raise _Reject(
                    400, "parse", f"body could not be parsed ({type(exc).__name__})"
                ) from None
            limit = source.adapter.events_per_request
            if len(parsed) > limit:
                raise _Reject(
                    413,
                    "too_many_events",
                    f"{len(parsed)} events in one request; this source takes at most {limit}",
                )
            kept = stored_headers(headers, source.adapter.secret_headers)
            new = [
                # One request row for all the events it carried (`request`).
                NewEvent.of(
                    source, p, headers=kept, body=body, received_at=received_at, request=request
                )
                for p in parsed
            ]
            try:
                ids = await self.committer.accept(new)
            except StorageUnavailable as exc:
                raise _Reject(
                    503, "unavailable", f"storage unavailable, retry later: {exc}"
                ) from None
            except Unstorable as exc:
                raise _Reject(400, "unstorable", f"the event cannot be stored: {exc}") from None
        except _Reject as rejection:
            await self._reject(source, scope, headers, body, rejection, send)
            return
        except Exception:  # never a 500: the event may not be stored, so ask for a retry
            log.exception("ingress_crashed", source=source.name)
            REJECTED.labels(source.name, "internal_error").inc()
            await _respond(send, *_json(503, {"error": "internal error; retry later"}))
            return
        new_ids = [i for i in ids if i is not None]
        duplicates = len(ids) - len(new_ids)
        if new_ids:
            self._accepted[source.name].inc(len(new_ids))
        if duplicates:
            self._duplicates[source.name].inc(duplicates)
        await _respond(send, 200, _accepted(ids))
        ACK_LATENCY.observe(time.perf_counter() - started)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
                raise _Reject(400, "bad_request", "Content-Length is not a number")
            if int(declared) > self.max_body_bytes:
                raise _Reject(413, "too_large", f"body over the {self.max_body_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        # A sender that stalls mid-body would hold its connection (and memory) for ever.
        try:
            async with asyncio.timeout(self.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Reject(400, "bad_request", "client went away before the body ended")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise _Reject(
                            413, "too_large", f"body over the {self.max_body_bytes}-byte limit"
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Reject(
                408,
                "timeout",
                f"the body did not arrive within {self.body_timeout_seconds:g} seconds",
            ) from None

    @staticmethod
    def _check_content_type(source: Source, headers: dict[str, str]) -> None:
        content_type = headers.get("content-type")
        if content_type is None:
            return
        media = content_type.partition(";")[0].strip().lower()
        accepted = source.adapter.content_types
        if media in accepted or (media.endswith("+json") and "application/json" in accepted):
            return
        raise _Reject(
            415,
            "media_type",
            f"Content-Type {media!r} is not accepted; send {' or '.join(accepted)}",
        )

    def _request(self, scope: Scope, headers: dict[str, str], body: bytes) -> WebhookRequest:
        scheme: str = scope.get("scheme") or "http"
        host = headers.get("host", "")
        if self.trust_proxy_headers:
            scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip()
            host = headers.get("x-forwarded-host", host).split(",")[0].strip()
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query_bytes: bytes = scope.get("query_string", b"")
        query_string = query_bytes.decode("latin-1")
        url = f"{scheme}://{host}{raw_path.decode('latin-1')}"
        if query_string:
            url += "?" + query_string
        client = scope.get("client")
        client_ip = client[0] if client else None
        if self.trust_proxy_headers and (forwarded := headers.get("x-forwarded-for")):
            # The last address is the one our own proxy appended (earlier ones are the
            # sender's to write): what an IP allow-list must check behind a remote proxy.
            client_ip = forwarded.rsplit(",", 1)[-1].strip() or client_ip
        return WebhookRequest(
            method=scope["method"],
            url=url,
            path=scope["path"],
            query=dict(parse_qsl(query_string)) if query_string else {},
            headers=headers,
            body=body,
            client_ip=client_ip,
        )

    async def _reject(
        self,
        source: Source,
        scope: Scope,
        headers: dict[str, str],
        body: bytes,
        rejection: _Reject,
        send: Send,
    ) -> None:
        REJECTED.labels(source.name, rejection.code).inc()
        client = scope.get("client")
        log.warning(
            "request_rejected",
            source=source.name,
            status=rejection.status,
            reason=rejection.reason[:300],
            client=client[0] if client else None,
        )
        if rejection.status in (400, 401, 408, 413, 415):
            self.committer.log_rejected(
                RejectedRequest(
                    source=source.name,
                    path=scope["path"],
                    status_code=rejection.status,
                    reason=rejection.reason,
                    client_ip=client[0] if client else None,
                    headers=stored_headers(headers, source.adapter.secret_headers),
                    body_excerpt=body[:512],
                    received_at=datetime.now(UTC),
                )
            )
        extra = [(b"retry-after", b"5")] if rejection.status == 503 else []
        await _respond(send, *_json(rejection.status, {"error": rejection.reason}), extra=extra)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
