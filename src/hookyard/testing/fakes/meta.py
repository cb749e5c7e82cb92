"""A fake of Meta's Graph API for WhatsApp message templates, and of its webhooks.

API (an access token as `Authorization: Bearer` or `?access_token=`; any version `vNN.N`;
errors are Graph's `{"error": {"message", "type", "code", "fbtrace_id"}}`):

    GET /{version}/{waba_id}/message_templates?fields=a,b&limit=25&after=...&status=&name=
    GET /{version}/{template_id}?fields=a,b

Lists page with opaque cursors: `{"data": [...], "paging": {"cursors": {"before", "after"},
"next": "<url>"}}`, `next` only when there is more.

Webhooks (`simulate.meta_delivery`, `X-Hub-Signature-256`) go to the callback URL, which
`subscribe` sets only after Meta's GET handshake succeeded against it. A status or quality
change sends its `entry[].changes[]` envelope; `batched()` puts several changes in one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hookyard.testing.fakes.platform import DeliveryAttempt, FakePlatform, deliver_flag
from hookyard.testing.simulate import (
    META_WABA_ID,
    meta_delivery,
    meta_envelope,
    meta_quality_change,
    meta_status_change,
)

VERSION = re.compile(r"v\d+\.\d+")
QUALITY_SCORES = ("GREEN", "YELLOW", "RED", "UNKNOWN")
# A status event and the status the API reports afterwards, where they differ.
STATUS_AFTER_EVENT = {"REINSTATED": "APPROVED"}
DEFAULT_PAGE = 25


@dataclass(frozen=True, slots=True)
class Handshake:
    """One GET verification Meta made against a callback URL."""

    url: str
    status: int | None  # the callback's answer; None when unreachable
    verified: bool  # 200 with exactly the challenge as the body


def _cursor(template_id: str) -> str:
    return base64.urlsafe_b64encode(template_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None


def _graph_error(message: str, kind: str, code: int, subcode: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = secrets.token_urlsafe(12)
    return {"error": error}


class MetaState(FakePlatform):
    name = "meta"

    def __init__(
        self,
        access_token: str,
        app_secret: str,
        *,
        waba_id: str = META_WABA_ID,
        callback_url: str | None = None,
        webhook_timeout: float = 5.0,
    ) -> None:
        super().__init__(webhook_timeout=webhook_timeout)
        self.access_token = access_token
        self.app_secret = app_secret
        self.waba_id = waba_id
        self._callback_url = callback_url
        self._templates: dict[str, dict[str, Any]] = {}
        self._handshakes: list[Handshake] = []
        self._ids = itertools.count(594425479261596)

    # -- the webhook callback ---------------------------------------------------------------

    @property
    def callback_url(self) -> str | None:
        with self._lock:
            return self._callback_url

    @property
    def handshakes(self) -> list[Handshake]:
        with self._lock:
            return list(self._handshakes)

    def subscribe(self, callback_url: str, verify_token: str) -> bool:
        """Meta's verification request: GET `callback_url` with hub.mode=subscribe, the verify
        token and a random challenge. The callback is kept only when it answers 200 with the
        challenge as its body (as the app dashboard does)."""
        challenge = str(secrets.randbelow(10**10))
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        status: int | None = None
        verified = False
        try:
            with httpx.Client(timeout=self.webhook_timeout) as client:
                response = client.get(callback_url, params=params)
            status = response.status_code
            verified = status == 200 and response.text == challenge
        except httpx.HTTPError:
            pass
        with self._lock:
            self._handshakes.append(Handshake(callback_url, status, verified))
            if verified:
                self._callback_url = callback_url
        return verified

    # -- templates --------------------------------------------------------------------------

    def template(self, template_id: str | int) -> dict[str, Any] | None:
        with self._lock:
            found = self._templates.get(str(template_id))
            return _copy(found) if found is not None else None

    @property
    def templates(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_copy(t) for t in self._templates.values()]

    def add_template(
        self,
        name: str,
        *,
        language: str = "en_US",
        category: str = "UTILITY",
        status: str = "APPROVED",
        quality: str = "UNKNOWN",
        template_id: str | int | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A template of the business account; announces its status (a status update whose
        event is `status`)."""
        if quality not in QUALITY_SCORES:
            raise ValueError(f"quality is one of {', '.join(QUALITY_SCORES)}")
        with self._lock:
            tid = str(template_id) if template_id is not None else str(next(self._ids))
            if tid in self._templates:
                raise ValueError(f"template {tid} exists")
            template = {
                "id": tid,
                "name": name,
                "language": language,
                "status": status,
                "category": category,
                "components": [{"type": "BODY", "text": f"{name}: {{{{1}}}}"}],
                "quality_score": {"score": quality},
                "rejected_reason": "NONE",
            }
            self._templates[tid] = template
            result = _copy(template)
        self._emit([meta_status_change(int(tid), name, language, status)], deliver)
        return result

    def set_template_status(
        self,
        template_id: str | int,
        event: str,
        *,
        reason: str | None = "NONE",
        disable_info: Mapping[str, Any] | None = None,
        other_info: Mapping[str, Any] | None = None,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A `message_template_status_update` with `event` (APPROVED, REJECTED, PAUSED,
        DISABLED, REINSTATED...); the API then reports the status the event leads to."""
        with self._lock:
            template = self._known(template_id)
            template["status"] = STATUS_AFTER_EVENT.get(event, event)
            template["rejected_reason"] = (reason or "NONE") if event == "REJECTED" else "NONE"
            change = meta_status_change(
                int(template["id"]),
                template["name"],
                template["language"],
                event,
                reason=reason,
                disable_info=disable_info,
                other_info=other_info,
            )
            result = _copy(template)
        self._emit([change], deliver)
        return result

    def set_template_quality(
        self, template_id: str | int, score: str, *, deliver: bool = True
    ) -> dict[str, Any]:
        """A `message_template_quality_update` from the current score to `score`."""
        if score not in QUALITY_SCORES:
            raise ValueError(f"quality is one of {', '.join(QUALITY_SCORES)}")
        with self._lock:
            template = self._known(template_id)
            previous = template["quality_score"]["score"]
            template["quality_score"] = {"score": score}
            change = meta_quality_change(
                int(template["id"]), template["name"], template["language"], previous, score
            )
            result = _copy(template)
        self._emit([change], deliver)
        return result

    def page(
        self,
        *,
        limit: int = DEFAULT_PAGE,
        after: str | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of templates after the cursor `after`, and whether more follow."""
        with self._lock:
            found = [
                _copy(t)
                for t in self._templates.values()
                if (status is None or t["status"] == status)
                and (name is None or name.lower() in t["name"].lower())
            ]
        if after is not None:
            tid = _uncursor(after)
            ids = [t["id"] for t in found]
            if tid not in ids:
                raise ValueError("invalid cursor")
            found = found[ids.index(tid) + 1 :]
        return found[:limit], len(found) > limit

    # -- FakePlatform -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "waba_id": self.waba_id,
                "callback_url": self._callback_url,
                "templates": [_copy(t) for t in self._templates.values()],
                "handshakes": [
                    {"url": h.url, "status": h.status, "verified": h.verified}
                    for h in self._handshakes
                ],
            }

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            token = request.query_params.get("access_token", "")
        if token and hmac.compare_digest(token.encode(), self.access_token.encode()):
            return None
        message = (
            "Invalid OAuth access token - Cannot parse access token"
            if token
            else "An active access token must be used to query information about this object."
        )
        return JSONResponse(_graph_error(message, "OAuthException", 190), 401)

    def error_body(self, status: int, message: str) -> Any:
        if status == 429:
            return _graph_error("(#4) Application request limit reached", "OAuthException", 4)
        return _graph_error(message, "OAuthException", 2 if status >= 500 else 100)

    def _event_type(self, item: Any) -> str:
        return str(item["field"])

    def _deliver(self, items: Sequence[Any]) -> list[DeliveryAttempt]:
        with self._lock:
            url, secret, waba = self._callback_url, self.app_secret, self.waba_id
        if url is None:
            return []
        envelope = meta_envelope(items, waba_id=waba, sent=int(time.time()))
        return [self._send(meta_delivery(secret, url, envelope), [i["field"] for i in items])]

    def _known(self, template_id: str | int) -> dict[str, Any]:
        template = self._templates.get(str(template_id))
        if template is None:
            raise LookupError(f"no template {template_id}")
        return template


