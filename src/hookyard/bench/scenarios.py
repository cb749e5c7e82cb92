"""The scenarios: what runs, what load it gets, what is measured.

Load scenarios run a server as a subprocess on a fresh database, warm it up, then measure
one wrk run:

- `bare`: `bench/bare_app.py`, a raw ASGI app that reads the body and answers 200 (the
  ceiling of one uvicorn process), sent the realistic workload over and over.
- `naive-BACKEND`: `bench/naive_app.py`, the usual FastAPI + ORM handler, one commit per
  request, sent generic token deliveries (`bench/webhooks.lua`).
- `serve-BACKEND` (the headline), `serve-noworker-BACKEND` and `serve-2w-BACKEND`: the real
  `hookyard serve` (default, `--no-worker`, `--workers 2`) with the four providers' demo
  sources, customers linked to the HubSpot companies, and the realistic workload
  (`bench/replay.lua`); then how the workers kept up.
- `serve-destinations-BACKEND`: the default `hookyard serve` with one `[[destination]]` taking
  every event to `bench/bare_app.py`: the ack latency while deliveries run, and how the
  workers kept up with both.
- `ingest-BACKEND` (diagnosis): `hookyard serve --no-worker` with one generic token source,
  sent generic deliveries: the ingest path alone, comparable with earlier runs.

Processing scenarios preload events and time `hookyard worker` processes draining them:
`processing-PROVIDER-BACKEND` (one worker, one provider's events; `generic` is the no-op
handler, a diagnosis), `scaleout-N-postgresql` (the mixed workload, 1 then 2 workers), and
`deliveries-BACKEND` (the mixed workload with a delivery per event to `bench/bare_app.py`:
one worker handles the events and sends the deliveries; `deliveries-only-BACKEND`, a
diagnosis, only sends them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hookyard.bench.cpu import CpuMeter, CpuUse
from hookyard.bench.databases import (
    DELIVERIES,
    EVENTS,
    Databases,
    Queue,
    QueueCount,
    Tracked,
    WaitSampler,
    count_rows,
    prepare,
)
from hookyard.bench.processes import (
    Server,
    clean_env,
    free_port,
    hookyard_argv,
    read_process,
    spawn,
    uvicorn_argv,
)
from hookyard.bench.profiling import print_profile, profiled, summarise_profile
from hookyard.bench.replay import raw_request, requests_needed, write_requests
from hookyard.bench.results import (
    Delivered,
    DeliveriesUnderLoad,
    LoadResult,
    Processing,
    ProcessResult,
)
from hookyard.bench.sources import (
    GENERIC_NAME,
    GENERIC_PATH,
    BenchSecrets,
    build_bench_destinations,
    build_sources,
    destination_entry,
    generic_entries,
    provider_entries,
    write_sources,
)
from hookyard.bench.workload import Mix, Planned, Workload
from hookyard.bench.wrk import BenchError, WrkLoad, WrkStats, run_wrk


@dataclass(frozen=True)
class ServeVariant:
    flags: tuple[str, ...]  # extra arguments of `hookyard serve`
    command: str  # as a person would type it
    destination: bool = False  # one [[destination]]: every event to bench/bare_app.py


SERVE_VARIANTS: dict[str, ServeVariant] = {
    "serve": ServeVariant((), "hookyard serve"),
    "serve-noworker": ServeVariant(("--no-worker",), "hookyard serve --no-worker"),
    "serve-2w": ServeVariant(("--workers", "2"), "hookyard serve --workers 2"),
    "serve-destinations": ServeVariant(
        (), "hookyard serve, one [[destination]]: bench/bare_app.py", destination=True
    ),
}
PROCESSING_PROVIDERS = ("c2s", "meta", "hubspot", "tcr", "generic")

DEFAULT_RATE = 10_000.0  # req/s assumed before anything was measured, to size request files
WARMUP_RATE_CAP = 15_000.0  # a warm-up that runs out is only noted: no need for more
BARE_REQUESTS = 20_000  # the bare endpoint stores nothing: it is sent these over and over
MEASURED_HEADROOM = 2.0  # requests made for the measured run: twice the warm-up's rate
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Options:
    duration: int
    warmup: int
    body_bytes: int  # generic deliveries (naive, ingest)
    mix: Mix
    events: int  # preloaded for each processing run
    drain_threads: int  # worker threads of each `hookyard worker` draining
    drain_timeout: float
    max_requests: int
    # HOOKYARD_* settings given to every hookyard server and worker (`--setting`), e.g. to
    # measure a claim size: {"HOOKYARD_CLAIM_BATCH_SIZE": "50"}.
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    options: Options
    load: WrkLoad
    bench_dir: Path
    workdir: Path
    databases: Databases
    keys: BenchSecrets
    profile_dir: Path | None
    keep_files: bool = False
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    round: int = 0
    rates: dict[str, float] = field(default_factory=dict)  # req/s measured, by scenario

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def profile_path(self, name: str) -> Path | None:
        # The first round only: py-spy takes some of the server's time.
        if self.profile_dir is None or self.round != 0:
            return None
        return self.profile_dir / f"{name}.txt"

    @property
    def replay_script(self) -> Path:
        return self.bench_dir / "replay.lua"

    @property
    def webhooks_script(self) -> Path:
        return self.bench_dir / "webhooks.lua"

    @property
    def hubspot_max_age(self) -> int:
        """HubSpot's timestamp window: its 5 minutes, unless a request made before a run
        could be older than that when sent (requests are signed before each run)."""
        return max(300, max(self.options.duration, self.options.warmup) + 120)

    def workload(self, port: int, mix: Mix | None = None) -> Workload:
        sources = build_sources(provider_entries(self.keys))
        return Workload(
            sources,
            f"http://127.0.0.1:{port}",
            mix or self.options.mix,
            seed=secrets.randbits(32),
            tag=f"{self.run_id}{secrets.token_hex(2)}",
        )

    def server_env(self, url: str, sources: Path) -> dict[str, str]:
        return clean_env(
            **self.options.settings,
            HOOKYARD_DATABASE_URL=url,
            HOOKYARD_SOURCES=str(sources),
            HOOKYARD_DEMO_SECRETS_FILE=str(self.workdir / "demo-secrets.env"),
        )


# -- measuring one run ----------------------------------------------------------------------


def _measured(
    ctx: Context, server: Server, scenario: str, db_url: str | None, run: Callable[[], WrkStats]
) -> tuple[WrkStats, CpuUse]:
    """One measured wrk run: CPU use of the server's processes (and PostgreSQL backends),
    profiled with --profile."""
    # Connections opened during the warm-up stay in the pools for the measured run.
    db_pids = ctx.databases.backend_pids(db_url) if db_url else []
    profile = ctx.profile_path(scenario)
    meter = CpuMeter(server.pid, db_pids)
    with profiled(server.pid, ctx.options.duration, profile):
        stats = run()
        cpu = meter.stop()  # before py-spy is waited for: its CPU is not wrk's
    if profile is not None and profile.exists():
        print_profile(profile, summarise_profile(profile))
    return stats, cpu


def _warn_errors(what: str, stats: WrkStats, server: Server) -> None:
    if stats.socket_errors or stats.non_2xx:
        print(
            f"  {what}: {stats.non_2xx} non-2xx, {stats.socket_errors} socket errors "
            f"(see {server.log_path})",
            flush=True,
        )


def _generic_args(ctx: Context, scenario: str, suffix: str) -> list[str]:
    run = f"{ctx.run_id}-{scenario}-{ctx.round}{suffix}"
    return [ctx.keys.generic_token, run, str(ctx.options.body_bytes)]


def _generic_load(
    ctx: Context, server: Server, scenario: str, backend: str, db_url: str
) -> LoadResult:
    """Warm-up and measured run of `webhooks.lua` (generic token deliveries)."""
    url = f"http://127.0.0.1:{server.port}{GENERIC_PATH}"
    opts = ctx.options
    acknowledged = 0
    if opts.warmup > 0:
        warm = run_wrk(
            ctx.load, ctx.webhooks_script, url, opts.warmup, _generic_args(ctx, scenario, "w")
        )
        _warn_errors("warm-up", warm, server)
        acknowledged += warm.requests - warm.non_2xx
    stats, cpu = _measured(
        ctx,
        server,
        scenario,
        db_url,
        lambda: run_wrk(
            ctx.load, ctx.webhooks_script, url, opts.duration, _generic_args(ctx, scenario, "")
        ),
    )
    return LoadResult(
        scenario,
        backend,
        ctx.load.connections,
        stats,
        cpu=cpu,
        acknowledged=acknowledged + stats.requests - stats.non_2xx,
    )


@dataclass
class RequestsFile:
    path: Path
    requests: int
    events: int
    megabytes: float
    seconds: float  # to make them


def make_requests(ctx: Context, name: str, workload: Workload, count: int) -> RequestsFile:
    """`count` deliveries of the workload, written for `replay.lua`."""
    started = time.perf_counter()
    planned: list[Planned] = workload.take(count)
    host = workload.base_url.partition("://")[2]
    path = ctx.workdir / f"{name}.requests"
    size = write_requests(path, [raw_request(p.delivery, host) for p in planned])
    made = RequestsFile(
        path,
        count,
        sum(p.events for p in planned),
        size / 1e6,
        time.perf_counter() - started,
    )
    print(
        f"  made {made.requests:,} requests ({made.events:,} events, {made.megabytes:.0f} MB) "
        f"for the {'warm-up' if name.endswith('-warmup') else 'measured run'} "
        f"in {made.seconds:.1f}s",
        flush=True,
    )
    return made


def _replay(ctx: Context, server: Server, made: RequestsFile, seconds: int, mode: str) -> WrkStats:
    url = f"http://127.0.0.1:{server.port}/"
    args = [str(made.path), str(ctx.load.threads), mode]
    return run_wrk(ctx.load, ctx.replay_script, url, seconds, args)


def _done_with(ctx: Context, *made: RequestsFile | None) -> None:
    if not ctx.keep_files:
        for m in made:
            if m is not None:
                m.path.unlink(missing_ok=True)


# -- load scenarios -------------------------------------------------------------------------


def bare_endpoint(ctx: Context, name: str, port: int | None = None) -> Server:
    """`bench/bare_app.py` under uvicorn, one process: the `bare` baseline, and the
    destination of the deliveries scenarios."""
    port = port or free_port()
    argv = uvicorn_argv("bare_app:app", port, ctx.bench_dir)
    return Server(name, argv, port, clean_env(), ctx.bench_dir, ctx.log(name))


def _destination_url(endpoint: Server) -> str:
    return f"http://127.0.0.1:{endpoint.port}/deliveries"


def bench_bare(ctx: Context) -> LoadResult:
    port = free_port()
    load = os.getloadavg()[0]
    made = make_requests(ctx, "bare", ctx.workload(port), BARE_REQUESTS)
    acknowledged = 0
    try:
        with bare_endpoint(ctx, "bare", port) as server:
            if ctx.options.warmup > 0:
                warm = _replay(ctx, server, made, ctx.options.warmup, "cycle")
                acknowledged += warm.requests - warm.non_2xx
            stats, cpu = _measured(
                ctx,
                server,
                "bare",
                None,
                lambda: _replay(ctx, server, made, ctx.options.duration, "cycle"),
            )
    finally:
        _done_with(ctx, made)
    ctx.rates["bare"] = stats.requests_per_s
    return LoadResult(
        "bare",
        "-",
        ctx.load.connections,
        stats,
        command="bench/bare_app.py (uvicorn, one process)",
        cpu=cpu,
        acknowledged=acknowledged + stats.requests - stats.non_2xx,
        requests_made=made.requests,
        load_before=load,
    )


def bench_naive(ctx: Context, backend: str) -> LoadResult:
    scenario = f"naive-{backend}"
    port = free_port()
    argv = uvicorn_argv("naive_app:app", port, ctx.bench_dir)
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, "naive") as url:
        env = clean_env(
            BENCH_DATABASE_URL=url,
            BENCH_TOKEN=ctx.keys.generic_token,
            BENCH_PATH=GENERIC_PATH,
            BENCH_POOL_SIZE=str(ctx.load.connections),
        )
        with Server(scenario, argv, port, env, ctx.bench_dir, ctx.log(scenario)) as server:
            result = _generic_load(ctx, server, scenario, backend, url)
        result.stored_rows = count_rows(url, "webhook_events")
    result.command = "bench/naive_app.py (FastAPI + ORM, a commit per request)"
    result.load_before = load
    return result


def bench_ingest(ctx: Context, backend: str) -> LoadResult:
    """Diagnosis: the ingest path alone (`serve --no-worker`), generic token deliveries."""
    scenario = f"ingest-{backend}"
    port = free_port()
    argv = hookyard_argv("serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port))
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, "ingest") as url:
        sources = write_sources(ctx.workdir / "generic-sources.toml", generic_entries(ctx.keys))
        env = ctx.server_env(url, sources) | {"HOOKYARD_LOG_LEVEL": "warning"}
        with Server(scenario, argv, port, env, ctx.workdir, ctx.log(scenario)) as server:
            result = _generic_load(ctx, server, scenario, backend, url)
        result.stored_rows = count_rows(url, "events")
    result.command = "hookyard serve --no-worker, one generic token source"
    result.diagnosis = True
    result.load_before = load
    return result


@dataclass
class _LoadEnd:
    at: float = 0.0  # time.perf_counter() when wrk returned
    backlog: int = 0  # events pending or processing then
    deliveries_backlog: int = 0  # deliveries waiting then (pending, sending, failed)


def bench_serve(ctx: Context, backend: str, variant: str) -> LoadResult:
    """The default `hookyard serve` (or a variant) under the realistic workload, then how
    its workers kept up: processed under load, the backlog, the time to drain it (and with a
    destination, the same of its deliveries)."""
    chosen = SERVE_VARIANTS[variant]
    flags, command = chosen.flags, chosen.command
    scenario = f"{variant}-{backend}"
    workers = "--no-worker" not in flags
    opts = ctx.options
    port = free_port()
    argv = hookyard_argv("serve", *flags, "--host", "127.0.0.1", "--port", str(port))
    load = os.getloadavg()[0]
    notes: list[str] = []
    hint = ctx.rates.get(scenario) or ctx.rates.get("bare") or DEFAULT_RATE
    warm_made: RequestsFile | None = None
    made: RequestsFile | None = None
    dqueue: Queue | None = None
    with ctx.databases.fresh(backend, variant) as url, contextlib.ExitStack() as endpoints:
        workload = ctx.workload(port)
        companies = [(c.company_id, c.name, c.ban) for c in workload.companies]
        prepare(url, None, companies, workload.customers_changed_at)
        entries = provider_entries(ctx.keys, hubspot_max_age=ctx.hubspot_max_age)
        destinations = []
        if chosen.destination:
            endpoint = endpoints.enter_context(bare_endpoint(ctx, f"{scenario}-destination"))
            destinations.append(destination_entry(ctx.keys, _destination_url(endpoint), entries))
        sources = write_sources(ctx.workdir / f"{scenario}-sources.toml", entries, destinations)
        if opts.warmup > 0:
            count = requests_needed(min(hint, WARMUP_RATE_CAP), opts.warmup, cap=opts.max_requests)
            warm_made = make_requests(ctx, f"{scenario}-warmup", workload, count)
        queue = Queue(url)
        if destinations:
            dqueue = Queue(url, DELIVERIES)
        try:
            with Server(scenario, argv, port, ctx.server_env(url, sources), ctx.workdir,
                        ctx.log(scenario)) as server:  # fmt: skip
                acknowledged = 0
                rate = hint
                warm_drain: float | None = None
                if warm_made is not None:
                    warm = _replay(ctx, server, warm_made, opts.warmup, "once")
                    _warn_errors("warm-up", warm, server)
                    acknowledged += warm.requests - warm.non_2xx
                    if warm.exhausted:
                        notes.append(f"the warm-up used all {warm_made.requests:,} requests")
                    else:
                        rate = warm.requests_per_s
                    if workers:
                        # The measured run starts with nothing left over from the warm-up.
                        warm_start = time.perf_counter()
                        drained_at, left = queue.wait_drained(opts.drain_timeout, POLL_SECONDS)
                        if drained_at is None:
                            notes.append(
                                f"the warm-up's backlog was not drained within "
                                f"{opts.drain_timeout:.0f}s ({left:,} events left)"
                            )
                        else:
                            warm_drain = drained_at - warm_start
                        if dqueue is not None:
                            _, left = dqueue.wait_drained(opts.drain_timeout, POLL_SECONDS)
                            if left:
                                notes.append(
                                    f"the warm-up's deliveries were not drained within "
                                    f"{opts.drain_timeout:.0f}s ({left:,} left)"
                                )
                # A short warm-up may run slower than the measured run (a cold start, the
                # workers catching up): never size below half the bare endpoint's rate.
                floor_rate = max(ctx.rates.get(scenario, 0.0), ctx.rates.get("bare", 0.0) / 2)
                count = requests_needed(
                    max(rate, floor_rate),
                    opts.duration,
                    headroom=MEASURED_HEADROOM,
                    cap=opts.max_requests,
                )
                made = make_requests(ctx, scenario, workload, count)
                before = queue.count()
                dbefore = dqueue.count() if dqueue is not None else None
                end = _LoadEnd()

                def load_run() -> WrkStats:
                    assert made is not None
                    stats = _replay(ctx, server, made, opts.duration, "once")
                    end.at = time.perf_counter()
                    end.backlog = queue.in_flight()
                    if dqueue is not None:
                        end.deliveries_backlog = dqueue.in_flight()
                    return stats

                stats, cpu = _measured(ctx, server, scenario, url, load_run)
                drain_s: float | None = None
                if workers:
                    drained_at, left = queue.wait_drained(opts.drain_timeout, POLL_SECONDS)
                    if drained_at is not None:
                        drain_s = drained_at - end.at
                    else:
                        notes.append(
                            f"not drained within {opts.drain_timeout:.0f}s of the load's end "
                            f"({left:,} events left)"
                        )
                after = queue.count()
                statuses = queue.by_status()
                errors = queue.errors() if statuses.get("failed") or statuses.get("dead") else []
                deliveries = None
                if dqueue is not None and dbefore is not None:
                    deliveries = _deliveries_after_load(ctx, dqueue, dbefore, end, notes)
        finally:
            queue.close()
            if dqueue is not None:
                dqueue.close()
            _done_with(ctx, warm_made, made)
    assert made is not None
    if stats.exhausted:
        notes.append(
            f"wrk used all {made.requests:,} requests made for the run and stopped early: "
            f"these figures are not valid (raise --max-requests, now {opts.max_requests:,})"
        )
    accepted = after.total - before.total
    finished_at_end = after.total - end.backlog - after.failed
    processing = Processing(
        events_accepted=accepted,
        processed_under_load=max(0, finished_at_end - before.finished) if workers else 0,
        backlog_at_end=end.backlog,
        drain_s=drain_s,
        failed=after.failed,
        statuses=statuses,
        errors=errors,
        warmup_drain_s=warm_drain,
        deliveries=deliveries,
    )
    if not stats.exhausted:
        ctx.rates[scenario] = stats.requests_per_s
    return LoadResult(
        scenario,
        backend,
        ctx.load.connections,
        stats,
        command=command,
        diagnosis=variant == "serve-noworker",
        cpu=cpu,
        stored_rows=after.total,
        acknowledged=acknowledged + stats.requests - stats.non_2xx,
        requests_made=made.requests,
        load_before=load,
        processing=processing,
        notes=notes,
    )


def _deliveries_after_load(
    ctx: Context, dqueue: Queue, before: QueueCount, end: _LoadEnd, notes: list[str]
) -> DeliveriesUnderLoad:
    """The deliveries' drain after the load (the events' was waited for first), and what
    became of them."""
    timeout = ctx.options.drain_timeout
    drained_at, left = dqueue.wait_drained(timeout, POLL_SECONDS)
    if drained_at is None:
        notes.append(f"deliveries not drained within {timeout:.0f}s of the events ({left:,} left)")
    after = dqueue.count()
    statuses = dqueue.by_status()
    return DeliveriesUnderLoad(
        created=after.total - before.total,
        # Every delivery is created by ingest, which stopped with the load.
        delivered_under_load=max(0, after.total - end.deliveries_backlog - before.finished),
        backlog_at_end=end.deliveries_backlog,
        drain_s=None if drained_at is None else drained_at - end.at,
        statuses=statuses,
        errors=dqueue.errors() if statuses.get("failed") or statuses.get("dead") else [],
    )


# -- processing scenarios -------------------------------------------------------------------


def _planned_events(workload: Workload, events: int) -> list[Planned]:
    planned: list[Planned] = []
    total = 0
    while total < events:
        planned.append(workload.next())
        total += planned[-1].events
    return planned


def _preload(
    url: str,
    entries: list[dict[str, object]],
    planned: Sequence[Planned],
    destinations: Sequence[dict[str, object]] = (),
) -> float:
    """Store the events of `planned` as ingress would (verified and parsed by the real
    adapters, with their `destinations`' deliveries), in batches; the seconds it took."""
    from hookyard.bench.workload import new_events
    from hookyard.db.engine import make_engine
    from hookyard.destinations import fanout
    from hookyard.inbox.store import EventStore

    sources = build_sources(entries)
    engine = make_engine(url)
    started = time.perf_counter()
    try:
        store = EventStore(engine)
        fanout.attach(store, build_bench_destinations(entries, destinations))
        received_at = datetime.now(UTC)
        batch = []
        for p in planned:
            batch.extend(new_events(sources[p.source], p.delivery, received_at))
            if len(batch) >= 500:
                store.insert_batch(batch)
                batch = []
        if batch:
            store.insert_batch(batch)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _generic_planned(ctx: Context, events: int) -> list[Planned]:
    from hookyard.testing.simulate import build_delivery

    source = build_sources(generic_entries(ctx.keys))[GENERIC_NAME]
    pad = max(0, ctx.options.body_bytes - 90)
    deliveries = (build_delivery(source, None, "http://bench", seq, padding=pad) for seq in
                  range(events))  # fmt: skip
    return [Planned("generic", GENERIC_NAME, delivery, 1) for delivery in deliveries]


@dataclass
class Drained:
    seconds: float
    per_s: float
    database_waits: dict[str, float]
    # CPU of the worker processes (summed) from the first finished row of any table until
    # every table was drained, in % of one core: near 100% per process, CPU-bound.
    worker_cpu: float | None = None


@dataclass
class _Progress:
    """One queue table being drained: when its first row ended, when the last did."""

    queue: Queue
    total: int
    first: tuple[float, int] | None = None  # (time.perf_counter(), rows left then)
    end: float | None = None

    def poll(self) -> int:
        left = self.queue.in_flight()
        now = time.perf_counter()
        if self.first is None and (left < self.total or not left):
            self.first = (now, left)
        if left == 0:
            self.end = now
        return left

    def drained(self, waits: dict[str, float], worker_cpu: float | None) -> Drained:
        assert self.first is not None and self.end is not None
        started, remaining = self.first
        seconds = max(self.end - started, POLL_SECONDS)
        # All done before the first poll saw any progress: then every row counts.
        return Drained(seconds, (remaining or self.total) / seconds, waits, worker_cpu)


def _cpu_seconds(procs: Sequence[subprocess.Popen[bytes]]) -> float | None:
    found = [read_process(p.pid) for p in procs]
    return None if None in found else sum(f.cpu_seconds for f in found if f is not None)


def drain_with_workers(
    ctx: Context,
    scenario: str,
    url: str,
    sources: Path,
    workers: int,
    work: Sequence[tuple[Tracked, int]],
) -> list[Drained]:
    """Start `workers` `hookyard worker` processes on the preloaded work (`(queue table, rows
    preloaded)`: events, deliveries) and time each table from its first finished row until
    nothing of it is in flight (so the processes' start-up is not counted); on PostgreSQL,
    sample what its backends wait on meanwhile. One `Drained` per table, in order."""
    argv = hookyard_argv("worker", "--threads", str(ctx.options.drain_threads))
    env = ctx.server_env(url, sources)
    progress = [_Progress(Queue(url, tracked), total) for tracked, total in work]
    waits = WaitSampler(ctx.databases, url)
    procs: list[subprocess.Popen[bytes]] = []
    cpu: list[tuple[float, float | None]] = []  # (time.perf_counter(), CPU s): start, end
    try:
        with contextlib.ExitStack() as profiles:
            for i in range(workers):
                log = ctx.log(f"{scenario}-worker{i}")
                procs.append(spawn(argv, env, ctx.workdir, log))
                path = ctx.profile_path(f"{scenario}-worker{i}")
                profiles.enter_context(profiled(procs[-1].pid, None, path))
            deadline = time.perf_counter() + ctx.options.drain_timeout
            while True:
                left = {p.queue.tracked.table: p.poll() for p in progress if p.end is None}
                if any(p.first is not None for p in progress):
                    waits.sample()
                    if not cpu:
                        cpu.append((time.perf_counter(), _cpu_seconds(procs)))
                if not any(left.values()):
                    cpu.append((time.perf_counter(), _cpu_seconds(procs)))
                    break
                if time.perf_counter() > deadline:
                    still = ", ".join(f"{n:,} {table}" for table, n in left.items() if n)
                    raise BenchError(
                        f"{scenario}: {still} still in flight after "
                        f"{ctx.options.drain_timeout:.0f}s"
                    )
                for i, proc in enumerate(procs):
                    if proc.poll() is not None:
                        raise BenchError(
                            f"{scenario}: worker {i} exited with {proc.returncode} "
                            f"(see {ctx.log(f'{scenario}-worker{i}')})"
                        )
                time.sleep(POLL_SECONDS)
            _stop_all(procs)  # py-spy, if any, writes its profile as they exit
    finally:
        _stop_all(procs)
        for p in progress:
            p.queue.close()
        waits.close()
    for i in range(workers):
        path = ctx.profile_path(f"{scenario}-worker{i}")
        if path is not None and path.exists():
            print_profile(path, summarise_profile(path))
    shares = waits.shares()
    worker_cpu = None
    if len(cpu) == 2:
        (started, used), (ended, total) = cpu
        if used is not None and total is not None:
            worker_cpu = 100 * (total - used) / max(ended - started, POLL_SECONDS)
    return [p.drained(shares, worker_cpu) for p in progress]


def _stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # `hookyard worker` finishes its transaction and exits
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _check_statuses(url: str, tracked: Tracked = EVENTS) -> tuple[dict[str, int], list[str]]:
    queue = Queue(url, tracked)
    try:
        statuses = queue.by_status()
        errors = queue.errors() if any(statuses.get(s) for s in tracked.with_errors) else []
    finally:
        queue.close()
    return statuses, errors


def bench_processing(ctx: Context, backend: str, provider: str) -> ProcessResult:
    """One provider's events, preloaded, drained by one `hookyard worker` process."""
    scenario = f"processing-{provider}-{backend}"
    load = os.getloadavg()[0]
    events = ctx.options.events
    with ctx.databases.fresh(backend, f"processing-{provider}") as url:
        if provider == "generic":
            entries = generic_entries(ctx.keys)
            planned = _generic_planned(ctx, events)
            prepare(url, None, [], datetime.now(UTC))
        else:
            entries = provider_entries(ctx.keys)
            workload = ctx.workload(free_port(), Mix.parse(provider))
            planned = _planned_events(workload, events)
            companies = [(c.company_id, c.name, c.ban) for c in workload.companies]
            prepare(url, None, companies, workload.customers_changed_at)
        sources = write_sources(ctx.workdir / f"{scenario}-sources.toml", entries)
        preload_s = _preload(url, entries, planned)
        stored = sum(p.events for p in planned)
        (drained,) = drain_with_workers(ctx, scenario, url, sources, 1, [(EVENTS, stored)])
        statuses, errors = _check_statuses(url)
    return ProcessResult(
        scenario,
        backend,
        provider,
        stored,
        1,
        ctx.options.drain_threads,
        preload_s,
        drained.seconds,
        drained.per_s,
        diagnosis=provider == "generic",
        statuses=statuses,
        errors=errors,
        database_waits=drained.database_waits,
        load_before=load,
        worker_cpu=drained.worker_cpu,
    )


def bench_scaleout(ctx: Context, backend: str, workers: int) -> ProcessResult:
    """The mixed workload's events, preloaded, drained by `workers` worker processes."""
    scenario = f"scaleout-{workers}-{backend}"
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, f"scaleout-{workers}") as url:
        entries = provider_entries(ctx.keys)
        workload = ctx.workload(free_port())
        planned = _planned_events(workload, ctx.options.events)
        companies = [(c.company_id, c.name, c.ban) for c in workload.companies]
        prepare(url, None, companies, workload.customers_changed_at)
        sources = write_sources(ctx.workdir / f"{scenario}-sources.toml", entries)
        preload_s = _preload(url, entries, planned)
        stored = sum(p.events for p in planned)
        work = [(EVENTS, stored)]
        (drained,) = drain_with_workers(ctx, scenario, url, sources, workers, work)
        statuses, errors = _check_statuses(url)
    return ProcessResult(
        scenario,
        backend,
        "mixed",
        stored,
        workers,
        ctx.options.drain_threads,
        preload_s,
        drained.seconds,
        drained.per_s,
        statuses=statuses,
        errors=errors,
        database_waits=drained.database_waits,
        load_before=load,
        worker_cpu=drained.worker_cpu,
    )


