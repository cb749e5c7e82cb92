"""What each scenario measured: values the report prints and writes as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from hookyard.bench.cpu import CpuUse
from hookyard.bench.wrk import WrkStats


@dataclass
class DeliveriesUnderLoad:
    """What the workers delivered to the destination during and after a load
    (`serve-destinations`)."""

    created: int  # deliveries created during the measured run (one per event accepted)
    delivered_under_load: int  # deliveries that ended (delivered or dead) during it
    backlog_at_end: int  # deliveries pending, sending or failed when the load ended
    drain_s: float | None  # from the end of the load until none was waiting (None: not)
    statuses: dict[str, int] = field(default_factory=dict)  # after the drain
    errors: list[str] = field(default_factory=list)  # commonest errors of failed/dead ones

    def per_s(self, duration_s: float) -> dict[str, float | None]:
        """Deliveries created and ended per second of load, and the sustained rate: the
        run's deliveries over the load and the drain together."""
        if duration_s <= 0:
            return {"created": None, "delivered": None, "sustained": None}
        sustained = None
        if self.drain_s is not None:
            sustained = self.created / (duration_s + self.drain_s)
        return {
            "created": self.created / duration_s,
            "delivered": self.delivered_under_load / duration_s,
            "sustained": sustained,
        }

    @property
    def not_delivered(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if s != "delivered"}


@dataclass
class Processing:
    """What the workers did during and after a load (the `serve` scenarios with workers)."""

    events_accepted: int  # new events stored during the measured run
    processed_under_load: int  # events finished during the measured run
    backlog_at_end: int  # events pending or processing when the load ended
    drain_s: float | None  # from the end of the load until nothing was pending (None: not)
    failed: int  # events waiting for a retry after a handler error
    statuses: dict[str, int] = field(default_factory=dict)  # after the drain
    errors: list[str] = field(default_factory=list)  # commonest errors of failed/dead events
    warmup_drain_s: float | None = None  # the warm-up's backlog, drained before the run
    deliveries: DeliveriesUnderLoad | None = None  # with a destination configured

    def per_s(self, duration_s: float) -> dict[str, float | None]:
        """Events acknowledged and processed per second of load, and the sustained rate:
        the run's events over the load and the drain together."""
        if duration_s <= 0:
            return {"accepted": None, "processed": None, "sustained": None}
        sustained = None
        if self.drain_s is not None:
            sustained = self.events_accepted / (duration_s + self.drain_s)
        return {
            "accepted": self.events_accepted / duration_s,
            "processed": self.processed_under_load / duration_s,
            "sustained": sustained,
        }


@dataclass
class LoadResult:
    scenario: str  # bare, naive-sqlite, serve-postgresql, ingest-sqlite, ...
    backend: str  # "-" for bare
    connections: int
    stats: WrkStats
    command: str = ""  # what was measured, as a person would run it
    diagnosis: bool = False  # a path no deployment runs as such: shown, but not the headline
    cpu: CpuUse = field(default_factory=CpuUse)
    stored_rows: int | None = None  # rows in the database after the run (warm-up included)
    acknowledged: int | None = None  # 2xx answers, warm-up included
    requests_made: int | None = None  # requests generated for the measured run (replay)
    load_before: float | None = None  # 1-minute load average before the run
    ratio_vs_bare: float | None = None
    processing: Processing | None = None
    notes: list[str] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)  # req/s of every round; this is the median


@dataclass
class Delivered:
    """Preloaded deliveries sent by `hookyard worker` process(es) to the bare endpoint (the
    `deliveries` scenarios): timed from the first ended delivery until none was waiting."""

    deliveries: int
    drain_s: float
    per_s: float  # all the worker processes together
    per_worker_s: float
    bare_per_s: float | None  # the bare endpoint's req/s in the same run (None: not measured)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # commonest errors of failed/dead ones

    @property
    def ratio_vs_bare(self) -> float | None:
        return self.per_worker_s / self.bare_per_s if self.bare_per_s else None

    @property
    def not_delivered(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if s != "delivered"}


@dataclass
class ProcessResult:
    """Preloaded events drained by `hookyard worker` processes (and, in the `deliveries`
    scenarios, their deliveries sent)."""

    scenario: str  # processing-c2s-sqlite, scaleout-2-postgresql, ...
    backend: str
    provider: str  # c2s, meta, hubspot, tcr, generic, or "mixed"
    events: int
    workers: int  # worker processes
    threads: int  # worker threads in each
    preload_s: float
    drain_s: float
    events_per_s: float
    diagnosis: bool = False
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # PostgreSQL: what its busy backends were doing during the drain, in % of the samples.
    database_waits: dict[str, float] = field(default_factory=dict)
    load_before: float | None = None
    runs: list[float] = field(default_factory=list)  # `rate` of every round
    # CPU of the worker processes while they drained (summed), in % of one core.
    worker_cpu: float | None = None
    delivered: Delivered | None = None  # the deliveries scenarios

    @property
    def rate(self) -> float:
        """The headline figure: deliveries/s per worker in the deliveries scenarios, else
        events/s."""
        return self.delivered.per_worker_s if self.delivered is not None else self.events_per_s


@dataclass
class Goal:
    name: str
    measured: float | None
    target: str
    met: bool | None
    gap: str = ""  # how far from the target, when missed
    unit: str = ""  # of `measured`
