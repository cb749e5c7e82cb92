"""E-mail notifications against a real local SMTP server (aiosmtpd): state changes driven
through the real handlers and the worker, e-mails read back as the server received them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, func, select, update

from hookyard.accounts import identity
from hookyard.accounts.identity import Role
from hookyard.accounts.tables import users
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.domain.crm import service as crm
from hookyard.domain.crm.tables import customers
from hookyard.domain.leads.tables import lead_closures, leads
from hookyard.domain.tendlc.tables import brands, campaigns, vettings
from hookyard.domain.whatsapp.tables import templates
from hookyard.inbox.model import NewEvent, Origin
from hookyard.notify import job as job_module
from hookyard.notify import preferences
from hookyard.notify.job import EmailJob
from hookyard.notify.kinds import EntityType, Kind, Mode
from hookyard.notify.render import message, render_one
from hookyard.notify.smtp import SmtpSettings, send_all
from hookyard.notify.tables import deliveries, notifications
from hookyard.providers.base import WebhookRequest
from hookyard.runtime import Runtime
from hookyard.sync import hubspot as hubspot_sync
from hookyard.sync.hubspot import update_customer
from hookyard.testing.fakes.meta import MetaState
from hookyard.testing.fakes.meta import create_app as meta_app
from hookyard.testing.fakes.server import ThreadedServer, serving
from hookyard.testing.simulate import meta_delivery, meta_envelope
from tests.conftest import SECRETS
from tests.people import People
from tests.smtp_support import SENDER, SmtpServer, with_smtp
from tests.support import free_port

PAYLOADS = Path(__file__).parent / "payloads"
ACME_TOLD = ["admin@acme.example.com", "member@acme.example.com"]  # the role defaults
GLOBEX_TOLD = ["admin@globex.example.com", "member@globex.example.com"]

SOURCES = f"""
[[source]]
name = "tcr-acme"
provider = "tcr"
path = "/webhooks/tcr/brands"
allow_unauthenticated = true
tenant = "acme"

[[source]]
name = "tcr-globex"
provider = "tcr"
path = "/webhooks/tcr/campaigns"
allow_unauthenticated = true
tenant = "globex"

[[source]]
name = "meta"
provider = "meta"
path = "/api/v1/whatsapp/webhook"
tenant = "acme"
app_secret = "{SECRETS["meta_app"]}"
verify_token = "{SECRETS["meta_verify"]}"

[[source]]
name = "meta-globex"
provider = "meta"
path = "/api/v1/whatsapp/globex"
tenant = "globex"
app_secret = "{SECRETS["meta_app"]}"
verify_token = "{SECRETS["meta_verify"]}"

[[source]]
name = "c2s"
provider = "c2s"
path = "/api/v1/webhooks/c2s"
tenant = "acme"
token = "{SECRETS["c2s"]}"
"""


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES)
    return path


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    # notify_backoff_seconds: a failed send is never retried within a drain
    return with_smtp(settings, smtp, notify_max_attempts=3, notify_backoff_seconds=30.0)


# -- driving state changes through the real handlers ------------------------------------------


def body(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    payload.update(changes)
    return payload


def identity_update(status: str = "VERIFIED", at: str = "2025-12-01T03:36:30Z", **kw: Any) -> Any:
    return body("tcr_brand_identity_status.json", brandIdentityStatus=status, timestamp=at, **kw)


def carrier(event: str, mno: str, status: str, at: str, **kw: Any) -> dict[str, Any]:
    return body(
        "tcr_mno_campaign_approved.json",
        eventType=event,
        mnoStatuses={mno: status},
        timestamp=at,
        **kw,
    )


def approval(mno: str, at: str) -> dict[str, Any]:
    return carrier("MNO_CAMPAIGN_OPERATION_APPROVED", mno, "APPROVED", at)


def rejection(mno: str, at: str, **kw: Any) -> dict[str, Any]:
    return carrier("MNO_CAMPAIGN_OPERATION_REJECTED", mno, "REJECTED", at, **kw)


def meta_status(event: str, time: int, template: str = "594425479261596", **kw: Any) -> Any:
    payload = body("meta_template_status.json")
    entry = payload["entry"][0]
    entry["time"] = time
    entry["changes"][0]["value"].update(event=event, message_template_id=int(template), **kw)
    return payload


def meta_quality(new: str, time: int) -> Any:
    payload = body("meta_template_quality.json")
    payload["entry"][0]["time"] = time
    payload["entry"][0]["changes"][0]["value"]["new_quality_score"] = new
    return payload


def lead(action: str, at: str, lead_id: str = "c2s-lead-8a1f", **attributes: Any) -> Any:
    payload = body("c2s_lead_created.json", hook_action=action, id=lead_id)
    payload["attributes"].update(updated_at=at, **attributes)
    return payload


def send(rt: Runtime, source: str, payload: Any, origin: Origin = Origin.WEBHOOK) -> list[int]:
    """Store a delivery's events as ingress (or a reconciler) would; the new event ids."""
    src = rt.sources.by_name()[source]
    raw = json.dumps(payload).encode()
    request = WebhookRequest("POST", "http://testserver" + src.path, src.path, {}, {}, raw)
    new = [
        NewEvent(
            src.name,
            src.config.provider,
            src.config.tenant,
            p.event_type,
            p.dedup_key,
            p.entity_key,
            p.provider_ts,
            {},
            raw,
            None if p.payload_is_body else p.payload,
            datetime.now(UTC),
            origin,
        )
        for p in src.adapter.parse(request)
    ]
    return sorted(rt.store.insert_batch(new).values())


