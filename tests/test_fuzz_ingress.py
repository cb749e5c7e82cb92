"""Fuzzing the whole ingest path through the ASGI app.

Whatever arrives — any path under /webhooks/, any method, any headers (content types,
bogus Content-Length, signature headers full of junk), any body (bytes, JSON, provider-shaped
JSON correctly signed, bodies around the size limit) — the answer is one of the documented
statuses with a JSON `error` (the Meta handshake answers plain text), and a 200 means every
event it names is a stored row. The same delivery sent any number of times is one row.

Each test builds one app and runs its hypothesis examples inside (a nested `@given`), so rows
accumulate across examples: assertions look only at the rows a response names.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import string
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hookyard.app import create_app
from hookyard.db.schema import events
from hookyard.ingress.app import Ingress
from hookyard.providers import signing
from hookyard.providers.base import ParseError, Source, WebhookRequest
from hookyard.providers.c2s import C2SConfig
from hookyard.providers.generic import GenericConfig
from hookyard.providers.hubspot import HubSpotConfig
from hookyard.providers.meta import MetaAdapter, MetaConfig
from hookyard.providers.tcr import TCRConfig
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet, build_source
from hookyard.testing.simulate import Delivery, build_delivery
from tests.conftest import SECRETS, SOURCES_TOML
from tests.strategies import SHAPED, json_values
from tests.support import CREDENTIAL_HEADERS

SOURCES: dict[str, Source] = {
    s.name: s for s in (build_source(raw) for raw in tomllib.loads(SOURCES_TOML)["source"])
}
BY_PATH = {s.path: s for s in SOURCES.values()}
MAX_BODY = 1024 * 1024  # Settings.max_body_bytes, the conftest settings keep the default
ALLOWED = {200, 400, 401, 403, 404, 405, 413, 415, 503}
INTERNAL_ERROR = "internal error; retry later"

FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


# -- what a request is made of ----------------------------------------------------------------


@dataclass
class Attempt:
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, latin-1 values
    body: bytes = b""
    signed: bool = False  # carries valid credentials for its source

    @property
    def source(self) -> Source | None:
        # As the server sees it: percent-decoded, then as mounted or with one trailing slash.
        path = unquote(self.path)
        return BY_PATH.get(path) or (BY_PATH.get(path[:-1]) if path.endswith("/") else None)

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def send(self, client: TestClient) -> httpx.Response:
        # Bytes, so that latin-1 values reach the app exactly as a server would pass them.
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        return client.request(self.method, self.target, content=self.body, headers=raw)


def sign(source: Source, method: str, url: str, body: bytes) -> dict[str, str]:
    """Valid credentials for `body` sent to `url`, as the source's provider would send them."""
    c = source.config
    if isinstance(c, GenericConfig):
        if c.scheme == "standard":
            msg_id, stamp = f"msg_{time.time_ns()}", str(int(time.time()))
            return {
                "webhook-id": msg_id,
                "webhook-timestamp": stamp,
                "webhook-signature": signing.standard_webhooks_signature(
                    c.secret, msg_id, stamp, body
                ),
            }
        if c.scheme == "hmac":
            return {
                (c.header or "x-signature").lower(): c.prefix + signing.hex_hmac(c.secret, body)
            }
        return {(c.header or "x-webhook-token").lower(): c.secret}
    if isinstance(c, HubSpotConfig):
        stamp = str(int(time.time() * 1000))
        return {
            "x-hubspot-signature-v3": signing.hubspot_v3(c.client_secret, method, url, body, stamp),
            "x-hubspot-request-timestamp": stamp,
        }
    if isinstance(c, MetaConfig):
        return {"x-hub-signature-256": signing.meta_signature(c.app_secret, body)}
    if isinstance(c, C2SConfig):
        return {"x-webhook-token": c.token}
    assert isinstance(c, TCRConfig)
    if c.token:
        return {"authorization": "Basic " + base64.b64encode(f"tcr:{c.token}".encode()).decode()}
    return {}


