"""`hookyard bench`: its options, and a run of the chosen scenarios in rounds."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from hookyard.bench import report
from hookyard.bench.databases import BACKENDS, DEFAULT_PG_URL, Databases
from hookyard.bench.processes import serve_options
from hookyard.bench.results import LoadResult, ProcessResult
from hookyard.bench.wrk import WRK_INSTALL_HINT, BenchError, WrkLoad

SCENARIOS = (
    "bare",
    "serve",
    "serve-noworker",
    "serve-2w",
    "ingest",
    "naive",
    "processing",
    "scaleout",
    "deliveries",
    "serve-destinations",
)
POSTGRES_ONLY = ("serve-2w", "scaleout")
DEFAULT_MIX = "c2s=1,meta=1,hubspot=1,tcr=1"

DESCRIPTION = (
    "Measure what users run: the default `hookyard serve` (ingest and workers) under a "
    "realistic, signed mix of C2S, Meta, HubSpot and TCR webhooks, on SQLite and PostgreSQL, "
    "beside a bare ASGI endpoint and a naive FastAPI + ORM handler, with wrk: acknowledged "
    "requests/s, p50/p99 ack latency, events processed under load, the backlog and the time "
    "to drain it, the sustained end-to-end rate. Then each provider's processing rate by one "
    "`hookyard worker`, and the scale-out to two workers on PostgreSQL. Then deliveries/s of "
    "one worker to a destination (the bare endpoint), and the ack latency of `hookyard serve` "
    "while deliveries run. Ingest-only, no-op and deliveries-only figures are labelled "
    "diagnosis. Needs wrk and the bench/ directory."
)

_Result = TypeVar("_Result", LoadResult, ProcessResult)


def _version(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else None


def machine_info(wrk: str) -> dict[str, Any]:
    import sqlite3

    import uvicorn

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "sqlite": sqlite3.sqlite_version,
        "wrk": _version([wrk, "--version"]),
        "load_average": os.getloadavg(),
    }


def find_bench_dir(given: Path | None) -> Path:
    candidates = [given] if given else []
    # src/hookyard/bench/cli.py -> the checkout's bench/ directory.
    candidates += [Path(__file__).resolve().parents[3] / "bench", Path.cwd() / "bench"]
    needed = ("bare_app.py", "naive_app.py", "webhooks.lua", "replay.lua")
    for candidate in candidates:
        if candidate is not None and all((candidate / f).exists() for f in needed):
            return candidate.resolve()
    raise BenchError(
        f"cannot find the bench/ directory ({', '.join(needed)}); "
        "run from a checkout of hookyard or pass --bench-dir"
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is not a number of seconds > 0")
    return number


def _csv(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)} (choose from {', '.join(allowed)})"
            )
        return items

    return parse


def _setting(value: str) -> tuple[str, str]:
    name, sep, setting = value.partition("=")
    if not sep or not name.startswith("HOOKYARD_") or not name[9:].replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOOKYARD_NAME=VALUE")
    return name, setting


def _mix(value: str) -> Any:
    from hookyard.bench.workload import Mix

    try:
        return Mix.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _median(results: list[_Result], key: Callable[[_Result], float]) -> _Result:
    ordered = sorted(results, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C, so that servers are stopped and bench databases dropped.
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        print(f"hookyard bench: {WRK_INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        bench_dir = find_bench_dir(args.bench_dir)
    except BenchError as exc:
        print(f"hookyard bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="hookyard-bench-", dir=args.workdir))
    try:
        return _run_in(args, wrk, bench_dir, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


class _Rounds:
    """Every round's result of every scenario, and the problems met on the way."""

    def __init__(self) -> None:
        self.load: dict[str, list[LoadResult]] = {}
        self.processing: dict[str, list[ProcessResult]] = {}
        self.failures: list[str] = []

    def _attempt(self, name: str, step: Callable[[], _Result]) -> _Result | None:
        """The step's result; None when it failed, which is reported and the run goes on
        with the other scenarios (their figures are still worth having)."""
        try:
            return step()
        except BenchError as exc:
            print(f"  {name} failed: {exc}", file=sys.stderr, flush=True)
        except Exception:  # a crash in hookyard's set-up or in the bench: shown whole
            print(f"  {name} crashed:", file=sys.stderr, flush=True)
            traceback.print_exc()
        self.failures.append(name)
        return None

    def run_load(self, name: str, round_number: int, step: Callable[[], LoadResult]) -> None:
        print(f"- {name} (round {round_number + 1}) ...", flush=True)
        result = self._attempt(name, step)
        if result is None:
            return
        print(report.describe_run(result), flush=True)
        self.load.setdefault(name, []).append(result)
        s = result.stats
        # Errors (wrk's time-outs) of a baseline are part of what is measured; of hookyard,
        # a fault.
        if (s.non_2xx or s.socket_errors) and not name.startswith(("bare", "naive")):
            self.failures.append(f"{name}: {s.non_2xx} non-2xx, {s.socket_errors} errors")
        if s.exhausted:
            self.failures.append(f"{name}: wrk ran out of requests (figures not valid)")
        stored, acked = result.stored_rows, result.acknowledged
        if stored is not None and acked is not None and stored < acked:
            self.failures.append(f"{name}: {acked} acknowledged but only {stored} rows stored")
        if (p := result.processing) is not None:
            if p.failed or p.statuses.get("dead"):
                self.failures.append(
                    f"{name}: {p.failed} events failed and {p.statuses.get('dead', 0)} dead"
                )
            if p.drain_s is None and not result.diagnosis:
                self.failures.append(f"{name}: the backlog was not drained")
            if (d := p.deliveries) is not None:
                if d.drain_s is None:
                    self.failures.append(f"{name}: the deliveries were not drained")
                if d.not_delivered:
                    self.failures.append(f"{name}: deliveries not delivered: {d.not_delivered}")

    def run_processing(
        self, name: str, round_number: int, step: Callable[[], ProcessResult]
    ) -> None:
        print(f"- {name} (round {round_number + 1}) ...", flush=True)
        p = self._attempt(name, step)
        if p is None:
            return
        not_done = {s: n for s, n in p.statuses.items() if s != "done"}
        if p.events:
            print(
                f"  {p.events_per_s:,.0f} events/s ({p.events:,} events, {p.workers} worker(s); "
                f"drain {p.drain_s:.2f}s, preload {p.preload_s:.2f}s)"
                + (f"; not done: {not_done}" if not_done else ""),
                flush=True,
            )
        if (d := p.delivered) is not None:
            bare = (
                f"bare {d.bare_per_s:,.0f} req/s in this run"
                if d.bare_per_s
                else "bare not measured in this run"
            )
            print(
                f"  {d.per_worker_s:,.0f} deliveries/s per worker ({d.deliveries:,} deliveries, "
                f"drain {d.drain_s:.2f}s; {bare})"
                + (f"; not delivered: {d.not_delivered}" if d.not_delivered else ""),
                flush=True,
            )
            for error in d.errors:
                print(f"  delivery error: {error}", flush=True)
            if d.not_delivered:
                self.failures.append(f"{name}: deliveries not delivered: {d.not_delivered}")
        if p.worker_cpu is not None:
            print(f"  worker CPU {p.worker_cpu:.0f}% of one core while draining", flush=True)
        if p.database_waits:
            print(
                "  PostgreSQL backends, busy samples: "
                + ", ".join(f"{what} {pct:.0f}%" for what, pct in p.database_waits.items()),
                flush=True,
            )
        for error in p.errors:
            print(f"  error: {error}", flush=True)
        self.processing.setdefault(name, []).append(p)
        if p.statuses.get("failed") or p.statuses.get("dead"):
            self.failures.append(f"{name}: events failed or dead: {not_done}")


