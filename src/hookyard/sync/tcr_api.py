"""The Campaign Registry's CSP API v2 (HTTP basic auth with the CSP's API key and secret)."""

from __future__ import annotations

from typing import Any

import httpx

from hookyard.http import ApiClient, ApiError

CATEGORIES = ("BRAND", "CAMPAIGN", "VETTING")


class TCRClient(ApiClient):
    provider = "tcr"

    def __init__(self, base_url: str, api_key: str, api_secret: str, **options: Any) -> None:
        super().__init__(base_url, auth=httpx.BasicAuth(api_key, api_secret), **options)

    def brand(self, brand_id: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/v2/brand/{brand_id}")

    def campaign(self, campaign_id: str) -> dict[str, Any] | None:
        return self._get_or_none(f"/v2/campaign/{campaign_id}")

    def operation_status(self, campaign_id: str) -> dict[str, str]:
        """MNO id -> that carrier's status of the campaign."""
        body = self.request("GET", f"/v2/campaign/{campaign_id}/operationStatus").json()
        if not isinstance(body, dict):
            raise ApiError(self.provider, "operationStatus is not an object", body=body)
        return {str(k): str(v) for k, v in body.items() if isinstance(v, str)}

    def subscribe(self, category: str, endpoint: str) -> dict[str, Any]:
        """Idempotent: subscribing a category again replaces its endpoint."""
        body = {"eventCategory": category, "webhookEndpoint": endpoint}
        result = self.request("PUT", "/v2/webhook/subscription", json=body).json()
        return result if isinstance(result, dict) else body

    def subscriptions(self) -> list[dict[str, Any]]:
        body = self.request("GET", "/v2/webhook/subscription").json()
        return [s for s in body if isinstance(s, dict)] if isinstance(body, list) else []

    def unsubscribe(self, category: str) -> None:
        self.request("DELETE", f"/v2/webhook/subscription/{category}", ok_statuses=_NOT_FOUND)

    def event_types(self) -> list[dict[str, Any]]:
        body = self.request("GET", "/v2/webhook/eventType").json()
        return [t for t in body if isinstance(t, dict)] if isinstance(body, list) else []

    def register_brand(self, brand: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """`POST /v2/brand/nonBlocking`: TCR answers with the new brand (verification goes on
        asynchronously and arrives as webhooks) or with its field errors (ApiError.body)."""
        body = self.request("POST", "/v2/brand/nonBlocking", json=brand, timeout=timeout).json()
        if not isinstance(body, dict) or not body.get("brandId"):
            raise ApiError(self.provider, "brand registered without a brandId", body=body)
        return body

    def update_brand(self, brand_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """`PUT /v2/brand/{brandId}` with the fields to change: the brand as TCR now has it,
        or ApiError carrying TCR's field errors."""
        body = self.request("PUT", f"/v2/brand/{brand_id}", json=fields).json()
        if not isinstance(body, dict):
            raise ApiError(self.provider, "brand update answered without a brand", body=body)
        return body

    def brand_by_reference(self, reference_id: str) -> dict[str, Any] | None:
        """`GET /v2/brand?referenceId=`: the brand registered with our reference, if any (an
        earlier attempt whose answer never arrived may have registered it)."""
        body = self.request("GET", "/v2/brand", params={"referenceId": reference_id}).json()
        records = body.get("records") if isinstance(body, dict) else body
        if not isinstance(records, list):
            return None
        found = [r for r in records if isinstance(r, dict) and r.get("referenceId") == reference_id]
        return found[0] if found and found[0].get("brandId") else None

    def enum(self, name: str) -> set[str]:
        """`GET /v2/enum/{name}` (entityType, vertical, brandRelationship...): its values. TCR
        answers a list of words, or of objects, or an object keyed by value: all are read."""
        body = self.request("GET", f"/v2/enum/{name}").json()
        items = list(body) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ApiError(self.provider, f"enum {name}: not a list", body=body)
        values = set()
        for item in items:
            if isinstance(item, str):
                values.add(item)
            elif isinstance(item, dict):
                for key in ("value", "id", "code", "name"):
                    if isinstance(item.get(key), str):
                        values.add(item[key])
                        break
        return values

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        response = self.request("GET", path, ok_statuses=_NOT_FOUND)
        if response.status_code == 404:
            return None
        body = response.json()
        if not isinstance(body, dict):
            raise ApiError(self.provider, f"GET {path}: not an object", body=body)
        return body


_NOT_FOUND = frozenset({404})