def bench_deliveries(ctx: Context, backend: str, handlers: bool = True) -> ProcessResult:
    """The mixed workload's events, preloaded with a delivery each to `bench/bare_app.py`
    (written by the fanout as ingest writes them), drained by ONE `hookyard worker`: it
    handles the events with the real handlers and sends the deliveries. Deliveries/s is
    timed from the first ended delivery until none is waiting. `handlers` False (diagnosis):
    the events are marked done after the preload, so the worker only sends."""
    variant = "deliveries" if handlers else "deliveries-only"
    scenario = f"{variant}-{backend}"
    load = os.getloadavg()[0]
    with (
        ctx.databases.fresh(backend, variant) as url,
        bare_endpoint(ctx, f"{scenario}-destination") as endpoint,
    ):
        entries = provider_entries(ctx.keys)
        destinations = [destination_entry(ctx.keys, _destination_url(endpoint), entries)]
        workload = ctx.workload(free_port())
        planned = _planned_events(workload, ctx.options.events)
        companies = [(c.company_id, c.name, c.ban) for c in workload.companies]
        prepare(url, None, companies, workload.customers_changed_at)
        sources = write_sources(ctx.workdir / f"{scenario}-sources.toml", entries, destinations)
        preload_s = _preload(url, entries, planned, destinations)
        stored = sum(p.events for p in planned)
        made = count_rows(url, "destination_deliveries") or 0
        work = [(EVENTS, stored), (DELIVERIES, made)]
        if not handlers:
            _mark_events_done(url)
            work = work[1:]
        drained = drain_with_workers(ctx, scenario, url, sources, 1, work)
        statuses, errors = _check_statuses(url)
        sent, send_errors = _check_statuses(url, DELIVERIES)
    events = drained[0] if handlers else Drained(0.0, 0.0, {})
    deliveries = drained[-1]
    return ProcessResult(
        scenario,
        backend,
        "mixed",
        stored if handlers else 0,
        1,
        ctx.options.drain_threads,
        preload_s,
        events.seconds,
        events.per_s,
        diagnosis=not handlers,
        statuses=statuses,
        errors=errors,
        database_waits=deliveries.database_waits,
        load_before=load,
        worker_cpu=deliveries.worker_cpu,
        delivered=Delivered(
            made,
            deliveries.seconds,
            deliveries.per_s,
            deliveries.per_s,  # one worker process
            ctx.rates.get("bare"),
            sent,
            send_errors,
        ),
    )


def _mark_events_done(url: str) -> None:
    """The deliveries-only diagnosis: nothing left for the handlers."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE events SET status = 'done' WHERE status = 'pending'"))
    finally:
        engine.dispose()
