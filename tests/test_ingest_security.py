"""Ingest against a hostile sender: future timestamps cannot freeze an entity, HubSpot's
replayable v1/v2 are opt-in, signatures and credentials are never stored, requests are bounded
in events and in the time their body takes, secrets rotate without a flag day."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.schema import events, rejected_requests, requests
from hookyard.domain.leads.tables import leads
from hookyard.inbox.model import NewEvent
from hookyard.ingress.app import Ingress
from hookyard.providers import signing
from hookyard.providers.base import FUTURE_TOLERANCE, WebhookRequest
from hookyard.runtime import Runtime
from hookyard.sources import SourcesError, build_source, load_sources_file, read_env_file
from hookyard.testing import simulate
from tests.conftest import SECRETS, SOURCES_TOML, process_env
from tests.support import start_server

FAR = datetime(9999, 12, 31, tzinfo=UTC)
EXTRA_SOURCES = f"""
[[source]]
name = "hubspot-legacy"
provider = "hubspot"
path = "/webhooks/hubspot/legacy"
client_secret = "{SECRETS["hubspot"]}"
signature_versions = ["v3", "v2", "v1"]

[[source]]
name = "rotating"
provider = "c2s"
path = "/webhooks/in/rotating"
token = ["new-c2s-token", "{SECRETS["c2s"]}"]

[[source]]
name = "keyed"
provider = "generic"
scheme = "token"
header = "X-Hook-Key"
secret = "{SECRETS["token"]}"

[[source]]
name = "small"
provider = "hubspot"
path = "/webhooks/hubspot/small"
client_secret = "{SECRETS["hubspot"]}"
max_events_per_request = 2
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "sources-security.toml"
    path.write_text(SOURCES_TOML + EXTRA_SOURCES)
    return settings.model_copy(update={"sources": path})


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


def post(client: TestClient, d: simulate.Delivery) -> Any:
    return client.post(d.url.replace("http://testserver", ""), content=d.body, headers=d.headers)


def stored(runtime: Runtime, table: Any = events) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def request_headers(runtime: Runtime) -> list[dict[str, str]]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(select(requests.c.headers)).scalars())


# -- provider time from the future -----------------------------------------------------------


def parsed_time(runtime: Runtime, source: str, d: simulate.Delivery) -> datetime | None:
    adapter = runtime.sources.by_name()[source].adapter
    url = d.url
    path, _, query = url.removeprefix("http://testserver").partition("?")
    request = WebhookRequest("POST", url, path, dict(parse_qsl(query)), d.headers, d.body)
    assert adapter.verify(request) is None
    [event] = adapter.parse(request)
    return event.provider_ts


def test_a_provider_time_from_the_future_counts_as_now_for_every_provider(
    runtime: Runtime,
) -> None:
    far_ms = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000)  # HubSpot's ms bound
    base = "http://testserver"
    cases = {
        "hubspot": simulate.hubspot_delivery(
            SECRETS["hubspot"], base + "/webhooks/hubspot/company",
            [simulate.hubspot_property_change(7, "name", "x", occurred_at=far_ms)]),
        "meta": simulate.meta_delivery(
            SECRETS["meta_app"], base + "/api/v1/whatsapp/webhook",
            simulate.meta_envelope([simulate.meta_status_change(1, "t", "en", "PAUSED")],
                                   sent=10**11 - 1)),
        "c2s": simulate.c2s_delivery(
            base + "/api/v1/webhooks/c2s",
            simulate.c2s_payload("L1", "on_update_lead", updated_at="9999-12-31T00:00:00Z"),
            SECRETS["c2s"]),
        "tcr-brands": simulate.tcr_delivery(
            base + "/webhooks/tcr/brands",
            simulate.tcr_payload("BRAND_IDENTITY_STATUS_UPDATE", brand_id="B1",
                                 timestamp="9999-12-31T00:00:00Z"),
            SECRETS["tcr"]),
    }  # fmt: skip
    for source, d in cases.items():
        before = datetime.now(UTC)
        ts = parsed_time(runtime, source, d)
        assert ts is not None and before <= ts <= datetime.now(UTC), (source, ts)
    # Inside the tolerance a provider's clock running ahead is believed.
    soon = datetime.now(UTC) + FUTURE_TOLERANCE / 2
    d = simulate.c2s_delivery(
        base + "/api/v1/webhooks/c2s",
        simulate.c2s_payload("L2", "on_update_lead", updated_at=soon.isoformat()),
        SECRETS["c2s"],
    )
    assert parsed_time(runtime, "c2s", d) == soon


