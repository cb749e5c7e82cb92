"""`hookyard notify preview KIND` and `hookyard notify test EMAIL`, run as real processes; the
test e-mail read back from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from hookyard.config import Settings
from hookyard.notify import render
from hookyard.notify.kinds import Kind
from hookyard.notify.samples import sample
from tests.conftest import process_env
from tests.smtp_support import SENDER, SmtpServer
from tests.support import free_port, hookyard


def smtp_env(settings: Settings, port: int) -> dict[str, str]:
    return process_env(
        settings,
        HOOKYARD_SMTP_HOST="127.0.0.1",
        HOOKYARD_SMTP_PORT=port,
        HOOKYARD_SMTP_STARTTLS="false",
        HOOKYARD_SMTP_FROM=SENDER,
        HOOKYARD_SMTP_TIMEOUT_SECONDS=5,
    )


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_every_kind_renders_from_its_sample(kind: Kind) -> None:
    rendered = render.render_one(sample(kind), "Acme")
    item = sample(kind)
    assert item.headline in rendered.subject and item.headline in rendered.text
    assert "</html>" in rendered.html


def test_preview_writes_a_kinds_email_to_stdout_or_a_file(
    settings: Settings, tmp_path: Path
) -> None:
    env = process_env(settings)
    shown = hookyard(env, "notify", "preview", "campaign_status_rejected")
    assert shown.returncode == 0, shown.stderr
    parsed = email.message_from_string(shown.stdout, policy=email.policy.default)
    assert parsed["Subject"] == "[hookyard] Campaign CSAMPLE1 was rejected"
    assert parsed["X-Hookyard-Notification"] == "campaign_status_rejected"
    assert parsed.get_content_type() == "multipart/alternative"
    out = tmp_path / "alert.html"
    written = hookyard(
        env, "notify", "preview", "alert_opened", "--format", "html", "--out", str(out)
    )
    assert written.returncode == 0 and str(out) in written.stdout
    html = out.read_text()
    assert html.startswith("<!doctype html>") or "<html" in html
    assert "6 of the 20 events handled from source tcr" in html
    text = hookyard(env, "notify", "preview", "lead_closed", "--format", "text")
    assert "Lead Maria Silva was closed" in text.stdout and "<" not in text.stdout
    unknown = hookyard(env, "notify", "preview", "no_such_kind")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
    nowhere = hookyard(env, "notify", "preview", "lead_closed", "--out", str(tmp_path / "no/x"))
    assert nowhere.returncode == 1 and "cannot write" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_test_sends_one_email_through_the_configured_server(
    settings: Settings, smtp: SmtpServer
) -> None:
    done = hookyard(smtp_env(settings, smtp.port), "notify", "test", "Ops@Example.com")
    assert done.returncode == 0, done.stderr
    assert "sent a test e-mail" in done.stdout and "ops@example.com" in done.stdout
    [received] = smtp.received
    assert received.rcpt == ["ops@example.com"] and received.message["From"] == SENDER
    assert received.subject == "[hookyard] Test: Brand Acme Telecom is VERIFIED"
    assert received.message["X-Hookyard-Notification"] == "test"


def test_a_refused_or_missing_server_is_a_clear_error(settings: Settings) -> None:
    down = hookyard(smtp_env(settings, free_port()), "notify", "test", "ops@example.com")
    assert down.returncode == 1
    assert "hookyard: the SMTP server at 127.0.0.1:" in down.stderr
    assert "did not take the e-mail" in down.stderr and "Traceback" not in down.stderr
    off = hookyard(process_env(settings), "notify", "test", "ops@example.com")
    assert off.returncode == 2 and "set HOOKYARD_SMTP_HOST" in off.stderr
    bad = hookyard(smtp_env(settings, 25), "notify", "test", "not-an-address")
    assert bad.returncode == 2 and "is no e-mail address" in bad.stderr
