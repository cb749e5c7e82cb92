"""A fake of The Campaign Registry (TCR): the CSP API v2 and its webhooks.

API (HTTP basic auth with the CSP's API key and secret; errors are a JSON list of
`{"code", "field", "description"}`):

    GET    /v2/brand/{brandId}
    GET    /v2/brand?referenceId=                      {"page", "records", "totalRecords"}
    POST   /v2/brand/nonBlocking                       registers; verifies after `verify_delay`
    PUT    /v2/brand/{brandId}                         changes the given fields (BRAND_UPDATE)
    GET    /v2/enum/{name}                             entityType, vertical, brandRelationship
    GET    /v2/campaign/{campaignId}
    GET    /v2/campaign/{campaignId}/operationStatus   {"<MNO id>": "APPROVED", ...}
    PUT    /v2/webhook/subscription                    {"eventCategory", "webhookEndpoint"}
    GET    /v2/webhook/subscription
    DELETE /v2/webhook/subscription/{eventCategory}
    GET    /v2/webhook/eventType
    GET    /v2/webhook/subscription/eventType/{eventType}/mock

Webhooks are TCR's flat JSON (`simulate.tcr_payload`), unsigned, POSTed to the endpoint of
the event's category exactly as it was subscribed (a `?token=` or basic-auth credentials in
it stay). Every mutation below sends its event unless called with `deliver=False`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import string
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.domain.tendlc.catalogue import CATALOGUE, Category
from hookyard.domain.tendlc.enums import EntityType, Vertical
from hookyard.testing.fakes.platform import DeliveryAttempt, FakePlatform, deliver_flag
from hookyard.testing.simulate import tcr_category, tcr_delivery, tcr_payload

# The fields `POST /v2/brand/nonBlocking` refuses to go without (TCR asks for more, by
# entity type: phone, e-mail, country...; the fake checks the ones hookyard relies on).
REQUIRED_BRAND_FIELDS = ("entityType", "brandRelationship", "companyName", "vertical")

# What one carrier's new status is announced as (UNSUSPENDED: APPROVED after SUSPENDED).
CARRIER_STATUSES = ("APPROVED", "REJECTED", "REVIEW", "SUSPENDED")

# TCR's enumerations a brand's fields are checked against (`GET /v2/enum/{name}`).
ENUMS: dict[str, tuple[str, ...]] = {
    "entityType": tuple(e.value for e in EntityType),
    "vertical": tuple(v.value for v in Vertical),
    "brandRelationship": (
        "BASIC_ACCOUNT", "SMALL_ACCOUNT", "MEDIUM_ACCOUNT", "LARGE_ACCOUNT", "KEY_ACCOUNT",
    ),
}  # fmt: skip

# TCR's numeric error codes are not published where we could read them: the fake uses the
# HTTP status as the code.

# The brand and campaign a mock delivery names (TCR ids: a letter and six characters).
MOCK_BRAND_ID = "BMOCK01"
MOCK_CAMPAIGN_ID = "CMOCK01"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Verification:
    """How TCR's verification of a newly registered brand comes out, and when."""

    identity_status: str = "VERIFIED"
    trust_score: int | None = 75
    delay: float = 0.2  # seconds after registration
    deliver: bool = True  # False: the BRAND_IDENTITY_STATUS_UPDATE is lost


@dataclass(frozen=True, slots=True)
class RegistrationFault:
    """What one `POST /v2/brand/nonBlocking` does instead of answering at once: `status`
    with `body` (TCR's error list by default), registering nothing; or, with `stall`,
    registers the brand and answers only after `stall` seconds (a caller's timeout)."""

    status: int = 503
    body: Any = None
    stall: float | None = None


def _error(field: str | None, description: str, code: int) -> list[dict[str, Any]]:
    return [{"code": code, "field": field, "description": description}]


