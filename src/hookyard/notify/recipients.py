"""Choosing who is told of a notification (the fan-out), in the sender's transaction.

Only people of the notification's tenant: users with that tenant, not disabled, whose
preference (or role default, see preferences.py) wants the kind. A lead's closing goes to
the lead's manager instead: the first valid e-mail found at one of the configured paths of
the C2S webhook body (`HOOKYARD_NOTIFY_LEAD_MANAGER_FIELDS`). A manager who is a user of the
tenant is told by their own preference; an address that is no user is told immediately;
an address of another tenant's user is never used. Without a usable manager, the tenant's
admins are told (by their preferences).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from hookyard.accounts.tables import users
from hookyard.contacts import mask_email, validate_email
from hookyard.inbox.store import EventStore
from hookyard.logs import log
from hookyard.notify import preferences as prefs
from hookyard.notify.kinds import Kind, Mode

MANAGER_DEFAULT = prefs.IMMEDIATE  # the manager is the addressee: told unless they opt out


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: int | None
    email: str
    mode: Mode


@dataclass(frozen=True, slots=True)
class Audience:
    """What the fan-out needs from the settings."""

    manager_fields: tuple[tuple[str, ...], ...]  # dotted paths, split
    digest_hour: int  # UTC

    @classmethod
    def parse(cls, manager_fields: str, digest_hour: int) -> Audience:
        paths = tuple(
            tuple(part for part in path.strip().split(".") if part)
            for path in manager_fields.split(",")
            if path.strip()
        )
        return cls(paths, digest_hour)

    def next_digest(self, now: datetime) -> datetime:
        """The next digest time after `now`: today's digest hour, or tomorrow's."""
        at = now.replace(hour=self.digest_hour, minute=0, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)


def recipients(tx: Connection, notification: RowMapping, audience: Audience) -> list[Recipient]:
    kind = Kind(notification["kind"])
    tenant = notification["tenant"]
    if kind is Kind.LEAD_CLOSED:
        manager = _manager(tx, notification, audience)
        if manager is not None:
            return manager
        return _people(tx, tenant, kind, roles=("admin",))
    return _people(tx, tenant, kind)


def _people(
    tx: Connection, tenant: str, kind: Kind, roles: Sequence[str] | None = None
) -> list[Recipient]:
    query = select(users.c.id, users.c.email, users.c.role).where(
        users.c.tenant == tenant, users.c.disabled_at.is_(None)
    )
    if roles is not None:
        query = query.where(users.c.role.in_(roles))
    people = tx.execute(query.order_by(users.c.id)).all()
    chosen = prefs.chosen(tx, [p.id for p in people], kind)
    found = []
    for person in people:
        choice = chosen.get(person.id, prefs.default_for(person.role))
        if choice.enabled:
            found.append(Recipient(int(person.id), person.email, choice.mode))
    return found


def _manager(
    tx: Connection, notification: RowMapping, audience: Audience
) -> list[Recipient] | None:
    """The lead's manager, as the only recipient ([] when they opted out); None when there is
    no usable manager (then the admins are told)."""
    address = manager_address(tx, notification["event_id"], audience.manager_fields)
    if address is None:
        return None
    person = tx.execute(
        select(users.c.id, users.c.tenant, users.c.disabled_at).where(users.c.email == address)
    ).first()
    if person is None:
        return [Recipient(None, address, Mode.IMMEDIATE)]
    if person.tenant != notification["tenant"] or person.disabled_at is not None:
        # Another tenant's user (or a disabled one) must not get this tenant's lead.
        log.warning(
            "notification_manager_refused",
            notification_id=notification["id"],
            email=mask_email(address),
        )
        return None
    choice = prefs.chosen(tx, [person.id], Kind.LEAD_CLOSED).get(person.id, MANAGER_DEFAULT)
    return [Recipient(int(person.id), address, choice.mode)] if choice.enabled else []


def manager_address(
    tx: Connection, event_id: int | None, paths: Sequence[Sequence[str]]
) -> str | None:
    """The first valid e-mail at one of `paths` in the event's body (normalised)."""
    if event_id is None or not paths:
        return None
    body = EventStore.payload_of(tx, event_id)  # None once purged by retention
    for path in paths:
        value = _at(body, path)
        if isinstance(value, str):
            address, _error = validate_email(value)
            if address is not None:
                return address
    return None


def _at(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