def _run_in(args: argparse.Namespace, wrk: str, bench_dir: Path, workdir: Path) -> int:
    from hookyard.bench import scenarios as sc
    from hookyard.bench.sources import BenchSecrets

    databases = Databases(workdir, args.pg_url)
    backends: list[str] = list(args.backends)
    chosen: list[str] = list(args.scenarios)
    rounds = _Rounds()
    if "postgresql" in backends and (problem := databases.check_postgres()):
        print(f"skipping postgresql: cannot reach {args.pg_url}: {problem}", file=sys.stderr)
        backends.remove("postgresql")
        rounds.failures.append("postgresql unreachable")
    supervised = "--workers" in serve_options()
    if "serve-2w" in chosen and not supervised:
        print(
            "skipping serve-2w: this `hookyard serve` has no --workers option yet",
            file=sys.stderr,
        )
        chosen.remove("serve-2w")

    options = sc.Options(
        duration=args.duration,
        warmup=args.warmup,
        body_bytes=args.body_bytes,
        mix=args.mix,
        events=args.events,
        drain_threads=args.drain_threads,
        drain_timeout=args.drain_timeout,
        max_requests=args.max_requests,
        settings=dict(args.setting),
    )
    load = WrkLoad(wrk, args.connections, args.threads)
    ctx = sc.Context(
        options,
        load,
        bench_dir,
        workdir,
        databases,
        BenchSecrets.generate(),
        args.profile,
        keep_files=args.keep,
    )
    info = machine_info(wrk)
    print(
        f"hookyard bench: {info['cpus']} CPUs, load {info['load_average'][0]:.2f}; "
        f"wrk {load.threads} thread(s), {load.connections} connections, "
        f"{options.duration}s per run (+{options.warmup}s warm-up); mix {options.mix}; "
        + (f"settings {options.settings}; " if options.settings else "")
        + f"{args.repeat} round(s); logs in {workdir}",
        flush=True,
    )
    if ctx.hubspot_max_age != 300:
        print(
            f"  (HubSpot's timestamp window is widened to {ctx.hubspot_max_age}s: requests are "
            "signed before each run, and a run this long outlasts the 5 minutes)",
            flush=True,
        )

    load_plan: list[tuple[str, Callable[[], LoadResult]]] = []
    if "bare" in chosen:
        load_plan.append(("bare", partial(sc.bench_bare, ctx)))
    for backend in backends:
        for variant in sc.SERVE_VARIANTS:
            if variant in chosen and not (variant in POSTGRES_ONLY and backend != "postgresql"):
                load_plan.append(
                    (f"{variant}-{backend}", partial(sc.bench_serve, ctx, backend, variant))
                )
        if "ingest" in chosen:
            load_plan.append((f"ingest-{backend}", partial(sc.bench_ingest, ctx, backend)))
        if "naive" in chosen:
            load_plan.append((f"naive-{backend}", partial(sc.bench_naive, ctx, backend)))
    process_plan: list[tuple[str, Callable[[], ProcessResult]]] = []
    for backend in backends:
        if "processing" in chosen:
            for provider in sc.PROCESSING_PROVIDERS:
                process_plan.append(
                    (
                        f"processing-{provider}-{backend}",
                        partial(sc.bench_processing, ctx, backend, provider),
                    )
                )
        if "deliveries" in chosen:
            for handlers, variant in ((True, "deliveries"), (False, "deliveries-only")):
                process_plan.append(
                    (
                        f"{variant}-{backend}",
                        partial(sc.bench_deliveries, ctx, backend, handlers),
                    )
                )
        if "scaleout" in chosen and backend == "postgresql":
            for workers in (1, 2):
                process_plan.append(
                    (
                        f"scaleout-{workers}-{backend}",
                        partial(sc.bench_scaleout, ctx, backend, workers),
                    )
                )

    # Rounds run every scenario in turn, so that a burst of load from elsewhere on the
    # machine hits one round of each rather than all runs of one scenario.
    try:
        for ctx.round in range(args.repeat):
            for name, load_step in load_plan:
                rounds.run_load(name, ctx.round, load_step)
            for name, process_step in process_plan:
                rounds.run_processing(name, ctx.round, process_step)
    finally:
        databases.drop_all()

    results: list[LoadResult] = []
    for runs in rounds.load.values():
        median = _median(runs, lambda r: r.stats.requests_per_s)
        median.runs = [r.stats.requests_per_s for r in runs]
        results.append(median)
    processed: list[ProcessResult] = []
    for process_runs in rounds.processing.values():
        chosen_run = _median(process_runs, lambda p: p.rate)
        chosen_run.runs = [p.rate for p in process_runs]
        processed.append(chosen_run)
    bare = next((r for r in results if r.scenario == "bare"), None)
    for r in results:
        if bare is not None and bare.stats.requests_per_s:
            r.ratio_vs_bare = r.stats.requests_per_s / bare.stats.requests_per_s
    goals = report.check_goals(results, processed)

    median_note = f", median of {args.repeat} rounds" if args.repeat > 1 else ""
    if results:
        print()
        print(
            f"Acknowledgement: wrk, {load.connections} connections, {options.duration}s per run"
            f"{median_note}; CPU in % of one core; (diag.) = diagnosis, not what users run"
        )
        report.print_load_table(results)
    if any(r.processing is not None for r in results):
        print()
        print(
            "Processing during and after the load (events, not requests: a Meta or HubSpot "
            "request may carry several); sustained = the run's events / (load + drain)"
        )
        report.print_serve_table(results)
    if any(r.processing is not None and r.processing.deliveries for r in results):
        print()
        print(
            "Acknowledgement while deliveries run: serve with one destination (every event to "
            "the bare endpoint) beside plain serve; deliveries created, delivered under load, "
            "backlog and drain (deliveries, not events)"
        )
        report.print_destination_table(results)
    if any(p.delivered is None for p in processed):
        print()
        print(
            f"Processing: preloaded events drained by `hookyard worker` process(es), "
            f"{options.drain_threads} thread(s) each{median_note}"
        )
        report.print_process_table(processed)
    if any(p.delivered is not None for p in processed):
        print()
        print(
            "Deliveries: preloaded events with a delivery each to the bare endpoint, one "
            "`hookyard worker` handling the events and sending them (deliveries-only: sending "
            f"alone); per worker/s from the first ended delivery until none waited{median_note}"
        )
        report.print_delivery_table(processed)
    if goals:
        print()
        report.print_goals(goals)

    if args.output is not None:
        report.write_json(
            args.output,
            argv=sys.argv,
            machine=info,
            config={
                "duration_s": options.duration,
                "warmup_s": options.warmup,
                "connections": load.connections,
                "wrk_threads": load.threads,
                "body_bytes": options.body_bytes,
                "mix": str(options.mix),
                "repeat": args.repeat,
                "events": options.events,
                "drain_threads": options.drain_threads,
                "drain_timeout_s": options.drain_timeout,
                "max_requests": options.max_requests,
                "settings": options.settings,
                "backends": backends,
                "scenarios": chosen,
                "serve_has_workers_option": supervised,
                "hubspot_max_age_s": ctx.hubspot_max_age,
            },
            load=results,
            rounds=rounds.load,
            processing=processed,
            processing_rounds=rounds.processing,
            goals=goals,
            failures=rounds.failures,
        )
        print(f"\nresults written to {args.output}")
    if rounds.failures:
        print(f"\nproblems: {'; '.join(rounds.failures)}", file=sys.stderr)
        return 1
    return 0


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--duration", type=_positive, default=10, help="seconds per measured run (10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each run (2)")
    p.add_argument("--connections", type=_positive, default=32, help="concurrent connections (32)")
    p.add_argument("--threads", type=_positive, default=1, help="wrk threads (1)")
    p.add_argument(
        "--mix",
        type=_mix,  # argparse passes the default through it too
        default=DEFAULT_MIX,
        help=f"shares of the providers' deliveries in the realistic workload ({DEFAULT_MIX})",
    )
    p.add_argument(
        "--body-bytes",
        type=_positive,
        default=1024,
        help="body size of the generic deliveries (naive, ingest, processing-generic) (1024)",
    )
    p.add_argument(
        "--backends",
        type=_csv(BACKENDS),
        default=list(BACKENDS),
        help="comma-separated: sqlite,postgresql (both)",
    )
    p.add_argument(
        "--scenarios",
        type=_csv(SCENARIOS),
        default=list(SCENARIOS),
        help=f"comma-separated: {','.join(SCENARIOS)} (all)",
    )
    p.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help=f"PostgreSQL server to create the bench databases on ({DEFAULT_PG_URL})",
    )
    p.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        help="rounds of every scenario; the median round is shown (1; use an odd number)",
    )
    p.add_argument(
        "--events",
        type=_positive,
        default=20_000,
        help="events preloaded for each processing and scale-out run (20000)",
    )
    p.add_argument(
        "--drain-threads",
        type=_positive,
        default=1,
        help="worker threads of each `hookyard worker` draining preloaded events (1)",
    )
    p.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=180.0,
        help="longest wait for a backlog to drain, in seconds (180)",
    )
    p.add_argument(
        "--max-requests",
        type=_positive,
        default=300_000,
        help="most requests made for one wrk run of the realistic workload (300000)",
    )
    p.add_argument(
        "--setting",
        type=_setting,
        action="append",
        default=[],
        metavar="HOOKYARD_NAME=VALUE",
        help="a setting for every hookyard server and worker measured (repeatable), e.g."
        " HOOKYARD_CLAIM_BATCH_SIZE=50",
    )
    p.add_argument("--output", type=Path, help="write the results as JSON to this file")
    p.add_argument(
        "--profile", type=Path, help="py-spy every process of each server and worker into DIR"
    )
    p.add_argument("--bench-dir", type=Path, help="the bench/ directory (found by default)")
    p.add_argument("--workdir", type=Path, help="where temporary files go (system temp)")
    p.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, dbs, requests)"
    )
    p.set_defaults(func=run)
    return p


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `hookyard bench` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the default serve with realistic webhooks, beside bare and naive ones",
        description=DESCRIPTION,
    )
    return configure_parser(p)


def main(argv: Sequence[str] | None = None) -> int:
    p = configure_parser(argparse.ArgumentParser(prog="hookyard bench", description=DESCRIPTION))
    args = p.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
