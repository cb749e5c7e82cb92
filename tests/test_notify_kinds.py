"""The notification kinds added for issue 15: a 10DLC campaign rejected as a whole, an alert
opened (for every rule listed in HOOKYARD_NOTIFY_ALERT_KINDS), and the `email_failing` alert
rule; e-mails read back from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from hookyard.alerts.evaluate import AlertEvaluator, told_kinds
from hookyard.alerts.rules import AlertKind
from hookyard.alerts.tables import alerts
from hookyard.config import Settings
from hookyard.domain.tendlc.tables import campaigns
from hookyard.notify.job import EmailJob
from hookyard.notify.tables import notifications
from hookyard.runtime import Runtime
from tests.domain_support import T0, tcr
from tests.people import People
from tests.smtp_support import SmtpServer, drain, mailer_job, with_smtp
from tests.support import MovableClock, rows

ACME_TOLD = ["admin@acme.example.com", "member@acme.example.com"]


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return with_smtp(
        settings, smtp, notify_backoff_seconds=60.0, alert_email_failure_min_deliveries=2
    )


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(T0)


@pytest.fixture
def mailer(settings: Settings, runtime: Runtime, clock: MovableClock) -> Iterator[EmailJob]:
    with mailer_job(settings, runtime.engine, clock) as job:
        yield job


def kinds(runtime: Runtime) -> list[str]:
    return [n["kind"] for n in rows(runtime.engine, notifications)]


# -- a campaign rejected as a whole -------------------------------------------------------------


def rejected(runtime: Runtime, mno: str, at: int, reason: str = "Opt-in flow unclear") -> None:
    tcr(runtime.engine, "acme", "MNO_CAMPAIGN_OPERATION_REJECTED", T0 + timedelta(minutes=at),
        brandId="BACME01", campaignId="CACME01", mnoStatuses={mno: "REJECTED"},
        rejectionReason=reason)  # fmt: skip


def test_a_campaign_rejected_as_a_whole_is_told_once(
    runtime: Runtime, people: People, smtp: SmtpServer, mailer: EmailJob
) -> None:
    tcr(runtime.engine, "acme", "CAMPAIGN_ADD", T0, brandId="BACME01", campaignId="CACME01")
    rejected(runtime, "10017", 1)  # every carrier heard from rejected it: the campaign is
    rejected(runtime, "10035", 2)  # already REJECTED: a carrier's news, not the campaign's
    with runtime.engine.connect() as conn:
        assert conn.execute(select(campaigns.c.status)).scalar_one() == "REJECTED"
    assert sorted(kinds(runtime)) == [
        "campaign_rejected",  # by each carrier
        "campaign_rejected",
        "campaign_status_rejected",  # once, by the campaign
    ]
    [note] = rows(runtime.engine, notifications, notifications.c.kind == "campaign_status_rejected")
    assert note["tenant"] == "acme" and note["data"]["previous_status"] == "PENDING"
    drain(mailer)
    told = [r for r in smtp.received if r.message["X-Hookyard-Notification"] == note["kind"]]
    assert sorted(r.to for r in told) == ACME_TOLD
    assert told[0].subject == "[hookyard] Campaign CACME01 was rejected"
    for part in (told[0].part("plain"), told[0].part("html")):
        assert "Opt-in flow unclear" in part and "REJECTED" in part


def test_the_registry_rejecting_a_campaign_is_told_too(runtime: Runtime, people: People) -> None:
    tcr(runtime.engine, "acme", "CAMPAIGN_ADD", T0, brandId="BACME01", campaignId="CACME01")
    tcr(runtime.engine, "acme", "CAMPAIGN_UPDATE", T0 + timedelta(minutes=1), brandId="BACME01",
        campaignId="CACME01", status="REJECTED")  # fmt: skip
    tcr(runtime.engine, "acme", "CAMPAIGN_UPDATE", T0 + timedelta(minutes=2), brandId="BACME01",
        campaignId="CACME01", status="REJECTED")  # fmt: skip
    assert kinds(runtime) == ["campaign_status_rejected"]  # no transition the second time


# -- an alert opened, and e-mail failing --------------------------------------------------------


def brand_verified(runtime: Runtime, brand: str) -> None:
    tcr(runtime.engine, "acme", "BRAND_IDENTITY_STATUS_UPDATE", T0, brandId=brand,
        brandIdentityStatus="VERIFIED", displayName=f"Brand {brand}")  # fmt: skip


def test_email_failing_opens_an_alert_and_its_people_are_told_once_mail_is_back(
    settings: Settings,
    runtime: Runtime,
    people: People,
    smtp: SmtpServer,
    mailer: EmailJob,
    clock: MovableClock,
) -> None:
    smtp.stop()
    brand_verified(runtime, "BACME01")
    drain(mailer)  # two e-mails fail and wait for their retry
    evaluator = AlertEvaluator(runtime.engine, settings)
    assert evaluator.run(clock.now).opened == 1
    [alert] = rows(runtime.engine, alerts)
    assert (alert["kind"], alert["tenant"], alert["subject"], alert["value"]) == (
        "email_failing",
        "acme",
        "email",
        1.0,
    )
    assert "2 of the 2 e-mail notifications" in alert["detail"]
    [note] = rows(runtime.engine, notifications, notifications.c.kind == "alert_opened")
    assert (note["tenant"], note["entity_id"]) == ("acme", alert["id"])
    assert evaluator.run(clock.now).opened == 0  # still open: told once
    assert len(rows(runtime.engine, notifications, notifications.c.kind == "alert_opened")) == 1
    # The server is back and the retries fall due: the news and the alert go out.
    smtp.start()
    clock.advance(3600)
    drain(mailer)
    told = [r for r in smtp.received if r.message["X-Hookyard-Notification"] == "alert_opened"]
    assert sorted(r.to for r in told) == ACME_TOLD
    assert told[0].subject.startswith("[hookyard] Alert: email failing: 2 of the 2")
    assert f"#{alert['id']}" in told[0].part("plain")
    assert sorted(r.to for r in smtp.received) == sorted(ACME_TOLD * 2)
    # Sent now: the rate falls and the alert resolves.
    assert evaluator.run(clock.now).resolved == 1


def test_only_the_kinds_listed_are_told(
    settings: Settings, runtime: Runtime, people: People, smtp: SmtpServer, mailer: EmailJob
) -> None:
    smtp.stop()
    brand_verified(runtime, "BACME01")
    drain(mailer)
    quiet = settings.model_copy(update={"notify_alert_kinds": "dead_events"})
    assert AlertEvaluator(runtime.engine, quiet).run(mailer.clock()).opened == 1
    assert rows(runtime.engine, notifications, notifications.c.kind == "alert_opened") == []


def test_the_alert_kinds_setting_names_unknown_kinds() -> None:
    assert told_kinds(" failure_rate, email_failing ,") == {
        AlertKind.FAILURE_RATE,
        AlertKind.EMAIL_FAILING,
    }
    with pytest.raises(ValueError, match="HOOKYARD_NOTIFY_ALERT_KINDS: unknown"):
        told_kinds("failure_rate,fire")


def test_too_few_tries_do_not_fire(
    settings: Settings, runtime: Runtime, people: People, smtp: SmtpServer, mailer: EmailJob
) -> None:
    smtp.stop()
    brand_verified(runtime, "BACME01")
    drain(mailer)
    strict = settings.model_copy(update={"alert_email_failure_min_deliveries": 3})
    result = AlertEvaluator(runtime.engine, strict).run(mailer.clock())
    assert result.opened == 0 and not result.errors