def test_a_forged_future_event_cannot_freeze_a_lead(client: TestClient, runtime: Runtime) -> None:
    base = "http://testserver/api/v1/webhooks/c2s"
    forged = simulate.c2s_payload("L9", "on_update_lead", updated_at="9999-12-31T00:00:00Z",
                                  customer={"name": "Forged"})  # fmt: skip
    assert post(client, simulate.c2s_delivery(base, forged, SECRETS["c2s"])).status_code == 200
    runtime.make_worker().drain()
    time.sleep(0.01)
    genuine = simulate.c2s_payload("L9", "on_update_lead", customer={"name": "Genuine"},
                                   updated_at=datetime.now(UTC).isoformat())  # fmt: skip
    assert post(client, simulate.c2s_delivery(base, genuine, SECRETS["c2s"])).status_code == 200
    runtime.make_worker().drain()
    with runtime.engine.connect() as conn:
        statuses = list(conn.execute(select(events.c.status).order_by(events.c.id)).scalars())
        name = conn.execute(select(leads.c.name).where(leads.c.c2s_lead_id == "L9")).scalar()
    # Both applied: the forged time counted as its arrival, so the genuine event is newer.
    assert statuses == ["done", "done"] and name == "Genuine"


# -- HubSpot v1/v2 ---------------------------------------------------------------------------


def v2_delivery(path: str) -> simulate.Delivery:
    body = json.dumps([simulate.hubspot_property_change(11, "name", "Acme")]).encode()
    url = "http://testserver" + path
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature": signing.hubspot_v2(SECRETS["hubspot"], "POST", url, body),
        "x-hubspot-signature-version": "v2",
    }
    return simulate.Delivery("POST", url, headers, body)


def test_hubspot_v1_and_v2_are_refused_unless_the_source_opts_in(
    client: TestClient, runtime: Runtime
) -> None:
    refused = post(client, v2_delivery("/webhooks/hubspot/company"))
    assert refused.status_code == 401 and "signature_versions" in refused.json()["error"]
    assert post(client, v2_delivery("/webhooks/hubspot/legacy")).status_code == 200
    assert stored(runtime) == 1
    # The signature headers of the accepted one were not stored (with its body, a request
    # anyone could send again).
    [kept] = request_headers(runtime)
    assert "x-hubspot-signature" not in kept and "x-hubspot-signature-version" in kept


# -- signatures and credentials are never stored ----------------------------------------------


def test_signature_and_credential_headers_are_never_stored(
    client: TestClient, runtime: Runtime
) -> None:
    base = "http://testserver"
    sources = runtime.sources.by_name()
    sent = [
        simulate.hubspot_delivery(SECRETS["hubspot"], base + "/webhooks/hubspot/company",
                                  [simulate.hubspot_property_change(5, "name", "Acme")]),
        simulate.build_delivery(sources["meta"], None, base),
        simulate.build_delivery(sources["demo"], None, base),  # Standard Webhooks
        simulate.build_delivery(sources["signed"], None, base),  # HMAC in X-Signature
        simulate.build_delivery(sources["keyed"], None, base),  # a token in X-Hook-Key
    ]  # fmt: skip
    for d in sent:
        assert post(client, d).status_code == 200, d.url
    forbidden = {"x-hubspot-signature-v3", "x-hub-signature-256", "webhook-signature",
                 "x-signature", "x-hook-key"}  # fmt: skip
    kept = request_headers(runtime)
    assert len(kept) == len(sent)
    for headers in kept:
        assert not forbidden & set(headers), headers
        assert all(SECRETS["token"] not in value for value in headers.values())
    # Nor in the log of refused requests.
    wrong = simulate.build_delivery(sources["keyed"], None, base)
    wrong.headers["x-hook-key"] = "not-the-token"
    assert post(client, wrong).status_code == 401
    time.sleep(0.2)  # the refusal is written with the next batch
    assert post(client, simulate.build_delivery(sources["demo"], None, base)).status_code == 200
    with runtime.engine.connect() as conn:
        logged = list(conn.execute(select(rejected_requests.c.headers)).scalars())
    assert logged and all("x-hook-key" not in h for h in logged)


# -- events per request ------------------------------------------------------------------------


def hubspot_batch(path: str, count: int) -> simulate.Delivery:
    items = [simulate.hubspot_property_change(100 + i, "name", f"n{i}") for i in range(count)]
    return simulate.hubspot_delivery(SECRETS["hubspot"], "http://testserver" + path, items)


