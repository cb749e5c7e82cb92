"""The dashboard's contract, over HTTP: logging in (password or admin token), the session and
CSRF cookies, the tenant picker, roles equal to the API's, tenant isolation, the events
pages (filter, search, payload, replay, bulk replay), sources, delivery statistics, and
errors that are pages for browsers and JSON for anything else (never a 500)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hookyard.accounts import identity
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime
from hookyard.testing.fakes.server import serving
from hookyard.web.session import SECURITY_HEADERS
from tests.conftest import SECRETS
from tests.people import PASSWORD, People
from tests.support import LEAD, SOURCES_TOML, TENANT_SOURCES, add, set_status
from tests.web_support import HTML, csrf, errors, login, post


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML + TENANT_SOURCES)  # and acme-hooks, globex-hooks
    return path


# -- logging in -----------------------------------------------------------------------------


def test_a_page_sends_a_stranger_to_the_login_form(api: TestClient) -> None:
    answer = api.get("/ui/events?status=dead", headers=HTML, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/ui/login?next=%2Fui%2Fevents%3Fstatus%3Ddead",
    )
    form = api.get(answer.headers["location"], headers=HTML)
    assert form.status_code == 200
    assert 'name="next" value="/ui/events?status=dead"' in form.text
    # htmx asking for a fragment is told to load the login page instead.
    fragment = api.get("/ui/events", headers={"hx-request": "true"}, follow_redirects=False)
    assert (fragment.status_code, fragment.headers["hx-redirect"]) == (
        401,
        "/ui/login?next=%2Fui%2Fevents",
    )


def test_logging_in_sets_httponly_strict_cookies(api: TestClient, people: People) -> None:
    answer = api.post(
        "/ui/login",
        data={"email": "Admin@Acme.example.com", "password": PASSWORD, "next": "/ui/sources"},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/sources")
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    for name in ("hookyard_session", "hookyard_csrf"):
        assert "httponly" in cookies[name]
        assert "samesite=strict" in cookies[name]
        assert "path=/" in cookies[name]
    assert api.get("/ui/sources", headers=HTML).status_code == 200
    # The cookie is the API's own session: the same token works as a bearer.
    token = api.cookies["hookyard_session"]
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["role"], me["tenant"]) == ("admin", "acme")


def test_wrong_credentials_show_the_form_again(api: TestClient, people: People) -> None:
    for form in (
        {"email": "admin@acme.example.com", "password": "wrong"},
        {"email": "nobody@acme.example.com", "password": PASSWORD},
        {"token": "not-the-admin-token"},
    ):
        answer = api.post("/ui/login", data=form, headers=HTML, follow_redirects=False)
        assert answer.status_code == 401
        assert "hookyard_session" not in answer.headers.get("set-cookie", "")
        assert errors(answer.text), answer.text


def test_another_sites_page_cannot_log_anyone_in(api: TestClient, people: People) -> None:
    form = {"email": "admin@acme.example.com", "password": PASSWORD}
    answer = api.post("/ui/login", data=form, headers={"origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "hookyard_session" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/api/v1/me"])
def test_login_goes_back_to_dashboard_pages_only(
    api: TestClient, people: People, target: str
) -> None:
    answer = api.post(
        "/ui/login",
        data={"email": "admin@acme.example.com", "password": PASSWORD, "next": target},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/ui/events"


def test_the_operator_logs_in_with_the_admin_token(api: TestClient, runtime: Runtime) -> None:
    answer = api.post("/ui/login", data={"token": SECRETS["admin"]}, follow_redirects=False)
    assert answer.status_code == 303
    page = api.get("/ui/events", headers=HTML)
    assert page.status_code == 200 and "superadmin" in page.text
    # The session is no copy of the admin token, and dies with it.
    session = api.cookies["hookyard_session"]
    assert SECRETS["admin"] not in session
    claims = jwt.decode(session, options={"verify_signature": False})
    assert claims["sub"] == "admin-token" and SECRETS["admin"] not in json.dumps(claims)
    with pytest.raises(identity.AuthError, match="admin token changed"):
        identity.read_session(runtime.engine, session, SECRETS["session"], "a-rotated-token")


def test_logins_are_off_without_a_session_secret(settings: Settings) -> None:
    runtime = Runtime.build(settings.model_copy(update={"session_secret": None}))
    try:
        with TestClient(create_app(runtime, run_workers=False)) as client:
            answer = client.post("/ui/login", data={"email": "a@b.example", "password": "x"})
    finally:
        runtime.close()
    assert answer.status_code == 503
    assert "HOOKYARD_SESSION_SECRET" in answer.text


def test_a_session_is_renewed_while_used(api: TestClient, runtime: Runtime, people: People) -> None:
    login(api, "member@acme.example.com")
    fresh = api.get("/ui/sources", headers=HTML)
    assert "hookyard_session" not in fresh.headers.get("set-cookie", "")
    # A session past half its life gets a new one on the next page.
    principal = identity.login(runtime.engine, "member@acme.example.com", PASSWORD)
    now = datetime.now(UTC)
    claims = {"sub": principal.subject, "iat": now - timedelta(minutes=10),
              "exp": now + timedelta(minutes=5)}  # fmt: skip
    aged = jwt.encode(claims, SECRETS["session"], "HS256")
    renewed = api.get("/ui/sources", headers=HTML, cookies={"hookyard_session": aged})
    assert renewed.status_code == 200
    found = re.search(r"hookyard_session=([^;]+)", renewed.headers["set-cookie"])
    assert found is not None
    token = found.group(1)
    left = jwt.decode(token, options={"verify_signature": False})["exp"] - now.timestamp()
    assert left > 14 * 60


def test_a_session_of_a_disabled_person_ends(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    from sqlalchemy import update

    from hookyard.accounts.tables import users

    login(api, "member@acme.example.com")
    with runtime.engine.begin() as tx:
        tx.execute(update(users).where(users.c.email == "member@acme.example.com").values(
            disabled_at=datetime.now(UTC)))  # fmt: skip
    answer = api.get("/ui/events", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def test_logging_out_forgets_the_cookies(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    answer = post(api, "/ui/logout")
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/login")
    assert api.get("/ui/events", headers=HTML, follow_redirects=False).status_code == 303


def test_pages_carry_the_security_headers(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    for path in ("/ui/events", "/ui/login", "/ui/events/999"):
        answer = api.get(path, headers=HTML)
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (path, name)
    assert "script-src 'self'" in SECURITY_HEADERS["Content-Security-Policy"]


# -- changes need the CSRF token and this site's Origin ---------------------------------


def test_a_change_without_the_csrf_token_is_refused(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    [event] = add(runtime, "acme")
    set_status(runtime, [event], "dead")
    login(api, "admin@acme.example.com")
    path = f"/ui/events/{event}/replay"
    for form, headers in (
        ({}, HTML),
        ({"csrf": "forged"}, HTML),
        ({"csrf": csrf(api)}, HTML | {"origin": "https://evil.example"}),
    ):
        answer = api.post(path, data=form, headers=headers, follow_redirects=False)
        assert answer.status_code == 403, form
    # htmx sends it as a header; a form as a field.
    answer = api.post(path, headers={"x-csrf-token": csrf(api)}, follow_redirects=False)
    assert answer.status_code == 303
    assert (
        api.post(path, data={"csrf": csrf(api)}, headers={"origin": "http://testserver"},
                 follow_redirects=False).status_code == 303
    )  # fmt: skip


# -- roles are the API's ---------------------------------------------------------------------


def test_replay_needs_the_apis_admin_role(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    [event] = add(runtime, "acme")
    set_status(runtime, [event], "dead")
    for role, expected in (("viewer", 403), ("member", 403), ("admin", 303)):
        login(api, f"{role}@acme.example.com")
        page = api.get(f"/ui/events/{event}", headers=HTML)
        assert ("Replay</button>" in page.text) is (role == "admin")
        answer = post(api, f"/ui/events/{event}/replay")
        assert answer.status_code == expected, (role, answer.text)
    assert answer.headers["location"] == f"/ui/events/{event}?notice=replayed"
    shown = api.get(answer.headers["location"], headers=HTML).text
    assert "Replayed: the worker takes it from here." in shown
    assert "replayed 1 time" in shown


def test_the_tenant_picker_is_a_superadmins(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    acme, globex = add(runtime, "acme"), add(runtime, "globex", "globex-hooks")
    login(api, "root@example.com")
    assert _event_ids(api.get("/ui/events", headers=HTML).text) >= {*acme, *globex}

    picked = post(api, "/ui/tenant?next=/ui/sources", tenant="GX000000002")
    assert picked.headers["location"] == "/ui/sources?notice=tenant"
    assert _event_ids(api.get("/ui/events", headers=HTML).text) == set(globex)
    assert api.get(f"/ui/events/{acme[0]}", headers=HTML).status_code == 404
    assert post(api, "/ui/tenant", tenant="nope").status_code == 404
    post(api, "/ui/tenant", tenant="")  # every tenant again
    assert _event_ids(api.get("/ui/events", headers=HTML).text) >= {*acme, *globex}

    login(api, "admin@acme.example.com")
    assert post(api, "/ui/tenant", tenant="globex").status_code == 403
    api.cookies.set("hookyard_tenant", "globex")  # a forged cookie changes nothing
    assert _event_ids(api.get("/ui/events", headers=HTML).text) == set(acme)


def _event_ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'data-event-id="(\d+)"', html)}


# -- events ---------------------------------------------------------------------------------


def test_events_filter_and_search(api: TestClient, runtime: Runtime, people: People) -> None:
    lead = add(runtime, "acme", key="lead-abc-1", entity="lead:abc")
    other = add(runtime, "acme", event_type="invoice.paid", n=2)
    set_status(runtime, other[:1], "dead", last_error="RuntimeError: boom")
    add(runtime, "globex", "globex-hooks", n=3)
    login(api, "member@acme.example.com")

    def shown(query: str) -> set[int]:
        answer = api.get("/ui/events" + query, headers=HTML)
        assert answer.status_code == 200, answer.text
        return _event_ids(answer.text)

    assert shown("") == {*lead, *other}
    assert shown("?q=ABC") == set(lead)
    assert shown("?status=dead") == set(other[:1])
    assert shown("?event_type=invoice.paid&status=") == set(other)
    assert shown("?source=globex-hooks") == set()
    dead = api.get("/ui/events?status=dead", headers=HTML).text
    assert "RuntimeError: boom" in dead and "<h1>Dead letters</h1>" in dead
    assert "Replay every dead event" not in dead  # a member replays nothing
    assert api.get("/ui/dead", follow_redirects=False).headers["location"] == (
        "/ui/events?status=dead"
    )


def test_events_page_in_pages(api: TestClient, runtime: Runtime, people: People) -> None:
    ids = add(runtime, "acme", n=53)
    login(api, "viewer@acme.example.com")
    first = api.get("/ui/events", headers=HTML).text
    assert _event_ids(first) == set(ids[3:])
    older = re.search(r'href="\?before_id=(\d+)"', first)
    assert older is not None and int(older.group(1)) == ids[3]
    assert _event_ids(api.get(f"/ui/events?before_id={ids[3]}", headers=HTML).text) == set(ids[:3])


def test_a_viewer_sees_the_payload_masked(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    [event] = add(runtime, "acme", payload=LEAD)
    login(api, "viewer@acme.example.com")
    page = api.get(f"/ui/events/{event}", headers=HTML).text
    assert "maria.test@example.com" not in page and "11987654321" not in page
    assert "personal data masked" in page and "Raw body" not in page
    login(api, "member@acme.example.com")
    page = api.get(f"/ui/events/{event}", headers=HTML).text
    # The payload, but not the request's raw bytes (superadmins only: a request can carry
    # other tenants' events).
    assert "maria.test@example.com" in page and "Raw body" not in page


def test_another_tenants_event_is_a_404(api: TestClient, runtime: Runtime, people: People) -> None:
    [theirs] = add(runtime, "globex", "globex-hooks")
    set_status(runtime, [theirs], "dead")
    login(api, "admin@acme.example.com")
    assert api.get(f"/ui/events/{theirs}", headers=HTML).status_code == 404
    assert post(api, f"/ui/events/{theirs}/replay").status_code == 404
    answer = post(api, "/ui/events/replay", status="dead")
    assert answer.headers["location"] == "/ui/events?status=dead&notice=bulk_replayed&n=0"


def test_bulk_replay_replays_the_filters_dead_events(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    dead = add(runtime, "acme", n=3)
    set_status(runtime, dead, "dead")
    kept = add(runtime, "acme", event_type="other.type")
    set_status(runtime, kept, "dead")
    login(api, "admin@acme.example.com")
    page = api.get("/ui/events?status=dead&event_type=lead.created", headers=HTML).text
    assert "Replay every dead event matching this filter" in page
    answer = post(
        api, "/ui/events/replay?next=/ui/events%3Fstatus%3Ddead", status="dead",
        event_type="lead.created",
    )  # fmt: skip
    assert answer.headers["location"] == "/ui/events?status=dead&notice=bulk_replayed&n=3"
    assert "(3)" in api.get(answer.headers["location"], headers=HTML).text
    assert _event_ids(api.get("/ui/events?status=dead", headers=HTML).text) == set(kept)
    assert post(api, "/ui/events/replay", status="done").status_code == 400


# -- sources and statistics -----------------------------------------------------------------


def test_sources_show_their_health(api: TestClient, runtime: Runtime, people: People) -> None:
    dead = add(runtime, "acme", n=2)
    set_status(runtime, dead[:1], "dead")
    login(api, "viewer@acme.example.com")
    page = api.get("/ui/sources", headers=HTML).text
    row = re.search(r"<tr>\s*<td><a href=\"/ui/events\?source=acme-hooks\">.*?</tr>", page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[3:5] == ["acme", "2"]
    assert "dead events" in row.group(0)
    assert "globex-hooks" not in page  # another tenant's source


def test_delivery_statistics_chart_each_day(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    today = datetime.now(UTC)
    done = add(runtime, "acme", n=3, at=today - timedelta(days=2))
    set_status(runtime, done, "done", processed_at=today - timedelta(days=2) + timedelta(seconds=1))
    dead = add(runtime, "acme", n=1, at=today - timedelta(days=2))
    set_status(runtime, dead, "dead")
    add(runtime, "acme", n=2)
    add(runtime, "globex", "globex-hooks", n=5)
    login(api, "viewer@acme.example.com")
    page = api.get("/ui/stats?days=7", headers=HTML).text
    bars = dict(re.findall(r'data-day="([\d-]+)" data-total="(\d+)"', page))
    assert len(bars) == 7
    assert bars[(today - timedelta(days=2)).date().isoformat()] == "4"
    assert bars[today.date().isoformat()] == "2"
    assert sum(map(int, bars.values())) == 6  # globex's five are not acme's
    assert "success rate 75.0 %" in page
    # The source filter offers acme's and the shared sources, never another tenant's name.
    assert "<option>acme-hooks</option>" in page and "<option>demo</option>" in page
    assert "globex-hooks" not in page
    assert api.get("/ui/stats?days=0", headers=HTML).status_code == 400


# -- errors ---------------------------------------------------------------------------------


def test_errors_are_pages_for_browsers_and_json_otherwise(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    page = api.get("/ui/events?status=nope", headers=HTML)
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert errors(page.text) == ["&#39;nope&#39; is not one of pending, processing, done, "
                                 "failed, dead, superseded, ignored"]  # fmt: skip
    data = api.get("/ui/events?status=nope", headers={"accept": "application/json"})
    assert data.status_code == 400 and "not one of" in data.json()["detail"]
    fragment = api.get("/ui/events/99", headers={"hx-request": "true"})
    assert fragment.status_code == 404 and fragment.text.startswith('<p class="error"')
    assert api.get(f"/ui/events/{2**63}", headers=HTML).status_code == 400
    assert api.get("/ui/nowhere", headers=HTML).status_code == 404


@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["q", "source", "provider", "event_type", "status", "before_id", "x"]),
        st.text(max_size=30) | st.integers(-5, 2**64).map(str),
        max_size=4,
    )
)
def test_no_events_query_is_a_server_error(
    api: TestClient, people: People, params: dict[str, str]
) -> None:
    if "hookyard_session" not in api.cookies:
        login(api, "viewer@acme.example.com")
    answer = api.get("/ui/events", params=params, headers=HTML)
    assert answer.status_code in (200, 400), (params, answer.text[:300])


# -- the live socket takes the session cookie, from this site's pages only ----------------


def test_the_live_socket_takes_the_cookie_from_this_site_only(
    runtime: Runtime, people: People
) -> None:
    with serving(create_app(runtime, run_workers=False)) as base:
        client = TestClient(create_app(runtime, run_workers=False), base_url=base)
        login(client, "viewer@acme.example.com")
        cookie = f"hookyard_session={client.cookies['hookyard_session']}"
        url = "ws" + base.removeprefix("http") + "/api/v1/live"
        host = base.removeprefix("http://")

        def welcome(**headers: str) -> dict[str, Any]:
            with connect(url, additional_headers=headers, open_timeout=10) as ws:
                message: dict[str, Any] = json.loads(ws.recv(timeout=10))
                return message

        assert welcome(Cookie=cookie, Origin=f"http://{host}")["tenant"] == "acme"
        for headers in ({"Cookie": cookie, "Origin": "https://evil.example"}, {"Cookie": cookie}):
            with pytest.raises(ConnectionClosed) as closed:
                welcome(**headers)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
