"""`hookyard listen --forward-to URL`: a running hookyard's accepted events, forwarded live to
a local service (a developer's laptop), signed with Standard Webhooks (docs/destinations.md).

It connects to the live WebSocket with an API key (so it sees its tenant's events only) and
asks for `event_accepted` changes. For each one its filters keep, it reads the event's payload
from the management API (masked for a viewer's key, as the API shows it) and POSTs it to the
local URL, then prints a line: time, source, type, the local status and its latency. Events
are forwarded one at a time, in the order they were accepted. A dropped socket is opened
again after a growing pause (events accepted meanwhile are not forwarded: a live feed is not
a log; `hookyard events list` has them). Ctrl-C ends it with exit status 0 and a summary.
"""

from __future__ import annotations

import argparse
import binascii
import json
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from hookyard.http import ApiClient, ApiError
from hookyard.providers.signing import (
    standard_webhooks_headers,
    standard_webhooks_key,
    standard_webhooks_secret,
)
from hookyard.queue.backoff import Backoff

LIVE_PATH = "/api/v1/live"
ACCEPTED = "event_accepted"
# Reconnecting: 0.5-1 s after a drop, doubling with each failure up to 15-30 s.
RECONNECT = Backoff(base_seconds=1.0, max_seconds=30.0)
# The socket's close codes that no reconnecting can cure (api/live.py).
REFUSED = {4401: "the API key was refused", 4403: "another tenant", 4404: "no such tenant"}
READY_TIMEOUT = 10.0  # the welcome and the subscription's answer
EXIT_REFUSED = 2


class Refused(Exception):
    """The gateway will not serve these credentials: stop, with the reason."""


@dataclass(frozen=True)
class Filters:
    """`--source` names (none: every source) and `--type` globs (none: every type); an event
    is forwarded when both match. Globs are shell-style and case-sensitive (`invoice.*`)."""

    sources: frozenset[str] = frozenset()
    types: tuple[str, ...] = ()

    def matches(self, source: str, event_type: str) -> bool:
        if self.sources and source not in self.sources:
            return False
        return not self.types or any(fnmatchcase(event_type, glob) for glob in self.types)


def new_secret() -> str:
    """A Standard Webhooks secret to sign the forwards with (`whsec_…`)."""
    return standard_webhooks_secret()


def _good_secret(secret: str) -> bool:
    if not secret.startswith("whsec_") or not secret.removeprefix("whsec_"):
        return False
    try:
        standard_webhooks_key(secret)
    except (binascii.Error, ValueError):
        return False
    return True


def live_url(base: str) -> str:
    """The WebSocket URL of a hookyard at `base` (http → ws, https → wss)."""
    parts = urlsplit(base.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path + LIVE_PATH, "", ""))


def signed_headers(
    secret: str, event_id: int, source: str, event_type: str, body: bytes, now: float
) -> dict[str, str]:
    """Standard Webhooks headers for one forward, as destinations send them."""
    return {
        **standard_webhooks_headers(secret, f"evt_{event_id}", body, now),
        "x-hookyard-source": source,
        "x-hookyard-event-type": event_type,
    }


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, status: str) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self) -> str:
        total = sum(self.statuses.values())
        seconds = time.monotonic() - self.started
        detail = ", ".join(f"{k}x{v}" for k, v in sorted(self.statuses.items()))
        return f"forwarded {total} event(s) in {seconds:.0f}s" + (f": {detail}" if detail else "")