segment = st.text(string.ascii_letters + string.digits + "-_~%", min_size=1, max_size=12)
paths = st.one_of(
    st.sampled_from(sorted(BY_PATH)),
    st.sampled_from(sorted(BY_PATH)).map(lambda p: p + "/"),
    st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/webhooks/" + "/".join(parts)),
    st.sampled_from([p for p in BY_PATH if p.startswith("/webhooks/")]).flatmap(
        lambda p: segment.map(lambda s: f"{p}/{s}")
    ),
    st.just("/webhooks/"),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            f"token={SECRETS['tcr']}",
            "token=wrong",
            "token=",
            "hub.mode=subscribe&hub.verify_token=" + SECRETS["meta_verify"] + "&hub.challenge=4242",
            "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            "hub.mode=unsubscribe&hub.verify_token=" + SECRETS["meta_verify"],
            "a=%3A%2F%40&b=%ZZ&&=&c",
        ]
    ),
    st.text(string.ascii_letters + string.digits + "=&%+-_.", max_size=40),
)
methods = st.sampled_from(
    [
        "POST",
        "POST",
        "POST",
        "GET",
        "HEAD",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "PROPFIND",
    ]
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;charset=UTF-8",
        "application/cloudevents+json",
        "application/vnd.api+json",
        "text/plain",
        "text/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "",
        ";",
        "application/json;;;",
        "*/*",
    ]
)
# Printable latin-1: what an HTTP server lets through as a header value.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
content_lengths = st.one_of(
    st.sampled_from(
        ["abc", "-1", "1e3", " 12", "+5", "5 ", "0x10", "", "0", "\u00b2", "99999999999999999999"]
    ),
    st.integers(0, 2 * MAX_BODY).map(str),
    st.integers(4000, 5000).map(lambda n: "9" * n),  # more digits than int() takes
)

junk_values = st.one_of(
    header_text,
    st.integers().map(str),
    st.integers(0, 500).map(lambda n: "9" * n),
    st.binary(min_size=1, max_size=48).map(lambda b: "v1," + base64.b64encode(b).decode()),
    st.binary(min_size=1, max_size=48).map(lambda b: "sha256=" + b.hex()),
    st.binary(max_size=48).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.sampled_from(["v1", "v2", "v3", "V2", ""]),
)
junk_signatures = st.dictionaries(st.sampled_from(CREDENTIAL_HEADERS), junk_values, max_size=5)
other_headers = st.dictionaries(
    st.from_regex(r"x-[a-z0-9-]{1,16}", fullmatch=True), header_text, max_size=3
)
bodies = st.one_of(
    st.binary(max_size=2048),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(sorted(SHAPED))
    .flatmap(lambda n: SHAPED[n])
    .map(lambda v: json.dumps(v).encode()),
    st.sampled_from([MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 2 * MAX_BODY]).map(
        lambda n: b'{"pad":"' + b"x" * (n - 10) + b'"}'
    ),
)


@st.composite
def attempts(draw: st.DrawFn) -> Attempt:
    attempt = Attempt(draw(methods), draw(paths), draw(queries), body=draw(bodies))
    if (ctype := draw(st.none() | content_types)) is not None:
        attempt.headers["content-type"] = ctype
    if (length := draw(st.none() | content_lengths)) is not None:
        attempt.headers["content-length"] = length
    attempt.headers |= draw(other_headers)
    source = attempt.source
    if source is not None and draw(st.booleans()):
        url = "http://testserver" + attempt.target
        attempt.headers |= sign(source, attempt.method, url, attempt.body)
        attempt.signed = True
    if draw(st.booleans()):
        junk = draw(junk_signatures)
        attempt.signed = attempt.signed and not (junk.keys() & set(attempt.headers))
        attempt.headers |= junk
    return attempt


# -- what every answer must be ------------------------------------------------------------------


def dedup_keys(source: Source, attempt: Attempt) -> list[str]:
    request = WebhookRequest(
        method=attempt.method,
        url="http://testserver" + attempt.target,
        path=attempt.path,
        query=dict(parse_qsl(attempt.query)),
        headers=attempt.headers,
        body=attempt.body,
    )
    return [e.dedup_key for e in source.adapter.parse(request)]


def stored_ids(runtime: Runtime, source: Source, keys: list[str]) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.dedup_key, events.c.id).where(
                events.c.source == source.name, events.c.dedup_key.in_(set(keys))
            )
        )
        return {key: id_ for key, id_ in rows}


def has_credentials(source: Source, attempt: Attempt) -> bool:
    if not source.adapter.verifiers:
        return True  # an open TCR source
    token = dict(parse_qsl(attempt.query)).get("token")
    tcr = isinstance(source.config, TCRConfig)
    return attempt.signed or (tcr and token == source.config.token)


