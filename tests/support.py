"""Helpers for tests: the test sources and their secrets, signed deliveries, events stored as
ingress would store them, and real `hookyard` processes on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from sqlalchemy import Engine, event, func, select, update

from hookyard.db.schema import events
from hookyard.inbox.model import NewEvent
from hookyard.providers.base import Source
from hookyard.runtime import Runtime
from hookyard.testing.simulate import Delivery, build_delivery

ROOT = Path(__file__).resolve().parent.parent

SECRETS = {
    "generic": "whsec_" + "dGVzdC1zZWNyZXQtbm90LXJlYWwtMTIzNA==",  # base64 of a fake key
    "hmac": "test-hmac-secret",
    "token": "test-shared-token",
    "hubspot": "test-hubspot-client-secret",
    "meta_app": "test-meta-app-secret",
    "meta_verify": "test-meta-verify-token",
    "c2s": "test-c2s-token",
    "tcr": "test-tcr-token",
    "admin": "test-admin-token",
    "session": "test-session-secret-not-real-0123456789",
}

SOURCES_TOML = f"""
[[source]]
name = "demo"
provider = "generic"
scheme = "standard"
secret = "{SECRETS["generic"]}"

[[source]]
name = "effects"
provider = "generic"
scheme = "standard"
secret = "{SECRETS["generic"]}"
handler = "tests.handlers:record_effect"

[[source]]
name = "poison"
provider = "generic"
scheme = "standard"
secret = "{SECRETS["generic"]}"
handler = "tests.handlers:always_fail"

[[source]]
name = "signed"
provider = "generic"
scheme = "hmac"
header = "X-Signature"
prefix = "sha256="
secret = "{SECRETS["hmac"]}"

[[source]]
name = "tokened"
provider = "generic"
scheme = "token"
secret = "{SECRETS["token"]}"

[[source]]
name = "hubspot"
provider = "hubspot"
path = "/webhooks/hubspot/company"
client_secret = "{SECRETS["hubspot"]}"

[[source]]
name = "meta"
provider = "meta"
path = "/api/v1/whatsapp/webhook"
app_secret = "{SECRETS["meta_app"]}"
verify_token = "{SECRETS["meta_verify"]}"

[[source]]
name = "c2s"
provider = "c2s"
path = "/api/v1/webhooks/c2s"
token = "{SECRETS["c2s"]}"

[[source]]
name = "tcr-brands"
provider = "tcr"
path = "/webhooks/tcr/brands"
token = "{SECRETS["tcr"]}"

[[source]]
name = "tcr-open"
provider = "tcr"
path = "/webhooks/tcr/campaigns"
allow_unauthenticated = true
"""

# What DESIGN.md promises every event shows (API and `hookyard events list --json`).
EVENT_FIELDS = frozenset(
    {
        "id",
        "source",
        "provider",
        "event_type",
        "dedup_key",
        "status",
        "attempts",
        "origin",
        "received_at",
        "processed_at",
        "last_error",
    }
)

# Every header a verifier reads: fuzzers fill them with junk.
CREDENTIAL_HEADERS = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-hubspot-signature",
    "x-hubspot-signature-version",
    "x-hub-signature-256",
    "x-webhook-token",
    "authorization",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def delivery(source: Source, seq: int = 0, event: str | None = None, **data: Any) -> Delivery:
    """A correctly signed delivery; for generic sources, `data` lands in the payload's data."""
    d = build_delivery(source, event, "http://testserver", seq)
    if data and source.config.provider == "generic":
        import json

        from hookyard.providers import signing

        payload = json.loads(d.body)
        payload["data"].update(data)
        body = json.dumps(payload).encode()
        headers = dict(d.headers)
        headers["webhook-signature"] = signing.standard_webhooks_signature(
            source.config.secret,  # type: ignore[attr-defined]
            headers["webhook-id"],
            headers["webhook-timestamp"],
            body,
        )
        return Delivery(d.method, d.url, headers, body)
    return d


def environ_of(pid: int) -> dict[str, str]:
    """A live process's environment (Linux /proc), as it was when it started."""
    raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode(errors="replace") for key, value in pairs}


def children(supervisor: Proc) -> dict[str, int]:
    """`serve`'s live children by role: {"ingest-0": pid, "worker-0": pid, …}."""
    found: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != supervisor.popen.pid:
                continue
            name = environ_of(int(stat.parent.name)).get("HOOKYARD_PROCESS_NAME")
        except (OSError, IndexError):
            continue
        if name:
            found[name] = int(stat.parent.name)
    return found