class Forwarder:
    def __init__(
        self,
        api: ApiClient,
        local: ApiClient,
        forward_to: str,
        secret: str,
        filters: Filters,
        out: TextIO,
    ) -> None:
        self.api = api
        self.local = local
        self.forward_to = forward_to
        self.secret = secret
        self.filters = filters
        self.out = out
        self.tally = Tally()

    def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lagged":
            self.say(f"(some events were missed: {json.dumps(message)}; see `hookyard events`)")
            return
        if kind != "change" or message.get("kind") != ACCEPTED:
            return
        data = message.get("data") or {}
        source, event_type = str(data.get("source", "")), str(data.get("event_type", ""))
        if not self.filters.matches(source, event_type):
            return
        self.forward(int(message["id"]), source, event_type)

    def forward(self, event_id: int, source: str, event_type: str) -> None:
        try:
            event = self.api.request("GET", f"/api/v1/events/{event_id}").json()
        except ApiError as exc:
            self.row(source, event_type, "ERR", None, f"reading event {event_id}: {exc}")
            return
        body = json.dumps(event.get("payload"), separators=(",", ":")).encode()
        headers = signed_headers(self.secret, event_id, source, event_type, body, time.time())
        # One attempt, whatever the answer (ApiClient.exchange, as destinations send): the
        # local status shows in the table, and a service that is down is not tried again.
        answer = self.local.exchange("POST", self.forward_to, content=body, headers=headers)
        if answer.status is None:
            note = f"{self.forward_to}: {answer.error}"
            self.row(source, event_type, "ERR", answer.latency_ms, note)
            return
        self.row(source, event_type, str(answer.status), answer.latency_ms, f"event {event_id}")

    def row(
        self, source: str, event_type: str, status: str, ms: float | None, note: str = ""
    ) -> None:
        self.tally.add(status)
        latency = "-" if ms is None else f"{ms:.0f}"
        clock = datetime.now().strftime("%H:%M:%S")
        self.say(f"{clock}  {source:16} {event_type:32} {status:>5} {latency:>7}  {note}")

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _open(url: str, api_key: str) -> ClientConnection:
    """The live socket, subscribed to accepted events; Refused when the key is not good."""
    ws = connect(
        url,
        additional_headers={"Authorization": f"Bearer {api_key}"},
        open_timeout=READY_TIMEOUT,
        close_timeout=2,
    )
    try:
        welcome = json.loads(ws.recv(timeout=READY_TIMEOUT))
        if welcome.get("type") != "welcome":
            raise Refused(f"unexpected first message {welcome!r}")
        if ACCEPTED not in welcome.get("kinds", []):
            raise Refused("this hookyard does not publish accepted events (upgrade it)")
        ws.send(json.dumps({"type": "subscribe", "kinds": [ACCEPTED]}))
        while True:
            answer = json.loads(ws.recv(timeout=READY_TIMEOUT))
            if answer.get("type") == "subscribed":
                return ws
            if answer.get("type") == "error":
                raise ConnectionError(answer.get("detail", "subscribe refused"))
    except ConnectionClosed as closed:
        ws.close()
        _raise_refused(closed)
        raise
    except BaseException:
        ws.close()
        raise


def _raise_refused(closed: ConnectionClosed) -> None:
    code = closed.rcvd.code if closed.rcvd is not None else None
    if code in REFUSED:
        reason = closed.rcvd.reason if closed.rcvd is not None else ""
        raise Refused(f"{REFUSED[code]} ({code}{': ' + reason if reason else ''})") from None


