"""One contract every seed adapter inherits (as django-anymail's webhook tests do): a signed
delivery is accepted and processed, a tampered one is 401, a redelivery is a duplicate, an
event type the domain does not know is stored and ignored, a malformed body is 400."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient

from hookyard.app import create_app
from hookyard.inbox.reads import EventFilter
from hookyard.providers import signing
from hookyard.runtime import Runtime
from tests.conftest import SECRETS


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_workers=False)) as c:
        yield c


class AdapterContract:
    path: ClassVar[str]
    source: ClassVar[str]

    # -- what each provider fills in ---------------------------------------------------------
    def payload(self, seq: int, event_type: str | None = None) -> Any:
        raise NotImplementedError

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        """(path with query, headers) as the provider would send `body`."""
        raise NotImplementedError

    unknown_type: ClassVar[str]
    malformed: ClassVar[list[Any]]

    # -- the contract -----------------------------------------------------------------------
    def post(self, client: TestClient, body: bytes) -> Any:
        path, headers = self.sign(body)
        headers = {"content-type": "application/json", **headers}
        return client.post(path, content=body, headers=headers)

    def body(self, seq: int, event_type: str | None = None) -> bytes:
        return json.dumps(self.payload(seq, event_type)).encode()

    def statuses(self, runtime: Runtime) -> list[str]:
        return [e["status"] for e in runtime.store.list_events(EventFilter(source=self.source))]

    def test_a_signed_delivery_is_accepted_then_processed(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        response = self.post(client, self.body(1))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        runtime.make_worker().drain()
        assert self.statuses(runtime) and set(self.statuses(runtime)) <= {"done", "ignored"}

    def forged(self, body: bytes) -> tuple[str, bytes, dict[str, str]]:
        """A delivery the provider did not send: here, its body changed by one byte."""
        path, headers = self.sign(body)
        return path, body.replace(b"}", b" }", 1), headers

    def test_a_forged_delivery_is_401(self, client: TestClient, runtime: Runtime) -> None:
        path, body, headers = self.forged(self.body(2))
        response = client.post(
            path, content=body, headers={"content-type": "application/json", **headers}
        )
        assert response.status_code == 401
        assert response.json()["error"]
        assert self.statuses(runtime) == []

    def test_a_redelivery_is_a_duplicate(self, client: TestClient, runtime: Runtime) -> None:
        body = self.body(3)
        first, again = self.post(client, body), self.post(client, body)
        assert first.json()["status"] == "accepted"
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert len(self.statuses(runtime)) == len(first.json()["events"])

    def test_an_unknown_event_type_is_stored_and_ignored(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        response = self.post(client, self.body(4, self.unknown_type))
        assert response.status_code == 200 and response.json()["status"] == "accepted"
        runtime.make_worker().drain()
        assert self.statuses(runtime) == ["ignored"]

    def test_malformed_bodies_are_400(self, client: TestClient, runtime: Runtime) -> None:
        for value in self.malformed:
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            response = self.post(client, body)
            assert response.status_code == 400, (value, response.text)
            assert response.json()["error"]
        assert self.statuses(runtime) == []


class TestHubSpot(AdapterContract):
    path = source = "/webhooks/hubspot/company"
    source = "hubspot"
    unknown_type = "deal.creation"
    malformed: ClassVar[list[Any]] = [b"{not json", {}, [], [{"subscriptionType": "a.b"}], [1]]

    def payload(self, seq: int, event_type: str | None = None) -> Any:
        return [
            {
                "eventId": 5000 + seq,
                "subscriptionType": event_type or "company.propertyChange",
                "objectId": 77,
                "propertyName": "name",
                "propertyValue": f"Acme {seq}",
                "occurredAt": int(time.time() * 1000),
                "portalId": 1,
                "appId": 2,
                "subscriptionId": 3,
                "attemptNumber": 0,
                "changeSource": "CRM_UI",
            }
        ]

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        ts = str(int(time.time() * 1000))
        url = "http://testserver" + self.path
        sig = signing.hubspot_v3(SECRETS["hubspot"], "POST", url, body, ts)
        return self.path, {"x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": ts}


class TestMeta(AdapterContract):
    path = "/api/v1/whatsapp/webhook"
    source = "meta"
    unknown_type = "messages"
    malformed: ClassVar[list[Any]] = [
        b"\xff",
        {"object": "x"},
        {"entry": [{"changes": [{}]}]},
        {"entry": []},
    ]

    def payload(self, seq: int, event_type: str | None = None) -> Any:
        value = {
            "event": "APPROVED",
            "reason": "NONE",
            "message_template_id": 900 + seq,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "time": int(time.time()),
                    "changes": [
                        {"field": event_type or "message_template_status_update", "value": value}
                    ],
                }
            ],
        }

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        return self.path, {"x-hub-signature-256": signing.meta_signature(SECRETS["meta_app"], body)}


class TestC2S(AdapterContract):
    path = "/api/v1/webhooks/c2s"
    source = "c2s"
    unknown_type = "on_archive_lead"
    malformed: ClassVar[list[Any]] = [b"[", [], {"hook_action": "on_create_lead"}, {"id": "x"}]

    def payload(self, seq: int, event_type: str | None = None) -> Any:
        return {
            "id": f"lead-{seq}",
            "hook_action": event_type or "on_create_lead",
            "attributes": {
                "updated_at": "2025-11-21T04:35:00Z",
                "customer": {
                    "name": "Maria Test",
                    "email": "maria@example.com",
                    "phone": "11987654321",
                },
            },
        }

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        return self.path, {"x-webhook-token": SECRETS["c2s"]}

    def forged(self, body: bytes) -> tuple[str, bytes, dict[str, str]]:
        # A token scheme does not sign the body: its forgery is a wrong token.
        return self.path, body, {"x-webhook-token": "not-the-token"}


class TestTCR(AdapterContract):
    path = "/webhooks/tcr/brands"
    source = "tcr-brands"
    unknown_type = "SOMETHING_TCR_ADDS_LATER"
    malformed: ClassVar[list[Any]] = [b"nope", [], {"brandId": "B1"}, {"eventType": 7}]

    def payload(self, seq: int, event_type: str | None = None) -> Any:
        return {
            "eventType": event_type or "BRAND_IDENTITY_STATUS_UPDATE",
            "eventCategory": "BRAND",
            "brandId": f"B{seq:06d}",
            "brandIdentityStatus": "VERIFIED",
            "trustScore": 80 + seq,
            "timestamp": "2025-12-01T03:36:30Z",
            "mock": False,
        }

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        return f"{self.path}?token={SECRETS['tcr']}", {}

    def forged(self, body: bytes) -> tuple[str, bytes, dict[str, str]]:
        return f"{self.path}?token=not-the-token", body, {}


class TestGeneric(AdapterContract):
    path = "/webhooks/in/demo"
    source = "demo"
    unknown_type = "anything.at.all"
    malformed: ClassVar[list[Any]] = [b"{", b"\xff\xfe", b"[1, NaN]"]

    def payload(self, seq: int, event_type: str | None = None) -> Any:
        return {"type": event_type or "invoice.paid", "id": f"evt_{seq}", "data": {"n": seq}}

    def sign(self, body: bytes) -> tuple[str, dict[str, str]]:
        msg_id, ts = f"msg_{hash(body)}", str(int(time.time()))
        signature = signing.standard_webhooks_signature(SECRETS["generic"], msg_id, ts, body)
        return self.path, {
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": signature,
        }

    def test_an_unknown_event_type_is_stored_and_ignored(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        # A generic source has no catalogue: every type goes to its handler (default: done).
        response = self.post(client, self.body(4, self.unknown_type))
        assert response.json()["status"] == "accepted"
        runtime.make_worker().drain()
        assert self.statuses(runtime) == ["done"]
