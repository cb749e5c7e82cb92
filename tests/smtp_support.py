"""A real SMTP server for the tests (aiosmtpd on a free local port): what it received, read
back as parsed messages; it can be taken down and brought back."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import Engine

from hookyard.config import Settings
from hookyard.notify.job import EmailJob
from tests.support import MovableClock, free_port

SENDER = "hookyard <alerts@hookyard.example.com>"


@dataclass
class Received:
    rcpt: list[str]
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_type() == f"text/{subtype}"
        return str(body.get_content())


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping what it is given."""

    received: list[Received] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.received.append(Received(list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"s3cret")
        if ok:
            self.logins.append((data.login, data.password))
        return AuthResult(success=ok)


class SmtpServer:
    """aiosmtpd on a fixed local port, which a test can take down and bring back."""

    def __init__(self, **options: Any) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.options = options
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        with self.mailbox.lock:
            return list(self.mailbox.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if r.rcpt == [address]]

    def recipients(self) -> list[str]:
        return sorted(a for r in self.received for a in r.rcpt)


def with_smtp(settings: Settings, server: SmtpServer, **extra: Any) -> Settings:
    """`settings` sending e-mail through `server` (plain SMTP, no STARTTLS), plus `extra`."""
    update: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_starttls": False,
        "smtp_from": SENDER,
        "smtp_timeout_seconds": 5.0,
    }
    return settings.model_copy(update={**update, **extra})


@contextlib.contextmanager
def mailer_job(settings: Settings, engine: Engine, clock: MovableClock) -> Iterator[EmailJob]:
    """The notification job (e-mail, chat) of `settings` on `engine`, its time from `clock`;
    closed afterwards."""
    job = EmailJob.from_settings(settings, engine)
    assert job is not None
    job.clock = clock
    try:
        yield job
    finally:
        job.close()


def drain(job: EmailJob) -> None:
    """Passes of `job` until one sends nothing."""
    while job.run_pass("test"):
        pass