def check(response: httpx.Response, attempt: Attempt, runtime: Runtime) -> None:
    status = response.status_code
    assert status in ALLOWED, (status, response.text[:300])
    # The database is healthy throughout, so a 503 is a bug that a provider would retry
    # forever: either an exception escaped the ingress ...
    if status == 503:
        error = response.json()["error"]
        assert not error.startswith(INTERNAL_ERROR), f"exception escaped: {attempt!r}"[:600]
        # ... or the request's own content made its batch fail to commit.
        assert not error.startswith("storage unavailable"), error[:300]
    source = attempt.source
    handshake = isinstance(source and source.adapter, MetaAdapter) and attempt.method in (
        "GET",
        "HEAD",
    )
    if source is None:
        assert status == 404
    elif attempt.method not in ("POST", "GET", "HEAD") or (
        attempt.method != "POST" and not handshake
    ):
        assert status == 405
    elif handshake:
        assert status in (200, 403)
        assert response.headers["content-type"].startswith("text/plain")
        if status == 200 and attempt.method == "GET":
            assert response.text == dict(parse_qsl(attempt.query))["hub.challenge"]
        return
    else:
        assert status in (200, 400, 401, 413, 415), status
    if attempt.method == "HEAD" and not response.content:
        return
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    if status != 200:
        assert isinstance(answer["error"], str) and answer["error"]
        return
    assert source is not None
    assert has_credentials(source, attempt), "accepted without valid credentials"
    assert answer["status"] in ("accepted", "duplicate")
    ids = answer["events"]
    assert (answer["status"] == "duplicate") == all(i is None for i in ids)
    # A 200 means every event of the request is a row: the new ones under the ids named,
    # the duplicates under their dedup keys.
    keys = dedup_keys(source, attempt)
    assert len(keys) == len(ids)
    stored = stored_ids(runtime, source, keys)
    assert set(keys) <= stored.keys(), "acknowledged events that are not stored"
    for key, event_id in zip(keys, ids, strict=True):
        if event_id is not None:
            assert stored[key] == event_id


def test_any_request_gets_a_documented_answer(client: TestClient, runtime: Runtime) -> None:
    @settings(FUZZ, max_examples=250)
    @given(attempt=attempts())
    def any_request(attempt: Attempt) -> None:
        check(attempt.send(client), attempt, runtime)

    any_request()


def test_signed_provider_shaped_bodies_are_stored_or_refused_with_400(
    client: TestClient, runtime: Runtime
) -> None:
    # Past the signature check, into the parser and the inbox: a signed body is either
    # stored (200) or refused as unparseable (400), never a 503.
    @settings(FUZZ, max_examples=200)
    @given(name=st.sampled_from(sorted(SHAPED)), data=st.data())
    def signed_body(name: str, data: st.DataObject) -> None:
        source = SOURCES[name]
        body = json.dumps(data.draw(SHAPED[name], label="body")).encode()
        attempt = Attempt("POST", source.path, "", {"content-type": "application/json"}, body)
        attempt.headers |= sign(source, "POST", "http://testserver" + source.path, body)
        attempt.signed = True
        response = attempt.send(client)
        check(response, attempt, runtime)
        assert response.status_code in (200, 400), response.text[:300]
        if response.status_code == 400:
            with pytest.raises(ParseError):
                dedup_keys(source, attempt)

    signed_body()


# -- the same delivery, any number of times -------------------------------------------------


def retried(source: Source, d: Delivery, attempt_number: int) -> Delivery:
    """The delivery as its provider retries it: same event, possibly re-signed."""
    c = source.config
    if isinstance(c, GenericConfig) and c.scheme == "standard":
        # Same webhook-id, new timestamp and signature.
        stamp = str(int(time.time()) - attempt_number)
        headers = dict(d.headers)
        headers["webhook-timestamp"] = stamp
        headers["webhook-signature"] = signing.standard_webhooks_signature(
            c.secret, headers["webhook-id"], stamp, d.body
        )
        return Delivery(d.method, d.url, headers, d.body)
    if isinstance(c, HubSpotConfig):
        # HubSpot counts its attempts in the body and signs each attempt anew.
        items: list[dict[str, Any]] = json.loads(d.body)
        for item in items:
            item["attemptNumber"] = attempt_number
        body = json.dumps(items).encode()
        stamp = str(int(time.time() * 1000) - attempt_number)
        headers = dict(d.headers)
        headers["x-hubspot-request-timestamp"] = stamp
        headers["x-hubspot-signature-v3"] = signing.hubspot_v3(
            c.client_secret, "POST", d.url, body, stamp
        )
        return Delivery(d.method, d.url, headers, body)
    return d  # the others resend the very same request


def post(client: TestClient, d: Delivery) -> httpx.Response:
    return client.post(d.url.replace("http://testserver", ""), content=d.body, headers=d.headers)


SEQUENCE = itertools.count(1)  # a new delivery for every example (Meta's body has no uuid)


