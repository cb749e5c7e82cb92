"""Pages from Jinja2 templates (`web/templates/`): one layout, one template per page.

Everything a template shows came from a provider or a person, so HTML is autoescaped; a
template naming data that is not there fails loudly (StrictUndefined), in the tests first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hookyard.api.auth import Scope
from hookyard.web.session import csrf_token, finish

_env = Environment(
    loader=PackageLoader("hookyard.web", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",)),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Status words to badge colours: good, bad, waiting, neutral (anything else).
_GOOD = {"done", "verified", "vetted_verified", "active", "approved", "registered", "green",
         "resolved", "enriched", "synced", "completed", "accepted", "live", "ok",
         "delivered"}  # fmt: skip
_BAD = {"dead", "failed", "rejected", "unverified", "disabled", "paused", "red", "expired",
        "suspended", "deleted", "flagged", "error", "not_same_person", "offline",
        "refused", "closed"}  # fmt: skip
_WAIT = {"pending", "processing", "review", "in_review", "pending_review", "yellow",
         "acknowledged", "running", "queued", "in_progress", "not_applied",
         "retry", "sending", "enriched_single_source"}  # fmt: skip

# What an action tells the person on the page it leads back to (`?notice=`); a code, not
# text, so a link cannot make the dashboard say something it did not.
NOTICES = {
    "preferences_saved": "Notification preferences saved.",
    "chat_saved": "Chat webhook saved.",
    "chat_removed": "Chat webhook removed.",
    "replayed": "Replayed: the worker takes it from here.",
    "bulk_replayed": "The matching events were replayed.",
    "resolved": "Conflict resolved.",
    "acknowledged": "Acknowledged.",
    "resumed": "Campaign resumed.",
    "campaign_created": "Campaign created.",
    "campaign_paused": "Campaign paused.",
    "campaign_deleted": "Campaign deleted.",
    "campaigns_resumed": "The campaigns paused for this template were resumed.",
    "re_enrich": "Enrichment requested.",
    "tenant": "Now acting for the tenant picked.",
    "registration_retried": "Registration queued again: a worker sends it to TCR now.",
    "customer_created": "Customer created.",
    "customer_changed": "Saved: the change is on its way to HubSpot.",
    "customer_closed": "Customer closed.",
    "retried": "Queued to be sent again.",
    "destination_paused": "Paused: its deliveries wait until it is resumed.",
    "destination_resumed": "Resumed: its waiting deliveries go out now.",
    "delivery_replayed": "Replayed: it is sent again now, with the same webhook-id.",
    "deliveries_replayed": "The matching deliveries were replayed.",
    "deliveries_discarded": "The waiting deliveries were discarded (dead, replayable).",
}


def badge(value: Any) -> str:
    word = str(value or "").lower()
    if word in _GOOD:
        return "good"
    if word in _BAD:
        return "bad"
    if word in _WAIT:
        return "wait"
    return "neutral"


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def query(request: Request, **changes: Any) -> str:
    """The current URL's query with `changes` (None drops a key): for paging and filters."""
    params = {k: v for k, v in request.query_params.items() if k != "notice"}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


_env.filters.update(badge=badge, when=when, pretty=pretty)
_env.globals.update(query=query)


def page(
    request: Request, scope: Scope | None, template: str, status: int = 200, **context: Any
) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = _env.get_template(template).render(
        request=request,
        scope=scope,
        csrf=csrf_token(request),
        notice=notice,
        path=request.url.path,
        **context,
    )
    return finish(request, HTMLResponse(html, status_code=status))


def dashboard_path(target: str | None, fallback: str) -> str:
    """`target` when it is a page of the dashboard on this site, else `fallback`: what a
    `next=` may lead to (never another site: no open redirect)."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/"):
        return fallback
    if parts.path.startswith("/ui//"):
        return fallback
    return target


def back(request: Request, fallback: str, notice: str | None = None, **extra: Any) -> Response:
    """After a change: 303 to where the form said to go back to (a path of the dashboard
    only, never another site), with a notice for the page."""
    target = dashboard_path(request.query_params.get("next"), fallback)
    if notice is not None:
        params: Mapping[str, Any] = {"notice": notice, **extra}
        target += ("&" if "?" in target else "?") + urlencode(params)
    return finish(request, RedirectResponse(target, status_code=303))


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def error_page(request: Request, status: int, detail: str) -> Response:
    """An error of a dashboard request: the page for a browser, the fragment htmx shows in
    its notice area, or the usual JSON `{detail}` for anything else."""
    if not wants_html(request):
        return Response(
            json.dumps({"detail": detail}), status_code=status, media_type="application/json"
        )
    scope: Scope | None = getattr(request.state, "ui_scope", None)
    template = "fragments/error.html" if "hx-request" in request.headers else "error.html"
    return page(request, scope, template, status=status, status_code=status, detail=detail)
