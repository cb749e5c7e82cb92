"""Live updates over a real WebSocket: the gateway served on a local port (uvicorn), clients
from the `websockets` library, state changed by real webhooks and the real worker."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from hookyard.accounts import identity
from hookyard.accounts.tables import api_keys
from hookyard.api import live as live_api
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.engine import libpq_dsn
from hookyard.db.schema import events
from hookyard.destinations import manage
from hookyard.destinations.circuit import Breaker
from hookyard.destinations.deliver import DeliveryJob
from hookyard.destinations.tables import deliveries
from hookyard.domain.tendlc import service as tendlc
from hookyard.domain.whatsapp import campaigns as whatsapp_campaigns
from hookyard.inbox.model import NewEvent
from hookyard.inbox.store import utcnow as now
from hookyard.live.change import MAX_PAYLOAD_BYTES, Change, ChangeKind
from hookyard.live.feed import LiveFeed
from hookyard.live.hub import Hub
from hookyard.live.publish import ACCEPTED_CHANNEL, accepted_change, attach_local, publish
from hookyard.providers.base import StoredEvent, WebhookRequest
from hookyard.queue.backoff import Backoff
from hookyard.runtime import Runtime
from hookyard.testing.fakes.receiver import Receiver
from hookyard.testing.fakes.server import serving
from tests.conftest import BACKEND, SECRETS, process_env
from tests.people import PASSWORD, People
from tests.support import MovableClock, Proc, row, start_server

PAYLOADS = Path(__file__).parent / "payloads"

SOURCES = f"""
[[source]]
name = "tcr-acme"
provider = "tcr"
path = "/webhooks/tcr/brands"
allow_unauthenticated = true
tenant = "acme"

[[source]]
name = "tcr-globex"
provider = "tcr"
path = "/webhooks/tcr/campaigns"
allow_unauthenticated = true
tenant = "globex"

[[source]]
name = "meta"
provider = "meta"
path = "/api/v1/whatsapp/webhook"
tenant = "acme"
app_secret = "{SECRETS["meta_app"]}"
verify_token = "{SECRETS["meta_verify"]}"