def test_the_same_delivery_any_number_of_times_is_one_row(
    client: TestClient, runtime: Runtime
) -> None:
    @settings(FUZZ, max_examples=40)
    @given(
        name=st.sampled_from(sorted(SHAPED)), times=st.integers(1, 8), concurrently=st.booleans()
    )
    def repeated(name: str, times: int, concurrently: bool) -> None:
        source = SOURCES[name]
        first = build_delivery(source, None, "http://testserver", next(SEQUENCE))
        sends = [first] + [retried(source, first, n) for n in range(1, times)]
        if concurrently:
            with ThreadPoolExecutor(max_workers=len(sends)) as pool:
                responses = list(pool.map(lambda d: post(client, d), sends))
        else:
            responses = [post(client, d) for d in sends]
        assert [r.status_code for r in responses] == [200] * times, [r.text for r in responses]
        answers = [r.json()["events"] for r in responses]
        # Exactly one answer names a new row for each event; every other one is a duplicate.
        per_event = list(zip(*answers, strict=True))
        assert all(sum(i is not None for i in column) == 1 for column in per_event), answers
        headers = {k.lower(): v for k, v in first.headers.items()}
        keys = dedup_keys(source, Attempt("POST", source.path, "", headers, first.body))
        with runtime.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(events)
                .where(events.c.source == source.name, events.c.dedup_key.in_(keys))
            ).scalar_one()
        assert count == len(set(keys))

    repeated()


# -- one bad delivery must not fail the deliveries committed with it ---------------------------


def test_a_delivery_that_cannot_be_stored_does_not_fail_its_batch(
    runtime: Runtime, sources: SourceSet
) -> None:
    """Group commit puts concurrent requests in one transaction; a row the database refuses
    (here an unauthenticated one, on the open TCR source) must not turn the others' answers
    into 503s."""
    app = create_app(runtime, run_workers=False)
    assert isinstance(app, Ingress)
    good = build_delivery(sources.by_name()["demo"], None, "http://testserver", 1)
    # Refused by PostgreSQL (varchar(300)) and by SQLite's time conversion (year 0 in UTC).
    poison = json.dumps(
        {
            "eventType": "CAMPAIGN_UPDATE",
            "campaignId": "C" * 400,
            "timestamp": "0001-01-01T00:00:00+01:00",
        }
    ).encode()

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        await app.committer.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await asyncio.gather(
                    c.post("/webhooks/in/demo", content=good.body, headers=good.headers),
                    c.post(
                        "/webhooks/tcr/campaigns",
                        content=poison,
                        headers={"content-type": "application/json"},
                    ),
                )
        finally:
            await app.committer.stop()

    good_answer, poison_answer = asyncio.run(scenario())
    assert good_answer.status_code == 200, (good_answer.text, poison_answer.text)


# -- requests the fuzzer found, kept as fixed cases ----------------------------------------------

_YEAR_0_LONG_ID = json.dumps(
    {
        "eventType": "CAMPAIGN_UPDATE",
        "campaignId": "C" * 400,
        "timestamp": "0001-01-01T00:00:00+01:00",
    }
).encode()
FOUND: dict[str, tuple[str, dict[str, str], bytes]] = {
    # Unauthenticated, on the open TCR source: the row cannot be stored (PostgreSQL: varchar(300);
    # SQLite: year 0 in UTC), so the batch fails and the answer is 503, retried forever.
    "open tcr body the inbox cannot store": (
        "/webhooks/tcr/campaigns",
        {"content-type": "application/json"},
        _YEAR_0_LONG_ID,
    ),
    # int() refuses more than 4300 digits with ValueError, after isdigit() said yes.
    "content-length of 4301 digits": ("/webhooks/in/demo", {"content-length": "9" * 4301}, b"{}"),
    # float(int(...)) overflows in the verifiers' timestamp parsing.
    "webhook-timestamp of 400 digits": (
        "/webhooks/in/demo",
        {"webhook-id": "msg_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,x"},
        b"{}",
    ),
    "hubspot timestamp of 400 digits": (
        "/webhooks/hubspot/company",
        {"x-hubspot-signature-v3": "x", "x-hubspot-request-timestamp": "9" * 400},
        b"[]",
    ),
}


@pytest.mark.parametrize("case", list(FOUND))
def test_requests_the_fuzzer_found_get_an_answer_not_a_503(
    client: TestClient, runtime: Runtime, case: str
) -> None:
    path, headers, body = FOUND[case]
    attempt = Attempt("POST", path, "", headers, body)
    response = attempt.send(client)
    assert response.status_code in (200, 400, 401, 413), response.text[:300]
    check(response, attempt, runtime)