def test_too_many_events_in_one_request_are_refused_and_nothing_is_stored(
    client: TestClient, runtime: Runtime
) -> None:
    hubspot = post(client, hubspot_batch("/webhooks/hubspot/company", 101))
    assert hubspot.status_code == 413 and "at most 100" in hubspot.json()["error"]
    changes = [simulate.meta_status_change(i, "t", "en", "APPROVED") for i in range(1001)]
    meta = simulate.meta_delivery(SECRETS["meta_app"], "http://testserver/api/v1/whatsapp/webhook",
                                  simulate.meta_envelope(changes))  # fmt: skip
    answer = post(client, meta)
    assert answer.status_code == 413 and "at most 1000" in answer.json()["error"]
    small = post(client, hubspot_batch("/webhooks/hubspot/small", 3))
    assert small.status_code == 413 and "at most 2" in small.json()["error"]
    assert stored(runtime) == 0 and stored(runtime, requests) == 0
    # Up to the bound is fine: 100, and a full Meta batch of 1000.
    assert post(client, hubspot_batch("/webhooks/hubspot/company", 100)).status_code == 200
    full = simulate.meta_delivery(SECRETS["meta_app"], "http://testserver/api/v1/whatsapp/webhook",
                                  simulate.meta_envelope(changes[:1000]))  # fmt: skip
    assert post(client, full).status_code == 200
    assert stored(runtime) == 1100


def test_one_large_request_never_fails_the_batch_it_shares(runtime: Runtime) -> None:
    now = datetime.now(UTC)
    big, small = object(), object()
    new = [
        NewEvent("meta", "meta", None, "message_template_status_update", f"k{i}", None, None,
                 {}, b"[]", {"i": i}, now, request=big)
        for i in range(3000)
    ] + [NewEvent("c2s", "c2s", None, "on_create_lead", "lone", None, None, {}, b"{}", None,
                  now, request=small)]  # fmt: skip
    assert len(runtime.store.insert_batch(new)) == 3001
    assert stored(runtime, requests) == 2


def test_a_bad_source_option_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(SourcesError, match="id_header"):
        build_source({"name": "x", "provider": "generic", "scheme": "hmac", "secret": "s",
                      "id_header": "X-Delivery-Id"})  # fmt: skip
    with pytest.raises(SourcesError, match="max_events_per_request"):
        build_source({"name": "x", "provider": "hubspot", "client_secret": "s",
                      "max_events_per_request": 0})  # fmt: skip


# -- secret rotation ---------------------------------------------------------------------------


def test_a_source_takes_its_old_and_new_secret_while_rotating(
    client: TestClient, runtime: Runtime
) -> None:
    source = runtime.sources.by_name()["rotating"]
    assert source.config.token == "new-c2s-token"  # what hookyard's own tools sign with
    url = "http://testserver/webhooks/in/rotating"
    for seq, token in enumerate(("new-c2s-token", SECRETS["c2s"])):
        d = simulate.c2s_delivery(url, simulate.c2s_payload(f"R{seq}", "on_create_lead"), token)
        assert post(client, d).status_code == 200, token
    stale = simulate.c2s_delivery(url, simulate.c2s_payload("R9", "on_create_lead"), "older")
    assert post(client, stale).status_code == 401


# -- an IP allow-list behind a proxy -----------------------------------------------------------


def test_an_allow_list_behind_a_trusted_proxy_checks_the_address_it_appended(
    runtime: Runtime,
) -> None:
    source = build_source({"name": "tcr-listed", "provider": "tcr", "path": "/webhooks/tcr/x",
                           "allowed_ips": ["203.0.113.0/24"]})  # fmt: skip
    payload = json.dumps(simulate.tcr_payload("BRAND_ADD", brand_id="BIP1")).encode()

    async def status(trust: bool, forwarded: str) -> int:
        ingress = Ingress([source], runtime.committer(), _unused, trust_proxy_headers=trust)
        answers: list[dict[str, Any]] = []
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            answers.append(message)

        scope = {"type": "http", "method": "POST", "path": "/webhooks/tcr/x",
                 "client": ("10.0.0.5", 4000), "query_string": b"",
                 "headers": [(b"content-type", b"application/json"),
                             (b"x-forwarded-for", forwarded.encode())]}  # fmt: skip
        await ingress.committer.start()
        try:
            await ingress(scope, receive, send)
        finally:
            await ingress.committer.stop()
        return int(answers[0]["status"])

    # Behind a trusted proxy: the address it appended, not one the sender wrote before it.
    assert asyncio.run(status(True, "198.51.100.9, 203.0.113.7")) == 200
    assert asyncio.run(status(True, "203.0.113.7, 198.51.100.9")) == 401
    # Not trusted: the header is anyone's to write; the proxy's own address is checked.
    assert asyncio.run(status(False, "203.0.113.7")) == 401


async def _unused(*_: Any) -> None:
    raise AssertionError("not a webhook path")


# -- a stalled body ----------------------------------------------------------------------------


