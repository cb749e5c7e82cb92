"""10DLC brand registration with TCR that keeps its record.

A registration is written PENDING before TCR is called (`domain/tendlc/registration.py`),
then attempted at once by the API under a lease of the one leased queue. TCR's answer makes
it REGISTERED (with the brand row) or FAILED (with TCR's own error list); a timeout or a 5xx
leaves it PENDING with the one backoff, and the worker's `RegistrationJob` tries again.
Each registration carries `referenceId` (ours, unique at TCR), so an attempt whose answer
was lost is found at the next one instead of registering the brand twice.

Entity type, vertical and brand relationship are checked against TCR's enumerations
(`GET /v2/enum/...`, cached per process) before a call, so a typo is a 400 naming the field
rather than a registration TCR refuses.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, update

from hookyard.domain.tendlc import registration as registrations
from hookyard.domain.tendlc.registration import ENUM_FIELDS, RegistrationStatus
from hookyard.domain.tendlc.tables import brand_registrations
from hookyard.http import ApiError
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import Clock, LeasedQueue, LeaseLost, Spec, utcnow
from hookyard.sync.tcr_api import TCRClient

# The registrations as a leased queue: due while PENDING, leased while SENDING, FAILED once
# TCR refused or the attempts are used up (a person may retry it).
REGISTRATIONS = Spec(
    brand_registrations,
    due=(RegistrationStatus.PENDING,),
    leased=RegistrationStatus.SENDING,
    retry=RegistrationStatus.PENDING,
    dead=RegistrationStatus.FAILED,
    error="last_error",
)
REFERENCE_PREFIX = "hookyard-"


class EnumRefused(ValueError):
    """A field's value is not one of TCR's."""

    def __init__(self, field: str, value: Any, allowed: set[str]) -> None:
        shown = ", ".join(sorted(allowed)[:40])
        super().__init__(f"{field}: {value!r} is not one of TCR's values ({shown})")
        self.field = field


class RegistryEnums:
    """TCR's enumerations, fetched when first needed and kept `ttl` seconds per process.
    When TCR cannot be asked, nothing is checked (TCR checks the values itself)."""

    def __init__(self, client: TCRClient, ttl: float = 3600.0, retry_seconds: float = 60.0) -> None:
        self.client = client
        self.ttl = ttl
        self.retry_seconds = retry_seconds
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._quiet_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def values(self, name: str) -> set[str] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
            if now < self._quiet_until.get(name, 0.0):
                return cached[1] if cached is not None else None
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            found = self.client.enum(name)
        except ApiError as exc:
            log.warning("tcr_enum_unavailable", enum=name, error=str(exc)[:300])
            found = set()
        with self._lock:
            if not found:  # not asked again for a minute (a page renders the lists too)
                self._quiet_until[name] = now + self.retry_seconds
                return cached[1] if cached is not None else None
            self._cache[name] = (now, found)
        return found

    def check(self, fields: Mapping[str, Any]) -> None:
        """EnumRefused for the first field whose value TCR does not list."""
        for field, name in ENUM_FIELDS.items():
            if field not in fields:
                continue
            allowed = self.values(name)
            if allowed is not None and fields[field] not in allowed:
                raise EnumRefused(field, fields[field], allowed)


def tcr_errors(error: ApiError) -> list[dict[str, Any]]:
    """TCR's error list ([{code, field, description}]) from a refusal, else one entry."""
    body = error.body
    if isinstance(body, list) and body and all(isinstance(e, dict) for e in body):
        return [dict(e) for e in body]
    return [{"code": error.status, "field": None, "description": str(error)}]


@dataclass(frozen=True, slots=True)
class Policy:
    max_attempts: int = 6
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    lease_seconds: float = 120.0
    timeout: float = 10.0  # seconds one attempt waits for TCR

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.max_attempts, self.backoff_base, self.backoff_max)


