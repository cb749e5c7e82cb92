"""HubSpot CRM v3: companies, their search, and the company properties (a private app's
access token as a bearer token)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hookyard.http import ApiClient, ApiError, RateLimiter

COMPANIES = "/crm/v3/objects/companies"
PROPERTIES = "/crm/v3/properties/companies"
# HubSpot's search endpoints take 5 requests a second per account; we stay under it.
SEARCH_RATE_PER_SECOND = 4.0
MAX_SEARCH_PAGE = 200


@dataclass(frozen=True, slots=True)
class SearchPage:
    results: list[dict[str, Any]]
    total: int
    after: str | None  # HubSpot's cursor of the next page; None on the last


class HubSpotClient(ApiClient):
    provider = "hubspot"

    def __init__(self, base_url: str, access_token: str, **options: Any) -> None:
        super().__init__(base_url, headers={"authorization": f"Bearer {access_token}"}, **options)
        self._search_limiter = RateLimiter(SEARCH_RATE_PER_SECOND, options.get("sleep", time.sleep))

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
        self._search_limiter.wait()
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

    def search(
        self,
        properties: Sequence[str],
        *,
        query: str | None = None,
        filters: Sequence[dict[str, Any]] = (),
        after: str | None = None,
        limit: int = 10,
    ) -> SearchPage:
        """One page of the search API: `query` (HubSpot's text search of a company's name,
        domain, website and phone) and/or `filters` (all must match), by name."""
        body: dict[str, Any] = {
            "properties": list(properties),
            "limit": max(1, min(limit, MAX_SEARCH_PAGE)),
            "sorts": [{"propertyName": "name", "direction": "ASCENDING"}],
        }
        if query:
            body["query"] = query
        if filters:
            body["filterGroups"] = [{"filters": list(filters)}]
        if after:
            body["after"] = after
        self._search_limiter.wait()
        found = self.request("POST", f"{COMPANIES}/search", json=body, idempotent=True).json()
        results = [_object(item) for item in found.get("results") or []]
        cursor = ((found.get("paging") or {}).get("next") or {}).get("after")
        total = found.get("total")
        return SearchPage(
            results, int(total) if isinstance(total, int) else len(results), cursor or None
        )

    def properties(self) -> list[dict[str, Any]]:
        """Every company property HubSpot has (the CRM properties API)."""
        body = self.request("GET", PROPERTIES, params={"archived": "false"}).json()
        return [p for p in body.get("results") or [] if isinstance(p, dict)]

    def create_property(self, definition: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.request("POST", PROPERTIES, json=definition).json()
        return body

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
