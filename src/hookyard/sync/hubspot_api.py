"""HubSpot CRM v3 companies (a private app's access token as a bearer token)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hookyard.http import ApiClient, ApiError

COMPANIES = "/crm/v3/objects/companies"


class HubSpotClient(ApiClient):
    provider = "hubspot"

    def __init__(self, base_url: str, access_token: str, **options: Any) -> None:
        super().__init__(base_url, headers={"authorization": f"Bearer {access_token}"}, **options)

    def company(self, company_id: str, properties: Sequence[str]) -> dict[str, Any] | None:
        response = self.request(
            "GET",
            f"{COMPANIES}/{company_id}",
            params={"properties": ",".join(properties)},
            ok_statuses=frozenset({404}),
        )
        return None if response.status_code == 404 else _object(response.json())

    def companies(
        self, properties: Sequence[str], page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every company, page by page."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, "properties": ",".join(properties)}
            if after is not None:
                params["after"] = after
            body = self.request("GET", COMPANIES, params=params).json()
            yield from (_object(item) for item in body.get("results", []))
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return

    def find_by(self, prop: str, value: str, properties: Sequence[str]) -> dict[str, Any] | None:
        """The first company whose `prop` equals `value` (search API)."""
        body = self.request(
            "POST",
            f"{COMPANIES}/search",
            json={
                "filterGroups": [
                    {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
                ],
                "properties": list(properties),
                "limit": 1,
            },
            idempotent=True,  # a read sent as a POST
        ).json()
        results = body.get("results") or []
        return _object(results[0]) if results else None

    def create_company(self, properties: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", COMPANIES, json={"properties": properties}).json())

    def update_company(self, company_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        # Sets the values given, whatever they were: sending it twice leaves the same company.
        body = self.request(
            "PATCH",
            f"{COMPANIES}/{company_id}",
            json={"properties": properties},
            idempotent=True,
        )
        return _object(body.json())


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or "id" not in body:
        raise ApiError("hubspot", "a company without an id", body=body)
    body.setdefault("properties", {})
    return body


def field_errors(error: ApiError) -> dict[str, str]:
    """HubSpot's VALIDATION_ERROR as property name -> message."""
    found: dict[str, str] = {}
    body = error.body if isinstance(error.body, dict) else {}
    for item in body.get("errors") or []:
        if not isinstance(item, dict):
            continue
        names = (item.get("context") or {}).get("propertyName") or []
        for name in names if isinstance(names, list) else [names]:
            found[str(name)] = str(item.get("message") or item.get("code") or "invalid")
    return found
