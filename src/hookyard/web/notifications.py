"""Dashboard page of notification preferences: the person's own, per kind (off, immediate,
daily digest, or the role's default), and for an admin any person of their tenant's
(`?user=ID`); for an admin acting for a tenant, the tenant's chat webhook too (its host and
signing secret shown, never its whole URL). Reads and changes through the API's route
functions (`api/notifications.py`), so the page can do no more than the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from hookyard.api import accounts as accounts_api
from hookyard.api import notifications as api
from hookyard.api.params import MAX_ID
from hookyard.notify import chat
from hookyard.notify.kinds import Kind
from hookyard.notify.preferences import Choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()
UserParam = Annotated[int | None, Query(ge=1, le=MAX_ID)]
DEFAULT = "default"  # the form's word for "the role's default"


@router.get("/notifications")
def preferences_page(request: Request, scope: UiScope, user: UserParam = None) -> Response:
    is_admin = scope.principal.at_least("admin")
    if user is None or user == scope.principal.user_id:
        if scope.principal.user_id is None:
            raise HTTPException(400, "the admin token is no person: log in as a user to choose")
        found = call(api.my_preferences, request, scope)
    else:
        found = call(api.user_preferences, request, scope, user_id=user)
    people = call(accounts_api.list_users, request, scope) if is_admin else []
    hook: api.ChatWebhookOut | None = None
    if is_admin and scope.tenant is not None:
        try:
            hook = call(api.chat_webhook, request, scope)
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
    return page(
        request,
        scope,
        "notifications.html",
        prefs=found,
        people=people,
        choices=[c.value for c in Choice],
        own=found.user_id == scope.principal.user_id,
        chat_allowed=is_admin and scope.tenant is not None,
        hook=hook,
    )


@router.post("/notifications", dependencies=[Csrf])
async def save_preferences(request: Request, scope: UiScope, user: UserParam = None) -> Response:
    form = await request.form()
    wanted: dict[Kind, Choice | None] = {}
    for kind in Kind:
        value = form.get(f"kind.{kind.value}")
        if value is None:
            continue
        if value == DEFAULT:
            wanted[kind] = None
        elif isinstance(value, str) and value in {c.value for c in Choice}:
            wanted[kind] = Choice(value)
        else:
            known = ", ".join([*(c.value for c in Choice), DEFAULT])
            raise HTTPException(400, f"{kind.value}: {str(value)[:50]!r} is not one of {known}")
    body = api.PreferencesChange(preferences=wanted)
    if user is None or user == scope.principal.user_id:
        call(api.set_my_preferences, request, scope, body=body)
        target = "/ui/notifications"
    else:
        call(api.set_user_preferences, request, scope, user_id=user, body=body)
        target = f"/ui/notifications?user={user}"
    return back(request, target, "preferences_saved")


@router.post("/notifications/chat", dependencies=[Csrf])
async def save_chat_webhook(request: Request, scope: UiScope) -> Response:
    form = await request.form()
    url = str(form.get("url", "")).strip()[:2000]
    if len(url) < 8 or (reason := chat.check_url(url)) is not None:
        raise HTTPException(400, f"url: {reason if len(url) >= 8 else 'give the whole URL'}")
    body = api.ChatWebhookIn(
        url=url,
        enabled=form.get("enabled") == "on",
        rotate_secret=form.get("rotate_secret") == "on",
    )
    call(api.set_chat_webhook, request, scope, body=body)
    return back(request, "/ui/notifications", "chat_saved")


@router.post("/notifications/chat/delete", dependencies=[Csrf])
def delete_chat_webhook(request: Request, scope: UiScope) -> Response:
    call(api.delete_chat_webhook, request, scope)
    return back(request, "/ui/notifications", "chat_removed")
