"""Behind a TLS-terminating proxy (issue 12, docs/security.md "Behind a proxy"): the client a
throttle counts, session cookies marked Secure when the browser's side is https, and HSTS on
https answers of the dashboard and the API. Proxy headers count only when the operator says
the proxy is trusted (HOOKYARD_TRUST_PROXY_HEADERS); anyone can send them."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from hookyard.config import Settings
from hookyard.proxy import client_address, is_https
from tests.people import PASSWORD, People, gateway
from tests.web_support import HTML

PEER = ("192.0.2.10", 40000)
HSTS = "strict-transport-security"


@pytest.mark.parametrize(
    "forwarded, trusted, counted",
    [
        ("203.0.113.7", False, "192.0.2.10"),  # untrusted: the header is anyone's
        ("203.0.113.7", True, "203.0.113.7"),
        ("10.9.9.9, 203.0.113.7", True, "203.0.113.7"),  # the address our proxy appended
        (" 203.0.113.7 , not-an-address", True, "192.0.2.10"),  # a broken proxy: the peer
        ("2001:db8:1:2:aaaa::1", True, "2001:db8:1:2::/64"),  # an IPv6 host holds a /64
        ("[2001:db8:1:2::ffff]", True, "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", True, "203.0.113.7"),
        ("", True, "192.0.2.10"),
    ],
)
def test_the_client_a_throttle_counts(forwarded: str, trusted: bool, counted: str) -> None:
    assert client_address(PEER, {"x-forwarded-for": forwarded}, trusted) == counted


def test_a_client_without_an_address_is_counted_by_its_name() -> None:
    assert client_address(("testclient", 50000), {}, False) == "testclient"
    assert client_address(None, {}, True) == "unknown"


def test_https_is_the_scheme_seen_or_a_trusted_proxys() -> None:
    assert is_https("https", {}, False)
    assert not is_https("http", {"x-forwarded-proto": "https"}, False)
    assert is_https("http", {"x-forwarded-proto": "https"}, True)
    assert is_https("http", {"x-forwarded-proto": "HTTPS, http"}, True)
    assert not is_https("http", {"x-forwarded-proto": "http, https"}, True)


def cookie_flags(answer: httpx.Response) -> dict[str, str]:
    """Cookie name -> its Set-Cookie line, lower case."""
    lines = answer.headers.get_list("set-cookie")
    return {line.split("=", 1)[0]: line.lower() for line in lines}


def log_in(client: TestClient, **headers: str) -> httpx.Response:
    form = {"email": "admin@acme.example.com", "password": PASSWORD}
    answer = client.post("/ui/login", data=form, headers=headers, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer


def test_cookies_are_secure_and_answers_strict_over_https(settings: Settings) -> None:
    with gateway(settings) as (client, _):
        client.base_url = client.base_url.copy_with(scheme="https")
        answer = log_in(client)
        flags = cookie_flags(answer)
        assert "secure" in flags["hookyard_session"] and "secure" in flags["hookyard_csrf"]
        assert answer.headers[HSTS] == "max-age=31536000"
        for path in ("/ui/events", "/api/v1/me", "/health"):
            assert client.get(path, headers=HTML).headers[HSTS] == "max-age=31536000", path


def test_behind_a_trusted_proxy_x_forwarded_proto_decides(settings: Settings) -> None:
    with gateway(settings, trust_proxy_headers=True) as (client, people):
        answer = log_in(client, **{"X-Forwarded-Proto": "https"})
        assert "secure" in cookie_flags(answer)["hookyard_session"]
        assert HSTS in answer.headers
        api = client.get("/api/v1/me", headers={"X-Forwarded-Proto": "https"} | people.superadmin())
        assert api.status_code == 200 and api.headers[HSTS] == "max-age=31536000"
        plain = log_in(client, **{"X-Forwarded-Proto": "http"})
        assert "secure" not in cookie_flags(plain)["hookyard_session"]
        assert HSTS not in plain.headers


def test_an_untrusted_x_forwarded_proto_changes_nothing(api: TestClient, people: People) -> None:
    answer = log_in(api, **{"X-Forwarded-Proto": "https"})
    assert "secure" not in cookie_flags(answer)["hookyard_session"]
    assert HSTS not in answer.headers


def test_settings_force_secure_cookies_and_turn_hsts_off(settings: Settings) -> None:
    with gateway(settings, secure_cookies=True, hsts_seconds=0) as (client, _):
        assert "secure" in cookie_flags(log_in(client))["hookyard_session"]
        client.base_url = client.base_url.copy_with(scheme="https")
        assert HSTS not in log_in(client).headers
