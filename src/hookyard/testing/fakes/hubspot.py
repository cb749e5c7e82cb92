"""A fake of HubSpot: CRM v3 companies and the app's company webhooks.

API (a private app's access token as `Authorization: Bearer`; errors are HubSpot's
`{"status": "error", "message", "correlationId", "category", ...}`):

    GET    /crm/v3/objects/companies/{id}?properties=a,b&archived=false
    GET    /crm/v3/objects/companies?limit=10&after=...&properties=a,b&archived=false
    POST   /crm/v3/objects/companies/search  query, filterGroups, sorts, properties, limit, after
    GET    /crm/v3/properties/companies       the company properties -> {"results": [...]}
    POST   /crm/v3/properties/companies       {"name", "label", "type", "fieldType",
                                              "groupName", "options"} -> 201; 409 if it exists
    POST   /crm/v3/objects/companies         {"properties": {...}} -> 201
    PATCH  /crm/v3/objects/companies/{id}    {"properties": {...}}
    DELETE /crm/v3/objects/companies/{id}    archives it -> 204

Search: `query` matches companies whose name, domain, website or phone contain each of its
words (case-insensitive; HubSpot's default searchable properties); `after` is the offset
HubSpot's cursor stands for. Properties: a portal made with `custom_properties=False` lacks
hookyard's custom properties until they are created through the properties API (or
`define_property`); `bool`, `date` and `datetime` properties hold strings here.

Property values are stored and returned as strings, as HubSpot does. A write is validated
against the property's type (text, number, multiple checkbox with options), and against
`reject_property`; a bad value is a 400 VALIDATION_ERROR naming each property.

Webhooks (`simulate.hubspot_delivery`, signature v3) go to `target_url`: a change made
through the API is announced with `changeSource` INTEGRATION and `sourceId` the app id (so a
receiver can tell its own echo), a change made with the control methods ("someone edited it
in HubSpot") with CRM_UI and `sourceId` `userId:<id>`. One change's events go out in one
array (HubSpot batches up to 100); `batched()` groups several changes.
"""

from __future__ import annotations

import fnmatch
import hmac
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.testing.fakes.platform import DeliveryAttempt, FakePlatform, deliver_flag
from hookyard.testing.simulate import (
    HUBSPOT_APP_ID,
    HUBSPOT_PORTAL_ID,
    HUBSPOT_SUBSCRIPTION_ID,
    Delivery,
    hubspot_delivery,
    hubspot_event,
)

COMPANIES = "/crm/v3/objects/companies"

CREATION, PROPERTY_CHANGE, DELETION = (
    "company.creation",
    "company.propertyChange",
    "company.deletion",
)

# Set by HubSpot, never by a write; always in an object's `properties`.
READ_ONLY = ("createdate", "hs_lastmodifieddate", "hs_object_id")
# What GET and search return when no `properties` are asked for.
DEFAULT_PROPERTIES = ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")
DATE_PROPERTIES = frozenset({"createdate", "hs_lastmodifieddate"})

MAX_PAGE = 100  # GET list
MAX_SEARCH_PAGE = 200
MAX_EVENTS_PER_REQUEST = 100

