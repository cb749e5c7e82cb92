"""Bearer-token guard for the management API (`HOOKYARD_ADMIN_TOKEN`)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from hookyard.providers.signing import constant_time_equal


def require_admin(request: Request) -> None:
    expected: str | None = request.app.state.admin_token
    if not expected:
        raise HTTPException(401, "the management API is disabled: set HOOKYARD_ADMIN_TOKEN")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "send Authorization: Bearer <HOOKYARD_ADMIN_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not constant_time_equal(token, expected):
        raise HTTPException(401, "wrong admin token", headers={"WWW-Authenticate": "Bearer"})