def drain(rt: Runtime) -> int:
    """Events and background jobs (the e-mail sender among them) until nothing is due."""
    return rt.make_worker().drain()


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def rows(engine: Engine, table: Any, *where: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = select(table).where(*where).order_by(table.c.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def make_due(engine: Engine) -> None:
    """Time passes: every delivery waiting for a retry is due now."""
    with engine.begin() as tx:
        tx.execute(
            update(deliveries)
            .where(deliveries.c.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def mailer(rt: Runtime) -> EmailJob:
    [job] = [j for j in rt.jobs if isinstance(j, EmailJob)]
    return job


def user_id(engine: Engine, address: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(users.c.id).where(users.c.email == address)).scalar_one())


# -- one e-mail per kind, to the right people -------------------------------------------------


def _brand_verified(rt: Runtime) -> None:
    send(rt, "tcr-acme", identity_update(displayName="Acme Telecom Brand"))


def _campaign_approved(rt: Runtime) -> None:
    send(rt, "tcr-acme", approval("10035", "2025-12-02T18:00:00Z"))


def _campaign_rejected(rt: Runtime) -> None:
    reason = "Opt-in flow unclear"
    send(rt, "tcr-acme", rejection("10017", "2025-12-02T18:00:00Z", rejectionReason=reason))


def _vetting_complete(rt: Runtime) -> None:
    send(rt, "tcr-acme", {"eventType": "EVP_REPORT_SCORE", "eventCategory": "VETTING",
                          "brandId": "BBPD732", "vettingId": "V1", "evpId": "AEGIS",
                          "vettingClass": "STANDARD", "vettingScore": 75,
                          "timestamp": "2025-12-02T10:00:00Z"})  # fmt: skip


def _template_disabled(rt: Runtime) -> None:
    send(rt, "meta", meta_status("DISABLED", 1763800100, reason="SCAM"))


def _template_paused(rt: Runtime) -> None:
    send(rt, "meta", meta_status("PAUSED", 1763800100))


def _template_red_quality(rt: Runtime) -> None:
    send(rt, "meta", meta_quality("RED", 1763800500))


def _lead_closed(rt: Runtime) -> None:
    send(rt, "c2s", lead("on_close_lead", "2025-11-21T05:00:00Z"))


KINDS = {
    Kind.BRAND_VERIFIED: (_brand_verified, "Brand Acme Telecom Brand is VERIFIED", ACME_TOLD),
    Kind.CAMPAIGN_APPROVED: (
        _campaign_approved,
        "Campaign CQ4ZKDM approved by T-Mobile",
        ACME_TOLD,
    ),
    Kind.CAMPAIGN_REJECTED: (_campaign_rejected, "Campaign CQ4ZKDM rejected by AT&T", ACME_TOLD),
    Kind.VETTING_COMPLETE: (_vetting_complete, "EVP vetting of brand BBPD732: SCORED", ACME_TOLD),
    Kind.TEMPLATE_DISABLED: (_template_disabled, "template order_update was disabled", ACME_TOLD),
    Kind.TEMPLATE_PAUSED: (_template_paused, "template order_update was paused", ACME_TOLD),
    Kind.TEMPLATE_RED_QUALITY: (_template_red_quality, "order_update has RED quality", ACME_TOLD),
    # Without a manager in the payload, a closed lead goes to the tenant's admins.
    Kind.LEAD_CLOSED: (_lead_closed, "Lead Maria Test was closed", ["admin@acme.example.com"]),
}

# The row a notification about each entity type marks once sent (its domain's table).
ABOUT = {
    EntityType.TENDLC_BRAND: brands,
    EntityType.TENDLC_CAMPAIGN: campaigns,
    EntityType.TENDLC_VETTING: vettings,
    EntityType.WHATSAPP_TEMPLATE: templates,
    EntityType.LEAD: leads,
    EntityType.CRM_CUSTOMER: customers,
}


def test_every_entity_type_has_the_mark_its_domain_registered() -> None:
    # In a fresh interpreter that imports only what `hookyard worker` imports: the domains
    # register their marks on import, and the worker's runtime imports every domain.
    code = (
        "import hookyard.runtime\n"
        "from hookyard.notify.marks import registered\n"
        "print(sorted(registered()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(EntityType))


@pytest.mark.parametrize("kind", list(KINDS), ids=str)
def test_each_kind_sends_one_email_with_html_and_text_to_the_right_people(
    runtime: Runtime, people: People, smtp: SmtpServer, kind: Kind
) -> None:
    scenario, headline, told = KINDS[kind]
    if kind is Kind.LEAD_CLOSED:  # a lead C2S created earlier: open, then closed
        send(runtime, "c2s", lead("on_create_lead", "2025-11-21T04:35:00Z"))
        drain(runtime)
    scenario(runtime)
    drain(runtime)
    # A carrier's rejection of a campaign's only carrier also rejects the campaign as a whole
    # (`campaign_status_rejected`, tests/test_notify_kinds.py): only this kind's e-mails here.
    mine = [r for r in smtp.received if r.message["X-Hookyard-Notification"] == kind.value]
    assert sorted(a for r in mine for a in r.rcpt) == told  # not the viewer, globex, root
    for received in mine:
        assert received.subject.startswith("[hookyard] ") and headline in received.subject
        assert received.message["From"] == SENDER
        assert received.message["X-Hookyard-Notification"] == kind.value
        assert received.message.get_content_type() == "multipart/alternative"
        text, html = received.part("plain"), received.part("html")
        assert headline in text and "Acme" in text
        assert "<html" in html and "</html>" in html and "Acme" in html
    [note] = rows(runtime.engine, notifications, notifications.c.kind == kind.value)
    assert (note["kind"], note["tenant"], note["status"]) == (kind.value, "acme", "queued")
    entity = ABOUT[EntityType(note["entity_type"])]
    [about] = rows(runtime.engine, entity, entity.c.id == note["entity_id"])
    assert about["last_notification_sent_at"] is not None
    sent = rows(runtime.engine, deliveries, deliveries.c.notification_id == note["id"])
    assert sorted(d["email"] for d in sent) == told
    assert {(d["status"], d["attempts"], d["mode"]) for d in sent} == {("sent", 1, "immediate")}
    # Nothing more on a second drain.
    before = len(smtp.received)
    drain(runtime)
    assert len(smtp.received) == before


def test_a_rejection_names_the_carrier_and_its_reason(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    _campaign_rejected(runtime)
    drain(runtime)
    [received] = [
        r
        for r in smtp.to("admin@acme.example.com")
        if r.message["X-Hookyard-Notification"] == "campaign_rejected"
    ]
    for part in (received.part("plain"), received.part("html")):
        assert "AT&amp;T" in part or "AT&T" in part
        assert "Opt-in flow unclear" in part and "10017" in part
    with runtime.engine.connect() as conn:
        sent_at = conn.execute(select(campaigns.c.last_notification_sent_at)).scalar_one()
    assert sent_at is not None  # the last_notification_sent_at, on the campaign


def test_a_sync_failure_tells_the_customers_tenant(
    settings: Settings,
    runtime: Runtime,
    people: People,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The failure counter is process-wide; test_sync counts it exactly, so count ours apart.
    private = Counter("crm_sync_failed", "test", registry=CollectorRegistry())
    monkeypatch.setattr(hubspot_sync, "CRM_SYNC_FAILED", private)
    # HubSpot unreachable (nothing listens there): the outbox row fails after its attempts.
    down = settings.model_copy(
        update={
            "hubspot_api_url": f"http://127.0.0.1:{free_port()}",
            "hubspot_access_token": "hubspot-token",
            "provider_max_attempts": 1,
            "sync_backoff_seconds": 0.0,
        }
    )
    rt = Runtime.build(down)
    try:
        with rt.engine.begin() as tx:
            cid = crm.create_customer(tx, "acme", "Ringer Network Solutions", hubspot_company_id=7)
        assert update_customer(rt.store.writer, cid, {"company_name": "Ringer 2"})
        drain(rt)
    finally:
        rt.close()
    assert smtp.recipients() == ACME_TOLD
    received = smtp.to("member@acme.example.com")[0]
    assert "HubSpot sync of Ringer 2 failed" in received.subject
    assert "4 attempts" in received.part("plain")
    assert private._value.get() == 1  # type: ignore[attr-defined]
    with runtime.engine.connect() as conn:
        sent_at = conn.execute(select(customers.c.last_notification_sent_at)).scalar_one()
    assert sent_at is not None


# -- exactly once -----------------------------------------------------------------------------


def test_a_replay_or_a_redelivery_sends_nothing_new(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    [event_id] = send(runtime, "tcr-acme", identity_update())
    drain(runtime)
    assert smtp.recipients() == ACME_TOLD
    assert send(runtime, "tcr-acme", identity_update()) == []  # a redelivery: a duplicate
    assert runtime.store.replay([event_id]) == 1
    drain(runtime)
    assert runtime.store.get(event_id)["status"] == "done"  # type: ignore[index]
    assert len(smtp.received) == 2
    assert count(runtime.engine, notifications) == 1
    # The same status again, in a newer event, is no transition: no e-mail either.
    send(runtime, "tcr-acme", identity_update(at="2025-12-01T04:00:00Z"))
    drain(runtime)
    assert len(smtp.received) == 2


def test_a_new_transition_is_news_again(runtime: Runtime, people: People, smtp: SmtpServer) -> None:
    send(runtime, "tcr-acme", identity_update("VERIFIED", "2025-12-01T01:00:00Z"))
    send(runtime, "tcr-acme", identity_update("UNVERIFIED", "2025-12-01T02:00:00Z"))
    send(runtime, "tcr-acme", identity_update("VERIFIED", "2025-12-01T03:00:00Z"))
    drain(runtime)
    assert len(smtp.to("admin@acme.example.com")) == 2  # verified twice, told twice


def test_webhook_and_polling_of_one_tcr_change_send_one_email(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    # Polling observed the approval first (its time is when it looked); the webhook for the
    # same decision arrives later but is older: superseded, it records nothing.
    send(runtime, "tcr-acme", approval("10035", "2025-12-02T18:05:00Z"), Origin.POLLING)
    drain(runtime)
    [late] = send(runtime, "tcr-acme", approval("10035", "2025-12-02T18:00:00Z"))
    drain(runtime)
    assert runtime.store.get(late)["status"] == "superseded"  # type: ignore[index]
    assert smtp.recipients() == ACME_TOLD
    # And the other order: the webhook first, then a poll that finds the same state (newer).
    send(runtime, "tcr-acme", rejection("10017", "2025-12-03T09:00:00Z"))
    drain(runtime)
    [poll] = send(runtime, "tcr-acme", rejection("10017", "2025-12-03T09:30:00Z"), Origin.POLLING)
    drain(runtime)
    assert runtime.store.get(poll)["status"] == "done"  # type: ignore[index]
    assert len(smtp.to("admin@acme.example.com")) == 2  # one approval, one rejection
    assert count(runtime.engine, notifications) == 2


def test_webhook_and_meta_reconciliation_of_one_change_send_one_email(
    settings: Settings, people: People, smtp: SmtpServer
) -> None:
    meta = MetaState("meta-token", SECRETS["meta_app"])
    server = ThreadedServer(meta_app(meta))
    meta_url = server.start()
    rt = Runtime.build(
        settings.model_copy(
            update={"meta_api_url": meta_url + "/v21.0", "meta_access_token": "meta-token"}
        )
    )
    try:
        with serving(create_app(rt, run_workers=False)) as url:
            assert meta.subscribe(url + "/api/v1/whatsapp/webhook", SECRETS["meta_verify"])
            tid = meta.add_template("order_update")["id"]
            drain(rt)
            # Meta disables the template; the webhook is lost for now. Polling finds it.
            meta.set_template_status(tid, "DISABLED", reason="SCAM", deliver=False)
            [run] = [rt.sync.reconcile(r) for r in rt.sync.reconcilers("meta")]  # type: ignore[union-attr]
            assert run.fed == 1
            drain(rt)
            assert smtp.recipients() == ACME_TOLD
            # The webhook arrives after all, older than what polling saw: superseded.
            envelope = meta_envelope(
                [meta.lost[-1].payload], sent=int(datetime.now(UTC).timestamp()) - 60
            )
            d = meta_delivery(SECRETS["meta_app"], url + "/api/v1/whatsapp/webhook", envelope)
            assert httpx.post(d.url, headers=d.headers, content=d.body).status_code == 200
            drain(rt)
    finally:
        rt.close()
        server.stop()
    assert smtp.recipients() == ACME_TOLD  # still one e-mail each
    assert "was disabled" in smtp.received[0].subject
    assert count(rt.engine, notifications) == 1


def test_superseded_and_ignored_events_record_nothing(runtime: Runtime, people: People) -> None:
    send(runtime, "meta", meta_status("APPROVED", 1763800200))
    [old] = send(runtime, "meta", meta_status("DISABLED", 1763800100))  # older: superseded
    send(runtime, "meta", meta_status("PENDING", 1763800300))  # no kind of news
    drain(runtime)
    assert runtime.store.get(old)["status"] == "superseded"  # type: ignore[index]
    assert count(runtime.engine, notifications) == 0


# -- SMTP down, retries, giving up ------------------------------------------------------------


def test_smtp_down_is_retried_and_sent_when_it_is_back(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    smtp.stop()
    send(runtime, "tcr-acme", identity_update())
    before = datetime.now(UTC)
    drain(runtime)
    waiting = rows(runtime.engine, deliveries)
    assert [(d["status"], d["attempts"]) for d in waiting] == [("pending", 1), ("pending", 1)]
    for d in waiting:
        assert d["last_error"] and d["lease_owner"] is None
        assert d["next_attempt_at"] > before + timedelta(seconds=10)  # backoff, not a spin
    make_due(runtime.engine)
    drain(runtime)
    assert {d["attempts"] for d in rows(runtime.engine, deliveries)} == {2}
    smtp.start()
    make_due(runtime.engine)
    drain(runtime)
    assert smtp.recipients() == ACME_TOLD
    sent = rows(runtime.engine, deliveries)
    assert {(d["status"], d["attempts"], d["last_error"]) for d in sent} == {("sent", 3, None)}
    with runtime.engine.connect() as conn:
        assert conn.execute(select(brands.c.last_notification_sent_at)).scalar_one() is not None


def test_smtp_down_for_good_gives_up_with_the_error_kept(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    smtp.stop()
    send(runtime, "tcr-acme", identity_update())
    drain(runtime)
    for _ in range(2):
        make_due(runtime.engine)
        drain(runtime)
    failed = rows(runtime.engine, deliveries)
    assert {(d["status"], d["attempts"]) for d in failed} == {("failed", 3)}
    assert all("Connect" in d["last_error"] for d in failed)
    smtp.start()
    make_due(runtime.engine)
    drain(runtime)
    assert smtp.received == []  # given up: not sent later by surprise
    assert mailer(runtime).next_due_at() is None


def test_a_refused_recipient_fails_at_once_and_others_still_go(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    async def refuse(
        server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("member@"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    smtp.mailbox.handle_RCPT = refuse  # type: ignore[attr-defined]
    send(runtime, "tcr-acme", identity_update())
    drain(runtime)
    by_address = {d["email"]: d for d in rows(runtime.engine, deliveries)}
    assert by_address["member@acme.example.com"]["status"] == "failed"
    assert "550" in by_address["member@acme.example.com"]["last_error"]
    assert by_address["admin@acme.example.com"]["status"] == "sent"
    assert smtp.recipients() == ["admin@acme.example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_configured_credentials_log_in() -> None:
    server = SmtpServer(auth_required=True, auth_require_tls=False)
    server.options["authenticator"] = server.mailbox.authenticate
    server.start()
    try:
        config = SmtpSettings("127.0.0.1", server.port, SENDER, "bot", "s3cret", starttls=False)
        from hookyard.notify.render import Item

        item = Item(Kind.LEAD_CLOSED, {"c2s_lead_id": "1", "lead_name": "Ana",
                                       "closed_at": "2025-11-21"}, datetime.now(UTC))  # fmt: skip
        mail = message(render_one(item, "Acme"), SENDER, "ops@acme.example.com", "lead_closed")
        [outcome] = send_all(config, [mail])
        assert outcome.sent
        wrong = SmtpSettings("127.0.0.1", server.port, SENDER, "bot", "nope", starttls=False)
        [refused] = send_all(wrong, [mail])
        assert not refused.sent and refused.transient  # a setting to fix, not the message
        assert "s3cret" not in repr(config) and "nope" not in (refused.error or "")
    finally:
        server.stop()
    assert server.mailbox.logins == [(b"bot", b"s3cret")]
    assert server.recipients() == ["ops@acme.example.com"]


# -- preferences and digests ------------------------------------------------------------------


def test_opt_out_opt_in_and_a_daily_digest(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    engine = runtime.engine
    member = user_id(engine, "member@acme.example.com")
    viewer = user_id(engine, "viewer@acme.example.com")
    preferences.set_preference(engine, member, Kind.BRAND_VERIFIED, enabled=False, mode="immediate")
    for kind in (Kind.BRAND_VERIFIED, Kind.CAMPAIGN_APPROVED):
        preferences.set_preference(engine, viewer, kind, enabled=True, mode=Mode.DIGEST)
    assert preferences.preferences_of(engine, viewer, "viewer")[Kind.BRAND_VERIFIED] == (
        preferences.Preference(True, Mode.DIGEST)
    )
    _brand_verified(runtime)
    _campaign_approved(runtime)
    drain(runtime)
    # Immediately: the admin both, the member only what it did not opt out of, the viewer none.
    assert len(smtp.to("admin@acme.example.com")) == 2
    assert [r.subject for r in smtp.to("member@acme.example.com")] == [
        "[hookyard] Campaign CQ4ZKDM approved by T-Mobile"
    ]
    assert smtp.to("viewer@acme.example.com") == []
    waiting = rows(engine, deliveries, deliveries.c.mode == "digest")
    assert len(waiting) == 2 and {d["status"] for d in waiting} == {"pending"}
    [due] = {d["next_attempt_at"] for d in waiting}  # one digest time for the person
    assert due.hour == 8 and due.minute == 0 and due > datetime.now(UTC) - timedelta(seconds=5)
    # The digest hour comes: one e-mail listing both.
    mailer(runtime).clock = lambda: due + timedelta(seconds=1)
    drain(runtime)
    [digest] = smtp.to("viewer@acme.example.com")
    assert digest.subject.startswith("[hookyard] Daily digest: 2 notifications for Acme")
    for part in (digest.part("plain"), digest.part("html")):
        assert "Brand Acme Telecom Brand is VERIFIED" in part
        assert "Campaign CQ4ZKDM approved by T-Mobile" in part
    assert {d["status"] for d in rows(engine, deliveries, deliveries.c.mode == "digest")} == {
        "sent"
    }
    drain(runtime)
    assert len(smtp.to("viewer@acme.example.com")) == 1
    # Back to the default: a viewer gets nothing.
    preferences.reset_preference(engine, viewer, Kind.BRAND_VERIFIED)
    assert not preferences.preferences_of(engine, viewer, "viewer")[Kind.BRAND_VERIFIED].enabled


def test_a_disabled_person_is_not_told_and_a_late_one_is_skipped(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    engine = runtime.engine
    with engine.begin() as tx:
        tx.execute(
            update(users)
            .where(users.c.email == "member@acme.example.com")
            .values(disabled_at=datetime.now(UTC))
        )
    viewer = user_id(engine, "viewer@acme.example.com")
    preferences.set_preference(engine, viewer, Kind.BRAND_VERIFIED, enabled=True, mode="digest")
    _brand_verified(runtime)
    drain(runtime)
    assert smtp.recipients() == ["admin@acme.example.com"]
    # The viewer leaves before their digest goes out: their row is skipped, never sent.
    with engine.begin() as tx:
        tx.execute(update(users).where(users.c.id == viewer).values(disabled_at=datetime.now(UTC)))
    mailer(runtime).clock = lambda: datetime.now(UTC) + timedelta(days=1, hours=1)
    drain(runtime)
    assert smtp.recipients() == ["admin@acme.example.com"]
    [skipped] = rows(engine, deliveries, deliveries.c.user_id == viewer)
    assert skipped["status"] == "skipped"


# -- tenants ----------------------------------------------------------------------------------


def test_one_tenants_news_never_reaches_another_tenants_people(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    send(runtime, "tcr-globex", identity_update(brandId="BGLOBEX"))
    send(runtime, "meta-globex", meta_status("PAUSED", 1763800100, template="777"))
    drain(runtime)
    assert sorted(set(smtp.recipients())) == GLOBEX_TOLD
    assert len(smtp.received) == 4
    # Acme's change: only acme's people hear of it. Globex's source naming acme's brand
    # changes nothing (the event is ignored), so nobody hears of that.
    send(runtime, "tcr-acme", identity_update())
    send(runtime, "tcr-globex", approval("10035", "2025-12-02T18:00:00Z"))
    drain(runtime)
    acme = [r for r in smtp.received if any("@acme." in a for a in r.rcpt)]
    globex = [r for r in smtp.received if any("@globex." in a for a in r.rcpt)]
    assert len(acme) == 2 and len(globex) == 4
    assert all("BGLOBEX" not in r.part("plain") and "777" not in r.part("plain") for r in acme)
    assert all("BBPD732" not in r.part("plain") for r in globex)
    assert {n["tenant"] for n in rows(runtime.engine, notifications)} == {"acme", "globex"}
    for d in rows(runtime.engine, deliveries):
        assert d["email"].endswith(f"@{d['tenant']}.example.com")


# -- a closed lead's manager ------------------------------------------------------------------


def test_a_closed_lead_goes_to_its_manager(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    send(runtime, "c2s", lead("on_create_lead", "2025-11-21T04:35:00Z"))
    drain(runtime)
    seller = {"seller": {"name": "Ana", "email": " Member@Acme.Example.com "}}
    send(runtime, "c2s", lead("on_close_lead", "2025-11-21T05:00:00Z", **seller))
    drain(runtime)
    assert smtp.recipients() == ["member@acme.example.com"]  # the manager, not the admins
    [closure] = rows(runtime.engine, lead_closures)
    assert closure["notified_at"] is not None
    [row] = rows(runtime.engine, leads)
    assert row["last_notification_sent_at"] is not None
    # A manager who is no hookyard user is still told (the address is the tenant's own data).
    send(runtime, "c2s", lead("on_create_lead", "2025-11-22T04:00:00Z", lead_id="L2"))
    outside = {"seller": {"email": "closer@partner.example.com"}}
    send(runtime, "c2s", lead("on_close_lead", "2025-11-22T05:00:00Z", lead_id="L2", **outside))
    drain(runtime)
    assert (
        smtp.to("closer@partner.example.com")[0].subject == "[hookyard] Lead Maria Test was closed"
    )


def test_a_managers_address_of_another_tenant_is_never_used(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    send(runtime, "c2s", lead("on_create_lead", "2025-11-21T04:35:00Z"))
    seller = {"seller": {"email": "member@globex.example.com"}}
    send(runtime, "c2s", lead("on_close_lead", "2025-11-21T05:00:00Z", **seller))
    drain(runtime)
    assert smtp.recipients() == ["admin@acme.example.com"]  # the fallback: acme's admins


def test_the_manager_field_is_configurable(
    settings: Settings, people: People, smtp: SmtpServer
) -> None:
    rt = Runtime.build(settings.model_copy(update={"notify_lead_manager_fields": "owner.mail"}))
    try:
        send(rt, "c2s", lead("on_create_lead", "2025-11-21T04:35:00Z"))
        payload = lead("on_close_lead", "2025-11-21T05:00:00Z")
        payload["owner"] = {"mail": "member@acme.example.com"}
        send(rt, "c2s", payload)
        drain(rt)
    finally:
        rt.close()
    assert smtp.recipients() == ["member@acme.example.com"]


# -- safety -----------------------------------------------------------------------------------


def test_provider_text_is_escaped_and_cannot_add_headers(
    runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    name = "<script>alert(1)</script>\r\nBcc: victim@example.com"
    send(runtime, "tcr-acme", identity_update(displayName=name))
    drain(runtime)
    received = smtp.to("admin@acme.example.com")[0]
    assert received.message["Bcc"] is None and "\n" not in received.subject
    html = received.part("html")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in received.part("plain")  # plain text, shown as is
    assert smtp.recipients() == ACME_TOLD


def test_logs_carry_masked_addresses_only(
    runtime: Runtime, people: People, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def __getattr__(self, level: str) -> Any:
            return lambda event, **kw: logged.append((event, kw))

    monkeypatch.setattr(job_module, "log", Recorder())
    smtp.stop()
    _brand_verified(runtime)
    drain(runtime)
    smtp.start()
    make_due(runtime.engine)
    drain(runtime)
    events = [e for e, _ in logged]
    assert "notification_retry" in events and "notification_sent" in events
    text = repr(logged)
    assert "@acme.example.com" in text  # the domain is kept…
    assert "admin@acme.example.com" not in text and "member@acme" not in text  # …not the name


def test_news_recorded_while_email_was_off_expires(
    settings: Settings, runtime: Runtime, people: People, smtp: SmtpServer
) -> None:
    off = Runtime.build(settings.model_copy(update={"smtp_host": None}))
    try:
        _brand_verified(off)
        drain(off)  # the handler recorded it; nothing sends while e-mail is off
    finally:
        off.close()
    [note] = rows(runtime.engine, notifications)
    assert note["status"] == "pending"
    with runtime.engine.begin() as tx:
        tx.execute(update(notifications).values(created_at=datetime.now(UTC) - timedelta(days=4)))
    drain(runtime)
    [note] = rows(runtime.engine, notifications)
    assert note["status"] == "expired"
    assert smtp.received == [] and count(runtime.engine, deliveries) == 0


def test_email_is_off_without_a_host_and_needs_a_sender(settings: Settings) -> None:
    off = Runtime.build(settings.model_copy(update={"smtp_host": None}))
    try:  # the sender runs for the chat webhooks only (test_notify_chat.py)
        [job] = [j for j in off.jobs if isinstance(j, EmailJob)]
        assert job.smtp is None
    finally:
        off.close()
    with pytest.raises(ValueError, match="HOOKYARD_SMTP_FROM"):
        SmtpSettings.from_settings(settings.model_copy(update={"smtp_from": None}))
    with pytest.raises(ValueError, match="HOOKYARD_SMTP_PASSWORD"):
        SmtpSettings.from_settings(settings.model_copy(update={"smtp_username": "bot"}))


def test_a_person_needs_a_tenant_to_be_told(runtime: Runtime, smtp: SmtpServer) -> None:
    identity.create_tenant(runtime.engine, "acme", "Acme")
    identity.create_user(runtime.engine, "root@example.com", Role.SUPERADMIN, None)
    send(runtime, "tcr-acme", identity_update())
    drain(runtime)
    [note] = rows(runtime.engine, notifications)
    assert (note["status"], note["recipients"]) == ("queued", 0)  # a superadmin is not told
    assert smtp.received == []
