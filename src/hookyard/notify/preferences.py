"""Who wants which kind, and how. A person's row for a kind decides (enabled or not,
immediate or digest); without one, the role's default:

| role | default |
| --- | --- |
| admin, member | every kind, immediately |
| viewer | none (they opt in per kind) |
| superadmin | none (they belong to no tenant; a notification is one tenant's) |

A lead's manager who is a user of the lead's tenant is told of the lead's closing whatever
the role's default; only their own row for `lead_closed` can turn it off or make it digest.
People name a preference `off`, `immediate` or `daily_digest` (`Choice`, the API's and the
dashboard's words). All SQL on `notification_preferences` is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Connection, Engine, delete, select, update

from hookyard.db.engine import writer
from hookyard.db.rows import insert_missing
from hookyard.notify.kinds import Kind, Mode
from hookyard.notify.tables import preferences

DEFAULT_ROLES = frozenset({"admin", "member"})


@dataclass(frozen=True, slots=True)
class Preference:
    enabled: bool
    mode: Mode


IMMEDIATE = Preference(True, Mode.IMMEDIATE)
OFF = Preference(False, Mode.IMMEDIATE)
DIGEST = Preference(True, Mode.DIGEST)


def default_for(role: str) -> Preference:
    return IMMEDIATE if role in DEFAULT_ROLES else OFF


class Choice(StrEnum):
    """A preference as people (the API, the dashboard) name it."""

    OFF = "off"
    IMMEDIATE = "immediate"
    DAILY_DIGEST = "daily_digest"

    @property
    def preference(self) -> Preference:
        if self is Choice.OFF:
            return OFF
        return IMMEDIATE if self is Choice.IMMEDIATE else DIGEST

    @classmethod
    def of(cls, preference: Preference) -> Choice:
        if not preference.enabled:
            return cls.OFF
        return cls.IMMEDIATE if preference.mode is Mode.IMMEDIATE else cls.DAILY_DIGEST


def set_preference(
    engine: Engine, user_id: int, kind: Kind | str, *, enabled: bool, mode: Mode | str
) -> None:
    """A person's choice for one kind (replacing an earlier one)."""
    with writer(engine).begin() as tx:
        _set(tx, user_id, Kind(kind), Preference(enabled, Mode(mode)))


def reset_preference(engine: Engine, user_id: int, kind: Kind | str) -> None:
    """Back to the role's default for the kind."""
    with writer(engine).begin() as tx:
        _reset(tx, user_id, Kind(kind))


def choose(tx: Connection, user_id: int, choices: Mapping[Kind, Choice | None]) -> None:
    """A person's choices for some kinds, in the caller's transaction; None: back to the
    role's default. Kinds not named keep what they were."""
    for kind, choice in choices.items():
        if choice is None:
            _reset(tx, user_id, kind)
        else:
            _set(tx, user_id, kind, choice.preference)


def _set(tx: Connection, user_id: int, kind: Kind, choice: Preference) -> None:
    values = {"enabled": choice.enabled, "mode": choice.mode.value, "updated_at": datetime.now(UTC)}
    insert_missing(
        tx, preferences, {"user_id": user_id, "kind": kind.value} | values, ["user_id", "kind"]
    )
    tx.execute(
        update(preferences)
        .where(preferences.c.user_id == user_id, preferences.c.kind == kind.value)
        .values(values)
    )


def _reset(tx: Connection, user_id: int, kind: Kind) -> None:
    tx.execute(
        delete(preferences).where(
            preferences.c.user_id == user_id, preferences.c.kind == kind.value
        )
    )


def chosen(conn: Connection, user_ids: Iterable[int], kind: Kind) -> Mapping[int, Preference]:
    """The rows people set for `kind` (user id -> preference); absent: the default."""
    ids = list(user_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(preferences.c.user_id, preferences.c.enabled, preferences.c.mode).where(
            preferences.c.user_id.in_(ids), preferences.c.kind == kind.value
        )
    )
    return {int(r.user_id): Preference(bool(r.enabled), Mode(r.mode)) for r in rows}


def preferences_of(engine: Engine, user_id: int, role: str) -> dict[Kind, Preference]:
    """Every kind as it applies to the person: their row, else the role's default."""
    with engine.connect() as conn:
        found = own_rows(conn, user_id)
    return {kind: found.get(kind, default_for(role)) for kind in Kind}


def own_rows(conn: Connection, user_id: int) -> dict[Kind, Preference]:
    """The rows the person set (kinds no longer known are left out)."""
    rows = conn.execute(
        select(preferences.c.kind, preferences.c.enabled, preferences.c.mode).where(
            preferences.c.user_id == user_id
        )
    )
    known = {k.value for k in Kind}
    return {
        Kind(r.kind): Preference(bool(r.enabled), Mode(r.mode)) for r in rows if r.kind in known
    }