def descendants(pid: int) -> list[int]:
    """The processes under `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class Proc:
    """A `hookyard` subprocess; output goes to a log file kept beside the test's tmp dir."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "hookyard.cli", *args],
            env=env,
            cwd=str(log.parent),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        """SIGKILL the process and every process under it at once (`serve`'s children too):
        the whole gateway crashing, as when its machine or container dies."""
        if self.popen.poll() is None:
            for pid in [*descendants(self.popen.pid), self.popen.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def reported(*procs: Proc, tail: int = 4000) -> Iterator[None]:
    """Around a test of running processes: on a failure, the end of each one's output is
    printed (pytest shows it with the failure); each is stopped afterwards, whatever
    happened, the last started first."""
    try:
        yield
    except BaseException:
        for proc in procs:
            print(f"--- {proc.args}\n{proc.output()[-tail:]}")
        raise
    finally:
        for proc in reversed(procs):
            proc.stop()


def start_server(
    env: dict[str, str], log: Path, *extra: str, port: int | None = None
) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc(["serve", "--port", str(port), *extra], env, log)
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, proc)
    return proc, base


def wait_until_healthy(base: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"server exited early:\n{proc.output()[-3000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy in {timeout}s:\n{proc.output()[-3000:]}")


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value {value!r})")
        time.sleep(interval)


@contextlib.contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    """The statements sent through `engine` meanwhile (an executemany is one)."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


# -- stored events ---------------------------------------------------------------------------


def accept(runtime: Runtime, source: str, n: int = 1, **data: object) -> list[int]:
    """Store `n` deliveries to `source` as ingress would (parse, then the inbox)."""
    from hookyard.ingress.app import stored_headers
    from hookyard.providers.base import WebhookRequest

    src = runtime.sources.by_name()[source]
    new = []
    for i in range(n):
        d = delivery(src, i, **data)
        query = dict(parse_qsl(urlsplit(d.url).query))
        request = WebhookRequest("POST", d.url, src.path, query, d.headers, d.body)
        assert src.adapter.verify(request) is None
        for p in src.adapter.parse(request):
            new.append(
                NewEvent(
                    src.name,
                    src.config.provider,
                    None,
                    p.event_type,
                    p.dedup_key,
                    p.entity_key,
                    p.provider_ts,
                    stored_headers(dict(d.headers)),
                    d.body,
                    None if p.payload_is_body else p.payload,
                    datetime.now(UTC),
                )
            )
    inserted = runtime.store.insert_batch(new)
    return sorted(inserted.values())


# Two sources of tenants (added to SOURCES_TOML by the modules on tenant isolation).
TENANT_SOURCES = f"""
[[source]]
name = "acme-hooks"
provider = "generic"
scheme = "token"
secret = "{SECRETS["token"]}"
tenant = "acme"

[[source]]
name = "globex-hooks"
provider = "generic"
scheme = "token"
secret = "{SECRETS["token"]}-globex"
tenant = "globex"
"""

LEAD = {
    "id": "c2s-lead-1",
    "hook_action": "on_create_lead",
    "attributes": {
        "customer": {
            "name": "Maria Test",
            "email": "maria.test@example.com",
            "phone": "11987654321",
            "cpf": "12345678909",
        },
        "company_name": "Acme Imóveis",
        "phones": [{"number": "11912345678"}],
        "notes": None,
    },
}


def add(
    runtime: Runtime,
    tenant: str | None,
    source: str = "acme-hooks",
    n: int = 1,
    *,
    event_type: str = "lead.created",
    key: str | None = None,
    entity: str | None = None,
    payload: Any = None,
    at: datetime | None = None,
    provider: str = "generic",
) -> list[int]:
    """Store `n` events of `tenant` as ingress would (the body is the payload)."""
    body = json.dumps(payload if payload is not None else {"tenant": tenant}).encode()
    new = [
        NewEvent(
            source,
            provider,
            tenant,
            event_type,
            key if key and n == 1 else f"{key or tenant}-{secrets.token_hex(6)}",
            entity,
            None,
            {"content-type": "application/json", "x-forwarded-for": "203.0.113.7"},
            body,
            None,
            at or datetime.now(UTC),
        )
        for _ in range(n)
    ]
    return sorted(runtime.store.insert_batch(new).values())


def set_status(runtime: Runtime, ids: list[int], status: str, **values: Any) -> None:
    with runtime.store.writer.begin() as tx:
        tx.execute(update(events).where(events.c.id.in_(ids)).values(status=status, **values))


# -- signatures --------------------------------------------------------------------------------

# HubSpot's documented table: these URL-encoded characters are decoded in the URI before a v3
# signature is computed (and HubSpot's SDK expects the URI already decoded that way). Written
# here independently of `signing.hubspot_uri`.
_HUBSPOT_DECODE = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)


def hubspot_decoded(uri: str) -> str:
    return _HUBSPOT_DECODE.sub(lambda m: chr(int(m.group(1), 16)), uri)


class MovableClock:
    """A clock the test moves (the queues' `clock`): leases expire and retries fall due
    without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def row(engine: Engine, table: Any, *where: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(table).where(*where)).mappings().one())


def rows(engine: Engine, table: Any, *where: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(table).where(*where).order_by(table.c.id)).mappings()
        return [dict(r) for r in found]


def hookyard(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`hookyard ARGS…` as a real process (the CLI's own entry), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hookyard.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
