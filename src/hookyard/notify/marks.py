"""What a sent notification marks on the row it is about.

notify knows the entity types (`kinds.EntityType`), not their tables: each domain registers,
for the entity types it records notifications about, how to mark its row once an e-mail
about it went out (`last_notification_sent_at`; a lead's closure also gets `notified_at`).
The domain packages register when they are imported (`hookyard/domain/<name>/__init__.py`);
any process that records or sends notifications has imported them (the sources' adapters
import their domains). An entity type nobody registered is logged and left unmarked: the
e-mail was sent all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind


@dataclass(frozen=True, slots=True)
class Sent:
    """The notification an e-mail was sent for: what it is about, and why."""

    entity_type: EntityType
    entity_id: int
    kind: Kind
    event_id: int | None


# Runs in the sender's transaction that marks the delivery sent.
Mark = Callable[[Connection, Sent, datetime], None]

_MARKS: dict[EntityType, Mark] = {}


def on_sent(entity_type: EntityType, mark: Mark) -> None:
    """Register how a sent notification about `entity_type` marks its row (one per type)."""
    _MARKS[entity_type] = mark


def registered() -> frozenset[EntityType]:
    return frozenset(_MARKS)


def mark_sent(tx: Connection, sent: Sent, now: datetime) -> None:
    mark = _MARKS.get(sent.entity_type)
    if mark is None:
        log.warning("notification_mark_missing", entity=sent.entity_type.value)
        return
    mark(tx, sent, now)
