"""People's notification choices over the API and the dashboard, and what they change in the
e-mails a real SMTP server (aiosmtpd) receives: off sends nothing, immediate one e-mail, a
daily digest lists the news once the digest hour comes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from hookyard.accounts.tables import users
from hookyard.config import Settings
from hookyard.notify.job import EmailJob
from hookyard.notify.tables import deliveries
from hookyard.runtime import Runtime
from tests.domain_support import T0, tcr
from tests.people import People
from tests.smtp_support import SmtpServer, drain, mailer_job, with_smtp
from tests.support import MovableClock, rows
from tests.web_support import login, page_of, post, text

MINE = "/api/v1/me/notification-preferences"


def theirs(user_id: int) -> str:
    return f"/api/v1/users/{user_id}/notification-preferences"


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return with_smtp(settings, smtp)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(T0)


@pytest.fixture
def mailer(settings: Settings, runtime: Runtime, clock: MovableClock) -> Iterator[EmailJob]:
    with mailer_job(settings, runtime.engine, clock) as job:
        yield job


def user_id(engine: Engine, address: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(users.c.id).where(users.c.email == address)).scalar_one())


def brand_verified(engine: Engine, brand: str = "BACME01") -> None:
    tcr(engine, "acme", "BRAND_IDENTITY_STATUS_UPDATE", T0, brandId=brand,
        brandIdentityStatus="VERIFIED", displayName=f"Brand {brand}")  # fmt: skip


def campaign_approved(engine: Engine) -> None:
    tcr(engine, "acme", "MNO_CAMPAIGN_OPERATION_APPROVED", T0, brandId="BACME01",
        campaignId="CACME01", mnoStatuses={"10035": "APPROVED"})  # fmt: skip


def choices(answer: Any) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return {item["kind"]: item["choice"] for item in answer.json()["items"]}


# -- the API ----------------------------------------------------------------------------------


def test_everyone_reads_and_sets_their_own(api: TestClient, people: People) -> None:
    viewer = people.headers("acme", "viewer")
    mine = api.get(MINE, headers=viewer)
    assert set(choices(mine).values()) == {"off"}  # a viewer's default
    assert {i["chosen"] for i in mine.json()["items"]} == {False}
    assert mine.json()["email"] == "viewer@acme.example.com"
    changed = api.put(
        MINE,
        headers=viewer,
        json={"preferences": {"brand_verified": "daily_digest", "campaign_approved": "immediate"}},
    )
    got = choices(changed)
    assert (got["brand_verified"], got["campaign_approved"], got["lead_closed"]) == (
        "daily_digest",
        "immediate",
        "off",
    )
    assert choices(api.get(MINE, headers=viewer)) == got
    # null: back to the role's default.
    back = api.put(MINE, headers=viewer, json={"preferences": {"brand_verified": None}})
    assert choices(back)["brand_verified"] == "off"
    member = choices(api.get(MINE, headers=people.headers("acme", "member")))
    assert set(member.values()) == {"immediate"}  # untouched by the viewer's choices


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": {"no_such_kind": "off"}},
        {"preferences": {"brand_verified": "weekly"}},
        {"preferences": {"brand_verified": "off"}, "extra": 1},
        {"brand_verified": "off"},
    ],
)
def test_bad_choices_are_refused_with_a_reason(
    api: TestClient, people: People, body: dict[str, Any]
) -> None:
    answer = api.put(MINE, headers=people.headers("acme", "member"), json=body)
    assert answer.status_code == 422 and answer.json()["detail"]


def test_the_admin_token_is_no_person(api: TestClient, settings: Settings) -> None:
    token = {"Authorization": f"Bearer {settings.admin_token}"}
    answer = api.get(MINE, headers=token)
    assert answer.status_code == 400 and "log in as a user" in answer.json()["detail"]


def test_admins_see_and_set_their_tenants_people_only(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    engine = runtime.engine
    viewer = user_id(engine, "viewer@acme.example.com")
    stranger = user_id(engine, "viewer@globex.example.com")
    admin = people.headers("acme", "admin")
    assert set(choices(api.get(theirs(viewer), headers=admin)).values()) == {"off"}
    set_ = api.put(
        theirs(viewer), headers=admin, json={"preferences": {"sync_failed": "immediate"}}
    )
    assert choices(set_)["sync_failed"] == "immediate"
    assert choices(api.get(MINE, headers=people.headers("acme", "viewer")))["sync_failed"] == (
        "immediate"
    )
    # Another tenant's person is a 404 (and nothing changes), a missing one too.
    for target in (stranger, 999_999):
        assert api.get(theirs(target), headers=admin).status_code == 404
        refused = api.put(
            theirs(target), headers=admin, json={"preferences": {"sync_failed": "off"}}
        )
        assert refused.status_code == 404
    assert set(choices(api.get(theirs(stranger), headers=people.superadmin())).values()) == {"off"}
    # Members and viewers set only their own.
    for role in ("member", "viewer"):
        headers = people.headers("acme", role)
        assert api.get(theirs(viewer), headers=headers).status_code == 403
        assert api.put(theirs(viewer), headers=headers, json={"preferences": {}}).status_code == 403
    # A superadmin acting for acme sees acme's people, not globex's.
    acting = people.superadmin("acme")
    assert api.get(theirs(viewer), headers=acting).status_code == 200
    assert api.get(theirs(stranger), headers=acting).status_code == 404


# -- what people receive ----------------------------------------------------------------------


def test_choices_change_what_each_person_receives(
    api: TestClient,
    runtime: Runtime,
    people: People,
    smtp: SmtpServer,
    mailer: EmailJob,
    clock: MovableClock,
) -> None:
    admin, member, viewer = (people.headers("acme", r) for r in ("admin", "member", "viewer"))
    # The admin: off for brands; the member: a daily digest of brands; the viewer (off by
    # default): campaigns immediately.
    for headers, wanted in (
        (admin, {"brand_verified": "off"}),
        (member, {"brand_verified": "daily_digest"}),
        (viewer, {"campaign_approved": "immediate"}),
    ):
        assert api.put(MINE, headers=headers, json={"preferences": wanted}).status_code == 200
    brand_verified(runtime.engine)
    campaign_approved(runtime.engine)
    drain(mailer)
    assert sorted(smtp.recipients()) == [
        "admin@acme.example.com",  # the campaign only
        "member@acme.example.com",  # the campaign; the brand waits for the digest
        "viewer@acme.example.com",  # opted in
    ]
    assert all("approved" in r.subject for r in smtp.received)
    [waiting] = rows(runtime.engine, deliveries, deliveries.c.mode == "digest")
    assert waiting["email"] == "member@acme.example.com" and waiting["status"] == "pending"
    # The digest hour comes: the member's digest lists the brand, once.
    clock.now = waiting["next_attempt_at"] + timedelta(seconds=1)
    drain(mailer)
    digest = [r for r in smtp.to("member@acme.example.com") if "Daily digest" in r.subject]
    assert len(digest) == 1 and "Brand BACME01" in digest[0].part("plain")
    assert len(smtp.received) == 4
    clock.advance(86_400)
    drain(mailer)
    assert len(smtp.received) == 4  # nothing more


def test_an_admins_choice_for_a_person_applies_to_them(
    api: TestClient, runtime: Runtime, people: People, smtp: SmtpServer, mailer: EmailJob
) -> None:
    member = user_id(runtime.engine, "member@acme.example.com")
    admin = people.headers("acme", "admin")
    answer = api.put(theirs(member), headers=admin, json={"preferences": {"brand_verified": "off"}})
    assert answer.status_code == 200
    brand_verified(runtime.engine)
    drain(mailer)
    assert smtp.recipients() == ["admin@acme.example.com"]


# -- the dashboard ----------------------------------------------------------------------------


def test_the_page_shows_and_saves_ones_own_choices(api: TestClient, people: People) -> None:
    login(api, "viewer@acme.example.com")
    layout = page_of(api, "/ui/alerts")
    assert 'href="/ui/notifications"' in layout  # the user menu links it
    html = page_of(api, "/ui/notifications")
    assert "What you receive" in text(html) and 'name="kind.brand_verified"' in html
    saved = post(
        api,
        "/ui/notifications",
        **{"kind.brand_verified": "daily_digest", "kind.lead_closed": "immediate"},
    )
    assert saved.status_code == 303 and "preferences_saved" in saved.headers["location"]
    got = choices(api.get(MINE, headers=people.headers("acme", "viewer")))
    assert (got["brand_verified"], got["lead_closed"], got["sync_failed"]) == (
        "daily_digest",
        "immediate",
        "off",
    )
    assert post(api, "/ui/notifications", **{"kind.brand_verified": "hourly"}).status_code == 400
    # Another person's page is an admin's.
    assert page_of(api, "/ui/notifications?user=1", 403)


def test_an_admin_picks_a_person_of_their_tenant(
    api: TestClient, runtime: Runtime, people: People
) -> None:
    member = user_id(runtime.engine, "member@acme.example.com")
    stranger = user_id(runtime.engine, "member@globex.example.com")
    login(api, "admin@acme.example.com")
    html = page_of(api, f"/ui/notifications?user={member}")
    assert "member@acme.example.com (member) receives" in text(html)
    assert "globex" not in html
    saved = post(api, f"/ui/notifications?user={member}", **{"kind.brand_verified": "off"})
    assert saved.status_code == 303
    got = choices(api.get(MINE, headers=people.headers("acme", "member")))
    assert got["brand_verified"] == "off"
    page_of(api, f"/ui/notifications?user={stranger}", 404)
    refused = post(api, f"/ui/notifications?user={stranger}", **{"kind.brand_verified": "off"})
    assert refused.status_code == 404


def test_the_chat_webhook_form_is_an_admins_and_refuses_a_bad_url(
    api: TestClient, people: People
) -> None:
    login(api, "admin@acme.example.com")
    assert "Chat webhook of acme" in text(page_of(api, "/ui/notifications"))
    refused = post(api, "/ui/notifications/chat", url="ftp://x", enabled="on")
    assert refused.status_code == 400
    saved = post(api, "/ui/notifications/chat", url="https://hooks.example.com/a/b", enabled="on")
    assert saved.status_code == 303 and "chat_saved" in saved.headers["location"]
    html = page_of(api, "/ui/notifications")
    assert "https://hooks.example.com/…" in html and "/a/b" not in html
    assert post(api, "/ui/notifications/chat/delete").status_code == 303
    assert "Posting to" not in page_of(api, "/ui/notifications")
    login(api, "member@acme.example.com")
    assert "Chat webhook" not in page_of(api, "/ui/notifications")
    assert post(api, "/ui/notifications/chat", url="https://hooks.example.com/a").status_code == 403


# -- an unauthenticated sender -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/me/notification-preferences"),
        ("PUT", "/api/v1/me/notification-preferences"),
        ("GET", "/api/v1/users/1/notification-preferences"),
        ("PUT", "/api/v1/users/1/notification-preferences"),
        ("GET", "/api/v1/notification-channels/chat"),
        ("PUT", "/api/v1/notification-channels/chat"),
        ("DELETE", "/api/v1/notification-channels/chat"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer hk_00000000_not-a-key-anyone-has"}],
    ids=["none", "unknown-key"],
)
def test_every_notification_route_refuses_unknown_callers(
    api: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    answer = api.request(method, path, headers=headers, json={})
    assert answer.status_code == 401, answer.text
    assert answer.json()["detail"]


def test_the_notifications_page_sends_a_stranger_to_the_login(api: TestClient) -> None:
    answer = api.get("/ui/notifications", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")
