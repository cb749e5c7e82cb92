"""`hookyard listen` as a developer runs it: a real gateway process, `hookyard listen` as a
real subprocess forwarding to a real local HTTP server, signed webhooks sent to the gateway.
The local server gets each within a second of its 2xx, signed so that the `standardwebhooks`
library verifies it; filters and tenants hold; a refused key and Ctrl-C end it cleanly."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookyard.cli.listen import Filters, live_url, new_secret, signed_headers
from hookyard.config import Settings
from hookyard.sources import load_sources_file
from hookyard.testing.fakes.server import serving
from tests.conftest import SECRETS, process_env
from tests.people import People
from tests.support import delivery, hookyard, start_server, wait_for

SECRET = SECRETS["generic"]
SOURCES = "".join(
    f"""
[[source]]
name = "{name}"
provider = "generic"
scheme = "standard"
secret = "{SECRET}"
tenant = "{tenant}"
"""
    for name, tenant in (
        ("acme-billing", "acme"),
        ("acme-crm", "acme"),
        ("globex-billing", "globex"),
    )
)
LISTEN_SECRET = "whsec_" + "bGlzdGVuLXRlc3Qtc2VjcmV0LW5vdC1yZWFs"  # base64 of a fake key


# -- the pieces --------------------------------------------------------------------------

names = st.text(st.characters(codec="ascii", exclude_characters="*?[]"), min_size=1, max_size=20)


@given(source=names, event_type=names)
def test_no_filter_keeps_every_event(source: str, event_type: str) -> None:
    assert Filters().matches(source, event_type)


@given(sources=st.frozensets(names, max_size=4), source=names, event_type=names)
def test_a_source_filter_keeps_exactly_its_sources(
    sources: frozenset[str], source: str, event_type: str
) -> None:
    kept = Filters(sources=sources).matches(source, event_type)
    assert kept == (not sources or source in sources)


@given(prefix=names, rest=names, other=names)
def test_type_globs_match_shell_style_and_case_sensitively(
    prefix: str, rest: str, other: str
) -> None:
    star = Filters(types=(prefix + ".*",))
    assert star.matches("s", f"{prefix}.{rest}")
    assert star.matches("s", other) == other.startswith(prefix + ".")
    exact = Filters(types=(prefix,))
    assert exact.matches("s", prefix) and exact.matches("s", other) == (other == prefix)
    if prefix.upper() != prefix:
        assert not exact.matches("s", prefix.upper())


@given(source=names, event_type=names, also=names)
def test_source_and_type_filters_both_must_match(source: str, event_type: str, also: str) -> None:
    both = Filters(sources=frozenset({source}), types=(event_type,))
    assert both.matches(source, event_type)
    assert both.matches(also, event_type) == (also == source)
    assert both.matches(source, also) == (also == event_type)


@given(body=st.binary(max_size=2000), event_id=st.integers(1, 2**53))
def test_a_forward_is_signed_so_that_standardwebhooks_verifies_it(
    body: bytes, event_id: int
) -> None:
    secret = new_secret()
    headers = signed_headers(secret, event_id, "demo", "t.x", body, time.time())
    Webhook(secret).verify(body, headers, json_parse=False)
    assert headers["webhook-id"] == f"evt_{event_id}"
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(secret).verify(body + b" ", headers, json_parse=False)


def test_the_live_url_of_a_gateway() -> None:
    assert live_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/api/v1/live"
    assert live_url("https://hooks.example.com/base/") == "wss://hooks.example.com/base/api/v1/live"


# -- against a running gateway --------------------------------------------------------------


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES)
    return path


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The developer's local service: records every request, answers `status`."""

    def __init__(self) -> None:
        self.got: list[Received] = []
        self.status = 200

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.got.append(Received(time.monotonic(), dict(request.headers), body))
        return Response(status_code=self.status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks", self.hook, methods=["POST"])])

    def types(self) -> list[str]:
        return [json.loads(r.body)["type"] for r in self.got]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    made = Receiver()
    with serving(made.app()) as base:
        yield made, base + "/hooks"


@pytest.fixture
def gateway(settings: Settings, people: People, tmp_path: Path) -> Iterator[str]:
    proc, base = start_server(process_env(settings), tmp_path / "serve.log")
    try:
        yield base
    finally:
        proc.stop()


class Listen:
    """`hookyard listen …` running; its stdout and stderr lines as they come."""

    def __init__(self, settings: Settings, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "hookyard.cli", "listen", *args],
            env=process_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        for stream, kept in ((self.popen.stdout, self.out), (self.popen.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, kept), daemon=True).start()

    def _read(self, stream: IO[str], kept: list[str]) -> None:
        for line in stream:
            kept.append(line.rstrip("\n"))
            self._lines.put(line)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> str:
        found = wait_for(
            lambda: next((line for line in self.out + self.err if text in line), None),
            timeout=timeout,
        )
        assert isinstance(found, str)
        return found

    def interrupt(self) -> int:
        self.popen.send_signal(signal.SIGINT)
        return self.popen.wait(15)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


def send(
    settings: Settings, base: str, source: str, event_type: str, seq: int
) -> tuple[float, dict[str, Any]]:
    """A signed webhook to the gateway: when its 2xx came (monotonic), and its payload."""
    src = load_sources_file(Path(str(settings.sources))).by_name()[source]
    d = delivery(src, seq, event_type)
    answer = httpx.post(base + src.path, headers=d.headers, content=d.body, timeout=10)
    acked = time.monotonic()
    assert answer.status_code == 200, answer.text
    payload: dict[str, Any] = json.loads(d.body)
    return acked, payload


def test_listen_forwards_signed_within_a_second_and_only_its_tenants_events(
    settings: Settings, people: People, gateway: str, receiver: tuple[Receiver, str]
) -> None:
    local, url = receiver
    key = people.keys[("acme", "member")]
    listen = Listen(settings, "--forward-to", url, "--url", gateway, "--api-key", key)
    try:
        secret = listen.wait_for_line("new secret").split("new secret ")[1].split()[0]
        listen.wait_for_line("Ready")

        acked, payload = send(settings, gateway, "acme-billing", "invoice.paid", 1)
        wait_for(lambda: local.got, timeout=5)
        [got] = local.got
        assert got.at - acked < 1.0, f"forwarded {got.at - acked:.3f}s after the 2xx"
        assert json.loads(got.body) == payload
        assert Webhook(secret).verify(got.body, got.headers) == payload
        assert got.headers["x-hookyard-source"] == "acme-billing"
        assert got.headers["x-hookyard-event-type"] == "invoice.paid"
        with pytest.raises(Exception, match=r"(?i)signature"):
            Webhook(LISTEN_SECRET).verify(got.body, got.headers)  # another secret: refused

        # Another tenant's event never arrives; acme's next one does. Changes reach the
        # socket in commit order and are forwarded one by one, so globex's, sent before it,
        # would have come first.
        send(settings, gateway, "globex-billing", "invoice.paid", 2)
        local.status = 503  # the local status shows in the table, whatever it is
        send(settings, gateway, "acme-crm", "contact.created", 3)
        wait_for(lambda: len(local.got) == 2, timeout=5)
        assert local.types() == ["invoice.paid", "contact.created"]
        listen.wait_for_line("  503 ")
        row = next(line for line in listen.out if "invoice.paid" in line)
        assert "acme-billing" in row and " 200 " in row

        assert listen.interrupt() == 0
        assert "forwarded 2 event(s)" in listen.out[-1]
        assert "Traceback" not in "\n".join(listen.err)
    finally:
        listen.stop()
    assert len(local.got) == 2  # globex's never came


def test_every_ingest_process_forwards_its_accepted_events(
    settings: Settings, people: People, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    """Two ingest processes share the port: the socket is on one, webhooks land on both
    (SQLite: the bus carries the other's accepted events; PostgreSQL: NOTIFY does)."""
    local, url = receiver
    env = process_env(settings, HOOKYARD_PROCESSES=2)
    proc, base = start_server(env, tmp_path / "serve.log")
    key = people.keys[("acme", "member")]
    listen = Listen(settings, "--forward-to", url, "--url", base, "--api-key", key)
    try:
        listen.wait_for_line("Ready")
        sent = [send(settings, base, "acme-billing", f"invoice.n{i}", i)[1] for i in range(8)]
        wait_for(lambda: len(local.got) == len(sent), timeout=10)
        assert sorted(local.types()) == sorted(p["type"] for p in sent)
        assert listen.interrupt() == 0
    finally:
        listen.stop()
        proc.stop()


def test_filters_a_given_secret_and_reconnecting(
    settings: Settings, people: People, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    local, url = receiver
    proc, base = start_server(process_env(settings), tmp_path / "serve.log")
    listen = Listen(
        settings,
        *("--forward-to", url, "--url", base, "--api-key", people.keys[("acme", "viewer")]),
        *("--source", "acme-billing", "--type", "invoice.*", "--type", "refund.created"),
        *("--secret", LISTEN_SECRET),
    )
    try:
        listen.wait_for_line("Ready")
        assert not any("new secret" in line for line in listen.out)
        assert any("viewer" in line and "masked" in line for line in listen.err)
        send(settings, base, "acme-billing", "customer.created", 1)  # --type excludes it
        send(settings, base, "acme-crm", "invoice.paid", 2)  # --source excludes it
        send(settings, base, "acme-billing", "invoice.paid", 3)
        send(settings, base, "acme-billing", "refund.created", 4)
        wait_for(lambda: len(local.got) == 2, timeout=5)
        assert local.types() == ["invoice.paid", "refund.created"]
        for got in local.got:
            Webhook(LISTEN_SECRET).verify(got.body, got.headers)

        # The gateway restarts: listen opens the socket again by itself.
        port = int(base.rsplit(":", 1)[1])
        proc.stop()
        listen.wait_for_line("live socket closed")
        proc, base = start_server(process_env(settings), tmp_path / "serve2.log", port=port)
        listen.wait_for_line("connected again", timeout=40)
        send(settings, base, "acme-billing", "invoice.voided", 5)
        wait_for(lambda: len(local.got) == 3, timeout=5)
        assert local.types()[-1] == "invoice.voided"
        assert listen.interrupt() == 0
        assert "forwarded 3 event(s)" in listen.out[-1]
    finally:
        listen.stop()
        proc.stop()


def test_a_refused_api_key_exits_non_zero_with_the_reason(
    settings: Settings, gateway: str, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    env = process_env(settings)
    done = hookyard(env, "listen", "--forward-to", url, "--url", gateway, "--api-key", "hk_nope")
    assert done.returncode == 2, done
    assert "API key was refused" in done.stderr and "--api-key" in done.stderr
    assert "Traceback" not in done.stderr
    done = hookyard(env, "listen", "--forward-to", "ftp://x/", "--url", gateway, "--api-key", "k")
    assert done.returncode == 2 and "--forward-to must be an http(s) URL" in done.stderr
    done = hookyard(
        env, "listen", "--forward-to", url, "--api-key", "k", "--secret", "whsec_not base64!"
    )
    assert done.returncode == 2 and "--secret must be a Standard Webhooks secret" in done.stderr