class TCRState(FakePlatform):
    name = "tcr"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        csp_id: str = "SFAKE01",
        verify_delay: float = 0.2,
        webhook_timeout: float = 5.0,
    ) -> None:
        super().__init__(webhook_timeout=webhook_timeout)
        self.api_key = api_key
        self.api_secret = api_secret
        self.csp_id = csp_id
        self._brands: dict[str, dict[str, Any]] = {}
        self._campaigns: dict[str, dict[str, Any]] = {}
        self._carriers: dict[str, dict[str, str]] = {}  # campaign id -> MNO id -> status
        self._subscriptions: dict[str, str] = {}  # category -> endpoint
        self._verification = Verification(delay=verify_delay)
        self._timers: list[threading.Timer] = []
        self._registration_faults: deque[RegistrationFault] = deque()

    # -- subscriptions ----------------------------------------------------------------------

    @property
    def subscriptions(self) -> dict[str, str]:
        with self._lock:
            return dict(self._subscriptions)

    def subscribe(self, category: str, endpoint: str) -> dict[str, str]:
        """Subscribe (or re-point) `category`'s webhooks to `endpoint`, kept as given."""
        if category not in Category.__members__:
            raise ValueError(f"unknown event category {category!r}")
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("the webhook endpoint must be an http(s) URL")
        with self._lock:
            self._subscriptions[category] = endpoint
        return {"eventCategory": category, "webhookEndpoint": endpoint}

    def unsubscribe(self, category: str) -> bool:
        with self._lock:
            return self._subscriptions.pop(category, None) is not None

    # -- brands -----------------------------------------------------------------------------

    def brand(self, brand_id: str) -> dict[str, Any] | None:
        with self._lock:
            brand = self._brands.get(brand_id)
            return dict(brand) if brand is not None else None

    def add_brand(
        self,
        brand_id: str | None = None,
        *,
        display_name: str = "Ringer Network Solutions",
        company_name: str = "Ringer Network Solutions LLC",
        entity_type: str = "PRIVATE_PROFIT",
        vertical: str = "TECHNOLOGY",
        brand_relationship: str = "BASIC_ACCOUNT",
        identity_status: str = "VERIFIED",
        trust_score: int | None = 75,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A brand as if registered and verified earlier; sends BRAND_ADD."""
        fields = {
            "displayName": display_name,
            "companyName": company_name,
            "entityType": entity_type,
            "vertical": vertical,
            "brandRelationship": brand_relationship,
        }
        with self._lock:
            brand = self._new_brand(brand_id, fields, identity_status, trust_score)
        self._emit([self._brand_event("BRAND_ADD", brand)], deliver)
        return dict(brand)

    def register_brand(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """What `POST /v2/brand/nonBlocking` does (fields checked already): an UNVERIFIED
        brand now, BRAND_ADD sent from another thread (TCR works asynchronously), and its
        verification (BRAND_IDENTITY_STATUS_UPDATE) after the configured delay."""
        with self._lock:
            brand = self._new_brand(fields.get("brandId"), fields, "UNVERIFIED", None)
            timer = threading.Timer(
                self._verification.delay, self._verify, args=(brand["brandId"],)
            )
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        added = self._brand_event("BRAND_ADD", brand)
        threading.Thread(target=self._emit, args=([added],), daemon=True).start()
        timer.start()
        return dict(brand)

    def set_verification(
        self,
        identity_status: str = "VERIFIED",
        trust_score: int | None = 75,
        *,
        delay: float | None = None,
        deliver: bool = True,
    ) -> None:
        """How TCR's verification of registered brands comes out (read when each one
        completes): `set_verification("UNVERIFIED", None)` makes it fail; `deliver=False`
        loses the BRAND_IDENTITY_STATUS_UPDATE that announces it; `delay` applies to brands
        registered from now on."""
        with self._lock:
            keep = self._verification.delay
            self._verification = Verification(
                identity_status, trust_score, keep if delay is None else delay, deliver
            )

    def fail_registrations(
        self, n: int = 1, status: int = 503, *, body: Any = None, stall: float | None = None
    ) -> None:
        """The next `n` brand registrations fail as `RegistrationFault` says (other requests
        are answered as usual, unlike `fail_next`)."""
        if n < 0:
            raise ValueError("n must be 0 or more")
        if stall is None and not 400 <= status <= 599:
            raise ValueError("a failed registration is a 4xx or 5xx status")
        with self._lock:
            self._registration_faults.extend(
                RegistrationFault(status, body, stall) for _ in range(n)
            )

    def take_registration_fault(self) -> RegistrationFault | None:
        with self._lock:
            faults = self._registration_faults
            return faults.popleft() if faults else None

    def brands_by_reference(self, reference_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(b) for b in self._brands.values() if b.get("referenceId") == reference_id]

    def field_errors(self, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
        """TCR's refusal of enumerated fields with other values (none: acceptable)."""
        return [
            e
            for name, allowed in ENUMS.items()
            if name in fields and fields[name] not in allowed
            for e in _error(name, f"{name} {fields[name]!r} is not valid", 400)
        ]

    def update_brand(
        self,
        brand_id: str,
        *,
        identity_status: str | None = None,
        trust_score: int | None = None,
        fields: Mapping[str, Any] | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """Change a brand. The webhook says what changed: BRAND_IDENTITY_STATUS_UPDATE when
        the identity status did (with the score), else BRAND_SCORE_UPDATE for the score,
        else BRAND_UPDATE with the changed `fields` (camelCase)."""
        other = {k: v for k, v in (fields or {}).items() if k not in ("brandId", "cspId")}
        with self._lock:
            brand = self._known_brand(brand_id)
            brand.update(other)
            extra: dict[str, Any] = {}
            if identity_status is not None:
                event = "BRAND_IDENTITY_STATUS_UPDATE"
                brand["identityStatus"] = identity_status
                if trust_score is not None:
                    brand["trustScore"] = trust_score
                extra = {"brandIdentityStatus": identity_status, "trustScore": brand["trustScore"]}
            elif trust_score is not None:
                event = "BRAND_SCORE_UPDATE"
                brand["trustScore"] = trust_score
                extra = {"trustScore": trust_score}
            else:
                event = "BRAND_UPDATE"
            snapshot = dict(brand)
        payload = tcr_payload(event, brand_id=brand_id, **extra, **other)
        self._emit([payload], deliver)
        return snapshot

    # -- campaigns and carriers -------------------------------------------------------------

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        with self._lock:
            campaign = self._campaigns.get(campaign_id)
            return dict(campaign) if campaign is not None else None

    def operation_status(self, campaign_id: str) -> dict[str, str]:
        with self._lock:
            if campaign_id not in self._campaigns:
                raise LookupError(f"no campaign {campaign_id}")
            return dict(self._carriers.get(campaign_id, {}))

    def add_campaign(
        self,
        campaign_id: str | None = None,
        *,
        brand_id: str,
        usecase: str = "MIXED",
        status: str = "ACTIVE",
        mno_statuses: Mapping[str, str] | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A campaign of an existing brand, with its carriers' statuses; sends CAMPAIGN_ADD."""
        with self._lock:
            brand = self._known_brand(brand_id)
            campaign_id = campaign_id or self._new_id("C", self._campaigns)
            if campaign_id in self._campaigns:
                raise ValueError(f"campaign {campaign_id} exists")
            campaign: dict[str, Any] = {
                "campaignId": campaign_id,
                "cspId": self.csp_id,
                "brandId": brand_id,
                "usecase": usecase,
                "subUsecases": [],
                "vertical": brand.get("vertical"),
                "description": "Notifications to customers who opted in.",
                "status": status,
                "createDate": _now(),
                "autoRenewal": True,
                "mock": False,
            }
            self._campaigns[campaign_id] = campaign
            self._carriers[campaign_id] = {str(k): v for k, v in (mno_statuses or {}).items()}
            snapshot = dict(campaign)
        payload = tcr_payload(
            "CAMPAIGN_ADD",
            brand_id=brand_id,
            campaign_id=campaign_id,
            usecase=usecase,
            status=status,
        )
        self._emit([payload], deliver)
        return snapshot

    def update_campaign(
        self,
        campaign_id: str,
        *,
        status: str | None = None,
        fields: Mapping[str, Any] | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """Change a campaign: CAMPAIGN_EXPIRED when it expires, else CAMPAIGN_UPDATE."""
        other = {
            k: v for k, v in (fields or {}).items() if k not in ("campaignId", "brandId", "cspId")
        }
        with self._lock:
            campaign = self._known_campaign(campaign_id)
            campaign.update(other)
            if status is not None:
                campaign["status"] = status
            snapshot = dict(campaign)
        event = "CAMPAIGN_EXPIRED" if status == "EXPIRED" else "CAMPAIGN_UPDATE"
        payload = tcr_payload(
            event,
            brand_id=snapshot["brandId"],
            campaign_id=campaign_id,
            status=status,
            **other,
        )
        self._emit([payload], deliver)
        return snapshot

    def set_carrier_status(
        self,
        campaign_id: str,
        mno_id: str,
        status: str,
        *,
        rejection_reason: str | None = None,
        deliver: bool = True,
    ) -> dict[str, str]:
        """One carrier's decision on a campaign: MNO_CAMPAIGN_OPERATION_<status> (UNSUSPENDED
        when APPROVED follows SUSPENDED) with `mnoId` and `mnoStatuses: {mno: status}`.
        Returns the campaign's operation status after the change."""
        if status not in CARRIER_STATUSES:
            raise ValueError(f"carrier status must be one of {', '.join(CARRIER_STATUSES)}")
        mno_id = str(mno_id)
        with self._lock:
            campaign = self._known_campaign(campaign_id)
            carriers = self._carriers.setdefault(campaign_id, {})
            previous = carriers.get(mno_id)
            carriers[mno_id] = status
            statuses = dict(carriers)
        suffix = "UNSUSPENDED" if previous == "SUSPENDED" and status == "APPROVED" else status
        payload = tcr_payload(
            f"MNO_CAMPAIGN_OPERATION_{suffix}",
            brand_id=campaign["brandId"],
            campaign_id=campaign_id,
            mnoId=mno_id,
            mnoStatuses={mno_id: status},
            rejectionReason=rejection_reason,
        )
        self._emit([payload], deliver)
        return statuses

    # -- mock deliveries --------------------------------------------------------------------

    def send_mock(self, event_type: str) -> DeliveryAttempt:
        """What `GET .../eventType/{eventType}/mock` does: one delivery with `"mock": true` to
        the subscription of the type's category."""
        if event_type not in CATALOGUE:
            raise LookupError(f"unknown event type {event_type!r}")
        category = tcr_category(event_type)
        endpoint = self.subscriptions.get(category)
        if endpoint is None:
            raise ValueError(f"no webhook subscription for category {category}")
        campaign = MOCK_CAMPAIGN_ID if category == Category.CAMPAIGN else None
        payload = tcr_payload(event_type, brand_id=MOCK_BRAND_ID, campaign_id=campaign, mock=True)
        return self._send(tcr_delivery(endpoint, payload), [event_type])

    # -- FakePlatform -----------------------------------------------------------------------

    def close(self) -> None:
        """Cancel pending verifications."""
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "brands": [dict(b) for b in self._brands.values()],
                "campaigns": [
                    dict(c) | {"operationStatus": dict(self._carriers.get(i, {}))}
                    for i, c in self._campaigns.items()
                ],
                "subscriptions": dict(self._subscriptions),
            }

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = password = ""
            if secrets.compare_digest(user.encode(), self.api_key.encode()) and (
                secrets.compare_digest(password.encode(), self.api_secret.encode())
            ):
                return None
        return self.error_response(
            401,
            "Full authentication is required to access this resource",
            {"WWW-Authenticate": 'Basic realm="TCR"'},
        )

    def error_body(self, status: int, message: str) -> Any:
        return _error(None, message, status)

    def _event_type(self, item: Any) -> str:
        return str(item["eventType"])

    def _deliver(self, items: Sequence[Any]) -> list[DeliveryAttempt]:
        # One flat JSON object per request, to the endpoint of the event's category.
        endpoints = self.subscriptions
        attempts = []
        for payload in items:
            endpoint = endpoints.get(payload["eventCategory"])
            if endpoint is not None:
                delivery = tcr_delivery(endpoint, payload)
                attempts.append(self._send(delivery, [payload["eventType"]]))
        return attempts

    # -- internals --------------------------------------------------------------------------

    def _verify(self, brand_id: str) -> None:
        with self._lock:
            v = self._verification
        self.update_brand(
            brand_id,
            identity_status=v.identity_status,
            trust_score=v.trust_score,
            deliver=v.deliver,
        )

    def _new_brand(
        self,
        brand_id: Any,
        fields: Mapping[str, Any],
        identity_status: str,
        trust_score: int | None,
    ) -> dict[str, Any]:
        brand_id = str(brand_id) if brand_id else self._new_id("B", self._brands)
        if brand_id in self._brands:
            raise ValueError(f"brand {brand_id} exists")
        brand = {k: v for k, v in fields.items() if k not in ("brandId", "cspId")}
        brand.setdefault("displayName", brand.get("companyName"))
        brand |= {
            "brandId": brand_id,
            "cspId": self.csp_id,
            "identityStatus": identity_status,
            "trustScore": trust_score,
            "createDate": _now(),
            "mock": False,
        }
        self._brands[brand_id] = brand
        return brand

    def _brand_event(self, event_type: str, brand: Mapping[str, Any]) -> dict[str, Any]:
        return tcr_payload(
            event_type,
            brand_id=brand["brandId"],
            displayName=brand.get("displayName"),
            companyName=brand.get("companyName"),
            entityType=brand.get("entityType"),
            vertical=brand.get("vertical"),
            brandIdentityStatus=brand.get("identityStatus"),
            trustScore=brand.get("trustScore"),
        )

    def _known_brand(self, brand_id: str) -> dict[str, Any]:
        brand = self._brands.get(brand_id)
        if brand is None:
            raise LookupError(f"no brand {brand_id}")
        return brand

    def _known_campaign(self, campaign_id: str) -> dict[str, Any]:
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise LookupError(f"no campaign {campaign_id}")
        return campaign

    @staticmethod
    def _new_id(prefix: str, taken: Mapping[str, Any]) -> str:
        alphabet = string.ascii_uppercase + string.digits
        while True:
            candidate = prefix + "".join(secrets.choice(alphabet) for _ in range(6))
            if candidate not in taken:
                return candidate


def create_app(state: TCRState) -> Starlette:
    s = state

    async def get_brand(request: Request, _: Any) -> Response:
        brand_id = request.path_params["brand_id"]
        brand = s.brand(brand_id)
        if brand is None:
            return JSONResponse(_error("brandId", f"Brand {brand_id} not found", 404), 404)
        return JSONResponse(brand)

    async def create_brand(request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            return JSONResponse(_error(None, "A brand JSON object is required", 400), 400)
        missing = [
            f
            for f in REQUIRED_BRAND_FIELDS
            if not isinstance(body.get(f), str) or not body[f].strip()
        ]
        if missing:
            errors = [e for f in missing for e in _error(f, f"{f} is required", 400)]
            return JSONResponse(errors, 400)
        if errors := s.field_errors(body):
            return JSONResponse(errors, 400)
        reference = body.get("referenceId")
        if isinstance(reference, str) and s.brands_by_reference(reference):
            return JSONResponse(_error("referenceId", "referenceId is already in use", 400), 400)
        fault = s.take_registration_fault()
        if fault is not None and fault.stall is None:
            content = fault.body if fault.body is not None else _error(None, "failed", fault.status)
            return JSONResponse(content, fault.status)
        brand = s.register_brand(body)
        if fault is not None and fault.stall is not None:
            await asyncio.sleep(fault.stall)  # registered; the answer comes too late
        return JSONResponse(brand)

    async def search_brands(request: Request, _: Any) -> Response:
        reference = request.query_params.get("referenceId", "")
        found = s.brands_by_reference(reference) if reference else []
        return JSONResponse({"page": 1, "records": found, "totalRecords": len(found)})

    async def put_brand(request: Request, body: Any) -> Response:
        brand_id = request.path_params["brand_id"]
        if not isinstance(body, dict):
            return JSONResponse(_error(None, "A brand JSON object is required", 400), 400)
        if s.brand(brand_id) is None:
            return JSONResponse(_error("brandId", f"Brand {brand_id} not found", 404), 404)
        if errors := s.field_errors(body):
            return JSONResponse(errors, 400)
        fields = {k: v for k, v in body.items() if k not in ("brandId", "cspId", "referenceId")}
        return JSONResponse(await run_in_threadpool(s.update_brand, brand_id, fields=fields))

    async def enum(request: Request, _: Any) -> Response:
        name = request.path_params["name"]
        if name not in ENUMS:
            return JSONResponse(_error("name", f"No enum {name}", 404), 404)
        return JSONResponse(list(ENUMS[name]))

    async def get_campaign(request: Request, _: Any) -> Response:
        campaign_id = request.path_params["campaign_id"]
        campaign = s.campaign(campaign_id)
        if campaign is None:
            return JSONResponse(_error("campaignId", f"Campaign {campaign_id} not found", 404), 404)
        return JSONResponse(campaign)

    async def operation_status(request: Request, _: Any) -> Response:
        campaign_id = request.path_params["campaign_id"]
        try:
            return JSONResponse(s.operation_status(campaign_id))
        except LookupError:
            return JSONResponse(_error("campaignId", f"Campaign {campaign_id} not found", 404), 404)

    async def put_subscription(request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            return JSONResponse(_error(None, "A subscription JSON object is required", 400), 400)
        category, endpoint = body.get("eventCategory"), body.get("webhookEndpoint")
        if not isinstance(category, str) or category not in Category.__members__:
            return JSONResponse(_error("eventCategory", "Invalid event category", 400), 400)
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            return JSONResponse(_error("webhookEndpoint", "Invalid webhook endpoint", 400), 400)
        return JSONResponse(s.subscribe(category, endpoint))

    async def list_subscriptions(request: Request, _: Any) -> Response:
        return JSONResponse(
            [{"eventCategory": c, "webhookEndpoint": e} for c, e in s.subscriptions.items()]
        )

    async def delete_subscription(request: Request, _: Any) -> Response:
        category = request.path_params["category"]
        if not s.unsubscribe(category):
            return JSONResponse(
                _error("eventCategory", f"No subscription for {category}", 404), 404
            )
        return Response(status_code=204)

    async def event_types(request: Request, _: Any) -> Response:
        return JSONResponse(
            [
                {
                    "eventType": k.event_type,
                    "eventCategory": k.category.value,
                    "description": k.description,
                }
                for k in CATALOGUE.values()
            ]
        )

    async def mock(request: Request, _: Any) -> Response:
        event_type = request.path_params["event_type"]
        try:
            attempt = await run_in_threadpool(s.send_mock, event_type)
        except LookupError as exc:
            return JSONResponse(_error("eventType", str(exc.args[0]), 400), 400)
        except ValueError as exc:
            return JSONResponse(_error("eventCategory", str(exc.args[0]), 400), 400)
        return JSONResponse(
            {
                "endpoint": attempt.url,
                "status": attempt.status,
                "request": attempt.delivery.body.decode(),
                "response": attempt.response if attempt.error is None else attempt.error,
            }
        )

    api = s.api
    routes: list[BaseRoute] = [
        *s.control_routes(),
        *_control_routes(s),
        Route("/v2/brand/nonBlocking", api(create_brand), methods=["POST"]),
        Route("/v2/brand", api(search_brands), methods=["GET"]),
        Route("/v2/brand/{brand_id}", api(get_brand), methods=["GET"]),
        Route("/v2/brand/{brand_id}", api(put_brand), methods=["PUT"]),
        Route("/v2/enum/{name}", api(enum), methods=["GET"]),
        Route("/v2/campaign/{campaign_id}", api(get_campaign), methods=["GET"]),
        Route("/v2/campaign/{campaign_id}/operationStatus", api(operation_status), methods=["GET"]),
        Route("/v2/webhook/subscription", api(put_subscription), methods=["PUT"]),
        Route("/v2/webhook/subscription", api(list_subscriptions), methods=["GET"]),
        Route("/v2/webhook/subscription/{category}", api(delete_subscription), methods=["DELETE"]),
        Route("/v2/webhook/eventType", api(event_types), methods=["GET"]),
        Route("/v2/webhook/subscription/eventType/{event_type}/mock", api(mock), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _control_routes(s: TCRState) -> list[BaseRoute]:
    """`/_fake/...` mutations; bodies use TCR's camelCase field names plus `deliver`."""

    def add_brand(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        names = {
            "displayName": "display_name",
            "companyName": "company_name",
            "entityType": "entity_type",
            "vertical": "vertical",
            "brandRelationship": "brand_relationship",
            "identityStatus": "identity_status",
            "trustScore": "trust_score",
        }
        kwargs = {py: d[js] for js, py in names.items() if js in d}
        return s.add_brand(d.get("brandId"), deliver=deliver_flag(d), **kwargs)

    def update_brand(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        fields = {
            k: v for k, v in d.items() if k not in ("identityStatus", "trustScore", "deliver")
        }
        return s.update_brand(
            r.path_params["brand_id"],
            identity_status=d.get("identityStatus"),
            trust_score=d.get("trustScore"),
            fields=fields,
            deliver=deliver_flag(d),
        )

    def add_campaign(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(d.get("brandId"), str):
            raise ValueError("brandId is required")
        return s.add_campaign(
            d.get("campaignId"),
            brand_id=d["brandId"],
            usecase=d.get("usecase", "MIXED"),
            status=d.get("status", "ACTIVE"),
            mno_statuses=d.get("mnoStatuses"),
            deliver=deliver_flag(d),
        )

    def update_campaign(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        fields = {k: v for k, v in d.items() if k not in ("status", "deliver")}
        return s.update_campaign(
            r.path_params["campaign_id"],
            status=d.get("status"),
            fields=fields,
            deliver=deliver_flag(d),
        )

    def set_carrier(r: Request, d: dict[str, Any]) -> dict[str, str]:
        if not isinstance(d.get("status"), str):
            raise ValueError("status is required")
        return s.set_carrier_status(
            r.path_params["campaign_id"],
            r.path_params["mno_id"],
            d["status"],
            rejection_reason=d.get("rejectionReason"),
            deliver=deliver_flag(d),
        )

    def verification(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        s.set_verification(
            d.get("identityStatus", "VERIFIED"),
            d.get("trustScore", 75),
            delay=d.get("delay"),
            deliver=deliver_flag(d),
        )
        return {"identityStatus": d.get("identityStatus", "VERIFIED")}

    def registration_failures(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        n = d.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool):
            raise ValueError("n must be a whole number")
        stall = d.get("stall")
        if stall is not None and (not isinstance(stall, int | float) or stall < 0):
            raise ValueError("stall must be 0 or more seconds")
        s.fail_registrations(n, d.get("status", 503), body=d.get("body"), stall=stall)
        return {"pending": n}

    p, c = "/_fake", s.control
    return [
        Route(f"{p}/brands", c(add_brand, 201), methods=["POST"]),
        Route(f"{p}/brands/{{brand_id}}", c(update_brand), methods=["PATCH"]),
        Route(f"{p}/campaigns", c(add_campaign, 201), methods=["POST"]),
        Route(f"{p}/campaigns/{{campaign_id}}", c(update_campaign), methods=["PATCH"]),
        Route(
            f"{p}/campaigns/{{campaign_id}}/operationStatus/{{mno_id}}",
            c(set_carrier),
            methods=["PUT"],
        ),
        Route(f"{p}/verification", c(verification), methods=["PUT"]),
        Route(f"{p}/registration-failures", c(registration_failures), methods=["PUT"]),
    ]
