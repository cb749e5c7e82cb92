"""Evaluating the rules: open an alert when a rule fires about a subject, keep it up to date
while it fires, resolve it when it stops.

Runs as the scheduler job `alerts.evaluate` (queue/scheduler.py: one process at a time).
Each rule is evaluated in its own transaction, which also replaces the rule's measured
values (`alert_values`, read by /metrics): a rule that cannot be measured (its query
failed) leaves its alerts and values as they were, and the other rules go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update

from hookyard.alerts.rules import RULES, AlertKind, Measurement, Rule, RuleContext, RuleScope
from hookyard.alerts.tables import alert_values, alerts
from hookyard.config import Settings
from hookyard.db.engine import writer
from hookyard.db.rows import insert_missing
from hookyard.logs import log
from hookyard.notify import record as notify
from hookyard.notify.kinds import EntityType, Kind
from hookyard.providers.base import Source
from hookyard.queue.scheduler import Job

JOB_NAME = "alerts.evaluate"


def open_key(kind: str, tenant: str | None, subject: str) -> str:
    """What makes an open alert unique: its rule, tenant and subject."""
    return f"{kind}|{tenant or ''}|{subject}"


@dataclass
class EvaluationResult:
    opened: int = 0
    updated: int = 0
    resolved: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        """What the scheduler records as the run's error (queue/scheduler.Scheduler._run)."""
        return "; ".join(self.errors) or None


class AlertEvaluator:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        sources: Iterable[Source] = (),
        rules: Sequence[Rule] = RULES,
    ) -> None:
        self.engine = writer(engine)
        self.settings = settings
        self.source_tenants = {source.name: source.config.tenant for source in sources}
        self.rules = tuple(rules)
        self.told = told_kinds(settings.notify_alert_kinds)

    def job(self) -> Job | None:
        """The scheduled job; None when HOOKYARD_ALERT_INTERVAL_SECONDS is 0."""
        interval = self.settings.alert_interval_seconds
        return Job(JOB_NAME, interval, self.run) if interval > 0 else None

    def run(self, now: datetime | None = None) -> EvaluationResult:
        now = now or datetime.now(UTC)
        context = RuleContext(now, self.settings, self.source_tenants)
        result = EvaluationResult()
        for rule in self.rules:
            try:
                with self.engine.begin() as tx:
                    measured = [_normalised(rule, m) for m in rule.measure(tx, context)]
                    self._apply(tx, rule, measured, now, result)
            except Exception as exc:  # one rule failing must not stop the others
                error = f"{rule.kind.value}: {type(exc).__name__}: {exc}"
                result.errors.append(error[:500])
                log.error("alert_rule_failed", kind=rule.kind.value, error=error[:300])
        log.info(
            "alerts_evaluated", opened=result.opened, updated=result.updated,
            resolved=result.resolved, failed=len(result.errors),
        )  # fmt: skip
        return result

    def _apply(
        self,
        tx: Connection,
        rule: Rule,
        measured: list[Measurement],
        now: datetime,
        result: EvaluationResult,
    ) -> None:
        kind = rule.kind.value
        threshold = rule.threshold(self.settings)
        firing = {
            open_key(kind, m.tenant, m.subject): m
            for m in measured
            if threshold is not None and m.eligible and m.value >= threshold
        }
        # FOR UPDATE (PostgreSQL): an evaluation started by hand at the same time waits.
        current = tx.execute(
            select(alerts.c.id, alerts.c.open_key, alerts.c.tenant, alerts.c.subject)
            .where(alerts.c.kind == kind, alerts.c.resolved_at.is_(None))
            .with_for_update()
        ).all()
        for alert_id, key, tenant, subject in current:
            still = firing.pop(key, None)
            if still is None:
                tx.execute(
                    update(alerts)
                    .where(alerts.c.id == alert_id)
                    .values(resolved_at=now, open_key=None)
                )
                result.resolved += 1
                log.info(
                    "alert_resolved", alert=alert_id, kind=kind, tenant=tenant, subject=subject
                )
                continue
            tx.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    value=still.value,
                    threshold=threshold,
                    detail=still.detail,
                    labels=dict(still.labels),
                    last_seen_at=now,
                )
            )
            result.updated += 1
        for key, m in firing.items():
            insert_missing(
                tx,
                alerts,
                {
                    "kind": kind,
                    "tenant": m.tenant,
                    "subject": m.subject,
                    "labels": dict(m.labels),
                    "open_key": key,
                    "value": m.value,
                    "threshold": threshold,
                    "detail": m.detail,
                    "opened_at": now,
                    "last_seen_at": now,
                },
                ["open_key"],
            )
            result.opened += 1
            if rule.kind in self.told:
                _tell(tx, rule, key, m, threshold)
            log.info(
                "alert_opened", kind=kind, tenant=m.tenant, subject=m.subject, value=m.value,
                threshold=threshold,
            )  # fmt: skip
        tx.execute(delete(alert_values).where(alert_values.c.kind == kind))
        if measured:
            tx.execute(
                insert(alert_values),
                [
                    {
                        "kind": kind,
                        "tenant": m.tenant,
                        "subject": m.subject,
                        "labels": dict(m.labels),
                        "value": m.value,
                        "measured_at": now,
                    }
                    for m in measured
                ],
            )


def told_kinds(setting: str) -> frozenset[AlertKind]:
    """HOOKYARD_NOTIFY_ALERT_KINDS: the alert kinds whose opening is notified."""
    names = {name.strip() for name in setting.split(",") if name.strip()}
    unknown = names - {k.value for k in AlertKind}
    if unknown:
        known = ", ".join(k.value for k in AlertKind)
        raise ValueError(f"HOOKYARD_NOTIFY_ALERT_KINDS: unknown {sorted(unknown)}; known: {known}")
    return frozenset(AlertKind(name) for name in names)


def _tell(tx: Connection, rule: Rule, key: str, m: Measurement, threshold: float | None) -> None:
    """Record the `alert_opened` notification in the transaction that opened the alert (a
    global alert has no tenant, so nobody is told: notify/record.py)."""
    alert_id = tx.execute(select(alerts.c.id).where(alerts.c.open_key == key)).scalar_one()
    title = " ".join(m.detail.split())[:150]
    notify.record(
        tx,
        Kind.ALERT_OPENED,
        tenant=m.tenant,
        entity_type=EntityType.ALERT,
        entity_id=int(alert_id),
        change="opened",
        data={"alert_id": int(alert_id), "alert_kind": rule.kind.value, "subject": m.subject,
              "detail": m.detail, "value": round(m.value, 4), "threshold": threshold,
              "title": f"{rule.kind.value.replace('_', ' ')}: {title}"},
    )  # fmt: skip


def _normalised(rule: Rule, m: Measurement) -> Measurement:
    """A global rule's alerts belong to no tenant; a subject fits its column."""
    tenant = None if rule.scope is RuleScope.GLOBAL else m.tenant
    return replace(m, tenant=tenant, subject=m.subject[:300])


def alert_jobs(engine: Engine, settings: Settings, sources: Iterable[Source]) -> list[Job]:
    """The scheduled jobs of alerting (none when its interval is 0)."""
    job = AlertEvaluator(engine, settings, sources).job()
    return [job] if job is not None else []