OPERATORS = frozenset(
    {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "IN", "NOT_IN",
     "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
)  # fmt: skip
# What a search's `query` looks in (HubSpot's default searchable company properties).
QUERY_PROPERTIES = ("name", "domain", "website", "phone")
PROPERTIES = "/crm/v3/properties/companies"
PROPERTY_TYPES = {"string", "number", "enumeration", "bool", "date", "datetime"}
FIELD_TYPES = {"text", "textarea", "number", "select", "checkbox", "radio", "booleancheckbox",
               "date", "calculation_equation", "phonenumber", "html", "file"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PropertyType:
    """A company property: `string`, `number` (with the error code of a bad value) or
    `enumeration` (`options`; `multiple` values joined with `;`, a multiple checkbox)."""

    kind: str = "string"
    invalid_code: str = "INVALID_FLOAT"
    options: tuple[str, ...] = ()
    multiple: bool = False


# The standard company properties hookyard's demo touches, and the custom properties of its
# field rules (domain/crm/rules.py).
DEFAULT_SCHEMA: Mapping[str, PropertyType] = {
    **{
        name: PropertyType()
        for name in (
            "name",
            "domain",
            "website",
            "phone",
            "city",
            "state",
            "country",
            "industry",
            "description",
            "hookyard_ban",
            "hookyard_status",
            "hookyard_customer_type",
        )
    },
    "numberofemployees": PropertyType("number", "INVALID_INTEGER"),
    "annualrevenue": PropertyType("number"),
    "hookyard_credit_limit": PropertyType("number"),
    "hookyard_current_balance": PropertyType("number"),
    "hookyard_services": PropertyType(
        "enumeration", "INVALID_OPTION", ("voice", "messaging", "telecom_data"), multiple=True
    ),
}


# hookyard's custom properties (absent from a portal made with `custom_properties=False`).
CUSTOM = frozenset(name for name in DEFAULT_SCHEMA if name.startswith("hookyard_"))


class HubSpotValidationError(ValueError):
    """Property values HubSpot refuses: (property name, error code, message) each."""

    def __init__(self, problems: Sequence[tuple[str, str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, _, message in problems))
        self.problems = list(problems)

    def body(self) -> dict[str, Any]:
        listed = [
            {
                "isValid": False,
                "message": message,
                "error": code,
                "name": name,
                "localizedErrorMessage": message,
            }
            for name, code, message in self.problems
        ]
        return {
            "status": "error",
            "message": "Property values were not valid: " + json.dumps(listed),
            "correlationId": str(uuid.uuid4()),
            "category": "VALIDATION_ERROR",
            "errors": [
                {"message": message, "code": code, "context": {"propertyName": [name]}}
                for name, code, message in self.problems
            ],
        }


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


class HubSpotState(FakePlatform):
    name = "hubspot"

    def __init__(
        self,
        access_token: str,
        client_secret: str,
        *,
        app_id: int = HUBSPOT_APP_ID,
        portal_id: int = HUBSPOT_PORTAL_ID,
        target_url: str | None = None,
        ui_user_id: int = 5123456,
        api_change_source: str = "INTEGRATION",
        webhook_timeout: float = 5.0,
        custom_properties: bool = True,
    ) -> None:
        super().__init__(webhook_timeout=webhook_timeout)
        self.access_token = access_token
        self.client_secret = client_secret
        self.app_id = app_id
        self.portal_id = portal_id
        self.ui_user_id = ui_user_id
        self.api_change_source = api_change_source
        self._target_url = target_url
        self._watched: frozenset[str] | None = None  # None: every property
        self._companies: dict[str, dict[str, Any]] = {}
        self._schema: dict[str, PropertyType] = {
            k: v for k, v in DEFAULT_SCHEMA.items() if custom_properties or k not in CUSTOM
        }
        self._definitions: dict[str, dict[str, Any]] = {}  # made through the properties API
        self._rejections: dict[str, tuple[str, str | None]] = {}
        self._ids = itertools.count(18442069817)
        self._last_ms = 0

    # -- configuration ----------------------------------------------------------------------

    @property
    def target_url(self) -> str | None:
        with self._lock:
            return self._target_url

    def configure_webhooks(
        self,
        target_url: str | None,
        *,
        client_secret: str | None = None,
        app_id: int | None = None,
        properties: Iterable[str] | None = None,
    ) -> None:
        """Where the app's webhooks go (None: nowhere), and for which properties
        `company.propertyChange` is subscribed (None: all)."""
        with self._lock:
            self._target_url = target_url
            if client_secret is not None:
                self.client_secret = client_secret
            if app_id is not None:
                self.app_id = app_id
            self._watched = None if properties is None else frozenset(properties)

    def define_property(
        self,
        name: str,
        kind: str = "string",
        *,
        invalid_code: str | None = None,
        options: Sequence[str] = (),
        multiple: bool = False,
    ) -> None:
        if kind not in ("string", "number", "enumeration"):
            raise ValueError("kind is string, number or enumeration")
        code = invalid_code or {"number": "INVALID_FLOAT", "enumeration": "INVALID_OPTION"}.get(
            kind, "INVALID_STRING"
        )
        with self._lock:
            self._schema[name] = PropertyType(kind, code, tuple(options), multiple)

    @property
    def property_names(self) -> set[str]:
        with self._lock:
            return set(self._schema)

    def property_definitions(self) -> list[dict[str, Any]]:
        """Every company property as the properties API shows it."""
        with self._lock:
            return [self._definition(n, k) for n, k in sorted(self._schema.items())]

    def create_property(self, body: Any) -> dict[str, Any]:
        """The properties API's create: ValueError (400) for a bad definition, KeyError (409)
        for a name taken."""
        if not isinstance(body, dict):
            raise ValueError("the property must be a JSON object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName")
                   if not isinstance(body.get(k), str) or not body[k]]  # fmt: skip
        if missing:
            raise ValueError(f"missing required fields: {missing}")
        name, kind, field_type = body["name"], body["type"], body["fieldType"]
        if kind not in PROPERTY_TYPES or field_type not in FIELD_TYPES:
            raise ValueError(f"type {kind!r} with fieldType {field_type!r} is not valid")
        options = body.get("options") or []
        if kind == "enumeration" and not (
            isinstance(options, list)
            and options
            and all(isinstance(o, dict) and isinstance(o.get("value"), str) for o in options)
        ):
            raise ValueError("an enumeration needs options, each with a value")
        values = tuple(o["value"] for o in options) if kind == "enumeration" else ()
        code = {"number": "INVALID_FLOAT", "enumeration": "INVALID_OPTION"}.get(kind, "")
        with self._lock:
            if name in self._schema:
                raise KeyError(name)
            self._schema[name] = PropertyType(
                kind if kind in ("number", "enumeration") else "string",
                code or "INVALID_STRING",
                values,
                multiple=field_type == "checkbox",
            )
            now = _iso(self._tick())
            self._definitions[name] = {
                "name": name,
                "label": body["label"],
                "type": kind,
                "fieldType": field_type,
                "groupName": body["groupName"],
                "description": str(body.get("description") or ""),
                "options": [
                    {"label": str(o.get("label") or o["value"]), "value": o["value"],
                     "displayOrder": i, "hidden": False}
                    for i, o in enumerate(options if kind == "enumeration" else [])
                ],
                "createdAt": now,
                "updatedAt": now,
            }  # fmt: skip
            return self._definition(name, self._schema[name])

    def _definition(self, name: str, kind: PropertyType) -> dict[str, Any]:
        made = self._definitions.get(name)
        enumerated = "checkbox" if kind.multiple else "select"
        base = made or {
            "name": name,
            "label": name.replace("_", " ").capitalize(),
            "type": kind.kind,
            "fieldType": {"number": "number", "enumeration": enumerated}.get(kind.kind, "text"),
            "groupName": "companyinformation",
            "description": "",
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False}
                for i, o in enumerate(kind.options)
            ],
        }
        return dict(base) | {
            "hubspotDefined": made is None and name not in CUSTOM,
            "calculated": False,
            "externalOptions": False,
            "hasUniqueValue": False,
            "hidden": False,
            "formField": True,
            "archived": False,
            "options": [dict(o) for o in base["options"]],
        }

    def reject_property(self, name: str, code: str, message: str | None = None) -> None:
        """Every API write of `name` fails with `code` (as a HubSpot validation rule would)."""
        with self._lock:
            self._rejections[name] = (code, message)

    def accept_property(self, name: str) -> None:
        with self._lock:
            self._rejections.pop(name, None)

    # -- data -------------------------------------------------------------------------------

    def company(self, company_id: str | int) -> dict[str, Any] | None:
        with self._lock:
            found = self._companies.get(str(company_id))
            return _copy(found) if found is not None else None

    @property
    def companies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(c) for c in self._companies.values()]

    def create_company(
        self, properties: Mapping[str, Any], *, deliver: bool = True
    ) -> dict[str, Any]:
        """A company created in HubSpot's UI: company.creation and a propertyChange for each
        property set, with changeSource CRM_UI. Values are not validated (the UI is trusted,
        and tests may want values the API would refuse)."""
        company, events = self._create(properties, self._ui_source())
        self._emit(events, deliver)
        return company

    def edit_company(
        self, company_id: str | int, properties: Mapping[str, Any], *, deliver: bool = True
    ) -> dict[str, Any]:
        """Someone edits the company in HubSpot's UI: a propertyChange per changed property,
        changeSource CRM_UI; nothing when no value changes."""
        company, events = self._update(str(company_id), properties, self._ui_source())
        self._emit(events, deliver)
        return company

    def delete_company(self, company_id: str | int, *, deliver: bool = True) -> None:
        """Archive it in the UI: company.deletion."""
        self._emit(self._archive(str(company_id), self._ui_source()), deliver)

    # -- changes through the API (validated by `validate` first) -----------------------------
    # Each returns the webhook events for the caller to send after its response.

    def create_via_api(
        self, values: Mapping[str, str | None]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self._create(values, self._api_source())

    def update_via_api(
        self, company_id: str, values: Mapping[str, str | None]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return self._update(company_id, values, self._api_source())

    def archive_via_api(self, company_id: str) -> list[dict[str, Any]]:
        return self._archive(company_id, self._api_source())

    def query(
        self,
        *,
        archived: bool = False,
        where: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Companies (archived or not) whose properties satisfy `where`, by id."""
        with self._lock:
            found = [
                _copy(c)
                for c in self._companies.values()
                if c["archived"] == archived and (where is None or where(c["properties"]))
            ]
        return sorted(found, key=lambda c: int(c["id"]))

    # -- FakePlatform -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "companies": [_copy(c) for c in self._companies.values()],
                "target_url": self._target_url,
                "app_id": self.app_id,
                "portal_id": self.portal_id,
                "rejections": {k: v[0] for k, v in self._rejections.items()},
            }

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token and _same(token, self.access_token):
            return None
        message = (
            "Authentication credentials not found. This API supports OAuth 2.0 authentication"
            " and you can find more details at"
            " https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            if not token
            else "The access token provided is invalid, expired or revoked."
        )
        return JSONResponse(_error(message, "INVALID_AUTHENTICATION"), 401)

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "SECONDLY",
            }
        category = {400: "VALIDATION_ERROR", 404: "OBJECT_NOT_FOUND"}.get(status, "INTERNAL_ERROR")
        return _error(message, category)

    def _event_type(self, item: Any) -> str:
        return str(item["subscriptionType"])

    def _deliver(self, items: Sequence[Any]) -> list[DeliveryAttempt]:
        with self._lock:
            url, secret = self._target_url, self.client_secret
        if url is None:
            return []
        attempts = []
        for start in range(0, len(items), MAX_EVENTS_PER_REQUEST):
            chunk = items[start : start + MAX_EVENTS_PER_REQUEST]
            delivery = hubspot_delivery(secret, url, chunk)
            attempts.append(self._send(delivery, [self._event_type(i) for i in chunk]))
        return attempts

    def _redelivery(self, attempt: DeliveryAttempt) -> Delivery:
        # A retry is the same events with the next attemptNumber, signed afresh.
        events = [dict(e, attemptNumber=e.get("attemptNumber", 0) + 1) for e in attempt.payload]
        with self._lock:
            secret = self.client_secret
        return hubspot_delivery(secret, attempt.url, events)

    # -- what the API and the controls share -------------------------------------------------

    def _ui_source(self) -> tuple[str, str]:
        return "CRM_UI", f"userId:{self.ui_user_id}"

    def _api_source(self) -> tuple[str, str]:
        return self.api_change_source, str(self.app_id)

    def _tick(self) -> int:
        """Now in milliseconds, strictly later than the previous change (under the lock)."""
        self._last_ms = max(_now_ms(), self._last_ms + 1)
        return self._last_ms

    def validate(self, properties: Any) -> dict[str, str | None]:
        """The request's properties as stored strings, or HubSpotValidationError."""
        if not isinstance(properties, Mapping):
            raise HubSpotValidationError([("properties", "INVALID_INPUT", "must be an object")])
        values: dict[str, str | None] = {}
        problems: list[tuple[str, str, str]] = []
        with self._lock:
            for name, raw in properties.items():
                if name in self._rejections:
                    code, message = self._rejections[name]
                    problems.append((name, code, message or f"{raw} is not allowed for {name}"))
                    continue
                if name in READ_ONLY:
                    problems.append((name, "READ_ONLY_VALUE", f"{name} is a read only property"))
                    continue
                kind = self._schema.get(name)
                if kind is None:
                    message = f'Property "{name}" does not exist'
                    problems.append((name, "PROPERTY_DOESNT_EXIST", message))
                    continue
                try:
                    values[name] = _checked(kind, raw)
                except ValueError as exc:
                    problems.append((name, str(exc.args[1]), str(exc.args[0])))
        if problems:
            raise HubSpotValidationError(problems)
        return values

    def _create(
        self, properties: Mapping[str, Any], source: tuple[str, str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        values = {k: _text(v) for k, v in properties.items()}
        with self._lock:
            ms = self._tick()
            company_id = str(next(self._ids))
            stamp = _iso(ms)
            props = {k: v for k, v in values.items() if v is not None}
            props |= {"createdate": stamp, "hs_lastmodifieddate": stamp, "hs_object_id": company_id}
            company = {
                "id": company_id,
                "properties": props,
                "createdAt": stamp,
                "updatedAt": stamp,
                "archived": False,
            }
            self._companies[company_id] = company
            for name in values:
                self._schema.setdefault(name, PropertyType())
            events = [self._event(CREATION, company_id, ms, source)]
            events += self._changes(company_id, {k: v for k, v in values.items() if v}, ms, source)
            return _copy(company), events

    def _update(
        self, company_id: str, properties: Mapping[str, Any], source: tuple[str, str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        values = {k: _text(v) for k, v in properties.items()}
        with self._lock:
            company = self._live(company_id)
            props = company["properties"]
            changed = {k: v for k, v in values.items() if props.get(k) != v}
            ms = self._tick() if changed else None
            for name, value in changed.items():
                self._schema.setdefault(name, PropertyType())
                if value is None:
                    props.pop(name, None)
                else:
                    props[name] = value
            if ms is not None:
                props["hs_lastmodifieddate"] = company["updatedAt"] = _iso(ms)
            events = self._changes(company_id, changed, ms, source) if ms is not None else []
            return _copy(company), events

    def _archive(self, company_id: str, source: tuple[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            company = self._live(company_id)
            ms = self._tick()
            company["archived"] = True
            company["archivedAt"] = company["updatedAt"] = _iso(ms)
            return [self._event(DELETION, company_id, ms, source)]

    def _live(self, company_id: str) -> dict[str, Any]:
        company = self._companies.get(company_id)
        if company is None or company["archived"]:
            raise LookupError(f"no company {company_id}")
        return company

    def _event(
        self,
        kind: str,
        company_id: str,
        ms: int,
        source: tuple[str, str],
        name: str | None = None,
        value: str | None = None,
    ) -> dict[str, Any]:
        return hubspot_event(
            kind,
            int(company_id),
            occurred_at=ms,
            portal_id=self.portal_id,
            app_id=self.app_id,
            subscription_id=HUBSPOT_SUBSCRIPTION_ID,
            change_source=source[0],
            source_id=source[1],
            property_name=name,
            property_value=value,
        )

    def _changes(
        self,
        company_id: str,
        changed: Mapping[str, str | None],
        ms: int,
        source: tuple[str, str],
    ) -> list[dict[str, Any]]:
        watched = self._watched
        return [
            self._event(PROPERTY_CHANGE, company_id, ms, source, name, value or "")
            for name, value in changed.items()
            if watched is None or name in watched
        ]


def create_app(state: HubSpotState) -> Starlette:
    s = state

    async def get_company(request: Request, _: Any) -> Response:
        company_id = request.path_params["company_id"]
        company = s.company(company_id)
        archived = request.query_params.get("archived", "false").lower() == "true"
        if company is None or company["archived"] != archived:
            return _not_found(company_id)
        return JSONResponse(_view(company, _asked(request.query_params.get("properties"))))

    async def list_companies(request: Request, _: Any) -> Response:
        q = request.query_params
        try:
            limit = _limit(q.get("limit"), 10, MAX_PAGE)
            after = int(q["after"]) if q.get("after") else None
        except ValueError as exc:
            return JSONResponse(_error(str(exc), "VALIDATION_ERROR"), 400)
        archived = q.get("archived", "false").lower() == "true"
        found = s.query(archived=archived)
        if after is not None:
            found = [c for c in found if int(c["id"]) >= after]
        page, rest = found[:limit], found[limit:]
        asked = _asked(q.get("properties"))
        body: dict[str, Any] = {"results": [_view(c, asked) for c in page]}
        if rest:
            token = rest[0]["id"]
            query = {k: v for k, v in q.items() if k != "after"} | {"after": token}
            link = f"{str(request.base_url).rstrip('/')}{COMPANIES}?{urlencode(query)}"
            body["paging"] = {"next": {"after": token, "link": link}}
        return JSONResponse(body)

    async def search(request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            body = {}
        try:
            where = _filters(body.get("filterGroups") or [], body.get("query"))
            limit = _limit(body.get("limit"), 10, MAX_SEARCH_PAGE)
            offset = int(body.get("after") or 0)
            found = _sorted(s.query(where=where), body.get("sorts") or [])
        except (ValueError, TypeError) as exc:
            return JSONResponse(_error(str(exc), "VALIDATION_ERROR"), 400)
        asked = body.get("properties") or None
        if asked is not None and not (
            isinstance(asked, list) and all(isinstance(n, str) for n in asked)
        ):
            return JSONResponse(
                _error("properties must be a list of names", "VALIDATION_ERROR"), 400
            )
        page = found[offset : offset + limit]
        result: dict[str, Any] = {
            "total": len(found),
            "results": [_view(c, asked) for c in page],
        }
        if offset + limit < len(found):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(result)

    async def list_properties(request: Request, _: Any) -> Response:
        return JSONResponse({"results": s.property_definitions()})

    async def create_property(request: Request, body: Any) -> Response:
        try:
            made = s.create_property(body)
        except ValueError as exc:
            return JSONResponse(_error(str(exc), "VALIDATION_ERROR"), 400)
        except KeyError:
            name = body["name"]
            message = f"Property named '{name}' already exists."
            return JSONResponse(_error(message, "OBJECT_ALREADY_EXISTS"), 409)
        return JSONResponse(made, 201)

    async def create(request: Request, body: Any) -> Response:
        try:
            values = s.validate((body or {}).get("properties") if isinstance(body, dict) else None)
        except HubSpotValidationError as exc:
            return JSONResponse(exc.body(), 400)
        company, events = s.create_via_api(values)
        return JSONResponse(
            _view(company, list(values)), 201, background=s.background_delivery(events)
        )

    async def update(request: Request, body: Any) -> Response:
        company_id = request.path_params["company_id"]
        if s.company(company_id) is None:
            return _not_found(company_id)
        try:
            values = s.validate((body or {}).get("properties") if isinstance(body, dict) else None)
            company, events = s.update_via_api(company_id, values)
        except HubSpotValidationError as exc:
            return JSONResponse(exc.body(), 400)
        except LookupError:
            return _not_found(company_id)
        return JSONResponse(_view(company, list(values)), background=s.background_delivery(events))

    async def archive(request: Request, _: Any) -> Response:
        company_id = request.path_params["company_id"]
        try:
            events = s.archive_via_api(company_id)
        except LookupError:
            return _not_found(company_id)
        return Response(status_code=204, background=s.background_delivery(events))

    api = s.api
    routes: list[BaseRoute] = [
        *s.control_routes(),
        *_control_routes(s),
        Route(f"{COMPANIES}/search", api(search), methods=["POST"]),
        Route(PROPERTIES, api(list_properties), methods=["GET"]),
        Route(PROPERTIES, api(create_property), methods=["POST"]),
        Route(COMPANIES, api(list_companies), methods=["GET"]),
        Route(COMPANIES, api(create), methods=["POST"]),
        Route(f"{COMPANIES}/{{company_id}}", api(get_company), methods=["GET"]),
        Route(f"{COMPANIES}/{{company_id}}", api(update), methods=["PATCH"]),
        Route(f"{COMPANIES}/{{company_id}}", api(archive), methods=["DELETE"]),
    ]
    return Starlette(routes=routes)


def _control_routes(s: HubSpotState) -> list[BaseRoute]:
    """`/_fake/...`: UI changes (`{"properties": {...}, "deliver": true}`), the webhook target,
    validation rules."""

    def properties(d: Mapping[str, Any]) -> Mapping[str, Any]:
        value = d.get("properties")
        if not isinstance(value, Mapping):
            raise ValueError("properties must be an object")
        return value

    def create(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        return s.create_company(properties(d), deliver=deliver_flag(d))

    def edit(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        return s.edit_company(r.path_params["company_id"], properties(d), deliver=deliver_flag(d))

    def delete(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        s.delete_company(r.path_params["company_id"], deliver=deliver_flag(d))
        return {"archived": True}

    def webhooks(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        watched = d.get("properties")
        s.configure_webhooks(
            d.get("target_url"),
            client_secret=d.get("client_secret"),
            app_id=d.get("app_id"),
            properties=watched if isinstance(watched, list) else None,
        )
        return {"target_url": s.target_url}

    def reject(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        code = d.get("code")
        if not isinstance(code, str):
            raise ValueError("code is required")
        s.reject_property(r.path_params["name"], code, d.get("message"))
        return {"property": r.path_params["name"], "code": code}

    def accept(r: Request, _: dict[str, Any]) -> dict[str, Any]:
        s.accept_property(r.path_params["name"])
        return {"property": r.path_params["name"]}

    p, c = "/_fake", s.control
    return [
        Route(f"{p}/companies", c(create, 201), methods=["POST"]),
        Route(f"{p}/companies/{{company_id}}", c(edit), methods=["PATCH"]),
        Route(f"{p}/companies/{{company_id}}", c(delete), methods=["DELETE"]),
        Route(f"{p}/webhooks", c(webhooks), methods=["PUT"]),
        Route(f"{p}/validation/{{name}}", c(reject), methods=["PUT"]),
        Route(f"{p}/validation/{{name}}", c(accept), methods=["DELETE"]),
    ]


# -- values ---------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A property value as HubSpot stores it: a string; None (cleared) for null or ""."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _checked(kind: PropertyType, raw: Any) -> str | None:
    """`raw` as stored, or ValueError(message, code)."""
    if raw is not None and not isinstance(raw, str | int | float | bool):
        raise ValueError(f"{json.dumps(raw)} is not a valid value", "INVALID_INPUT")
    text = _text(raw)
    if text is None or kind.kind == "string":
        return text
    if text != text.strip():
        message = f'"{text}" includes leading or trailing whitespace.'
        raise ValueError(message, "LEADING_TRAILING_WHITESPACE")
    if kind.kind == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        integer = kind.invalid_code == "INVALID_INTEGER"
        if not math.isfinite(number) or (integer and not number.is_integer()):
            noun = "an integer" if integer else "number"
            raise ValueError(f"{text} was not a valid {noun}.", kind.invalid_code) from None
        return text
    chosen = text.split(";") if kind.multiple else [text]
    for option in chosen:
        if option not in kind.options:
            message = f"{option} was not one of the allowed options: [{', '.join(kind.options)}]"
            raise ValueError(message, kind.invalid_code)
    return text


def _millis(value: Any) -> int | None:
    """A date filter value or a stored date: milliseconds since the epoch (ms or ISO)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            return None
    return None


def _comparable(name: str, value: Any) -> Any:
    if name in DATE_PROPERTIES:
        return _millis(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value.lower()
    return value


def _filters(groups: Any, query: Any = None) -> Callable[[Mapping[str, Any]], bool]:
    """filterGroups: any group matches when all its filters do (HubSpot's OR of ANDs); and
    `query`: every word in one of the searchable properties."""
    if not isinstance(groups, list):
        raise ValueError("filterGroups must be a list")
    if query is not None and not isinstance(query, str):
        raise ValueError("query must be a string")
    words = (query or "").lower().split()
    parsed: list[list[tuple[str, str, Any]]] = []
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise ValueError("each filter group needs a list of filters")
        checks = []
        for f in filters:
            if not isinstance(f, dict) or not isinstance(f.get("propertyName"), str):
                raise ValueError("each filter needs a propertyName")
            operator = f.get("operator")
            if operator not in OPERATORS:
                raise ValueError(f"operator {operator!r} is not supported")
            value = f.get("values") if operator in ("IN", "NOT_IN") else f.get("value")
            checks.append((f["propertyName"], str(operator), value))
        parsed.append(checks)

    def matches(props: Mapping[str, Any]) -> bool:
        searched = " ".join(str(props.get(n) or "") for n in QUERY_PROPERTIES).lower()
        if not all(word in searched for word in words):
            return False
        return not parsed or any(all(_match(props, *check) for check in g) for g in parsed)

    return matches


def _match(props: Mapping[str, Any], name: str, operator: str, value: Any) -> bool:
    have = props.get(name)
    if operator == "HAS_PROPERTY":
        return have is not None
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        # A token of the value matches the pattern (`*` any characters), case-insensitive.
        pattern = str(value or "").lower()
        tokens = re.split(r"[^a-z0-9@.*_-]+", str(have or "").lower())
        found = any(fnmatch.fnmatchcase(t, pattern) for t in tokens if t)
        return found if operator == "CONTAINS_TOKEN" else not found
    if operator == "NOT_HAS_PROPERTY":
        return have is None
    if operator in ("IN", "NOT_IN"):
        options = {_comparable(name, v) for v in (value or [])}
        inside = have is not None and _comparable(name, have) in options
        return inside if operator == "IN" else not inside
    if have is None:
        return operator == "NEQ"
    left, right = _comparable(name, have), _comparable(name, value)
    if operator == "EQ":
        return bool(left == right)
    if operator == "NEQ":
        return bool(left != right)
    if type(left) is not type(right) or left is None:
        return False
    return bool(
        {"LT": left < right, "LTE": left <= right, "GT": left > right, "GTE": left >= right}[
            operator
        ]
    )


def _sorted(found: list[dict[str, Any]], sorts: Any) -> list[dict[str, Any]]:
    if not isinstance(sorts, list):
        raise ValueError("sorts must be a list")
    for sort in reversed(sorts):
        name = sort.get("propertyName") if isinstance(sort, dict) else sort
        if not isinstance(name, str):
            raise ValueError("each sort needs a propertyName")
        descending = isinstance(sort, dict) and sort.get("direction") == "DESCENDING"

        def key(c: dict[str, Any], name: str = name) -> tuple[bool, bool, float, str]:
            value = _comparable(name, c["properties"].get(name))
            text = isinstance(value, str)
            number = float(value) if isinstance(value, int | float) else 0.0
            return (value is None, text, number, value if isinstance(value, str) else "")

        found = sorted(found, key=key, reverse=descending)
    return found


def _limit(value: Any, default: int, maximum: int) -> int:
    limit = default if value in (None, "") else int(value)
    if not 1 <= limit <= maximum:
        raise ValueError(f"limit must be between 1 and {maximum}")
    return limit


def _asked(value: str | None) -> list[str] | None:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    return names or None


def _view(company: Mapping[str, Any], asked: Sequence[str] | None) -> dict[str, Any]:
    """The object as the API shows it: the asked-for properties (null when unset) and the
    ones HubSpot always adds, or the default set."""
    props = company["properties"]
    names = list(dict.fromkeys([*(asked or DEFAULT_PROPERTIES), *READ_ONLY]))
    view = {k: v for k, v in company.items() if not k.startswith("_")}
    view["properties"] = {n: props.get(n) for n in names}
    return view


def _copy(company: Mapping[str, Any]) -> dict[str, Any]:
    return dict(company) | {"properties": dict(company["properties"])}


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _error(message: str, category: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }


def _not_found(company_id: str) -> Response:
    return JSONResponse(
        _error(f"Object not found. objectId: {company_id}", "OBJECT_NOT_FOUND"), 404
    )
