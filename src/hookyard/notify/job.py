"""The notification sender: a worker background job (`hookyard.worker.runner.BackgroundJob`)
for both channels, e-mail and the tenants' chat webhooks. It runs whenever either can send:
e-mail while HOOKYARD_SMTP_HOST is set, chat while a tenant has its chat webhook on. Without
SMTP a pass first asks the database whether any chat webhook is on (or a chat message still
waits); with neither, it does nothing else.

Each pass, outside any event's transaction:

1. **fan out**: notifications recorded since the last pass get one delivery row per
   recipient (recipients.py), in one transaction with the notification's `queued`, so a
   notification is fanned out once whichever worker takes it (`FOR UPDATE SKIP LOCKED` on
   PostgreSQL; SQLite has one writer). One older than `HOOKYARD_NOTIFY_MAX_AGE_HOURS` (e-mail
   was off when it was recorded) is `expired` instead: old news is not sent days later.
2. **immediate**: due deliveries are claimed with a lease (`sending`, one more attempt),
   rendered and sent over one SMTP connection; then each is marked in a short transaction,
   only while this pass still holds its lease: `sent`, or `pending` again after an
   exponential backoff with jitter (a transient failure), or `failed` with the error kept
   (a permanent refusal, or `HOOKYARD_NOTIFY_MAX_ATTEMPTS` used).
3. **chat**: each notification of a tenant whose chat webhook is on also gets one `chat`
   delivery at fan-out (chat.py); it is claimed, POSTed (signed) and recorded like an
   immediate e-mail, with the same retries (and the receiver's Retry-After). Chat goes
   before e-mail in a pass, and each channel on its own: a chat message never waits behind
   an SMTP server's timeout nor fails with it, and an error in one channel's step does not
   keep the other from sending (the pass reports it after both ran).
4. **digests**: a person's digest rows wait for their next digest time (the daily
   `HOOKYARD_NOTIFY_DIGEST_HOUR`, UTC); when due, all of them are claimed together and go out
   as one e-mail, retried like the others.

While e-mail is off (HOOKYARD_SMTP_HOST unset), only the notifications of tenants whose chat
webhook is on are fanned out: their chat message goes, and their people's e-mails are
recorded `skipped` (e-mail is off), never sent later in a flood once SMTP is set. The other
notifications wait `pending`, as before: sent once e-mail is on, unless too old by then.

A delivery whose person was disabled, or moved to another tenant, since it was queued is
`skipped`: an e-mail never shows one tenant's data to another tenant's person. A sent
delivery marks the row the notification is about (its `last_notification_sent_at`; a lead
closure's `notified_at`) through what its domain registered (marks.py). No network call runs
inside a transaction.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from prometheus_client import Counter
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    RowMapping,
    bindparam,
    exists,
    insert,
    select,
    update,
)

from hookyard.accounts.tables import tenants, users
from hookyard.config import Settings
from hookyard.contacts import mask_email
from hookyard.http import ApiClient
from hookyard.logs import log
from hookyard.notify import chat, render
from hookyard.notify.kinds import EntityType, Kind, Mode
from hookyard.notify.marks import Sent, mark_sent
from hookyard.notify.recipients import Audience, recipients
from hookyard.notify.smtp import Outcome, SmtpSettings, classify, send_all
from hookyard.notify.tables import deliveries, notifications
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import LeasedQueue, LeaseLost, Spec, skip_locked

SENT = Counter(
    "hookyard_notifications_sent_total",
    "Notifications sent, by mode (immediate, digest e-mails; chat messages)",
    ["mode"],
)
FAILED = Counter(
    "hookyard_notifications_failed_total", "Deliveries failed for good (retries used or refused)"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


d = deliveries.c
n = notifications.c


class Status:
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class NotificationStatus:
    PENDING = "pending"
    QUEUED = "queued"
    EXPIRED = "expired"


SKIPPED = Outcome("the recipient was disabled or left the tenant", transient=False)
EMAIL_OFF = "e-mail is off (HOOKYARD_SMTP_HOST is not set)"
CHAT_OFF = Outcome("the tenant's chat webhook was removed or turned off", transient=False)
SKIPS = (SKIPPED, CHAT_OFF)


class Channel:
    EMAIL = "email"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    notification_id: int
    tenant: str
    user_id: int | None
    email: str
    mode: Mode
    attempts: int
    channel: str = Channel.EMAIL


@dataclass(slots=True)
class Letter:
    """One e-mail to send: the deliveries it carries (one, or a digest's)."""

    rows: list[Claimed]
    message: EmailMessage | None = None
    outcome: Outcome | None = None  # set before sending when it cannot be sent at all


# E-mail deliveries as a leased queue (hookyard.queue): due while pending, leased while
# sending, `failed` once the attempts are used up.
DELIVERIES = Spec(
    deliveries,
    due=(Status.PENDING,),
    leased=Status.SENDING,
    retry=Status.PENDING,
    dead=Status.FAILED,
    error="last_error",
)


@dataclass
class EmailJob:
    """The notifications' sender, both channels (the name is older than the chat channel)."""

    engine: Engine
    smtp: SmtpSettings | None  # None: e-mail is off, chat messages still go
    audience: Audience
    retry: Backoff = field(default_factory=lambda: Backoff(6, 60.0, 3600.0))
    lease_seconds: float = 120.0
    batch_size: int = 50
    max_age: timedelta = timedelta(hours=72)
    clock: Callable[[], datetime] = utcnow  # tests move it to a digest time
    name: str = "email_notifications"
    chat_timeout: float = 10.0

    def __post_init__(self) -> None:
        # Made here, not on first use: worker threads share the job (the client is
        # thread-safe, its creation would race).
        self._chat: ApiClient = chat.client(self.chat_timeout)
        self.queue = LeasedQueue(
            self.engine, DELIVERIES, self.retry, self.lease_seconds, lambda: self.clock()
        )
        self._writer = self.queue.writer

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> EmailJob:
        """The sender. While HOOKYARD_SMTP_HOST is unset it sends chat messages only (and
        does nothing while no tenant has a chat webhook on); other notifications are still
        recorded, and e-mailed once it is set unless they are too old by then."""
        smtp = SmtpSettings.from_settings(settings)
        if smtp is None:
            log.info(
                "email_notifications_off",
                reason="HOOKYARD_SMTP_HOST is not set",
                chat="tenants' chat webhooks are still sent",
            )
        else:
            if smtp.username and not smtp.encrypted and smtp.host not in ("127.0.0.1", "localhost"):
                log.warning(
                    "smtp_password_in_clear",
                    host=smtp.host,
                    fix="set HOOKYARD_SMTP_STARTTLS=true or HOOKYARD_SMTP_TLS=true",
                )
            log.info("email_notifications_on", smtp=repr(smtp))
        return cls(
            engine,
            smtp,
            Audience.parse(settings.notify_lead_manager_fields, settings.notify_digest_hour),
            Backoff(
                settings.notify_max_attempts,
                settings.notify_backoff_seconds,
                settings.notify_backoff_max_seconds,
            ),
            settings.notify_lease_seconds,
            settings.notify_batch_size,
            timedelta(hours=settings.notify_max_age_hours),
        )

    # -- the background job --------------------------------------------------------------

    def run_pass(self, worker: str) -> int:
        """Fan out new notifications, send due chat messages, e-mails and digests; how many
        were handled. Chat first, and each channel on its own (see the module's doc)."""
        smtp = self.smtp
        if smtp is None and not self._chat_waiting():
            return 0  # neither channel can send: one cheap read, no write transaction
        handled = self.fan_out()
        failure: Exception | None = None
        steps: list[Callable[[], int]] = [
            lambda: self._send_chat(self._claim(worker, Mode.IMMEDIATE, Channel.CHAT))
        ]
        if smtp is not None:
            steps.append(lambda: self._send(smtp, self._claim(worker, Mode.IMMEDIATE)))
            steps.append(lambda: self._send(smtp, self._claim(worker, Mode.DIGEST)))
        for step in steps:
            try:
                handled += step()
            except Exception as exc:  # the database, or a bug: the other channel still goes
                log.warning("notification_step_failed", error=str(exc)[:300])
                failure = failure or exc
        if failure is not None:
            raise failure  # the runner logs the job's failure and tries again next pass
        return handled

    def next_due_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            if conn.execute(select(n.id).where(*self._pending()).limit(1)).first():
                return self.clock()
        if self.smtp is None:
            return self.queue.next_due_at(where=[d.channel == Channel.CHAT])
        return self.queue.next_due_at()

    def _pending(self) -> list[ColumnElement[bool]]:
        """The notifications to fan out now: every pending one while e-mail is on; otherwise
        only those of tenants whose chat webhook is on (the others wait for e-mail)."""
        pending = [n.status == NotificationStatus.PENDING]
        if self.smtp is None:
            pending.append(n.tenant.in_(chat.enabled_tenant_ids()))
        return pending

    def _chat_waiting(self) -> bool:
        """Whether a chat webhook is on, or a chat message is still to send or being sent
        (one turned off meanwhile: skipped at sending)."""
        unsent = select(d.id).where(
            d.channel == Channel.CHAT, d.status.in_([Status.PENDING, Status.SENDING])
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(select(chat.any_enabled() | exists(unsent))).scalar())

    def close(self) -> None:
        # An SMTP connection lives only as long as one pass's batch; the chat client longer.
        self._chat.close()

    # -- 1. fan out ----------------------------------------------------------------------

    def fan_out(self) -> int:
        now = self.clock()
        with self._writer.begin() as tx:
            rows = (
                tx.execute(
                    skip_locked(
                        select(notifications)
                        .where(*self._pending())
                        .order_by(n.id)
                        .limit(self.batch_size)
                    )
                )
                .mappings()
                .all()
            )
            chatty = chat.enabled_tenants(tx, {r["tenant"] for r in rows})
            for row in rows:
                self._fan_out_one(tx, row, now, row["tenant"] in chatty)
        return len(rows)

    def _fan_out_one(self, tx: Connection, row: RowMapping, now: datetime, to_chat: bool) -> None:
        if row["created_at"] < now - self.max_age:
            tx.execute(
                update(notifications)
                .where(n.id == row["id"])
                .values(status=NotificationStatus.EXPIRED, recipients=0, fanned_out_at=now)
            )
            log.warning("notification_expired", notification_id=row["id"], kind=row["kind"])
            return
        found = {r.email: r for r in recipients(tx, row, self.audience)}  # one per address
        email_off = self.smtp is None
        if found:
            tx.execute(
                insert(deliveries),
                [
                    {
                        "notification_id": row["id"],
                        "tenant": row["tenant"],
                        "user_id": r.user_id,
                        "email": r.email,
                        "mode": r.mode.value,
                        "status": Status.SKIPPED if email_off else Status.PENDING,
                        "last_error": EMAIL_OFF if email_off else None,
                        "attempts": 0,
                        "next_attempt_at": (
                            now if r.mode is Mode.IMMEDIATE else self.audience.next_digest(now)
                        ),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for r in found.values()
                ],
            )
        if to_chat:  # the tenant's chat webhook: one message, whatever people chose
            tx.execute(
                insert(deliveries).values(
                    notification_id=row["id"], tenant=row["tenant"], user_id=None, email="",
                    mode=Mode.IMMEDIATE.value, channel=Channel.CHAT, status=Status.PENDING,
                    attempts=0, next_attempt_at=now, created_at=now, updated_at=now,
                )
            )  # fmt: skip
        tx.execute(
            update(notifications)
            .where(n.id == row["id"])
            .values(status=NotificationStatus.QUEUED, recipients=len(found), fanned_out_at=now)
        )
        log.info(
            "notification_queued",
            notification_id=row["id"],
            kind=row["kind"],
            recipients=len(found),
            chat=to_chat,
            email="off" if email_off else "on",
        )

    # -- 2 and 3. claim, render, send, record ---------------------------------------------

    def _claim(
        self, worker: str, mode: Mode, channel: str = Channel.EMAIL
    ) -> tuple[str, list[Claimed]]:
        """Lease the due deliveries of `mode` and `channel`: up to a batch of immediate ones,
        or every due row of up to a batch of people for digests (a person's digest is never
        split)."""
        owner = f"{worker[:80]}/{secrets.token_hex(4)}"
        q = self.queue
        due = (d.mode == mode.value) & (d.channel == channel) & DELIVERIES.is_due(bindparam("now"))
        if mode is Mode.IMMEDIATE:
            chosen = select(d.id).where(due).order_by(d.next_attempt_at, d.id)
            chosen = chosen.limit(self.batch_size)
        else:
            people = select(d.user_id).where(due).distinct().limit(self.batch_size)
            chosen = select(d.id).where(due, d.user_id.in_(people.scalar_subquery()))
        stmt = q.claim_statement(
            (d.id, d.notification_id, d.tenant, d.user_id, d.email, d.mode, d.attempts, d.channel),
            values={"updated_at": bindparam("now")},
            chosen=chosen,
        )
        with self._writer.begin() as tx:
            if recovered := q.recover(tx=tx):
                log.warning("notification_leases_expired", deliveries=len(recovered))
            rows = tx.execute(stmt, q.params(owner, self.batch_size)).all()
        claimed = [
            Claimed(
                r.id,
                r.notification_id,
                r.tenant,
                r.user_id,
                r.email,
                Mode(r.mode),
                r.attempts,
                r.channel,
            )
            for r in rows
        ]
        return owner, sorted(claimed, key=lambda c: c.id)

    def _send(self, smtp: SmtpSettings, lease: tuple[str, list[Claimed]]) -> int:
        owner, claimed = lease
        if not claimed:
            return 0
        letters = self._compose(claimed, smtp.sender)
        ready = [(letter, m) for letter in letters if (m := letter.message) is not None]
        outcomes = send_all(smtp, [m for _, m in ready])
        for (letter, _), outcome in zip(ready, outcomes, strict=True):
            letter.outcome = outcome
        self._record(owner, letters)
        return len(claimed)

    def _send_chat(self, lease: tuple[str, list[Claimed]]) -> int:
        """POST each claimed chat message to its tenant's webhook (outside any transaction),
        then record the outcomes like e-mails'."""
        owner, claimed = lease
        if not claimed:
            return 0
        with self.engine.connect() as conn:
            notes, names = _notes_and_names(conn, claimed)
            hooks = {t: chat.find(conn, t) for t in {c.tenant for c in claimed}}
        letters = []
        for c in claimed:
            letter = Letter([c])
            hook = hooks.get(c.tenant)
            if hook is None or not hook.enabled:
                letter.outcome = CHAT_OFF
            else:
                try:
                    item = _item(notes[c.notification_id])
                    message = chat.payload(item, names.get(c.tenant, c.tenant))
                except Exception as exc:  # a data error: retrying cannot fix it
                    error = f"rendering failed: {type(exc).__name__}: {exc}"[:500]
                    letter.outcome = Outcome(error, transient=False)
                else:
                    # The delivery's id names the message: a retry is the same message
                    # (receivers verifying Standard Webhooks can drop a repeat by its id).
                    letter.outcome = chat.post(
                        self._chat, hook, f"msg_hookyard_{c.id}", message, self.clock()
                    )
            letters.append(letter)
        self._record(owner, letters)
        return len(claimed)

    def _compose(self, claimed: Sequence[Claimed], sender: str) -> list[Letter]:
        with self.engine.connect() as conn:
            notes, names = _notes_and_names(conn, claimed)
            allowed = _allowed(conn, claimed)
        letters: list[Letter] = []
        grouped: dict[tuple[int | None, str], list[Claimed]] = defaultdict(list)
        for c in claimed:
            if c.user_id is not None and c.id not in allowed:
                letters.append(Letter([c], outcome=SKIPPED))
            elif c.mode is Mode.DIGEST:
                grouped[(c.user_id, c.tenant)].append(c)
            else:
                letters.append(Letter([c]))
        letters += [Letter(rows) for rows in grouped.values()]
        for letter in letters:
            if letter.outcome is None:
                tenant = letter.rows[0].tenant
                self._render(letter, notes, names.get(tenant, tenant), sender)
        return letters

    def _render(
        self, letter: Letter, notes: Mapping[int, RowMapping], tenant_name: str, sender: str
    ) -> None:
        first = letter.rows[0]
        items = [_item(notes[c.notification_id]) for c in letter.rows]
        try:
            if first.mode is Mode.DIGEST:
                items.sort(key=lambda i: i.created_at)
                rendered = render.render_digest(items, tenant_name, self.clock().date())
                kind = "digest"
            else:
                rendered = render.render_one(items[0], tenant_name)
                kind = items[0].kind.value
            letter.message = render.message(rendered, sender, first.email, kind)
        except Exception as exc:  # a template or data error: retrying cannot fix it
            letter.outcome = Outcome(f"rendering failed: {classify(exc).error}", transient=False)

    def _record(self, owner: str, letters: Sequence[Letter]) -> None:
        now = self.clock()
        with self._writer.begin() as tx:
            for letter in letters:
                assert letter.outcome is not None
                for row in letter.rows:
                    self._record_one(tx, owner, row, letter.outcome, now)
        for letter in letters:
            self._log(letter)

    def _record_one(
        self, tx: Connection, owner: str, row: Claimed, outcome: Outcome, now: datetime
    ) -> None:
        if outcome.sent or any(outcome is skip for skip in SKIPS):
            sent = outcome.sent
            values = {
                "status": Status.SENT if sent else Status.SKIPPED,
                "last_error": None if sent else outcome.error,
                "updated_at": now,
                **({"sent_at": now} if sent else {}),
            }
            try:
                self.queue.finish(tx, [row.id], owner, values)
            except LeaseLost:  # another sender took it back: its result stands
                return
            if sent:
                _mark_entity(tx, row.notification_id, now)
            return
        self.queue.retry_or_dead(
            row.id,
            owner,
            row.attempts,
            error=outcome.error,
            retry_after=outcome.retry_after,
            transient=outcome.transient,
            values={"updated_at": now},
            tx=tx,
        )

    def _log(self, letter: Letter) -> None:
        outcome = letter.outcome
        assert outcome is not None
        first = letter.rows[0]
        ids = [r.id for r in letter.rows]
        to = "chat" if first.channel == Channel.CHAT else mask_email(first.email)
        if outcome.sent:
            SENT.labels(Channel.CHAT if to == "chat" else first.mode.value).inc()
            log.info("notification_sent", deliveries=ids, mode=first.mode.value, to=to)
        elif any(outcome is skip for skip in SKIPS):
            log.info("notification_skipped", deliveries=ids, to=to, reason=outcome.error)
        elif outcome.transient and first.attempts < self.retry.max_attempts:
            log.warning(
                "notification_retry",
                deliveries=ids,
                to=to,
                attempts=first.attempts,
                error=(outcome.error or "")[:300],
            )
        else:
            FAILED.inc(len(ids))
            log.error(
                "notification_failed",
                deliveries=ids,
                to=to,
                attempts=first.attempts,
                error=(outcome.error or "")[:300],
            )


def _allowed(conn: Connection, claimed: Sequence[Claimed]) -> set[int]:
    """The deliveries whose person is still active in the delivery's tenant."""
    people = {c.user_id for c in claimed if c.user_id is not None}
    if not people:
        return set()
    active = {
        r.id: r.tenant
        for r in conn.execute(
            select(users.c.id, users.c.tenant).where(
                users.c.id.in_(people), users.c.disabled_at.is_(None)
            )
        )
    }
    return {c.id for c in claimed if c.user_id in active and active[c.user_id] == c.tenant}


def _notes_and_names(
    conn: Connection, claimed: Sequence[Claimed]
) -> tuple[dict[int, Any], dict[str, str]]:
    """The claimed deliveries' notifications by id, and their tenants' names by id."""
    notes = {
        r["id"]: r
        for r in conn.execute(
            select(notifications).where(n.id.in_({c.notification_id for c in claimed}))
        ).mappings()
    }
    names = dict(
        conn.execute(
            select(tenants.c.id, tenants.c.name).where(
                tenants.c.id.in_({c.tenant for c in claimed})
            )
        ).all()
    )
    return notes, names


def _item(note: RowMapping) -> render.Item:
    return render.Item(Kind(note["kind"]), dict(note["data"]), note["created_at"])


def _mark_entity(tx: Connection, notification_id: int, now: datetime) -> None:
    """Mark the row the notification is about, as its domain registered (marks.py)."""
    note = tx.execute(
        select(n.entity_type, n.entity_id, n.kind, n.event_id).where(n.id == notification_id)
    ).one()
    sent = Sent(EntityType(note.entity_type), note.entity_id, Kind(note.kind), note.event_id)
    mark_sent(tx, sent, now)
