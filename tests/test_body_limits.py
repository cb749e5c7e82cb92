"""Bounded bodies outside the webhook paths (issue 12): the management API and the dashboard
refuse a body over 1 MiB, the two logins one over 64 KiB, with 413 and a reason (a page for a
browser on /ui) — from Content-Length before reading, or while reading a chunked body — and
before anything parses it or asks who is calling. Webhooks keep the ingress's own limit.
Whatever is posted, no answer is a 500."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookyard.api.middleware import BodyLimit
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet
from hookyard.testing.fakes.server import serving
from tests.people import People, gateway
from tests.support import delivery
from tests.web_support import HTML, login

MIB = 1024 * 1024
KIB = 1024
JSON = {"content-type": "application/json"}


def chunks(total: int, size: int = 64 * KIB) -> Iterator[bytes]:
    """A body sent in chunks, without Content-Length."""
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


# -- the management API ---------------------------------------------------------------------


def test_an_api_body_over_1_mib_is_413_before_authentication(
    api: TestClient, people: People
) -> None:
    for headers in ({}, people.superadmin()):
        answer = api.post("/api/v1/tenants", content=b"x" * (MIB + 1), headers=JSON | headers)
        assert answer.status_code == 413
        assert answer.json() == {"detail": f"the body is over this route's limit of {MIB} bytes"}
    # At the limit, the body is the route's to judge (here: not JSON).
    answer = api.post("/api/v1/tenants", content=b"x" * MIB, headers=JSON | people.superadmin())
    assert answer.status_code == 422


def test_a_chunked_api_body_over_1_mib_is_413(api: TestClient, people: People) -> None:
    answer = api.post("/api/v1/tenants", content=chunks(MIB + 1), headers=people.superadmin())
    assert answer.status_code == 413


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/ui/login"])
def test_a_login_body_over_64_kib_is_413(api: TestClient, path: str) -> None:
    answer = api.post(path, content=b"x" * (64 * KIB + 1), headers=JSON)
    assert answer.status_code == 413
    assert answer.json() == {"detail": f"the body is over this route's limit of {64 * KIB} bytes"}
    answer = api.post(path, content=chunks(64 * KIB + 1, 4 * KIB), headers=JSON)
    assert answer.status_code == 413
    # Under the limit, the login judges the body itself.
    answer = api.post(path, json={"email": "x@example.com", "password": "y" * 60_000})
    assert answer.status_code in (400, 401, 422)


def test_the_dashboard_refuses_with_a_page_for_a_browser(api: TestClient, people: People) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"} | HTML
    answer = api.post("/ui/login", content=b"email=" + b"x" * 70_000, headers=form)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert f"over this route&#39;s limit of {64 * KIB} bytes" in answer.text
    login(api, "admin@acme.example.com")
    answer = api.post("/ui/events/replay", content=b"csrf=" + b"x" * MIB, headers=form)
    assert answer.status_code == 413 and "<h1>413</h1>" in answer.text
    assert answer.headers["x-frame-options"] == "DENY"  # the dashboard's headers, as ever


def test_the_limits_are_settings_and_webhooks_keep_their_own(
    settings: Settings, sources: SourceSet
) -> None:
    with gateway(settings, api_max_body_bytes=100, login_max_body_bytes=50) as (client, people):
        answer = client.post("/api/v1/tenants", content=b"x" * 101, headers=people.superadmin())
        assert answer.status_code == 413
        body = {"email": "someone@example.com", "password": "a password of 30 or so"}
        assert client.post("/api/v1/auth/login", json=body).status_code == 413
        # A webhook of 400 bytes is the ingress's (1 MiB): accepted.
        d = delivery(sources.by_name()["demo"], 1, note="n" * 300)
        assert len(d.body) > 100
        answer = client.post("/webhooks/in/demo", content=d.body, headers=d.headers)
        assert answer.status_code == 200, answer.text


def test_a_stalled_body_is_cut_off_by_the_api_deadline(settings: Settings) -> None:
    runtime = Runtime.build(settings.model_copy(update={"api_timeout_seconds": 1.0}))
    try:
        with serving(create_app(runtime, run_workers=False)) as base:
            host, port = base.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                started = time.monotonic()
                conn.sendall(
                    b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                )  # and never the rest
                answer = conn.recv(4096)
                waited = time.monotonic() - started
    finally:
        runtime.close()
    assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in answer.lower()
    assert 0.9 < waited < 5


# -- the middleware on its own --------------------------------------------------------------


class Recorder:
    """An app that reads the whole body (as FastAPI would) and answers 200."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.after: dict[str, Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(parts)
        self.after = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def run(
    limit: BodyLimit, headers: list[tuple[bytes, bytes]], messages: list[dict[str, Any]]
) -> tuple[int, int]:
    """(status answered, messages the app or the limit read)."""
    pending = [*messages, {"type": "http.disconnect"}]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/x", "headers": headers}
    anyio.run(limit, scope, receive, send)
    return (sent[0]["status"] if sent else 0), read


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read() -> None:
    app = Recorder()
    limit = BodyLimit(app, max_bytes=10, login_max_bytes=5)
    status, read = run(limit, [(b"content-length", b"11")], [{"type": "http.request"}])
    assert (status, read, app.body) == (413, 0, None)
    status, _ = run(limit, [(b"content-length", b"12abc")], [{"type": "http.request"}])
    assert status == 400


def test_a_stream_is_cut_at_the_chunk_that_passes_the_limit() -> None:
    app = Recorder()
    limit = BodyLimit(app, max_bytes=10, login_max_bytes=5)
    more = [{"type": "http.request", "body": b"abcd", "more_body": True}] * 5
    status, read = run(limit, [], more)
    assert (status, read, app.body) == (413, 3, None)  # 12 bytes: refused, 2 chunks unread


def test_a_body_within_the_limit_reaches_the_app_whole_then_the_disconnect() -> None:
    app = Recorder()
    limit = BodyLimit(app, max_bytes=10, login_max_bytes=5)
    parts = [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"efgh", "more_body": False},
    ]
    status, _ = run(limit, [], parts)
    assert (status, app.body, app.after) == (200, b"abcdefgh", {"type": "http.disconnect"})


def test_a_client_gone_mid_body_gets_no_answer_and_reaches_no_route() -> None:
    app = Recorder()
    limit = BodyLimit(app, max_bytes=10, login_max_bytes=5)
    status, _ = run(limit, [], [{"type": "http.request", "body": b"ab", "more_body": True}])
    assert (status, app.body) == (0, None)


# -- no input is a 500 ----------------------------------------------------------------------

POSTS = [
    "/api/v1/auth/login",
    "/api/v1/tenants",
    "/api/v1/users",
    "/api/v1/events/replay",
    "/api/v1/api-keys",
    "/ui/login",
    "/ui/events/replay",
    "/ui/tenant",
]
MEDIA = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain",
    "application/json; charset=latin-9",
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(POSTS),
    media=st.sampled_from(MEDIA),
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.sampled_from([b'{"email": "\\ud800@x", "password": "\\u0000"}', b"[]", b"null"]),
    ),
    who=st.sampled_from(["nobody", "superadmin", "viewer"]),
)
def test_no_body_is_a_server_error(
    api: TestClient, people: People, path: str, media: str, body: bytes, who: str
) -> None:
    headers = {"content-type": media}
    if who == "superadmin":
        headers |= people.superadmin("acme")
    elif who == "viewer":
        headers |= people.headers("acme", "viewer")
    answer = api.post(path, content=body, headers=headers)
    assert answer.status_code < 500, answer.text[:300]
