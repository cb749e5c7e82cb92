"""Prometheus metrics. Counters are per process; queue gauges are read from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
