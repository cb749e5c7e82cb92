"""What sync needs in one process, built from the settings: one client per configured
provider API, the HubSpot outbox sender, the reconcilers and the scheduled jobs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hookyard.config import Settings
from hookyard.inbox.store import EventStore
from hookyard.providers.base import Source
from hookyard.queue.scheduler import Job
from hookyard.sync import reconcile
from hookyard.sync.hubspot import CompanyReconciler, OutboxSender, SyncPolicy
from hookyard.sync.hubspot_api import HubSpotClient
from hookyard.sync.meta import TemplateReconciler
from hookyard.sync.meta_api import MetaClient
from hookyard.sync.tcr import BrandReconciler, CampaignReconciler
from hookyard.sync.tcr_api import TCRClient
from hookyard.sync.tcr_registration import BrandRegistrar, Policy

PROVIDERS = ("tcr", "hubspot", "meta")
# What `hookyard reconcile PROVIDER --scope` takes: everything, or one scheduled job's rows.
SCOPES = {"tcr": ("all", "review", "active"), "hubspot": ("all",), "meta": ("all", "open")}


@dataclass
class SyncServices:
    settings: Settings
    store: EventStore
    sources: tuple[Source, ...]
    on_fed: Callable[[], None] | None = None
    tcr: TCRClient | None = field(init=False, default=None)
    hubspot: HubSpotClient | None = field(init=False, default=None)
    meta: MetaClient | None = field(init=False, default=None)
    _registrar: BrandRegistrar | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "timeout": s.provider_timeout_seconds,
            "max_attempts": s.provider_max_attempts,
            "backoff_base": s.provider_backoff_seconds,
            "rate_per_second": s.provider_rate_per_second or None,
        }
        if s.tcr_api_key and s.tcr_api_secret:
            self.tcr = TCRClient(s.tcr_api_url, s.tcr_api_key, s.tcr_api_secret, **options)
        if s.hubspot_access_token:
            self.hubspot = HubSpotClient(s.hubspot_api_url, s.hubspot_access_token, **options)
        if s.meta_access_token:
            self.meta = MetaClient(s.meta_api_url, s.meta_access_token, **options)

    @property
    def policy(self) -> SyncPolicy:
        s = self.settings
        return SyncPolicy(s.sync_max_attempts, s.sync_backoff_seconds)

    def outbox(self) -> OutboxSender | None:
        if self.hubspot is None:
            return None
        return OutboxSender(self.store.writer, self.hubspot, self.policy)

    def registrar(self) -> BrandRegistrar | None:
        """The one brand registrar of the process (its enumerations cached), when TCR's API
        is configured; the same `HOOKYARD_SYNC_*` attempts and backoff as the outbox."""
        if self.tcr is not None and self._registrar is None:
            s = self.settings
            policy = Policy(s.sync_max_attempts, s.sync_backoff_seconds)
            self._registrar = BrandRegistrar(self.store.writer, self.tcr, policy)
        return self._registrar

    def reconcilers(self, provider: str, scope: str = "all") -> list[Any]:
        """A provider's reconcilers; LookupError when its API is not configured."""
        engine = self.store.writer
        if scope not in SCOPES.get(provider, ("all",)):
            raise LookupError(f"{provider} scopes: {', '.join(SCOPES.get(provider, ('all',)))}")
        if provider == "tcr" and self.tcr is not None:
            return [
                BrandReconciler(engine, self.tcr, "all" if scope == "all" else "unverified"),
                CampaignReconciler(engine, self.tcr, scope),
            ]
        if provider == "hubspot" and self.hubspot is not None:
            return [CompanyReconciler(engine, self.hubspot)]
        if provider == "meta" and self.meta is not None:
            return [TemplateReconciler(engine, self.meta, scope)]
        if provider not in PROVIDERS:
            raise LookupError(f"no reconciler for provider {provider!r} (one of {PROVIDERS})")
        raise LookupError(f"the {provider} API is not configured (see docs/sync.md)")

    def reconcile(self, reconciler: Any, dry_run: bool = False) -> reconcile.RunResult:
        return reconcile.run(
            reconciler, self.store, self.sources, dry_run=dry_run, on_fed=self.on_fed
        )

    def jobs(self) -> list[Job]:
        """The seed system's schedules, for the providers that are configured."""
        s = self.settings
        engine = self.store.writer
        planned: list[tuple[Any, float]] = []
        if self.tcr is not None:
            planned += [
                (CampaignReconciler(engine, self.tcr, "review"), s.schedule_tcr_review_seconds),
                (BrandReconciler(engine, self.tcr, "unverified"), s.schedule_tcr_brands_seconds),
                (CampaignReconciler(engine, self.tcr, "active"), s.schedule_tcr_active_seconds),
            ]
        if self.hubspot is not None:
            planned.append((CompanyReconciler(engine, self.hubspot), s.schedule_hubspot_seconds))
        if self.meta is not None:
            planned.append((TemplateReconciler(engine, self.meta, "open"), s.schedule_meta_seconds))
        return [
            Job(r.job, interval, _bind(self.reconcile, r))
            for r, interval in planned
            if interval > 0
        ]

    def close(self) -> None:
        for client in (self.tcr, self.hubspot, self.meta):
            if client is not None:
                client.close()


def _bind(run: Callable[[Any], Any], reconciler: Any) -> Callable[[], Any]:
    return lambda: run(reconciler)


class OutboxJob:
    """The HubSpot outbox as a worker's background job (see worker/runner.BackgroundJob)."""

    name = "hubspot_outbox"

    def __init__(self, sender: OutboxSender) -> None:
        self.sender = sender

    def run_pass(self, worker: str) -> int:
        return self.sender.run_once()

    def next_due_at(self) -> datetime | None:
        return self.sender.next_due_at()

    def close(self) -> None:
        pass  # the client belongs to SyncServices, closed with it