def _stop_on_sigterm() -> None:
    """Ctrl-C and SIGTERM end the run cleanly. SIGINT's handler is set explicitly: a process
    started in the background by a non-interactive shell (`hookyard listen ... &` in a
    script) inherits SIGINT ignored, and Python then installs no handler of its own."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    filters = Filters(frozenset(args.source or ()), tuple(args.type or ()))
    for name, url in (("--forward-to", args.forward_to), ("--url", args.url)):
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            print(f"hookyard listen: {name} must be an http(s) URL, not {url!r}", file=err)
            return EXIT_REFUSED
    if args.secret is not None and not _good_secret(args.secret):
        print(
            "hookyard listen: --secret must be a Standard Webhooks secret: whsec_ and base64",
            file=err,
        )
        return EXIT_REFUSED
    secret = args.secret or new_secret()
    headers = {"Authorization": f"Bearer {args.api_key}"}
    try:
        return _run(args, secret, headers, filters, out, err)
    except KeyboardInterrupt:  # before it was ready
        return 0


def _run(
    args: argparse.Namespace,
    secret: str,
    headers: dict[str, str],
    filters: Filters,
    out: TextIO,
    err: TextIO,
) -> int:
    with (
        ApiClient(args.url, provider="hookyard", headers=headers, timeout=10) as api,
        ApiClient(provider="local", timeout=args.timeout, max_attempts=1) as local,
    ):
        try:
            me = api.request("GET", "/api/v1/me").json()
        except ApiError as exc:
            why = "the API key was refused" if exc.status == 401 else "the gateway answered"
            if exc.status is None:
                why = "cannot reach the gateway"
            print(f"hookyard listen: {why}: {exc} (check --api-key and --url)", file=err)
            return EXIT_REFUSED if exc.status in (401, 403) else 1
        forwarder = Forwarder(api, local, args.forward_to, secret, filters, out)
        tenant = me.get("acting_for") or "every tenant"
        if args.secret is None:
            forwarder.say(f"Signing with the new secret {secret} (pass --secret to keep one)")
        if me.get("role") == "viewer":
            print(
                "hookyard listen: a viewer's key: personal values arrive masked ('***');"
                " use a member's key for the payloads as stored",
                file=err,
            )
        _stop_on_sigterm()
        try:
            return _listen(args, forwarder, tenant, err)
        except KeyboardInterrupt:
            forwarder.say(forwarder.tally.summary())
            return 0


def _listen(args: argparse.Namespace, forwarder: Forwarder, tenant: str, err: TextIO) -> int:
    url = live_url(args.url)
    failures = 0
    connected_before = False
    while True:
        try:
            ws = _open(url, args.api_key)
        except Refused as refused:
            print(f"hookyard listen: {refused} (check --api-key)", file=err)
            return EXIT_REFUSED
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
            failures += 1
            pause = RECONNECT.delay(failures)
            print(f"hookyard listen: {_why(exc)}; again in {pause:.1f}s", file=err, flush=True)
            time.sleep(pause)
            continue
        if not connected_before:
            connected_before = True
            forwarder.say(
                f"Ready: forwarding {tenant}'s accepted events from {args.url} to"
                f" {args.forward_to} (Ctrl-C to stop)"
            )
            forwarder.say(f"{'time':8}  {'source':16} {'type':32} {'status':>5} {'ms':>7}")
        else:
            print("hookyard listen: connected again", file=err, flush=True)
        failures = 0
        try:
            with ws:
                for raw in _messages(ws):
                    forwarder.handle(json.loads(raw))
        except ConnectionClosed as closed:
            try:
                _raise_refused(closed)
            except Refused as refused:
                print(f"hookyard listen: {refused}", file=err)
                return EXIT_REFUSED
            failures = 1
            pause = RECONNECT.delay(failures)
            print(f"hookyard listen: {_why(closed)}; again in {pause:.1f}s", file=err, flush=True)
            time.sleep(pause)


def _messages(ws: ClientConnection) -> Iterator[str | bytes]:
    # A bounded wait: Ctrl-C is seen within a second, whatever the socket does.
    while True:
        try:
            yield ws.recv(timeout=1.0)
        except TimeoutError:
            continue


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"the live socket closed ({exc})"
    return f"cannot open the live socket: {type(exc).__name__}: {exc}"[:300]


def cmd_listen(args: argparse.Namespace) -> int:
    return run(args)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "listen",
        help="forward a running hookyard's accepted events to a local URL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--forward-to", required=True, metavar="URL", help="the local endpoint")
    p.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the running hookyard (%(default)s)"
    )
    p.add_argument("--api-key", required=True, help="an API key (hk_…) of the tenant")
    p.add_argument(
        "--source", action="append", metavar="S", help="only this source's events (repeatable)"
    )
    p.add_argument(
        "--type", action="append", metavar="GLOB", help="only event types matching (repeatable)"
    )
    p.add_argument(
        "--secret", help="the whsec_… secret to sign with (default: a new one, printed once)"
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds the local URL may take (%(default)s)"
    )
    p.set_defaults(func=cmd_listen)
