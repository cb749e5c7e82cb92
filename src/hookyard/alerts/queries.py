"""Reading and acknowledging alerts, and the snapshot `/metrics` shows.

`scope` is the caller's tenant filter (api/auth.Scope.where): a superadmin who picked no
tenant sees every alert, global ones (no tenant) included; anyone else sees their tenant's
only, so a global alert or another tenant's is never listed, shown or acknowledged.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, select, update

from hookyard.alerts.rules import RULES, AlertKind
from hookyard.alerts.tables import alert_values, alerts

_GAUGE_OF = {rule.kind.value: rule.metric for rule in RULES}


class AlertState(StrEnum):
    OPEN = "open"  # firing, and nobody acknowledged it yet
    ACKNOWLEDGED = "acknowledged"  # firing, and a person is on it
    RESOLVED = "resolved"  # the condition cleared (acknowledged or not)


def state_of(row: Any) -> AlertState:
    if row["resolved_at"] is not None:
        return AlertState.RESOLVED
    return AlertState.OPEN if row["acknowledged_at"] is None else AlertState.ACKNOWLEDGED


def _in_state(state: AlertState) -> ColumnElement[bool]:
    if state is AlertState.RESOLVED:
        return alerts.c.resolved_at.is_not(None)
    acknowledged = alerts.c.acknowledged_at.is_(None)
    if state is AlertState.ACKNOWLEDGED:
        acknowledged = alerts.c.acknowledged_at.is_not(None)
    return alerts.c.resolved_at.is_(None) & acknowledged


def _as_dict(row: Any) -> dict[str, Any]:
    return dict(row) | {"state": state_of(row)}


def list_alerts(
    conn: Connection,
    scope: ColumnElement[bool],
    *,
    state: AlertState | None = None,
    kind: AlertKind | None = None,
    kinds: Collection[AlertKind] | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first; `state` None: every state; `kinds`: only these kinds."""
    query = select(alerts).where(scope)
    if state is not None:
        query = query.where(_in_state(state))
    if kind is not None:
        query = query.where(alerts.c.kind == kind.value)
    if kinds is not None:
        query = query.where(alerts.c.kind.in_(sorted(k.value for k in kinds)))
    if before_id is not None:
        query = query.where(alerts.c.id < before_id)
    rows = conn.execute(query.order_by(alerts.c.id.desc()).limit(limit)).mappings()
    return [_as_dict(r) for r in rows]


def find_alert(
    conn: Connection, scope: ColumnElement[bool], alert_id: int
) -> dict[str, Any] | None:
    row = conn.execute(select(alerts).where(alerts.c.id == alert_id, scope)).mappings().first()
    return None if row is None else _as_dict(row)


def acknowledge(
    tx: Connection, scope: ColumnElement[bool], alert_id: int, by: str
) -> dict[str, Any] | None:
    """Acknowledge as `by`; the first acknowledgement is the one kept, so calling again
    changes nothing. None: no such alert in the scope (never revealed, never changed)."""
    tx.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, scope, alerts.c.acknowledged_at.is_(None))
        .values(acknowledged_at=datetime.now(UTC), acknowledged_by=by)
    )
    return find_alert(tx, scope, alert_id)


def open_alerts_of(
    conn: Connection,
    scope: ColumnElement[bool],
    subjects: Collection[str],
    kinds: Collection[AlertKind],
) -> list[dict[str, Any]]:
    """The open alerts (firing, nobody acknowledged them) of these subjects and kinds,
    oldest first. At most one per kind, tenant and subject is open (`open_key`)."""
    if not subjects:
        return []
    query = select(alerts).where(
        scope,
        _in_state(AlertState.OPEN),
        alerts.c.subject.in_(sorted(subjects)),
        alerts.c.kind.in_(sorted(k.value for k in kinds)),
    )
    rows = conn.execute(query.order_by(alerts.c.id)).mappings()
    return [_as_dict(r) for r in rows]


def acknowledge_open(
    tx: Connection,
    scope: ColumnElement[bool],
    subject: str,
    kinds: Collection[AlertKind],
    by: str,
) -> list[dict[str, Any]]:
    """Acknowledge as `by` every open alert of `subject` of these kinds in the scope; the
    alerts this call acknowledged, oldest first (none when nothing was open: calling again
    changes nothing)."""
    done = tx.execute(
        update(alerts)
        .where(
            scope,
            _in_state(AlertState.OPEN),
            alerts.c.subject == subject,
            alerts.c.kind.in_(sorted(k.value for k in kinds)),
        )
        .values(acknowledged_at=datetime.now(UTC), acknowledged_by=by)
        .returning(alerts.c.id)
    )
    ids = sorted(done.scalars())
    if not ids:
        return []
    rows = tx.execute(select(alerts).where(alerts.c.id.in_(ids)).order_by(alerts.c.id))
    return [_as_dict(r) for r in rows.mappings()]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What /metrics shows of alerting: the values each rule measured last, and the
    unresolved alerts per kind (all of them, and those nobody acknowledged)."""

    values: list[tuple[str, dict[str, str], float]]  # (gauge, labels, value)
    open: dict[str, int]
    unacknowledged: dict[str, int]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect() as conn:
        measured = conn.execute(
            select(alert_values.c.kind, alert_values.c.labels, alert_values.c.value).order_by(
                alert_values.c.id
            )
        ).all()
        counts = conn.execute(
            select(alerts.c.kind, func.count(), func.count(alerts.c.acknowledged_at))
            .where(alerts.c.resolved_at.is_(None))
            .group_by(alerts.c.kind)
        ).all()
    values = []
    for kind, labels, value in measured:
        gauge = _GAUGE_OF.get(kind)
        if gauge is not None and isinstance(labels, dict):
            values.append((gauge, {str(k): str(v) for k, v in labels.items()}, float(value)))
    opened = {k.value: 0 for k in AlertKind}
    unacknowledged = dict(opened)
    for kind, n, acknowledged in counts:
        opened[kind] = int(n)
        unacknowledged[kind] = int(n) - int(acknowledged)
    return Snapshot(values, opened, unacknowledged)
