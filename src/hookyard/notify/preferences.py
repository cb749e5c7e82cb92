"""Who wants which kind, and how. A person's row for a kind decides (enabled or not,
immediate or digest); without one, the role's default:

| role | default |
| --- | --- |
| admin, member | every kind, immediately |
| viewer | none (they opt in per kind) |
| superadmin | none (they belong to no tenant; a notification is one tenant's) |

A lead's manager who is a user of the lead's tenant is told of the lead's closing whatever
the role's default; only their own row for `lead_closed` can turn it off or make it digest.
All SQL on `notification_preferences` is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

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


def default_for(role: str) -> Preference:
    return IMMEDIATE if role in DEFAULT_ROLES else OFF


def set_preference(
    engine: Engine, user_id: int, kind: Kind | str, *, enabled: bool, mode: Mode | str
) -> None:
    """A person's choice for one kind (replacing an earlier one)."""
    kind, mode = Kind(kind), Mode(mode)
    now = datetime.now(UTC)
    values = {"enabled": enabled, "mode": mode.value, "updated_at": now}
    with writer(engine).begin() as tx:
        insert_missing(
            tx, preferences, {"user_id": user_id, "kind": kind.value} | values, ["user_id", "kind"]
        )
        tx.execute(
            update(preferences)
            .where(preferences.c.user_id == user_id, preferences.c.kind == kind.value)
            .values(values)
        )


def reset_preference(engine: Engine, user_id: int, kind: Kind | str) -> None:
    """Back to the role's default for the kind."""
    with writer(engine).begin() as tx:
        tx.execute(
            delete(preferences).where(
                preferences.c.user_id == user_id, preferences.c.kind == Kind(kind).value
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
        rows = conn.execute(
            select(preferences.c.kind, preferences.c.enabled, preferences.c.mode).where(
                preferences.c.user_id == user_id
            )
        )
        found = {r.kind: Preference(bool(r.enabled), Mode(r.mode)) for r in rows}
    return {kind: found.get(kind.value, default_for(role)) for kind in Kind}