[[source]]
name = "c2s"
provider = "c2s"
path = "/api/v1/webhooks/c2s"
tenant = "acme"
token = "{SECRETS["c2s"]}"
"""


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES)
    return path


@pytest.fixture
def gateway(runtime: Runtime) -> Iterator[str]:
    """The gateway (API and live hub, no worker threads) on a free port: its base URL."""
    with serving(create_app(runtime, run_workers=False)) as base:
        yield base


# -- a live client --------------------------------------------------------------------------


def live_url(base: str, **query: str) -> str:
    return (
        "ws"
        + base.removeprefix("http")
        + "/api/v1/live"
        + ("?" + urlencode(query) if query else "")
    )


class Live:
    """A connected client; `changes` keeps every change message received so far."""

    def __init__(self, base: str, headers: dict[str, str] | None = None, **query: str) -> None:
        self.ws: ClientConnection = connect(
            live_url(base, **query), additional_headers=headers, open_timeout=10
        )
        self.changes: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []  # everything else: pings, lagged, replies
        self.welcome = self.next()
        assert self.welcome["type"] == "welcome", self.welcome

    def next(self, timeout: float = 15.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        if message["type"] == "change":
            self.changes.append(message)
        else:
            self.notes.append(message)
        return message

    def until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> None:
        """Read until a change matching `wanted` arrives (it may have arrived already)."""
        deadline = time.monotonic() + timeout
        while not any(wanted(c) for c in self.changes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such change; got {self.changes} and {self.notes}")
            try:
                self.next(timeout=left)
            except TimeoutError:
                continue

    def of(self, kind: str, item: Any = None) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["kind"] == kind and item in (None, c["id"])]

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def close(self) -> None:
        self.ws.close()


def event_status(event_id: int, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda c: c["kind"] == "event" and c["id"] == event_id and c["status"] == status


def refused(base: str, headers: dict[str, str] | None = None, **query: str) -> int:
    """The close code of a connection the gateway refuses (accepted, then closed)."""
    url = live_url(base, **query)
    with (
        connect(url, additional_headers=headers, open_timeout=10) as ws,
        pytest.raises(ConnectionClosed) as closed,
    ):
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


@contextmanager
def clients(*made: Live) -> Iterator[None]:
    try:
        yield
    finally:
        for client in made:
            client.close()


# -- state changes --------------------------------------------------------------------------

_seq = iter(range(1, 10_000))


def brand_update(brand: str, status: str = "VERIFIED") -> dict[str, Any]:
    """A TCR identity update, unique by its timestamp (TCR's dedup key is the body's hash)."""
    payload: dict[str, Any] = json.loads((PAYLOADS / "tcr_brand_identity_status.json").read_text())
    second = next(_seq)
    payload.update(
        brandId=brand,
        brandIdentityStatus=status,
        timestamp=f"2025-12-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z",
    )
    return payload


def approval(campaign: str, brand: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / "tcr_mno_campaign_approved.json").read_text())
    payload.update(
        campaignId=campaign, brandId=brand, timestamp=f"2025-12-02T18:00:{next(_seq) % 60:02d}Z"
    )
    return payload


def post(base: str, path: str, payload: Any) -> int:
    """A webhook through the real ingress; the id of the event it stored."""
    answer = httpx.post(base + path, json=payload, timeout=10)
    assert answer.status_code == 200, answer.text
    [event_id] = answer.json()["events"]
    assert isinstance(event_id, int), answer.text  # stored now, not a duplicate
    return event_id


def store(rt: Runtime, source: str, payload: Any) -> list[int]:
    """A delivery stored as ingress would store it (for providers that sign their bodies)."""
    src = rt.sources.by_name()[source]
    raw = json.dumps(payload).encode()
    request = WebhookRequest("POST", "http://testserver" + src.path, src.path, {}, {}, raw)
    new = [
        NewEvent(
            src.name, src.config.provider, src.config.tenant, p.event_type, p.dedup_key,
            p.entity_key, p.provider_ts, {}, raw, None if p.payload_is_body else p.payload,
            datetime.now(UTC),
        )
        for p in src.adapter.parse(request)
    ]  # fmt: skip
    return sorted(rt.store.insert_batch(new).values())


def drain(rt: Runtime) -> int:
    return rt.make_worker().drain()


# -- the tests ------------------------------------------------------------------------------


def test_a_processed_webhook_reaches_its_tenant_and_no_other(
    runtime: Runtime, people: People, gateway: str
) -> None:
    acme = Live(gateway, people.headers("acme", "viewer"))
    globex_key = people.keys[("globex", "viewer")]
    globex = Live(gateway, token=globex_key)  # browsers: the token as a query parameter
    root = Live(gateway, people.superadmin())
    with clients(acme, globex, root):
        assert (acme.welcome["tenant"], globex.welcome["tenant"], root.welcome["tenant"]) == (
            "acme",
            "globex",
            None,
        )
        event_id = post(gateway, "/webhooks/tcr/brands", brand_update("BACME01"))
        assert drain(runtime) == 1

        for client in (acme, root):
            client.until(event_status(event_id, "done"))
            client.until(lambda c: c["kind"] == "tendlc_brand" and c["id"] == "BACME01")
            [brand] = client.of("tendlc_brand", "BACME01")
            assert brand["tenant"] == "acme"
            assert brand["status"] == "VERIFIED"
            assert brand["data"]["identity_status"] == "VERIFIED"
            assert brand["data"]["event_id"] == event_id
            [event] = client.of("event", event_id)
            assert event["tenant"] == "acme"
            assert event["data"]["source"] == "tcr-acme"

        # globex's own change is the first thing globex hears: nothing of acme's came before.
        globex_event = post(gateway, "/webhooks/tcr/campaigns", approval("CGLOBX1", "BGLOBX1"))
        drain(runtime)
        globex.until(event_status(globex_event, "done"))
        globex.until(lambda c: c["kind"] == "tendlc_campaign")
        assert {c["tenant"] for c in globex.changes} == {"globex"}
        [campaign] = globex.of("tendlc_campaign", "CGLOBX1")
        assert campaign["status"] == "ACTIVE"
        assert campaign["data"]["carriers"] == {"10035": "APPROVED"}

        # ...and acme's next change follows without anything of globex's in between.
        marker = post(gateway, "/webhooks/tcr/brands", brand_update("BACME02"))
        drain(runtime)
        acme.until(event_status(marker, "done"))
        assert {c["tenant"] for c in acme.changes} == {"acme"}
        root.until(event_status(marker, "done"))
        assert {c["tenant"] for c in root.changes} == {"acme", "globex"}


def test_templates_leads_and_customers_are_pushed(
    runtime: Runtime, people: People, gateway: str
) -> None:
    acme = Live(gateway, people.headers("acme", "member"))
    with clients(acme):
        status = json.loads((PAYLOADS / "meta_template_status.json").read_text())
        [approved] = store(runtime, "meta", status)
        drain(runtime)
        acme.until(event_status(approved, "done"))
        acme.until(lambda c: c["kind"] == "whatsapp_template" and c["status"] == "APPROVED")
        [template] = acme.of("whatsapp_template")
        with runtime.store.writer.begin() as tx:
            campaign_id = whatsapp_campaigns.add_campaign(tx, template["id"], "spring sale")

        status["entry"][0]["time"] += 60
        status["entry"][0]["changes"][0]["value"]["event"] = "PAUSED"
        [paused] = store(runtime, "meta", status)
        lead = json.loads((PAYLOADS / "c2s_lead_created.json").read_text())
        [lead_event] = store(runtime, "c2s", lead)
        drain(runtime)
        acme.until(event_status(paused, "done"))
        acme.until(event_status(lead_event, "done"))
        acme.until(lambda c: c["kind"] == "whatsapp_template" and c["status"] == "PAUSED")
        acme.until(lambda c: c["kind"] == "lead")
        template = acme.of("whatsapp_template")[-1]
        assert template["tenant"] == "acme"
        assert template["data"]["meta_template_id"] == str(
            status["entry"][0]["changes"][0]["value"]["message_template_id"]
        )
        assert template["data"]["previous_status"] == "APPROVED"
        assert template["data"]["campaigns_paused"] == 1
        acme.until(lambda c: c["kind"] == "whatsapp_campaign" and c["status"] == "paused")
        created, campaign = acme.of("whatsapp_campaign", campaign_id)
        assert (created["tenant"], created["status"]) == ("acme", "active")
        assert (campaign["tenant"], campaign["status"]) == ("acme", "paused")
        status["entry"][0]["time"] += 60  # Meta reinstates it: its campaigns may resume
        status["entry"][0]["changes"][0]["value"]["event"] = "REINSTATED"
        [reinstated] = store(runtime, "meta", status)
        drain(runtime)
        acme.until(event_status(reinstated, "done"))
        resumed = httpx.post(
            f"{gateway}/api/v1/whatsapp/campaigns/{campaign_id}/resume",
            headers=people.headers("acme", "admin"),
            timeout=10,
        )
        assert resumed.status_code == 200, resumed.text
        acme.until(lambda c: c["kind"] == "whatsapp_campaign" and c["status"] == "active")
        [lead_change] = acme.of("lead")
        assert (lead_change["tenant"], lead_change["status"]) == ("acme", "open")
        assert lead_change["data"]["c2s_lead_id"] == str(lead["id"])
        assert lead_change["data"]["enrichment_status"] == "pending"
        # Statuses and ids only: a lead's contact data never goes out on the stream.
        email = lead["attributes"]["customer"]["email"]
        assert email not in json.dumps(acme.changes)

        # A change made through the REST API (in this process) is pushed too.
        created = httpx.post(
            gateway + "/api/v1/customers",
            json={"company_name": "Ringer Network Solutions", "services": ["voice"]},
            headers=people.headers("acme", "member"),
            timeout=10,
        )
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]
        acme.until(lambda c: c["kind"] == "crm_customer" and c["id"] == customer_id)
        [customer] = acme.of("crm_customer", customer_id)
        assert customer["data"] == {"ban": created.json()["ban"], "change": "created"}


def delivery_status(item: int, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda c: c["kind"] == "delivery" and c["id"] == item and c["status"] == status


DESTINATIONS = """
[[destination]]
name = "acme-crm"
url = "{ok}/hooks"
secret = "{secret}"
sources = ["tcr-acme"]
tenant = "acme"

