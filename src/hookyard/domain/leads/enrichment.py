"""The lead enrichment pipeline: pending leads through the steps (`steps.py`), outside any
event's transaction.

One lead at a time, in three phases, so no HTTP call ever runs inside a transaction:

1. **claim** (a short transaction): the first due lead, `pending` and past its
   `enrichment_next_attempt_at`, becomes `running` with a lease (`enrichment_lease_owner`,
   `enrichment_lease_until`) and one more attempt. PostgreSQL skips rows another worker has
   locked (`FOR UPDATE SKIP LOCKED`), so two workers never take the same lead; SQLite has one
   writer. A running lead whose lease expired (its worker died, or the run overran the
   lease) is first made pending again, or `failed` once its attempts are used.
2. **run**: the steps, with the pipeline's HTTP client (timeouts). Before each step after the
   first, a read checks that the lead is still this run's: a webhook that changed the contact
   meanwhile made it pending again, and the run stops there (no message about an old contact).
3. **record** (a short transaction): the outcome is written only where the lead is still
   `running` under this run's lease *and* has the contact this run enriched. Otherwise the
   result is stale and dropped; the lead, pending again, is enriched with its new contact.

Failures: a transient one (no connection, a timeout, 429, 5xx, an unexpected exception in a
step) makes the lead pending again after an exponential backoff with jitter, no sooner than a
429's or 5xx's Retry-After; once `HOOKYARD_ENRICHMENT_MAX_ATTEMPTS` are used it is `failed`.
A definitive answer (another 4xx, a malformed answer) fails the lead at once. The error stays
in `enrichment_error`. A step may run again on a retry: the message step sends an
idempotency key, and a posted message is not taken back when the result is dropped later.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, select

from hookyard.config import Settings
from hookyard.contacts import mask_email, mask_phone
from hookyard.domain.leads.service import EnrichmentStatus, lead_change
from hookyard.domain.leads.steps import (
    Lead,
    Result,
    Step,
    StepError,
    is_configured,
    load_steps,
)
from hookyard.domain.leads.tables import leads
from hookyard.http import ApiClient
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import Clock, LeasedQueue, LeaseLost, Spec, utcnow

# The outcomes that found a person: the document and data are kept, the message was posted.
ENRICHED = frozenset({EnrichmentStatus.DONE, EnrichmentStatus.ENRICHED_SINGLE_SOURCE})

LEASE_EXPIRED = (
    "lease expired: the run stopped, or took longer than HOOKYARD_ENRICHMENT_LEASE_SECONDS"
)

c = leads.c

# Leads as a leased queue (hookyard.queue): due while pending (no time yet: now), leased
# while running, `failed` once the attempts are used up.
ENRICHMENT = Spec(
    leads,
    due=(EnrichmentStatus.PENDING.value,),
    leased=EnrichmentStatus.RUNNING.value,
    retry=EnrichmentStatus.PENDING.value,
    dead=EnrichmentStatus.FAILED.value,
    status="enrichment_status",
    attempts="enrichment_attempts",
    next_attempt_at="enrichment_next_attempt_at",
    lease_owner="enrichment_lease_owner",
    lease_until="enrichment_lease_until",
    error="enrichment_error",
    dead_at="enrichment_finished_at",
    expired_error=LEASE_EXPIRED,
    keep_error=False,
    null_is_due=True,
)


@dataclass(frozen=True, slots=True)
class Claim:
    lead: Lead
    owner: str  # this run's lease token


@dataclass(slots=True)
class Run:
    """What running the steps gave: a result, or the failure that ended it; `stale` when the
    lead changed under the run and it stopped."""

    result: Result = field(default_factory=Result)
    timings: list[dict[str, Any]] = field(default_factory=list)
    failure: StepError | None = None
    stale: bool = False


@dataclass
class EnrichmentPipeline:
    """A worker background job (see `hookyard.worker.runner.BackgroundJob`): each worker loop
    enriches up to `batch_size` due leads. One instance serves every worker thread."""

    engine: Engine
    steps: Sequence[Step]
    http: ApiClient
    retry: Backoff = field(default_factory=lambda: Backoff(5, 30.0, 3600.0))
    lease_seconds: float = 120.0
    batch_size: int = 20
    name: str = "lead_enrichment"

    clock: Clock = utcnow

    def __post_init__(self) -> None:
        self.queue = LeasedQueue(
            self.engine, ENRICHMENT, self.retry, self.lease_seconds, lambda: self.clock()
        )

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> EnrichmentPipeline | None:
        """The configured pipeline, or None when enrichment is off (no step URL set): then
        pending leads stay pending until it is configured."""
        if not is_configured(settings):
            log.info("lead_enrichment_off", reason="no enrichment URL is set")
            return None
        http = ApiClient(
            provider="enrichment",
            timeout=settings.enrichment_timeout_seconds,
            max_attempts=settings.provider_max_attempts,  # a connection that never opened
            backoff_base=settings.provider_backoff_seconds,
        )
        try:
            steps = load_steps(settings, http)
        except BaseException:
            http.close()
            raise
        log.info("lead_enrichment_on", steps=[step.name for step in steps])
        return cls(
            engine,
            steps,
            http,
            Backoff(
                settings.enrichment_max_attempts,
                settings.enrichment_retry_base_seconds,
                settings.enrichment_retry_max_seconds,
            ),
            settings.enrichment_lease_seconds,
            settings.enrichment_batch_size,
        )

    # -- the background job --------------------------------------------------------------

    def run_pass(self, worker: str) -> int:
        """Enrich due leads, at most `batch_size`; how many were run."""
        handled = 0
        while handled < self.batch_size and self._anything_due():
            claim = self.claim(worker)
            if claim is None:  # another worker took it
                break
            self.record(claim, self.run(claim))
            handled += 1
        return handled

    def next_due_at(self) -> datetime | None:
        """When a lead is next due: the earliest retry, or the earliest lease to expire."""
        return self.queue.next_due_at()

    def close(self) -> None:
        self.http.close()

    # -- the three phases ----------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        now = self.clock()
        owner = f"{worker[:90]}/{secrets.token_hex(4)}"
        with self.queue.writer.begin() as tx:
            if recovered := self.queue.recover(tx=tx):
                log.warning("lead_enrichment_leases_expired", leads=len(recovered))
            rows = self.queue.claim(
                owner,
                1,
                (c.c2s_lead_id, c.tenant, c.name, c.email, c.phone, c.contact_hash,
                 c.enrichment_attempts),
                order_by=(c.id,),
                values={"enrichment_started_at": now, "enrichment_finished_at": None},
                tx=tx,
            )  # fmt: skip
        if not rows:
            return None
        row = rows[0]
        lead = Lead(
            row["id"],
            row["c2s_lead_id"],
            row["tenant"],
            row["name"],
            row["email"],
            row["phone"],
            row["contact_hash"],
            row["enrichment_attempts"],
        )
        log.info(
            "lead_enrichment_started",
            lead=lead.c2s_lead_id,
            attempt=lead.attempt,
            email=mask_email(lead.email),
            phone=mask_phone(lead.phone),
        )
        return Claim(lead, owner)

    def run(self, claim: Claim) -> Run:
        run = Run()
        for index, step in enumerate(self.steps):
            if run.result.stopped:
                break
            if index > 0 and not self._still_ours(claim):
                run.stale = True
                break
            started = time.perf_counter()
            try:
                step.run(claim.lead, run.result)
            except StepError as exc:
                run.failure = exc
            except Exception as exc:  # a bug or an unforeseen answer: retried, within attempts
                run.failure = StepError(
                    f"{step.name}: unexpected {type(exc).__name__}",
                    transient=True,
                    detail=str(exc)[:500],
                )
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            run.timings.append({"step": step.name, "ms": elapsed, "ok": run.failure is None})
            if run.failure is not None:
                break
        return run

    def record(self, claim: Claim, run: Run) -> bool:
        """Write the run's outcome if the lead is still this run's; False when it was stale."""
        lead = claim.lead
        if run.stale:
            log.info("lead_enrichment_stale", lead=lead.c2s_lead_id, attempt=lead.attempt)
            return False
        now = self.clock()
        common: dict[str, Any] = {"enrichment_steps": run.timings, "updated_at": now}
        retry_at: datetime | None = None
        failure = run.failure
        with self.queue.writer.begin() as tx:
            if failure is None:
                result = run.result
                matched = result.status in ENRICHED
                status = result.status.value
                try:
                    written = self.queue.finish(
                        tx,
                        [lead.id],
                        claim.owner,
                        {
                            **common,
                            "enrichment_status": status,
                            "document": result.document if matched else None,
                            "enrichment_data": result.data if matched else None,
                            "enrichment_reason": result.reason,
                            "enrichment_error": None,
                            "enrichment_next_attempt_at": None,
                            "enrichment_finished_at": now,
                        },
                        (c.status, c.tenant),
                        where=_same_contact(claim),
                    )
                except LeaseLost:
                    written = []
            else:
                outcome = self.queue.retry_or_dead(
                    lead.id,
                    claim.owner,
                    lead.attempt,
                    error=failure.stored,
                    retry_after=failure.retry_after,
                    transient=failure.transient,
                    values=common,
                    dead_values={"enrichment_next_attempt_at": None},
                    where=_same_contact(claim),
                    returning=(c.status, c.tenant),
                    tx=tx,
                )
                retry_at = outcome.retry_at
                status = ENRICHMENT.retry if retry_at is not None else ENRICHMENT.dead
                written = [outcome.row] if outcome.recorded else []
            for row in written:
                change = lead_change(lead.id, row.tenant, row.status, lead.c2s_lead_id, status)
                publish(tx, change)  # hookyard.live: delivered iff this commits
        if len(written) != 1:
            log.info("lead_enrichment_stale", lead=lead.c2s_lead_id, attempt=lead.attempt)
            return False
        ms = sum(float(t["ms"]) for t in run.timings)
        if failure is None:
            log.info(
                "lead_enrichment_finished",
                lead=lead.c2s_lead_id,
                status=status,
                reason=run.result.reason,
                attempt=lead.attempt,
                ms=round(ms, 1),
            )
        elif retry_at is None:
            log.warning(
                "lead_enrichment_failed",
                lead=lead.c2s_lead_id,
                attempt=lead.attempt,
                error=failure.message,
            )
        else:
            log.info(
                "lead_enrichment_retry",
                lead=lead.c2s_lead_id,
                attempt=lead.attempt,
                retry_at=retry_at.isoformat(),
                error=failure.message,
            )
        return True

    # -- queries -------------------------------------------------------------------------

    def _anything_due(self) -> bool:
        # A read first: an idle pass takes no write lock (SQLite has one writer).
        return self.queue.anything_due()

    def _still_ours(self, claim: Claim) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(c.id).where(_ours(claim))).first() is not None


def _same_contact(claim: Claim) -> tuple[ColumnElement[bool]]:
    """The lead still has the contact the run enriched (changed: the run is stale)."""
    return (c.contact_hash == claim.lead.contact_hash,)


def _ours(claim: Claim) -> ColumnElement[bool]:
    """Still this run's lead: running under its lease, with the contact it enriches."""
    return and_(
        c.id == claim.lead.id,
        c.enrichment_status == EnrichmentStatus.RUNNING.value,
        c.enrichment_lease_owner == claim.owner,
        c.contact_hash == claim.lead.contact_hash,
    )