def create_app(state: MetaState) -> Starlette:
    s = state

    def bad_version(version: str) -> Response | None:
        if VERSION.fullmatch(version):
            return None
        return JSONResponse(
            _graph_error(f"Unknown path components: /{version}", "OAuthException", 2500), 400
        )

    def missing(object_id: str) -> Response:
        message = (
            f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be"
            " loaded due to missing permissions, or does not support this operation."
        )
        return JSONResponse(_graph_error(message, "GraphMethodException", 100, 33), 400)

    async def list_templates(request: Request, _: Any) -> Response:
        p, q = request.path_params, request.query_params
        if (refused := bad_version(p["version"])) is not None:
            return refused
        if p["waba_id"] != s.waba_id:
            return missing(p["waba_id"])
        try:
            limit = int(q.get("limit") or DEFAULT_PAGE)
            if limit < 1:
                raise ValueError("limit must be positive")
            found, more = s.page(
                limit=limit, after=q.get("after"), status=q.get("status"), name=q.get("name")
            )
        except ValueError as exc:
            message = f"(#100) Invalid parameter: {exc}"
            return JSONResponse(_graph_error(message, "OAuthException", 100), 400)
        fields = _fields(q.get("fields"))
        body: dict[str, Any] = {"data": [_view(t, fields) for t in found]}
        if found:
            paging: dict[str, Any] = {
                "cursors": {"before": _cursor(found[0]["id"]), "after": _cursor(found[-1]["id"])}
            }
            if more:
                query = {k: v for k, v in q.items() if k not in ("after", "before")}
                query["after"] = paging["cursors"]["after"]
                paging["next"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?" + (
                    urlencode(query)
                )
            body["paging"] = paging
        return JSONResponse(body)

    async def get_object(request: Request, _: Any) -> Response:
        p = request.path_params
        if (refused := bad_version(p["version"])) is not None:
            return refused
        template = s.template(p["object_id"])
        if template is None:
            return missing(p["object_id"])
        return JSONResponse(_view(template, _fields(request.query_params.get("fields"))))

    api = s.api
    routes: list[BaseRoute] = [
        *s.control_routes(),
        *_control_routes(s),
        Route("/{version}/{waba_id}/message_templates", api(list_templates), methods=["GET"]),
        Route("/{version}/{object_id}", api(get_object), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _control_routes(s: MetaState) -> list[BaseRoute]:
    """`/_fake/...`: templates and their changes, the webhook subscription."""

    def add(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(d.get("name"), str):
            raise ValueError("name is required")
        return s.add_template(
            d["name"],
            language=d.get("language", "en_US"),
            category=d.get("category", "UTILITY"),
            status=d.get("status", "APPROVED"),
            quality=d.get("quality", "UNKNOWN"),
            template_id=d.get("id"),
            deliver=deliver_flag(d),
        )

    def status(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(d.get("event"), str):
            raise ValueError("event is required")
        return s.set_template_status(
            r.path_params["template_id"],
            d["event"],
            reason=d.get("reason", "NONE"),
            disable_info=d.get("disable_info"),
            other_info=d.get("other_info"),
            deliver=deliver_flag(d),
        )

    def quality(r: Request, d: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(d.get("score"), str):
            raise ValueError("score is required")
        return s.set_template_quality(
            r.path_params["template_id"], d["score"], deliver=deliver_flag(d)
        )

    def subscribe(_: Request, d: dict[str, Any]) -> dict[str, Any]:
        url, token = d.get("callback_url"), d.get("verify_token")
        if not isinstance(url, str) or not isinstance(token, str):
            raise ValueError("callback_url and verify_token are required")
        verified = s.subscribe(url, token)
        return {"verified": verified, "status": s.handshakes[-1].status}

    p, c = "/_fake", s.control
    return [
        Route(f"{p}/templates", c(add, 201), methods=["POST"]),
        Route(f"{p}/templates/{{template_id}}/status", c(status), methods=["PUT"]),
        Route(f"{p}/templates/{{template_id}}/quality", c(quality), methods=["PUT"]),
        Route(f"{p}/subscribe", c(subscribe), methods=["POST"]),
    ]


def _fields(value: str | None) -> list[str] | None:
    names = [n.strip() for n in (value or "").split(",") if n.strip()]
    return names or None


def _view(template: Mapping[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """Graph returns the asked-for fields that have a value, and always the id."""
    if fields is None:
        return dict(template)
    return {k: template[k] for k in ["id", *fields] if k in template}


def _copy(template: Mapping[str, Any]) -> dict[str, Any]:
    return dict(template) | {"quality_score": dict(template["quality_score"])}