[[destination]]
name = "audit"
url = "{failing}/hooks"
secret = "{secret}"
sources = ["tcr-acme", "tcr-globex"]
"""


@pytest.fixture
def delivering(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[Runtime, str, DeliveryJob, MovableClock]]:
    """The gateway with two destinations (acme's, answering 200; a shared one, answering
    503 once), and a delivery job on a movable clock whose circuits open at one failure."""
    ok, failing = Receiver(), Receiver([503])
    with serving(ok.app) as ok_base, serving(failing.app) as failing_base:
        path = tmp_path / "destinations.toml"
        extra = DESTINATIONS.format(ok=ok_base, failing=failing_base, secret=SECRETS["generic"])
        path.write_text(SOURCES + extra)
        rt = Runtime.build(settings.model_copy(update={"sources": path}))
        clock = MovableClock(datetime.now(UTC) + timedelta(seconds=5))
        job = DeliveryJob(rt.engine, rt.sources.destinations, breaker=Breaker(1), clock=clock)
        try:
            with serving(create_app(rt, run_workers=False)) as base:
                yield rt, base, job, clock
        finally:
            job.close()
            rt.close()


def test_deliveries_and_destinations_are_pushed_to_their_tenant(
    people: People, delivering: tuple[Runtime, str, DeliveryJob, MovableClock]
) -> None:
    """A pass's delivered and failed deliveries, the shared destination's circuit opening
    (no tenant's: unscoped clients only), a pause and replays."""
    rt, base, job, clock = delivering
    acme = Live(base, people.headers("acme", "viewer"))
    globex = Live(base, people.headers("globex", "viewer"))
    root = Live(base, people.superadmin())
    with clients(acme, globex, root):
        event_id = post(base, "/webhooks/tcr/brands", brand_update("BDLV001"))
        mine = row(rt.engine, deliveries, deliveries.c.destination == "acme-crm")
        shared = row(rt.engine, deliveries, deliveries.c.destination == "audit")
        assert job.run_pass("w1") == 2
        for client in (acme, root):
            client.until(delivery_status(mine["id"], "delivered"))
            client.until(delivery_status(shared["id"], "failed"))
            [sent] = client.of("delivery", mine["id"])
            assert sent["tenant"] == "acme"
            assert sent["data"] == {
                "destination": "acme-crm",
                "event_id": event_id,
                "attempts": 1,
                "last_status_code": 200,
            }
            [failed] = client.of("delivery", shared["id"])
            assert (failed["tenant"], failed["data"]["last_status_code"]) == ("acme", 503)
        root.until(lambda c: c["kind"] == "destination" and c["id"] == "audit")
        [opened] = root.of("destination", "audit")
        assert (opened["tenant"], opened["status"]) == (None, "active")
        assert opened["data"] == {"circuit": "open", "change": "opened"}

        assert manage.pause(rt.engine, "acme-crm", tenant="acme")
        assert manage.replay(rt.engine, [mine["id"]]) == 1
        acme.until(delivery_status(mine["id"], "pending"))
        [paused] = acme.of("destination", "acme-crm")
        assert (paused["tenant"], paused["status"]) == ("acme", "paused")
        assert paused["data"] == {"circuit": "closed", "change": "paused"}
        # The open circuit's probe (its time come) succeeds and closes it.
        clock.advance(31)
        assert job.run_pass("w1") == 1
        acme.until(delivery_status(shared["id"], "delivered"))
        root.until(lambda c: c["kind"] == "destination" and c["data"]["change"] == "closed")
        probe, closed = root.of("destination", "audit")[1:]
        assert (probe["data"], closed["data"]) == (
            {"circuit": "open", "change": "probe"},
            {"circuit": "closed", "change": "closed"},
        )
        assert acme.of("destination", "audit") == []  # shared: no tenant's

        # globex hears its own delivery's replay first: nothing of acme's came before.
        globex_event = post(base, "/webhooks/tcr/campaigns", approval("CDLV001", "BDLV002"))
        theirs = row(rt.engine, deliveries, deliveries.c.event_id == globex_event)
        assert manage.replay(rt.engine, [theirs["id"]], tenant="globex") == 1
        globex.until(delivery_status(theirs["id"], "pending"))
        assert {c["tenant"] for c in globex.changes} == {"globex"}
        root.until(delivery_status(theirs["id"], "pending"))
        assert {c["tenant"] for c in acme.changes} == {"acme"}


def test_refused_connections_are_closed_with_a_code(
    runtime: Runtime, people: People, gateway: str
) -> None:
    assert refused(gateway) == 4401
    assert refused(gateway, token="hk_not-a-key") == 4401
    assert refused(gateway, {"Authorization": "Bearer nonsense"}) == 4401
    # A tenant's people never act for another tenant; a superadmin names one that exists.
    assert refused(gateway, people.headers("acme", "admin"), customer="globex") == 4403
    assert refused(gateway, people.headers("acme", "admin"), customer="GX000000002") == 4403
    assert refused(gateway, people.superadmin("no-such-tenant")) == 4404


def test_a_superadmin_picks_a_tenant_and_sessions_work(
    runtime: Runtime, people: People, gateway: str
) -> None:
    login = httpx.post(
        gateway + "/api/v1/auth/login",
        json={"email": "viewer@acme.example.com", "password": PASSWORD},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    session = login.json()["access_token"]
    viewer = Live(gateway, token=session)
    root_key = people.keys[(None, "superadmin")]
    for_globex = Live(gateway, token=root_key, customer="globex")
    admin_token = Live(
        gateway, {"Authorization": f"Bearer {SECRETS['admin']}", "X-Customer-ID": "AC000000001"}
    )
    with clients(viewer, for_globex, admin_token):
        assert viewer.welcome["tenant"] == "acme"
        assert for_globex.welcome["tenant"] == "globex"
        assert admin_token.welcome["tenant"] == "acme"
        acme_event = post(gateway, "/webhooks/tcr/brands", brand_update("BACME03"))
        drain(runtime)
        globex_event = post(gateway, "/webhooks/tcr/campaigns", approval("CGLOBX2", "BGLOBX2"))
        drain(runtime)
        for_globex.until(event_status(globex_event, "done"))
        assert {c["tenant"] for c in for_globex.changes} == {"globex"}
        viewer.until(event_status(acme_event, "done"))
        admin_token.until(event_status(acme_event, "done"))


def test_a_rolled_back_handler_publishes_only_its_failed_status(
    runtime: Runtime, people: People, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tendlc.attribute_event

    def fails_after_its_change(tx: Any, event: StoredEvent, owner: str | None) -> None:
        # Runs after the brand's row was updated and its change published, in the same
        # transaction: raising here rolls both back.
        if isinstance(event.payload, dict) and event.payload.get("brandId") == "BPOISON":
            raise RuntimeError("handler failed after its change")
        original(tx, event, owner)

    monkeypatch.setattr(tendlc, "attribute_event", fails_after_its_change)
    # The retry waits until the test makes it due (not during the marker's drain).
    runtime.store.queue.backoff = Backoff(runtime.settings.max_attempts, 600.0, 600.0)
    acme = Live(gateway, people.headers("acme", "viewer"))
    with clients(acme):
        good = post(gateway, "/webhooks/tcr/brands", brand_update("BGOOD01"))
        poison = post(gateway, "/webhooks/tcr/brands", brand_update("BPOISON"))
        # One claimed batch: its transaction rolls back, then each event is redone alone.
        assert drain(runtime) == 2
        acme.until(event_status(poison, "failed"))
        acme.until(event_status(good, "done"))
        # A later change is the marker: everything published before it has arrived.
        marker = post(gateway, "/webhooks/tcr/brands", brand_update("BGOOD02"))
        drain(runtime)
        acme.until(event_status(marker, "done"))

        assert acme.of("tendlc_brand", "BPOISON") == []
        assert len(acme.of("tendlc_brand", "BGOOD01")) == 1  # not twice: the batch rolled back
        assert [c["status"] for c in acme.of("event", poison)] == ["failed"]
        assert [c["status"] for c in acme.of("event", good)] == ["done"]

        # Once the handler works, the retry's change is published with its `done`.
        monkeypatch.setattr(tendlc, "attribute_event", original)
        with runtime.engine.begin() as tx:
            tx.execute(update(events).where(events.c.id == poison).values(next_attempt_at=now()))
        drain(runtime)
        acme.until(event_status(poison, "done"))
        acme.until(lambda c: c["kind"] == "tendlc_brand" and c["id"] == "BPOISON")
        assert len(acme.of("tendlc_brand", "BPOISON")) == 1


def test_subscribing_to_kinds_heartbeats_and_pings(
    runtime: Runtime, people: People, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_api, "HEARTBEAT_SECONDS", 0.3)
    acme = Live(gateway, people.headers("acme", "viewer"))
    with clients(acme):
        assert acme.next()["type"] == "ping"  # nothing happened for a heartbeat's time
        acme.send({"type": "subscribe", "kinds": ["nonsense"]})
        assert _reply(acme)["type"] == "error"
        acme.send({"type": "ping"})
        assert _reply(acme) == {"type": "pong"}
        acme.send({"type": "subscribe", "kinds": ["tendlc_brand"]})
        assert _reply(acme) == {"type": "subscribed", "kinds": ["tendlc_brand"]}
        post(gateway, "/webhooks/tcr/brands", brand_update("BKIND01"))
        drain(runtime)
        acme.until(lambda c: c["id"] == "BKIND01")
        post(gateway, "/webhooks/tcr/brands", brand_update("BKIND02"))
        drain(runtime)
        acme.until(lambda c: c["id"] == "BKIND02")
        assert {c["kind"] for c in acme.changes} == {"tendlc_brand"}


def test_accepted_events_reach_only_the_clients_naming_them_of_their_tenant(
    runtime: Runtime, people: People, gateway: str
) -> None:
    default = Live(gateway, people.headers("acme", "viewer"))
    asking = Live(gateway, people.headers("acme", "viewer"))
    globex = Live(gateway, people.headers("globex", "member"))
    with clients(default, asking, globex):
        assert "event_accepted" in asking.welcome["kinds"]
        for client in (asking, globex):
            client.send({"type": "subscribe", "kinds": ["event_accepted"]})
            assert _reply(client) == {"type": "subscribed", "kinds": ["event_accepted"]}
        payload = brand_update("BACC001")
        first = post(gateway, "/webhooks/tcr/brands", payload)
        # No worker ran: the change comes from ingest's own commit.
        asking.until(lambda c: c["kind"] == "event_accepted" and c["id"] == first)
        [change] = asking.of("event_accepted", first)
        assert (change["tenant"], change["status"]) == ("acme", "pending")
        assert change["data"]["source"] == "tcr-acme"
        assert change["data"]["event_type"] == "BRAND_IDENTITY_STATUS_UPDATE"
        received = datetime.fromisoformat(change["data"]["received_at"])
        assert abs((datetime.now(UTC) - received).total_seconds()) < 60
        assert set(change["data"]) == {"source", "event_type", "received_at"}  # no payload

        # A duplicate is not accepted again; another tenant's event goes to its tenant only.
        answer = httpx.post(gateway + "/webhooks/tcr/brands", json=payload, timeout=10)
        assert answer.json()["events"] == [None]
        theirs = post(gateway, "/webhooks/tcr/campaigns", approval("CACC001", "BACC001"))
        globex.until(lambda c: c["kind"] == "event_accepted" and c["id"] == theirs)
        marker = post(gateway, "/webhooks/tcr/brands", brand_update("BACC002"))
        asking.until(lambda c: c["kind"] == "event_accepted" and c["id"] == marker)
        assert [c["id"] for c in asking.of("event_accepted")] == [first, marker]
        assert [c["id"] for c in globex.of("event_accepted")] == [theirs]

        # A client naming no kind gets every other kind, but no accepted event.
        drain(runtime)
        default.until(event_status(marker, "done"))
        assert default.of("event_accepted") == []

        # Naming other kinds ends them (and the process stops receiving them at all).
        asking.send({"type": "subscribe", "kinds": ["event"]})
        assert _reply(asking) == {"type": "subscribed", "kinds": ["event"]}
        later = post(gateway, "/webhooks/tcr/brands", brand_update("BACC003"))
        drain(runtime)
        asking.until(event_status(later, "done"))
        assert later not in [c["id"] for c in asking.of("event_accepted")]


@pytest.mark.skipif(BACKEND != "postgresql", reason="the NOTIFY PostgreSQL builds")
def test_the_accepted_notify_postgresql_builds_is_the_change_python_would(
    runtime: Runtime,
) -> None:
    with psycopg.connect(libpq_dsn(runtime.engine), autocommit=True) as conn:
        conn.execute(f"LISTEN {ACCEPTED_CHANNEL}")
        ids = store(runtime, "tcr-acme", brand_update("BNOTIFY"))
        got = [n.payload for n in conn.notifies(timeout=5, stop_after=len(ids))]
    with runtime.engine.connect() as tx:
        row = tx.execute(select(events).where(events.c.id == ids[0])).mappings().one()
    expected = accepted_change(
        row["id"], row["tenant"], row["source"], row["event_type"], row["received_at"]
    )
    [payload] = got
    made = Change.decode(payload)
    assert made.message() | {"data": None, "at": None} == expected.message() | {
        "data": None,
        "at": None,
    }
    assert made.at == expected.at
    assert {**made.data, "received_at": None} == {**expected.data, "received_at": None}
    assert datetime.fromisoformat(made.data["received_at"]) == expected.at


def test_the_hub_receives_accepted_events_only_while_a_socket_wants_them() -> None:
    calls: list[bool] = []

    async def scenario() -> None:
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        hub.on_accepting = lambda wanted: calls.append(wanted) or None
        one, two = hub.subscribe("acme"), hub.subscribe(None)
        assert not hub.accepting
        await hub.filter(one, [ChangeKind.EVENT_ACCEPTED])
        await hub.filter(two, [ChangeKind.EVENT_ACCEPTED, ChangeKind.EVENT])
        assert hub.accepting and calls == [True]
        await hub.filter(one, [])  # every kind but the opt-in ones
        assert hub.accepting and calls == [True]
        hub.unsubscribe(two)
        assert not hub.accepting and calls == [True, False]
        accepted = accepted_change(1, "acme", "s", "t", datetime.now(UTC))
        assert not one.wants(accepted)
        assert one.wants(Change(ChangeKind.EVENT, 1, "acme", "done"))

    asyncio.run(scenario())


def _reply(client: Live) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message = client.next()
        if message["type"] != "ping":
            return message


def test_a_revoked_key_is_disconnected(
    runtime: Runtime, people: People, gateway: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_api, "RECHECK_SECONDS", 0.3)
    acme = Live(gateway, people.headers("acme", "viewer"))
    with clients(acme):
        key = people.keys[("acme", "viewer")]
        with runtime.engine.connect() as conn:
            key_id = conn.execute(
                select(api_keys.c.id).where(api_keys.c.prefix == key.split("_")[1])
            ).scalar_one()
        assert identity.revoke_api_key(runtime.engine, key_id, None, None)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                acme.next(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_a_slow_client_loses_its_oldest_changes_and_is_told() -> None:
    async def scenario() -> None:
        hub = Hub(queue_size=3)
        hub.bind(asyncio.get_running_loop())
        slow, other = hub.subscribe("acme"), hub.subscribe("globex")
        hub.deliver([Change(ChangeKind.EVENT, i, "acme", "done") for i in range(5)])
        hub.deliver([Change(ChangeKind.EVENT, 99, "globex", "done")])
        await asyncio.sleep(0.05)
        messages = [json.loads(m) for m in await slow.next(1.0) or []]
        assert messages[0] == {"type": "lagged", "dropped": 2, "upstream": False}
        assert [m["id"] for m in messages[1:]] == [2, 3, 4]
        assert [json.loads(m)["id"] for m in await other.next(1.0) or []] == [99]
        assert await slow.next(0.05) == []  # nothing more: a heartbeat would be due
        hub.close()
        assert await slow.next(1.0) is None

    asyncio.run(scenario())


def test_the_feed_starts_and_stops_cleanly(runtime: Runtime) -> None:
    async def scenario() -> None:
        feed = LiveFeed(runtime.engine)  # no listener given: on PostgreSQL, one of its own
        await feed.start()
        listener = feed.listener
        assert (listener is not None) == (BACKEND == "postgresql")
        subscription = feed.hub.subscribe(None)
        await feed.stop()
        assert await subscription.next(1.0) is None  # sockets are told to close
        assert listener is None or not listener.running  # its LISTEN thread ended

    asyncio.run(scenario())


def test_the_feed_leaves_a_shared_listener_running(runtime: Runtime) -> None:
    async def scenario() -> None:
        feed = LiveFeed(runtime.engine, listener=runtime.listener)
        await feed.start()
        await feed.stop()
        assert feed.listener is runtime.listener  # the runtime's, stopped when it closes

    asyncio.run(scenario())
    assert runtime.listener is None or runtime.listener.running


def test_a_change_always_fits_a_notify_payload() -> None:
    big = Change(ChangeKind.LEAD, 1, "acme", "open", {f"f{i}": "x" * 299 for i in range(100)})
    text = big.encode()
    assert len(text.encode()) <= MAX_PAYLOAD_BYTES
    decoded = Change.decode(text)
    assert decoded.data == {"truncated": True}
    assert (decoded.kind, decoded.id, decoded.tenant, decoded.status) == (
        ChangeKind.LEAD,
        1,
        "acme",
        "open",
    )
    odd = Change(ChangeKind.TENDLC_BRAND, "B1", None, None, {"name": "bad \udc80 text"})
    assert Change.decode(odd.encode()).data["name"] == "bad \udc80 text"


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's in-process hand-over")
def test_sqlite_hands_changes_over_only_after_a_successful_commit(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[Any] = []
    detach = attach_local(runtime.engine, lambda changes: got.extend(c.id for c in changes))
    writer = runtime.store.writer
    try:
        with writer.begin() as tx:
            publish(tx, Change(ChangeKind.EVENT, 1, None, "done"))
            assert got == []  # not before the commit
        assert got == [1]

        with pytest.raises(RuntimeError), writer.begin() as tx:
            publish(tx, Change(ChangeKind.EVENT, 2, None, "done"))
            raise RuntimeError("rolled back")

        def failing_commit(dbapi_connection: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        with monkeypatch.context() as patched:
            patched.setattr(runtime.engine.dialect, "do_commit", failing_commit)
            with pytest.raises(OperationalError), writer.begin() as tx:
                publish(tx, Change(ChangeKind.EVENT, 3, None, "done"))
        assert got == [1]

        # A connection kept open: handed over when its next transaction begins.
        with runtime.engine.connect() as conn:
            with conn.begin():
                publish(conn, Change(ChangeKind.EVENT, 4, None, "done"))
            assert got == [1]
            with conn.begin():
                assert got == [1, 4]
    finally:
        detach()
    with writer.begin() as tx:
        publish(tx, Change(ChangeKind.EVENT, 5, None, "done"))
    assert got == [1, 4]


def test_changes_committed_by_a_worker_process_reach_every_api_process(
    settings: Settings, people: People, tmp_path: Path
) -> None:
    env = process_env(settings)
    procs: list[Proc] = []
    try:
        a, base_a = start_server(env, tmp_path / "serve-a.log", "--no-worker")
        procs.append(a)
        b, base_b = start_server(env, tmp_path / "serve-b.log", "--no-worker")
        procs.append(b)
        on_a = Live(base_a, people.headers("acme", "viewer"))
        on_b = Live(base_b, people.headers("globex", "viewer"))
        with clients(on_a, on_b):
            # Received by B, handled by a worker process, seen by a client of A.
            event_id = post(base_b, "/webhooks/tcr/brands", brand_update("BMULTI1"))
            procs.append(Proc(["worker"], env, tmp_path / "worker.log"))
            on_a.until(event_status(event_id, "done"), timeout=30)
            on_a.until(lambda c: c["kind"] == "tendlc_brand" and c["id"] == "BMULTI1")
            # B's globex client heard nothing of it; its own change is the first it hears.
            globex_event = post(base_a, "/webhooks/tcr/campaigns", approval("CMULTI1", "BMULTI2"))
            on_b.until(event_status(globex_event, "done"), timeout=30)
            assert {c["tenant"] for c in on_b.changes} == {"globex"}
            assert {c["tenant"] for c in on_a.changes} == {"acme"}
    except BaseException:
        for proc in procs:
            print(f"--- {proc.args}\n{proc.output()[-3000:]}")
        raise
    finally:
        for proc in procs:
            proc.stop()