class BrandRegistrar:
    """Keeps and sends brand registrations; `run_once` is the worker's background job."""

    def __init__(
        self, engine: Engine, client: TCRClient, policy: Policy, clock: Clock = utcnow
    ) -> None:
        self.engine = engine
        self.client = client
        self.policy = policy
        self.queue = LeasedQueue(engine, REGISTRATIONS, policy.backoff, policy.lease_seconds)
        self.queue.clock = clock
        self.enums = RegistryEnums(client)

    def submit(self, tenant: str, fields: Mapping[str, Any], requested_by: str) -> dict[str, Any]:
        """Keep the registration (defaults filled in, enumerations checked: MissingField or
        EnumRefused before anything is written), then attempt it once; the row after it."""
        with self.engine.connect() as conn:
            request = registrations.with_defaults(conn, tenant, fields)
        self.enums.check(request)  # TCR is asked outside any transaction
        with self.queue.writer.begin() as tx:
            row_id = registrations.add(tx, tenant, request, requested_by, self.queue.clock())
            request.setdefault("referenceId", f"{REFERENCE_PREFIX}{row_id}")
            tx.execute(
                update(brand_registrations)
                .where(brand_registrations.c.id == row_id)
                .values(request=request)
            )
        log.info("tcr_brand_registration_kept", registration_id=row_id, tenant=tenant)
        owner = _owner("api")
        where = [brand_registrations.c.id == row_id]
        if claimed := self.queue.claim(owner, 1, self._returning(), where=where, values=_touch()):
            self.attempt(claimed[0], owner)  # else a worker took it first: it attempts it
        return self.get(row_id)

    def get(self, row_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = registrations.get(conn, row_id)
        assert found is not None  # registrations are never deleted
        return found

    def run_once(self, limit: int = 10) -> int:
        owner = _owner("registrar")
        if recovered := self.queue.recover():
            log.warning("tcr_registration_leases_expired", rows=len(recovered))
        claimed = self.queue.claim(owner, limit, self._returning(), values=_touch())
        for row in claimed:
            self.attempt(row, owner)
        return len(claimed)

    def next_due_at(self) -> datetime | None:
        return self.queue.next_due_at()

    def attempt(self, row: Mapping[Any, Any], owner: str) -> None:
        """One attempt of a leased registration; its outcome written under the lease."""
        row_id, attempts, tenant = row["id"], row["attempts"], row["tenant"]
        request = dict(row["request"])
        try:
            answer = None
            if attempts > 1 and isinstance(request.get("referenceId"), str):
                # An earlier attempt may have reached TCR though its answer did not reach us.
                answer = self.client.brand_by_reference(request["referenceId"])
            if answer is None:
                answer = self.client.register_brand(request, timeout=self.policy.timeout)
        except ApiError as exc:
            self._failed(row_id, owner, attempts, exc)
            return
        now = datetime.now(UTC)
        try:
            with self.queue.writer.begin() as tx:
                brand_id = registrations.keep_brand(tx, tenant, request, answer, now)
                self.queue.finish(
                    tx,
                    [row_id],
                    owner,
                    {
                        "status": RegistrationStatus.REGISTERED,
                        "brand_id": brand_id,
                        "answer": answer,
                        "errors": None,
                        "last_error": None,
                        "registered_at": now,
                        "updated_at": now,
                    },
                )
                _announce(tx, row_id, tenant, RegistrationStatus.REGISTERED, brand_id)
        except LeaseLost:
            log.warning("tcr_registration_lease_lost", registration_id=row_id)
            return
        log.info("tcr_brand_registered", registration_id=row_id, brand_id=brand_id, tenant=tenant)

    def _failed(self, row_id: int, owner: str, attempts: int, exc: ApiError) -> None:
        transient = exc.retryable or exc.status is None
        now = datetime.now(UTC)
        errors = (
            tcr_errors(exc)
            if not transient
            else [{"code": exc.status, "field": None, "description": f"no answer: {exc}"}]
        )
        with self.queue.writer.begin() as tx:
            failure = self.queue.retry_or_dead(
                row_id,
                owner,
                attempts,
                error=str(exc),
                retry_after=exc.retry_after,
                transient=transient,
                values={"updated_at": now},
                dead_values={"errors": errors},
                returning=(brand_registrations.c.tenant, brand_registrations.c.status),
                tx=tx,
            )
            if failure.recorded:
                _announce(tx, row_id, failure.row.tenant, failure.row.status)
        if not failure.recorded:
            log.warning("tcr_registration_lease_lost", registration_id=row_id)
        elif failure.dead:
            log.error(
                "tcr_brand_registration_failed",
                registration_id=row_id,
                attempts=attempts,
                refused=not transient,
                error=str(exc)[:300],
            )
        else:
            assert failure.retry_at is not None
            log.warning(
                "tcr_brand_registration_retry",
                registration_id=row_id,
                attempts=attempts,
                retry_at=failure.retry_at.isoformat(),
                error=str(exc)[:300],
            )

    def retry(self, row_id: int, tenant: str | None = None) -> bool:
        """A person tries a FAILED or waiting registration again now, with fresh attempts."""
        t = brand_registrations.c
        where = (t.id == row_id) & t.status.in_(
            [RegistrationStatus.FAILED, RegistrationStatus.PENDING]
        )
        if tenant is not None:
            where = where & (t.tenant == tenant)
        now = self.queue.clock()
        with self.queue.writer.begin() as tx:
            retried = tx.execute(
                update(brand_registrations)
                .where(where)
                .values(
                    status=RegistrationStatus.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    errors=None,
                    updated_at=now,
                )
                .returning(brand_registrations.c.tenant)
            ).first()
            changed = retried is not None
            if retried is not None:
                _announce(tx, row_id, retried.tenant, RegistrationStatus.PENDING)
        if changed:
            log.info("tcr_brand_registration_retried", registration_id=row_id)
        return bool(changed)

    def update_brand(self, brand_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change a registered brand at TCR (enumerations checked first: EnumRefused), then
        its row as TCR answered; TCR's answer. ApiError when TCR refuses or is away (the row
        is left as it was)."""
        self.enums.check(fields)
        answer = self.client.update_brand(brand_id, dict(fields))
        with self.queue.writer.begin() as tx:
            registrations.brand_updated(tx, brand_id, answer, datetime.now(UTC))
        log.info("tcr_brand_updated", brand_id=brand_id, fields=sorted(fields))
        return answer

    @staticmethod
    def _returning() -> tuple[Any, ...]:
        t = brand_registrations.c
        return (t.attempts, t.tenant, t.request)


def _announce(tx: Any, row_id: int, tenant: str, status: str, brand_id: str | None = None) -> None:
    """The registration's new state, to the dashboard's live pages (on commit)."""
    data = {"brand_id": brand_id} if brand_id else {}
    publish(tx, Change(ChangeKind.TENDLC_REGISTRATION, row_id, tenant, status, data))


def _touch() -> dict[str, Any]:
    return {"updated_at": bindparam("now")}


def _owner(what: str) -> str:
    return f"{what}/{os.getpid()}/{secrets.token_hex(4)}"


class RegistrationJob:
    """Brand registrations as a worker's background job (see worker/runner.BackgroundJob)."""

    name = "tcr_brand_registrations"

    def __init__(self, registrar: BrandRegistrar) -> None:
        self.registrar = registrar

    def run_pass(self, worker: str) -> int:
        return self.registrar.run_once()

    def next_due_at(self) -> datetime | None:
        return self.registrar.next_due_at()

    def close(self) -> None:
        pass  # the client belongs to SyncServices, closed with it
