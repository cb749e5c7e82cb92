"""Prometheus metrics: counters and a histogram each process adds to, and gauges read from
the database at scrape time (QueueCollector, AlertCollector).

Under `hookyard serve` the supervisor gives every child PROMETHEUS_MULTIPROC_DIR, a private
directory of the run (hookyard.supervisor.MetricsDirectory): prometheus_client, imported
after it is set, keeps each process's counters in a file there, and `/metrics` shows them
summed over every process of the run, workers included (prometheus_client's multiprocess
mode). Without it (tests, one process of its own) a process shows its own counters.

A Gauge object added here must name its `multiprocess_mode` (what to show of several
processes' values: "livesum", "max", "mostrecent"…); the gauges read from the database are
collectors of the scraping process instead, shown once whichever process answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from hookyard.config import MULTIPROCESS_DIR

RECEIVED = Counter("hookyard_webhooks_received_total", "Requests received on a source", ["source"])
ACCEPTED = Counter("hookyard_events_accepted_total", "Events stored new", ["source"])
REJECTED = Counter(
    "hookyard_webhooks_rejected_total", "Requests refused, by reason", ["source", "reason"]
)
DUPLICATES = Counter("hookyard_events_duplicate_total", "Deliveries already stored", ["source"])
PROCESSED = Counter(
    "hookyard_events_processed_total", "Events finished by a handler", ["source", "outcome"]
)
FAILED = Counter("hookyard_events_failed_total", "Failed handler attempts", ["source"])
DEAD = Counter("hookyard_events_dead_total", "Events moved to dead", ["source"])
CRM_SYNC_FAILED = Counter(
    "hookyard_crm_sync_failed_total", "HubSpot outbox rows that failed for good (retries used)"
)
RECONCILE_RUNS = Counter(
    "hookyard_reconcile_runs_total", "Reconciliation runs, by job and result", ["job", "result"]
)
RECONCILE_DRIFT = Counter(
    "hookyard_reconcile_drift_total", "Differences reconciliation found, by job", ["job"]
)
ACK_LATENCY = Histogram(
    "hookyard_ack_latency_seconds",
    "From request start to the 2xx answer (includes the durable commit)",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class QueueCollector(Collector):
    """Queue depth and the age of the oldest unfinished event, read at scrape time."""

    def __init__(self, stats: Callable[[], tuple[int, datetime | None]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("hookyard_queue_depth", "Events pending, failed or processing")
        age = GaugeMetricFamily(
            "hookyard_oldest_pending_age_seconds", "Age of the oldest unfinished event"
        )
        try:
            count, oldest = self._stats()
        except Exception:  # a scrape must not fail because the database is down
            return
        depth.add_metric([], count)
        age.add_metric([], (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        yield depth
        yield age


# The alert rules' gauges (hookyard.alerts.rules.RULES names one per rule): name -> help and
# label names. Values are what the latest evaluation measured per subject; `tenant` is empty
# for a subject of no tenant.
ALERT_GAUGES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "hookyard_alert_failure_rate": (
        "Share of a source's events received in the alert window whose handler is failing",
        ("source",),
    ),
    "hookyard_alert_dead_events": ("Dead events waiting to be replayed", ("source",)),
    "hookyard_alert_oldest_pending_seconds": (
        "How long the oldest due event has waited for a worker",
        (),
    ),
    "hookyard_alert_red_quality": (
        "1 for each WhatsApp template whose quality is RED",
        ("template", "tenant"),
    ),
    "hookyard_alert_reconciliation_drift": (
        "Differences the last run of a reconciliation job found, per tenant owning them",
        ("job", "tenant"),
    ),
    "hookyard_alert_template_disabled": (
        "1 for each WhatsApp template whose status is DISABLED",
        ("template", "tenant"),
    ),
    "hookyard_alert_template_rejected": (
        "1 for each WhatsApp template whose status is REJECTED",
        ("template", "tenant"),
    ),
    "hookyard_alert_email_failure_rate": (
        "Share of a tenant's e-mail notifications tried in the alert window that failed",
        ("tenant",),
    ),
    "hookyard_alert_destination_circuit_open": (
        "1 for each destination whose circuit breaker is open",
        ("destination", "tenant"),
    ),
}


class AlertReadings(Protocol):
    @property
    def values(self) -> Sequence[tuple[str, Mapping[str, str], float]]: ...
    @property
    def open(self) -> Mapping[str, int]: ...
    @property
    def unacknowledged(self) -> Mapping[str, int]: ...


class AlertCollector(Collector):
    """The alert rules' measured values and the unresolved alerts per kind, read from the
    database at scrape time: every process shows what the one evaluating process found."""

    def __init__(self, read: Callable[[], AlertReadings]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            readings = self._read()
        except Exception:  # a scrape must not fail because the database is down
            return
        families = {
            name: GaugeMetricFamily(name, text, labels=list(labels))
            for name, (text, labels) in ALERT_GAUGES.items()
        }
        for name, labels, value in readings.values:
            if name in families:
                names = ALERT_GAUGES[name][1]
                families[name].add_metric([labels.get(label, "") for label in names], value)
        opened = GaugeMetricFamily(
            "hookyard_alerts_open", "Unresolved alerts (acknowledged or not)", labels=["kind"]
        )
        unacknowledged = GaugeMetricFamily(
            "hookyard_alerts_unacknowledged",
            "Unresolved alerts nobody acknowledged",
            labels=["kind"],
        )
        for kind, n in sorted(readings.open.items()):
            opened.add_metric([kind], n)
        for kind, n in sorted(readings.unacknowledged.items()):
            unacknowledged.add_metric([kind], n)
        yield from families.values()
        yield opened
        yield unacknowledged


_registered: list[Collector] = []  # this process's scrape-time collectors on REGISTRY


def scrape_registry(collectors: Sequence[Collector]) -> CollectorRegistry:
    """What `/metrics` shows: the counters, and `collectors` (the scrape-time gauges) once.

    With PROMETHEUS_MULTIPROC_DIR set (the processes of `hookyard serve`): every process's
    counters of the run, read from their files, beside this process's `collectors`. Without
    it: the default registry (this process's counters), where `collectors` replace those an
    earlier app of this process registered (tests build several)."""
    path = os.environ.get(MULTIPROCESS_DIR)
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    else:
        registry = REGISTRY
        while _registered:
            registry.unregister(_registered.pop())
        _registered.extend(collectors)
    for collector in collectors:
        registry.register(collector)
    return registry
