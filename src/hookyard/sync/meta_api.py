"""Meta's Graph API for WhatsApp message templates (a system user's access token)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hookyard.http import ApiClient, ApiError

TEMPLATE_FIELDS = "id,name,language,status,category,quality_score,rejected_reason"


class MetaClient(ApiClient):
    provider = "meta"

    def __init__(self, base_url: str, access_token: str, **options: Any) -> None:
        # base_url carries the Graph API version: https://graph.facebook.com/v21.0
        super().__init__(base_url, headers={"authorization": f"Bearer {access_token}"}, **options)

    def templates(self, waba_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        after: str | None = None
        while True:
            params: dict[str, Any] = {"fields": TEMPLATE_FIELDS, "limit": page_size}
            if after is not None:
                params["after"] = after
            body = self.request("GET", f"/{waba_id}/message_templates", params=params).json()
            if not isinstance(body, dict):
                raise ApiError(self.provider, "templates: not an object", body=body)
            yield from (t for t in body.get("data", []) if isinstance(t, dict))
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not after or not paging.get("next"):
                return
