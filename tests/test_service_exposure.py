"""What the listener that takes webhooks shows to strangers (issue 12): `/metrics` only to a
scraper holding HOOKYARD_METRICS_TOKEN, the admin token or a superadmin's credential — unless
HOOKYARD_METRICS_PUBLIC says the network is private; Swagger UI and ReDoc only when
HOOKYARD_API_DOCS asks for them; `/openapi.json` always (it holds no data)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hookyard.config import Settings
from tests.conftest import SECRETS
from tests.people import People, gateway


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_need_a_superadmins_credential(api: TestClient, people: People) -> None:
    stranger = api.get("/metrics")
    assert stranger.status_code == 401 and stranger.headers["www-authenticate"] == "Bearer"
    assert "HOOKYARD_METRICS_TOKEN" in stranger.json()["detail"]
    assert api.get("/metrics", headers=bearer("a guess")).status_code == 401
    for headers in (bearer(SECRETS["admin"]), people.superadmin()):
        answer = api.get("/metrics", headers=headers)
        assert answer.status_code == 200 and "hookyard_queue_depth" in answer.text
    for role in ("admin", "member", "viewer"):  # a tenant's people see no other tenants' counts
        assert api.get("/metrics", headers=people.headers("acme", role)).status_code == 403


def test_the_metrics_token_is_a_scrapers_credential(settings: Settings) -> None:
    with gateway(settings, metrics_token="scrape-" + "x" * 30) as (client, _):
        answer = client.get("/metrics", headers=bearer("scrape-" + "x" * 30))
        assert answer.status_code == 200 and "hookyard_auth_failures_total" in answer.text
        assert client.get("/metrics", headers=bearer("scrape-wrong")).status_code == 401


def test_metrics_can_be_public_on_a_private_network(settings: Settings) -> None:
    with gateway(settings, metrics_public=True) as (client, _):
        assert client.get("/metrics").status_code == 200


def test_wrong_metrics_tokens_are_throttled_like_any_bearer(api: TestClient) -> None:
    statuses = [api.get("/metrics", headers=bearer(f"guess-{n}")).status_code for n in range(11)]
    assert statuses == [401] * 10 + [429]


def test_api_docs_are_off_unless_asked_for(api: TestClient, settings: Settings) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert api.get(path).status_code == 404, path
    schema = api.get("/openapi.json")
    assert schema.status_code == 200 and "/api/v1/events" in schema.json()["paths"]
    with gateway(settings, api_docs=True) as (client, _):
        assert client.get("/docs").status_code == 200
        assert client.get("/redoc").status_code == 200
