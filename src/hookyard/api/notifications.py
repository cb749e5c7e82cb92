"""`/api/v1/me/notification-preferences` and `/api/v1/users/{id}/notification-preferences`:
which notifications a person receives, per kind: `off`, `immediate` or `daily_digest`
(docs/notifications.md). Everyone reads and sets their own; an admin reads and sets their
tenant's people's (a superadmin anyone's, or the picked tenant's). Another tenant's person is
a 404, like a missing one. A kind a person never chose follows their role's default
(`notify/preferences.py`); `null` as a choice goes back to it.

`/api/v1/notification-channels/chat`: the tenant's chat webhook (admins): every notification
of the tenant is also POSTed there, signed with the tenant's secret (`notify/chat.py`). The
URL is a credential: answers show its host only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine

from hookyard.accounts import identity
from hookyard.api.auth import AdminScope, Scope, ViewerScope, engine_of
from hookyard.api.params import RowId
from hookyard.db.engine import writer
from hookyard.notify import chat
from hookyard.notify import preferences as prefs
from hookyard.notify.kinds import ABOUT, Kind
from hookyard.notify.preferences import Choice

router = APIRouter(prefix="/api/v1", tags=["notifications"])
Engine_ = Annotated[Engine, Depends(engine_of)]


class KindPreference(BaseModel):
    kind: Kind
    choice: Choice = Field(description="what the person receives of this kind")
    default: Choice = Field(description="the role's default, applying while not chosen")
    chosen: bool = Field(description="false: the role's default applies")
    about: str = Field(description="what the kind tells of")


class Preferences(BaseModel):
    user_id: int
    email: str
    role: identity.Role
    items: list[KindPreference]


class PreferencesChange(BaseModel):
    """Kinds not named keep their choice."""

    model_config = ConfigDict(extra="forbid")
    preferences: dict[Kind, Choice | None] = Field(
        description="kind -> off | immediate | daily_digest, or null for the role's default",
        max_length=len(Kind),
    )


def _answer(conn: Connection, person: dict[str, Any]) -> Preferences:
    own = prefs.own_rows(conn, int(person["id"]))
    default = Choice.of(prefs.default_for(person["role"]))
    items = [
        KindPreference(
            kind=kind,
            choice=Choice.of(own[kind]) if kind in own else default,
            default=default,
            chosen=kind in own,
            about=ABOUT[kind],
        )
        for kind in Kind
    ]
    return Preferences(
        user_id=person["id"], email=person["email"], role=person["role"], items=items
    )


def _own(scope: Scope) -> int:
    user_id = scope.principal.user_id
    if user_id is None:
        raise HTTPException(400, "the admin token is no person: log in as a user to choose")
    return user_id


def _person(conn: Connection, scope: Scope, user_id: int) -> dict[str, Any]:
    person = identity.find_user(conn, user_id, scope.tenant)
    if person is None:
        raise HTTPException(404, f"no user {user_id}")
    return person


def read(engine: Engine, scope: Scope, user_id: int) -> Preferences:
    with engine.connect() as conn:
        return _answer(conn, _person(conn, scope, user_id))


def change(engine: Engine, scope: Scope, user_id: int, body: PreferencesChange) -> Preferences:
    with writer(engine).begin() as tx:
        person = _person(tx, scope, user_id)
        prefs.choose(tx, user_id, body.preferences)
        return _answer(tx, person)


@router.get("/me/notification-preferences", response_model=Preferences)
def my_preferences(scope: ViewerScope, engine: Engine_) -> Preferences:
    """Every kind, as it applies to the calling person."""
    user_id = _own(scope)
    with engine.connect() as conn:
        person = identity.find_user(conn, user_id, None)
        if person is None:
            raise HTTPException(404, f"no user {user_id}")
        return _answer(conn, person)


@router.put("/me/notification-preferences", response_model=Preferences)
def set_my_preferences(scope: ViewerScope, engine: Engine_, body: PreferencesChange) -> Preferences:
    """Any role sets their own; the answer is every kind as it now applies."""
    user_id = _own(scope)
    own = Scope(scope.principal, None)  # their own row, whatever tenant they act for
    return change(engine, own, user_id, body)


@router.get("/users/{user_id}/notification-preferences", response_model=Preferences)
def user_preferences(scope: AdminScope, engine: Engine_, user_id: RowId) -> Preferences:
    return read(engine, scope, user_id)


@router.put("/users/{user_id}/notification-preferences", response_model=Preferences)
def set_user_preferences(
    scope: AdminScope, engine: Engine_, user_id: RowId, body: PreferencesChange
) -> Preferences:
    return change(engine, scope, user_id, body)


# -- the tenant's chat webhook ------------------------------------------------------------------


class ChatWebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, description="the incoming webhook's URL")
    enabled: bool = True
    rotate_secret: bool = Field(default=False, description="make a new signing secret")


class ChatWebhookOut(BaseModel):
    tenant: str
    url: str = Field(description="scheme and host only: the URL is a credential")
    enabled: bool
    secret: str = Field(description="verifies the webhook-signature header (Standard Webhooks)")
    created_at: datetime
    updated_at: datetime


def _chat_out(hook: chat.ChatWebhook) -> ChatWebhookOut:
    return ChatWebhookOut(
        tenant=hook.tenant,
        url=hook.host,
        enabled=hook.enabled,
        secret=hook.secret,
        created_at=hook.created_at,
        updated_at=hook.updated_at,
    )


@router.get("/notification-channels/chat", response_model=ChatWebhookOut)
def chat_webhook(scope: AdminScope, engine: Engine_) -> ChatWebhookOut:
    tenant = scope.require_tenant()
    with engine.connect() as conn:
        hook = chat.find(conn, tenant)
    if hook is None:
        raise HTTPException(404, "no chat webhook is set for this tenant")
    return _chat_out(hook)


@router.put("/notification-channels/chat", response_model=ChatWebhookOut)
def set_chat_webhook(scope: AdminScope, engine: Engine_, body: ChatWebhookIn) -> ChatWebhookOut:
    """Set (or replace) the URL; the signing secret is made the first time and kept, unless
    `rotate_secret`."""
    tenant = scope.require_tenant()
    url = body.url.strip()
    if (reason := chat.check_url(url)) is not None:
        raise HTTPException(400, f"url: {reason}")
    hook = chat.configure(engine, tenant, url, enabled=body.enabled, rotate=body.rotate_secret)
    return _chat_out(hook)


@router.delete("/notification-channels/chat", status_code=204)
def delete_chat_webhook(scope: AdminScope, engine: Engine_) -> Response:
    if not chat.remove(engine, scope.require_tenant()):
        raise HTTPException(404, "no chat webhook is set for this tenant")
    return Response(status_code=204)
