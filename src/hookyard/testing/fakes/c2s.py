"""A fake of Contact2Sale (C2S): its lead webhooks, and the API calls hookyard makes.

API (bearer token; errors are `{"error": "..."}`):

    POST /integration/leads/subscribe              {"hook_url", "hook_action", "headers"}
    POST /integration/leads/unsubscribe            {"hook_url", "hook_action"}
    GET  /integration/leads/{lead_id}              the lead
    POST /integration/leads/{lead_id}/create_message   {"message": "..."}

Subscribing and its fields follow the existing integration. The message path is **not
confirmed publicly**: it is hookyard's default `HOOKYARD_C2S_MESSAGE_PATH`, which an operator
changes if C2S's differs. A repeated `Idempotency-Key` answers the first message again.

Webhooks: every subscription of the action gets `simulate.c2s_payload` (id, hook_action,
attributes.updated_at and customer) with the headers it was subscribed with (hookyard's
`X-Webhook-Token`). `create_lead`, `update_lead` and `close_lead` send one unless called with
`deliver=False` (a lost webhook); `updated_at` grows with each change of a lead.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.testing.fakes.platform import (
    CONTROL_PREFIX,
    DeliveryAttempt,
    FakePlatform,
    deliver_flag,
)
from hookyard.testing.simulate import Delivery, c2s_delivery, c2s_payload

ACTIONS = ("on_create_lead", "on_update_lead", "on_close_lead")
CUSTOMER_FIELDS = ("name", "email", "phone")
MESSAGE_PATH = "/integration/leads/{lead_id}/create_message"
USER_AGENT = "c2s-fake"


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    lead_id: str
    text: str
    idempotency_key: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "message": self.text,
            "idempotency_key": self.idempotency_key,
        }


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class C2SState(FakePlatform):
    name = "c2s"

    def __init__(
        self,
        api_token: str = "c2s-api-token",  # noqa: S107 - a fake's test credential
        *,
        webhook_timeout: float = 5.0,
    ) -> None:
        super().__init__(webhook_timeout=webhook_timeout)
        self.api_token = api_token
        self._subscriptions: dict[tuple[str, str], dict[str, str]] = {}  # (url, action) -> headers
        self._leads: dict[str, dict[str, Any]] = {}
        self._messages: list[Message] = []
        self._ids = itertools.count(1)
        self._last_stamp = datetime.min.replace(tzinfo=UTC)

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(
        self, hook_url: str, hook_action: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Send `hook_action`'s webhooks to `hook_url` with `headers` (again: replaced)."""
        if hook_action not in ACTIONS:
            raise ValueError(f"hook_action must be one of {', '.join(ACTIONS)}")
        if not hook_url.startswith(("http://", "https://")):
            raise ValueError("hook_url must be an http(s) URL")
        kept = {str(k): str(v) for k, v in (headers or {}).items()}
        with self._lock:
            self._subscriptions[(hook_url, hook_action)] = kept
        return {"hook_url": hook_url, "hook_action": hook_action, "headers": kept}

    def subscribe_all(self, hook_url: str, headers: Mapping[str, str] | None = None) -> None:
        for action in ACTIONS:
            self.subscribe(hook_url, action, headers)

    def unsubscribe(self, hook_url: str, hook_action: str) -> bool:
        with self._lock:
            return self._subscriptions.pop((hook_url, hook_action), None) is not None

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"hook_url": url, "hook_action": action, "headers": dict(headers)}
                for (url, action), headers in self._subscriptions.items()
            ]

    # -- leads ------------------------------------------------------------------------------

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        with self._lock:
            lead = self._leads.get(lead_id)
            return _copy(lead) if lead is not None else None

    def create_lead(
        self,
        *,
        name: str | None = "Maria Test",
        email: str | None = "maria.test@example.com",
        phone: str | None = "11987654321",
        lead_id: str | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A new open lead; sends on_create_lead."""
        with self._lock:
            lead_id = str(lead_id) if lead_id else f"c2s-lead-{secrets.token_hex(6)}"
            if lead_id in self._leads:
                raise ValueError(f"lead {lead_id} exists")
            lead = {
                "id": lead_id,
                "status": "open",
                "customer": {"name": name, "email": email, "phone": phone},
                "updated_at": self._next_stamp(),
            }
            self._leads[lead_id] = lead
            payload = self._payload(lead, "on_create_lead")
            snapshot = _copy(lead)
        self._emit([payload], deliver)
        return snapshot

    def update_lead(self, lead_id: str, *, deliver: bool = True, **customer: Any) -> dict[str, Any]:
        """Change the customer's `name`, `email` or `phone`; sends on_update_lead with the
        whole customer, as C2S sends the lead."""
        unknown = set(customer) - set(CUSTOMER_FIELDS)
        if unknown:
            raise ValueError(f"unknown customer fields: {', '.join(sorted(unknown))}")
        with self._lock:
            lead = self._known(lead_id)
            lead["customer"].update(customer)
            lead["updated_at"] = self._next_stamp()
            payload = self._payload(lead, "on_update_lead")
            snapshot = _copy(lead)
        self._emit([payload], deliver)
        return snapshot

    def close_lead(self, lead_id: str, *, deliver: bool = True) -> dict[str, Any]:
        """Close the lead (a sale or a loss); sends on_close_lead."""
        with self._lock:
            lead = self._known(lead_id)
            lead["status"] = "closed"
            lead["updated_at"] = self._next_stamp()
            payload = self._payload(lead, "on_close_lead")
            snapshot = _copy(lead)
        self._emit([payload], deliver)
        return snapshot

    # -- messages ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    def messages_for(self, lead_id: str) -> list[Message]:
        return [m for m in self.messages if m.lead_id == lead_id]

    def add_message(
        self, lead_id: str, text: str, idempotency_key: str | None = None
    ) -> tuple[Message, bool]:
        """What the message endpoint does: the message, and whether it is new (the same
        idempotency key answers the first message again)."""
        with self._lock:
            self._known(lead_id)
            for message in self._messages:
                if idempotency_key is not None and message.idempotency_key == idempotency_key:
                    return message, False
            message = Message(next(self._ids), lead_id, text, idempotency_key)
            self._messages.append(message)
            return message, True

    # -- FakePlatform -----------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(
            value.encode(), self.api_token.encode()
        ):
            return None
        return self.error_response(401, "invalid or missing bearer token")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "leads": [_copy(lead) for lead in self._leads.values()],
                "subscriptions": [
                    {"hook_url": url, "hook_action": action, "headers": dict(headers)}
                    for (url, action), headers in self._subscriptions.items()
                ],
                "messages": [m.as_json() for m in self._messages],
            }

    def _event_type(self, item: Any) -> str:
        return str(item["hook_action"])

    def _deliver(self, items: Sequence[Any]) -> list[DeliveryAttempt]:
        # One request per lead event, to every subscription of its action.
        subscriptions = self.subscriptions
        attempts = []
        for payload in items:
            for subscription in subscriptions:
                if subscription["hook_action"] == payload["hook_action"]:
                    delivery = _delivery(subscription["hook_url"], payload, subscription["headers"])
                    attempts.append(self._send(delivery, [payload["hook_action"]]))
        return attempts

    # -- internals --------------------------------------------------------------------------

    def _known(self, lead_id: str) -> dict[str, Any]:
        lead = self._leads.get(lead_id)
        if lead is None:
            raise LookupError(f"no lead {lead_id}")
        return lead

    def _next_stamp(self) -> str:
        # Strictly increasing: hookyard orders a lead's events (and deduplicates deliveries)
        # by updated_at.
        now = max(datetime.now(UTC), self._last_stamp + timedelta(milliseconds=1))
        self._last_stamp = now
        return _stamp(now)

    @staticmethod
    def _payload(lead: Mapping[str, Any], action: str) -> dict[str, Any]:
        return c2s_payload(
            lead["id"], action, updated_at=lead["updated_at"], customer=dict(lead["customer"])
        )


def _copy(lead: Mapping[str, Any]) -> dict[str, Any]:
    return {**lead, "customer": dict(lead["customer"])}


def _delivery(url: str, payload: Mapping[str, Any], headers: Mapping[str, str]) -> Delivery:
    """`simulate.c2s_delivery`, with the subscription's own headers instead of only the token."""
    base = c2s_delivery(url, payload, "", user_agent=USER_AGENT)
    sent = {k: v for k, v in base.headers.items() if k != "x-webhook-token"}
    sent |= {k.lower(): v for k, v in headers.items()}
    return Delivery(base.method, base.url, sent, base.body)


def create_app(state: C2SState) -> Starlette:
    s = state

    async def subscribe(_: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            return s.error_response(422, "a JSON object is required")
        url, action, headers = body.get("hook_url"), body.get("hook_action"), body.get("headers")
        if headers is not None and not isinstance(headers, dict):
            return s.error_response(422, "headers must be an object")
        if not isinstance(url, str) or not isinstance(action, str):
            return s.error_response(422, "hook_url and hook_action are required")
        try:
            return JSONResponse({"data": s.subscribe(url, action, headers)}, 201)
        except ValueError as exc:
            return s.error_response(422, str(exc))

    async def unsubscribe(_: Request, body: Any) -> Response:
        url = body.get("hook_url") if isinstance(body, dict) else None
        action = body.get("hook_action") if isinstance(body, dict) else None
        if not isinstance(url, str) or not isinstance(action, str):
            return s.error_response(422, "hook_url and hook_action are required")
        if not s.unsubscribe(url, action):
            return s.error_response(404, "no such subscription")
        return JSONResponse({"data": {"hook_url": url, "hook_action": action}})

    async def get_lead(request: Request, _: Any) -> Response:
        lead = s.lead(request.path_params["lead_id"])
        if lead is None:
            return s.error_response(404, "lead not found")
        attributes = {k: v for k, v in lead.items() if k != "id"}
        return JSONResponse({"data": {"id": lead["id"], "type": "lead", "attributes": attributes}})

    async def create_message(request: Request, body: Any) -> Response:
        text = body.get("message") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return s.error_response(422, "message is required")
        key = request.headers.get("idempotency-key")
        try:
            message, new = s.add_message(request.path_params["lead_id"], text, key)
        except LookupError:
            return s.error_response(404, "lead not found")
        return JSONResponse({"data": message.as_json()}, 201 if new else 200)

    api = s.api
    routes: list[BaseRoute] = [
        *s.control_routes(),
        *_control_routes(s),
        Route("/integration/leads/subscribe", api(subscribe), methods=["POST"]),
        Route("/integration/leads/unsubscribe", api(unsubscribe), methods=["POST"]),
        Route("/integration/leads/{lead_id}", api(get_lead), methods=["GET"]),
        Route(MESSAGE_PATH, api(create_message), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _control_routes(s: C2SState) -> list[BaseRoute]:
    """`/_fake/...`: create, update and close leads (each sends its webhook unless the body
    says `"deliver": false`), and list the messages posted to leads."""

    def create(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        fields = {k: d[k] for k in CUSTOMER_FIELDS if k in d}
        return s.create_lead(lead_id=d.get("id"), deliver=deliver_flag(d), **fields)

    def update(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        fields = {k: v for k, v in d.items() if k != "deliver"}
        return s.update_lead(r.path_params["lead_id"], deliver=deliver_flag(d), **fields)

    def close(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        return s.close_lead(r.path_params["lead_id"], deliver=deliver_flag(d))

    def subscribe(_: Request, d: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(d.get("hook_url"), str):
            raise ValueError("hook_url is required")
        s.subscribe_all(d["hook_url"], d.get("headers"))
        return s.subscriptions

    def messages(_: Request, __: dict[str, Any]) -> list[dict[str, Any]]:
        return [m.as_json() for m in s.messages]

    p, c = CONTROL_PREFIX, s.control
    return [
        Route(f"{p}/leads", c(create, 201), methods=["POST"]),
        Route(f"{p}/leads/{{lead_id}}", c(update), methods=["PATCH"]),
        Route(f"{p}/leads/{{lead_id}}/close", c(close), methods=["POST"]),
        Route(f"{p}/subscriptions", c(subscribe), methods=["POST"]),
        Route(f"{p}/messages", c(messages)),
    ]