def test_a_body_that_stalls_is_cut_off_at_the_deadline(runtime: Runtime, tmp_path: Path) -> None:
    sources = load_sources_file(runtime.settings.sources or tmp_path)
    answered: list[dict[str, Any]] = []

    async def never_done() -> None:
        pass

    async def run() -> float:
        ingress = Ingress(list(sources.sources), runtime.committer(), never_done,  # type: ignore[arg-type]
                          body_timeout_seconds=0.3)  # fmt: skip
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b'{"id": ', "more_body": True}
            await asyncio.sleep(3600)  # the sender stalls mid-body
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            answered.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/webhooks/c2s",
            "headers": [(b"content-type", b"application/json")],
            "query_string": b"",
        }
        started = time.monotonic()
        await ingress(scope, receive, send)
        return time.monotonic() - started

    took = asyncio.run(run())
    assert answered[0]["status"] == 408 and took < 2.0
    assert b"did not arrive within" in answered[1]["body"]
    assert stored(runtime) == 0


# -- against a running gateway -----------------------------------------------------------------


@pytest.mark.slow
def test_a_fresh_quick_start_refuses_tcr_without_its_token_and_cuts_a_stalled_body(
    settings: Settings, tmp_path: Path
) -> None:
    # The demo sources, as `scripts/serve` runs them (no sources file).
    env = process_env(settings, HOOKYARD_BODY_TIMEOUT_SECONDS=1)
    del env["HOOKYARD_SOURCES"]
    env["HOOKYARD_DEMO_SECRETS_FILE"] = str(tmp_path / "fresh-secrets.env")
    server, base = start_server(env, tmp_path / "serve.log")
    try:
        assert "HOOKYARD_TCR_TOKEN" in server.output()  # printed: how to send it
        token = read_env_file(tmp_path / "fresh-secrets.env")["HOOKYARD_TCR_TOKEN"]
        payload = simulate.tcr_payload("BRAND_IDENTITY_STATUS_UPDATE", brand_id="BFRESH1")
        url = base + "/webhooks/tcr/brands"
        anonymous = httpx.post(url, json=payload, timeout=10)
        assert anonymous.status_code == 401 and "token" in anonymous.json()["error"]
        assert httpx.post(url, params={"token": token}, json=payload, timeout=10).status_code == 200
        basic = httpx.post(url, auth=("tcr", token), json=payload | {"n": 2}, timeout=10)
        assert basic.status_code == 200

        # A sender that stops half-way through its body is answered 408 at the deadline.
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                b"POST /webhooks/tcr/brands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                b'\r\nContent-Length: 100\r\n\r\n{"eventType": '
            )
            started = time.monotonic()
            answer = conn.recv(4096)
            took = time.monotonic() - started
            while b"\r\n\r\n" in answer and not answer.endswith(b"}"):  # the body, if apart
                if not (more := conn.recv(4096)):
                    break
                answer += more
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1" in answer
        assert 0.5 < took < 5.0
    except BaseException:
        print(server.output()[-3000:])
        raise
    finally:
        server.stop()


# -- an unexpected error while storing ---------------------------------------------------------


def test_an_unexpected_storage_error_is_a_counted_503_never_a_2xx(runtime: Runtime) -> None:
    """Given a committer that fails in a way nobody planned for: 503 with a JSON reason (the
    event may not be stored, so the provider must retry), and counted on /metrics as a
    rejection with reason `internal_error`."""
    from hookyard.metrics import REJECTED

    source = build_source({"name": "tcr-broken", "provider": "tcr", "path": "/webhooks/tcr/b",
                           "allow_unauthenticated": True})  # fmt: skip
    payload = json.dumps(simulate.tcr_payload("BRAND_ADD", brand_id="BX1")).encode()

    class Broken:
        async def accept(self, new: list[NewEvent]) -> list[int | None]:
            raise RuntimeError("a bug")

    async def answer() -> list[dict[str, Any]]:
        ingress = Ingress([source], runtime.committer(), _unused)
        ingress.committer = Broken()  # type: ignore[assignment]
        answers: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            answers.append(message)

        scope = {"type": "http", "method": "POST", "path": "/webhooks/tcr/b",
                 "client": ("10.0.0.5", 4000), "query_string": b"",
                 "headers": [(b"content-type", b"application/json")]}  # fmt: skip
        await ingress(scope, receive, send)
        return answers

    counted = REJECTED.labels("tcr-broken", "internal_error")
    before = counted._value.get()
    start, body = asyncio.run(answer())
    assert start["status"] == 503
    assert json.loads(body["body"]) == {"error": "internal error; retry later"}
    assert counted._value.get() == before + 1
