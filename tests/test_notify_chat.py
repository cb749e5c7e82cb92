"""The chat webhook channel against a real local HTTP server (testing/fakes/chat.py): set by a
tenant's admins over the API, every notification of the tenant POSTed once, signed with the
tenant's secret (Standard Webhooks), retried through the sender's leased queue (a 503, a 429
with Retry-After), never carrying another tenant's news, the URL never in a log; sent without
any SMTP server configured, and never held back by one that does not answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from hookyard.config import Settings
from hookyard.notify.job import EMAIL_OFF, EmailJob
from hookyard.notify.tables import deliveries, notifications
from hookyard.runtime import Runtime
from hookyard.testing.fakes.chat import ChatReceiver, create_app
from hookyard.testing.fakes.server import ThreadedServer
from tests.domain_support import T0, tcr
from tests.people import People
from tests.smtp_support import SmtpServer, drain, mailer_job, with_smtp
from tests.support import MovableClock, row, rows

CHAT = "/api/v1/notification-channels/chat"
SECRET_PATH = "/services/T0ACME/B0HOOK/xoxSecretPathToken"


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return with_smtp(settings, smtp, notify_backoff_seconds=60.0)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(T0)


@pytest.fixture
def mailer(settings: Settings, runtime: Runtime, clock: MovableClock) -> Iterator[EmailJob]:
    with mailer_job(settings, runtime.engine, clock) as job:
        yield job


@pytest.fixture
def receiver() -> Iterator[tuple[ChatReceiver, str]]:
    fake = ChatReceiver()
    with ThreadedServer(create_app(fake)) as base:
        yield fake, base


@pytest.fixture
def hooked(api: TestClient, people: People, receiver: tuple[ChatReceiver, str]) -> ChatReceiver:
    """acme's admin set the receiver as acme's chat webhook; it checks the signatures."""
    fake, base = receiver
    answer = api.put(
        CHAT, headers=people.headers("acme", "admin"), json={"url": base + SECRET_PATH}
    )
    assert answer.status_code == 200, answer.text
    fake.secret = answer.json()["secret"]
    return fake


def brand_verified(runtime: Runtime, tenant: str = "acme", brand: str = "BACME01") -> None:
    tcr(runtime.engine, tenant, "BRAND_IDENTITY_STATUS_UPDATE", T0, brandId=brand,
        brandIdentityStatus="VERIFIED", displayName=f"Brand {brand}")  # fmt: skip


def chat_rows(runtime: Runtime) -> list[dict[str, object]]:
    return rows(runtime.engine, deliveries, deliveries.c.channel == "chat")


# -- the setting ------------------------------------------------------------------------------


def test_admins_set_their_tenants_webhook_and_its_url_is_never_shown(
    api: TestClient, people: People
) -> None:
    admin = people.headers("acme", "admin")
    assert api.get(CHAT, headers=admin).status_code == 404
    url = "https://hooks.chat.example.com" + SECRET_PATH
    made = api.put(CHAT, headers=admin, json={"url": url})
    assert made.status_code == 200
    hook = made.json()
    assert hook["url"] == "https://hooks.chat.example.com/…" and SECRET_PATH not in made.text
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    assert api.get(CHAT, headers=admin).json() == hook
    # Replacing the URL keeps the secret; rotating makes a new one.
    again = api.put(CHAT, headers=admin, json={"url": url + "2", "enabled": False}).json()
    assert again["secret"] == hook["secret"] and again["enabled"] is False
    rotated = api.put(CHAT, headers=admin, json={"url": url, "rotate_secret": True}).json()
    assert rotated["secret"] != hook["secret"]
    # Another tenant's admin sees none; members and viewers are refused; a superadmin picks.
    assert api.get(CHAT, headers=people.headers("globex", "admin")).status_code == 404
    for role in ("member", "viewer"):
        assert api.get(CHAT, headers=people.headers("acme", role)).status_code == 403
        refused = api.put(CHAT, headers=people.headers("acme", role), json={"url": url})
        assert refused.status_code == 403
    assert api.get(CHAT, headers=people.superadmin()).status_code == 400
    assert api.get(CHAT, headers=people.superadmin("acme")).json()["secret"] == rotated["secret"]
    assert api.delete(CHAT, headers=admin).status_code == 204
    assert api.get(CHAT, headers=admin).status_code == 404
    assert api.delete(CHAT, headers=admin).status_code == 404


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/x", "https:///nohost", "https://user:pw@hooks.example.com/x",
     "not a url at all", "https://hooks.example.com:99999/x"],
)  # fmt: skip
def test_a_bad_url_is_refused_with_a_reason(api: TestClient, people: People, url: str) -> None:
    answer = api.put(CHAT, headers=people.headers("acme", "admin"), json={"url": url})
    assert answer.status_code == 400 and answer.json()["detail"].startswith("url: ")


# -- sending ----------------------------------------------------------------------------------


def test_a_notification_is_posted_once_signed(
    runtime: Runtime,
    smtp: SmtpServer,
    hooked: ChatReceiver,
    mailer: EmailJob,
    capsys: pytest.CaptureFixture[str],
) -> None:
    brand_verified(runtime)
    drain(mailer)
    [posted] = hooked.received
    assert posted.path == SECRET_PATH and posted.status == 200
    assert posted.verified is True  # the receiver checked it with acme's secret
    assert posted.headers["content-type"] == "application/json"
    assert posted.headers["webhook-id"].startswith("msg_hookyard_")
    body = posted.json
    assert body["text"] == "[hookyard] Acme: Brand Brand BACME01 is VERIFIED"
    assert isinstance(body["blocks"], list) and body["blocks"][0]["type"] == "section"
    assert len(smtp.received) == 2  # the people's e-mails as before
    [sent] = chat_rows(runtime)
    assert (sent["status"], sent["attempts"], sent["user_id"]) == ("sent", 1, None)
    drain(mailer)
    assert len(hooked.received) == 1
    assert "xoxSecretPathToken" not in capsys.readouterr().err


def test_a_tampered_message_does_not_verify(hooked: ChatReceiver) -> None:
    # The receiver's check is a real one: the right headers over other bytes fail it.
    assert hooked.verify({"webhook-id": "msg_1", "webhook-timestamp": "1",
                          "webhook-signature": "v1,AAAA"}, b"{}") is False  # fmt: skip


def test_a_503_is_retried_and_delivered_once(
    runtime: Runtime,
    hooked: ChatReceiver,
    mailer: EmailJob,
    clock: MovableClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hooked.answer_next((503, None))
    brand_verified(runtime)
    drain(mailer)
    [waiting] = chat_rows(runtime)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "503" in str(waiting["last_error"]) and "xoxSecret" not in str(waiting["last_error"])
    assert [r.status for r in hooked.received] == [503]
    clock.advance(3600)
    drain(mailer)
    assert [r.status for r in hooked.received] == [503, 200]
    first, second = hooked.received
    assert first.body == second.body and first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.verified is True and len(hooked.delivered()) == 1
    assert row(runtime.engine, deliveries, deliveries.c.channel == "chat")["status"] == "sent"
    clock.advance(3600)
    drain(mailer)
    assert len(hooked.received) == 2
    assert "xoxSecretPathToken" not in capsys.readouterr().err


def test_a_429_waits_for_its_retry_after(
    runtime: Runtime, hooked: ChatReceiver, mailer: EmailJob, clock: MovableClock
) -> None:
    hooked.answer_next((429, "900"))
    brand_verified(runtime)
    drain(mailer)
    [waiting] = chat_rows(runtime)
    due = waiting["next_attempt_at"]
    assert isinstance(due, type(T0)) and due >= clock.now + timedelta(seconds=900)
    clock.advance(600)  # past the backoff (60 s), not past Retry-After
    drain(mailer)
    assert len(hooked.received) == 1
    clock.advance(400)
    drain(mailer)
    assert [r.status for r in hooked.received] == [429, 200]


def test_a_refusal_fails_at_once(runtime: Runtime, hooked: ChatReceiver, mailer: EmailJob) -> None:
    hooked.answer_next((404, None))
    brand_verified(runtime)
    drain(mailer)
    [failed] = chat_rows(runtime)
    assert failed["status"] == "failed" and "404" in str(failed["last_error"])


def test_only_the_tenants_own_news_and_only_while_on(
    api: TestClient,
    runtime: Runtime,
    people: People,
    hooked: ChatReceiver,
    mailer: EmailJob,
) -> None:
    brand_verified(runtime, "globex", "BGLOBEX")  # globex has no webhook: acme's gets nothing
    drain(mailer)
    assert hooked.received == [] and chat_rows(runtime) == []
    # Queued while on, turned off before it went: skipped, never sent.
    brand_verified(runtime)
    mailer.fan_out()
    admin = people.headers("acme", "admin")
    url = "http://127.0.0.1:9" + SECRET_PATH
    assert api.put(CHAT, headers=admin, json={"url": url, "enabled": False}).status_code == 200
    drain(mailer)
    [skipped] = chat_rows(runtime)
    assert skipped["status"] == "skipped" and hooked.received == []


# -- chat on its own: no SMTP, or an SMTP server that fails ----------------------------------


def test_without_smtp_a_tenants_chat_webhook_still_gets_its_messages(
    settings: Settings,
    runtime: Runtime,
    hooked: ChatReceiver,
    smtp: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    off = Runtime.build(settings.model_copy(update={"smtp_host": None}))
    try:
        [job] = [j for j in off.jobs if isinstance(j, EmailJob)]
        assert job.smtp is None
        assert job.run_pass("test") == 0 and job.next_due_at() is None  # nothing to send
        brand_verified(runtime)  # acme: its chat webhook is on
        brand_verified(runtime, "globex", "BGLOBEX")  # globex: no webhook, e-mail only
        off.make_worker().drain()  # the worker of a deployment without SMTP
        [posted] = hooked.received
        assert posted.path == SECRET_PATH and posted.status == 200
        assert posted.verified is True  # signed with acme's secret
        assert posted.json["text"] == "[hookyard] Acme: Brand Brand BACME01 is VERIFIED"
        [sent] = chat_rows(runtime)
        assert (sent["status"], sent["attempts"]) == ("sent", 1)
        # acme's people's e-mails are recorded as not sent (e-mail is off), never sent later.
        emails = rows(runtime.engine, deliveries, deliveries.c.channel == "email")
        assert len(emails) == 2
        assert {(e["status"], e["last_error"], e["attempts"]) for e in emails} == {
            ("skipped", EMAIL_OFF, 0)
        }
        # globex's news waits for e-mail, as before: sent once SMTP is set, unless too old.
        by_tenant = {r["tenant"]: r["status"] for r in rows(runtime.engine, notifications)}
        assert by_tenant == {"acme": "queued", "globex": "pending"}
        assert job.next_due_at() is None  # globex's does not keep the worker awake
        off.make_worker().drain()
        assert len(hooked.received) == 1 and smtp.received == []
    finally:
        off.close()
    assert "xoxSecretPathToken" not in capsys.readouterr().err


@pytest.fixture
def dropping_smtp(hooked: ChatReceiver) -> Iterator[tuple[int, list[int]]]:
    """An SMTP server that takes each connection and hangs up before its greeting; at each
    connection it notes how many chat POSTs the receiver had got by then."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            seen.append(len(hooked.received))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], seen
    listener.close()
    thread.join(timeout=5)


def test_a_chat_message_neither_waits_for_nor_fails_with_smtp(
    settings: Settings,
    runtime: Runtime,
    hooked: ChatReceiver,
    clock: MovableClock,
    dropping_smtp: tuple[int, list[int]],
) -> None:
    port, seen = dropping_smtp
    broken = settings.model_copy(update={"smtp_port": port, "smtp_timeout_seconds": 2.0})
    job = EmailJob.from_settings(broken, runtime.engine)
    job.clock = clock
    try:
        brand_verified(runtime)
        job.run_pass("test")
    finally:
        job.close()
    [posted] = hooked.received
    assert posted.verified is True and chat_rows(runtime)[0]["status"] == "sent"
    # The SMTP server was first called once the chat POST had arrived; its failure is the
    # e-mails' alone: they wait for a retry.
    assert seen[0] == 1
    emails = rows(runtime.engine, deliveries, deliveries.c.channel == "email")
    assert len(emails) == 2
    assert {(e["status"], e["attempts"]) for e in emails} == {("pending", 1)}
    assert all("SMTPConnectError" in str(e["last_error"]) for e in emails)
