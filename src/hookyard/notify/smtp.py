"""Sending with aiosmtplib: one connection per batch, each message's outcome classified.

aiosmtplib is asynchronous and the worker is a thread: a batch runs in its own event loop
(`asyncio.run`), so worker threads sharing the job never share a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from hookyard.config import Settings


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    tls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings | None:
        """The SMTP server, or None when e-mail is off (HOOKYARD_SMTP_HOST unset)."""
        if not settings.smtp_host:
            return None
        if not settings.smtp_from:
            raise ValueError("HOOKYARD_SMTP_FROM is required when HOOKYARD_SMTP_HOST is set")
        if bool(settings.smtp_username) != bool(settings.smtp_password):
            raise ValueError(
                "set both HOOKYARD_SMTP_USERNAME and HOOKYARD_SMTP_PASSWORD, or neither"
            )
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.smtp_username or None,
            settings.smtp_password or None,
            settings.smtp_starttls,
            settings.smtp_tls,
            settings.smtp_timeout_seconds,
        )

    @property
    def encrypted(self) -> bool:
        return self.tls or self.starttls

    def __repr__(self) -> str:  # never the password
        return (
            f"SmtpSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
            f"starttls={self.starttls}, auth={self.username is not None})"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message's result: sent, or the error and whether trying again may help."""

    error: str | None = None
    transient: bool = False
    retry_after: float | None = None  # the receiver's Retry-After (chat webhooks), seconds

    @property
    def sent(self) -> bool:
        return self.error is None


SENT = Outcome()


def classify(exc: BaseException) -> Outcome:
    """A refusal of this message (5xx to its recipient or its data) will not change on a
    retry; everything else (no connection, timeouts, 4xx, the server's login or sender
    refusals, which are configuration to fix) may."""
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        return Outcome(error, transient=not codes or any(code < 500 for code in codes))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError | aiosmtplib.SMTPSenderRefused):
        return Outcome(error, transient=True)
    if isinstance(exc, aiosmtplib.SMTPDataError | aiosmtplib.SMTPRecipientRefused):
        return Outcome(error, transient=exc.code < 500)
    return Outcome(error, transient=True)


def send_all(config: SmtpSettings, messages: Sequence[EmailMessage]) -> list[Outcome]:
    """Send `messages` over one connection; one outcome each, in order."""
    if not messages:
        return []
    return asyncio.run(_send_all(config, messages))


async def _send_all(config: SmtpSettings, messages: Sequence[EmailMessage]) -> list[Outcome]:
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.tls,
        start_tls=False if config.tls else config.starttls,
        timeout=config.timeout,
    )
    try:
        await client.connect()
    except Exception as exc:  # no server, TLS or login failed: nothing was sent
        return [classify(exc)] * len(messages)
    outcomes: list[Outcome] = []
    try:
        for msg in messages:
            try:
                await client.send_message(msg)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                # The connection is gone: this message and the rest wait for a retry.
                outcomes += [classify(exc)] * (len(messages) - len(outcomes))
                break
            except aiosmtplib.SMTPException as exc:
                outcomes.append(classify(exc))
                await _reset(client)
            else:
                outcomes.append(SENT)
    finally:
        try:
            await client.quit()
        except Exception:  # already closed or broken: nothing left to say to it
            client.close()
    return outcomes


async def _reset(client: aiosmtplib.SMTP) -> None:
    """After a refused message, RSET so the next one starts a clean transaction."""
    with contextlib.suppress(aiosmtplib.SMTPException):
        await client.rset()
