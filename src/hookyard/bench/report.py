"""The bench's report: tables, the goals of issues 11 and 16 checked against the figures,
JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookyard.bench.results import Goal, LoadResult, ProcessResult

# The targets of issue 11 (2 cores, wrk on the same machine).
GOAL_SERVE_VS_BARE = 0.35  # default serve, SQLite: acknowledged req/s against bare
GOAL_SERVE_P99_MS = 25.0  # default serve, SQLite: p99 acknowledgement latency
GOAL_DRAIN_S = 2.0  # default serve, SQLite: the backlog drained within this of the load's end
GOAL_SUSTAINED = 3000.0  # default serve, both backends: end-to-end events/s
GOAL_SUSTAINED_2W = 5000.0  # serve --workers 2 on PostgreSQL
GOAL_PROCESSING = {"sqlite": 5000.0, "postgresql": 3000.0}  # events/s of one worker process
GOAL_P99_VS_NOWORKER = 1.5  # serve's ack p99 against serve --no-worker's
GOAL_DELIVERIES = {"postgresql": 2000.0}  # issue 16: deliveries/s of one worker process

REAL_PROVIDERS = ("c2s", "meta", "hubspot", "tcr")


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def describe_run(r: LoadResult) -> str:
    """The one-line summary printed after each run."""
    s = r.stats
    line = (
        f"  {s.requests_per_s:,.0f} req/s, p50 {_fmt(s.p50_ms)} ms, p99 {_fmt(s.p99_ms)} ms, "
        f"{s.non_2xx} non-2xx, {s.socket_errors} errors; CPU server {_pct(r.cpu.server)}"
        f"{'' if r.cpu.loop is None else f' (loop {_pct(r.cpu.loop)})'}, "
        f"db {_pct(r.cpu.database)}, wrk {_pct(r.cpu.wrk)}, others {_pct(r.cpu.others)}"
    )
    if len(r.cpu.processes) > 1:
        # The command's first two words tell a supervisor, ingest and worker processes apart.
        line += "\n  CPU by process: " + "; ".join(
            f"{' '.join(p.command.split()[:2])} ({p.pid}) {p.percent:.0f}%" for p in r.cpu.processes
        )
    if (p := r.processing) is not None:
        rates = p.per_s(s.duration_s)
        line += (
            f"\n  events: {_count(rates['accepted'])}/s acknowledged, "
            f"{_count(rates['processed'])}/s processed under load, backlog at the end "
            f"{p.backlog_at_end:,}, drained in {_fmt(p.drain_s)} s, sustained "
            f"{_count(rates['sustained'])}/s"
        )
        if (d := p.deliveries) is not None:
            per_s = d.per_s(s.duration_s)
            line += (
                f"\n  deliveries: {_count(per_s['created'])}/s created, "
                f"{_count(per_s['delivered'])}/s delivered under load, backlog at the end "
                f"{d.backlog_at_end:,}, drained in {_fmt(d.drain_s)} s, sustained "
                f"{_count(per_s['sustained'])}/s"
                + (f"; not delivered: {d.not_delivered}" if d.not_delivered else "")
            )
    for note in r.notes:
        line += f"\n  note: {note}"
    return line


def print_load_table(results: Sequence[LoadResult]) -> None:
    header = (
        f"{'scenario':34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs bare':>7} "
        f"{'non-2xx':>7} {'errors':>6} {'CPU srv':>7} {'db':>5} {'wrk':>5} {'others':>6} "
        f"{'stored':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        s = r.stats
        ratio = "-" if r.ratio_vs_bare is None else f"{100 * r.ratio_vs_bare:.1f}%"
        name = r.scenario + (" (diag.)" if r.diagnosis else "")
        print(
            f"{name:34} {s.requests_per_s:>8,.0f} {_fmt(s.p50_ms):>7} {_fmt(s.p99_ms):>7} "
            f"{ratio:>7} {s.non_2xx:>7} {s.socket_errors:>6} {_pct(r.cpu.server):>7} "
            f"{_pct(r.cpu.database):>5} {_pct(r.cpu.wrk):>5} {_pct(r.cpu.others):>6} "
            f"{'-' if r.stored_rows is None else r.stored_rows:>8}"
        )
        if len(r.runs) > 1:
            print(f"{'':34} rounds: {', '.join(f'{v:,.0f}' for v in r.runs)} req/s")
    print("  what each scenario runs:")
    for r in results:
        print(f"    {r.scenario}: {r.command}")


def print_serve_table(results: Sequence[LoadResult]) -> None:
    header = (
        f"{'scenario':34} {'acked ev/s':>10} {'processed/s':>11} {'backlog':>8} "
        f"{'drain s':>7} {'sustained/s':>11} {'failed':>6} {'dead':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        p = r.processing
        if p is None:
            continue
        rates = p.per_s(r.stats.duration_s)
        name = r.scenario + (" (diag.)" if r.diagnosis else "")
        print(
            f"{name:34} {_count(rates['accepted']):>10} {_count(rates['processed']):>11} "
            f"{p.backlog_at_end:>8,} {_fmt(p.drain_s):>7} {_count(rates['sustained']):>11} "
            f"{p.failed:>6} {p.statuses.get('dead', 0):>5}"
        )
        for error in p.errors:
            print(f"{'':34} error: {error}")


def print_destination_table(results: Sequence[LoadResult]) -> None:
    """The serve runs with a destination, beside plain `serve` of the same run: the ack rate
    and p99 while deliveries run, and how the deliveries kept up."""
    by_name = {r.scenario: r for r in results}
    header = (
        f"{'scenario':34} {'req/s':>8} {'vs serve':>8} {'p99 ms':>7} {'vs serve':>8} "
        f"{'created/s':>9} {'delivered/s':>11} {'backlog':>8} {'drain s':>7} "
        f"{'sustained/s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.processing is None or (d := r.processing.deliveries) is None:
            continue
        s = r.stats
        plain = by_name.get(f"serve-{r.backend}")
        rate_vs = p99_vs = "-"
        if plain is not None and plain.stats.requests_per_s:
            rate_vs = f"{100 * s.requests_per_s / plain.stats.requests_per_s:.0f}%"
        if plain is not None and plain.stats.p99_ms and s.p99_ms is not None:
            p99_vs = f"{s.p99_ms / plain.stats.p99_ms:.2f}x"
        per_s = d.per_s(s.duration_s)
        print(
            f"{r.scenario:34} {s.requests_per_s:>8,.0f} {rate_vs:>8} {_fmt(s.p99_ms):>7} "
            f"{p99_vs:>8} {_count(per_s['created']):>9} {_count(per_s['delivered']):>11} "
            f"{d.backlog_at_end:>8,} {_fmt(d.drain_s):>7} {_count(per_s['sustained']):>11}"
        )
        if plain is not None:
            print(
                f"{'':34} serve-{r.backend} in the same run: "
                f"{plain.stats.requests_per_s:,.0f} req/s, p99 {_fmt(plain.stats.p99_ms)} ms"
            )
        if d.not_delivered:
            print(f"{'':34} not delivered: {d.not_delivered}")
        for error in d.errors:
            print(f"{'':34} error: {error}")


def print_process_table(results: Sequence[ProcessResult]) -> None:
    header = (
        f"{'scenario':38} {'events':>8} {'workers':>7} {'drain s':>8} {'events/s':>9} "
        f"{'ignored':>7} {'supersed.':>9} {'failed':>6} {'dead':>5} {'CPU':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.delivered is not None:
            continue  # print_delivery_table
        name = r.scenario + (" (diag.)" if r.diagnosis else "")
        n = r.statuses
        print(
            f"{name:38} {r.events:>8,} {r.workers:>7} {r.drain_s:>8.2f} "
            f"{r.events_per_s:>9,.0f} {n.get('ignored', 0):>7,} {n.get('superseded', 0):>9,} "
            f"{n.get('failed', 0):>6,} {n.get('dead', 0):>5,} {_pct(r.worker_cpu):>5}"
        )
        if len(r.runs) > 1:
            print(f"{'':38} rounds: {', '.join(f'{v:,.0f}' for v in r.runs)} events/s")
        if r.database_waits:
            waits = ", ".join(f"{what} {pct:.0f}%" for what, pct in r.database_waits.items())
            print(f"{'':38} PostgreSQL backends: {waits}")
        for error in r.errors:
            print(f"{'':38} error: {error}")
    scale = {r.workers: r for r in results if r.scenario.startswith("scaleout-")}
    if 1 in scale and 2 in scale and scale[1].events_per_s:
        print(f"  speed-up with 2 workers: {scale[2].events_per_s / scale[1].events_per_s:.2f}x")


def print_delivery_table(results: Sequence[ProcessResult]) -> None:
    """The deliveries scenarios: deliveries/s of one worker process beside the bare
    endpoint's req/s measured in the same run."""
    header = (
        f"{'scenario':38} {'deliveries':>10} {'drain s':>8} {'per worker/s':>12} "
        f"{'bare req/s':>10} {'vs bare':>7} {'events/s':>9} {'CPU':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if (d := r.delivered) is None:
            continue
        name = r.scenario + (" (diag.)" if r.diagnosis else "")
        ratio = "-" if d.ratio_vs_bare is None else f"{100 * d.ratio_vs_bare:.1f}%"
        events = f"{r.events_per_s:,.0f}" if r.events else "-"
        print(
            f"{name:38} {d.deliveries:>10,} {d.drain_s:>8.2f} {d.per_worker_s:>12,.0f} "
            f"{_count(d.bare_per_s):>10} {ratio:>7} {events:>9} {_pct(r.worker_cpu):>5}"
        )
        if len(r.runs) > 1:
            print(f"{'':38} rounds: {', '.join(f'{v:,.0f}' for v in r.runs)} deliveries/s")
        if r.database_waits:
            waits = ", ".join(f"{what} {pct:.0f}%" for what, pct in r.database_waits.items())
            print(f"{'':38} PostgreSQL backends: {waits}")
        if d.not_delivered:
            print(f"{'':38} not delivered: {d.not_delivered}")
        for error in d.errors:
            print(f"{'':38} error: {error}")
        not_done = {s: n for s, n in r.statuses.items() if s not in _EVENT_ENDS}
        if r.events and not_done:
            print(f"{'':38} events not done: {not_done}")
    if not any(r.delivered and r.delivered.bare_per_s for r in results):
        print("  (bare was not measured in this run: add it to --scenarios for the ratio)")


_EVENT_ENDS = ("done", "ignored", "superseded")


def _at_least(name: str, measured: float | None, target: float, unit: str = "") -> Goal:
    if measured is None:
        return Goal(name, None, f">= {target:,.0f}{unit}", None, unit=unit)
    met = measured >= target
    gap = f"{100 * measured / target:.0f}% of the target"
    if unit != "%":  # "x% short" of a percentage would read as points or as a share
        gap += f", {target - measured:,.0f}{unit} short"
    target_text = f">= {target:,.0f}{unit}"
    return Goal(name, round(measured, 2), target_text, met, "" if met else gap, unit)


def _below(name: str, measured: float | None, limit: float, unit: str, *, equal: bool) -> Goal:
    sign = "<=" if equal else "<"
    if measured is None:
        return Goal(name, None, f"{sign} {limit:g}{unit}", None, unit=unit)
    met = measured <= limit if equal else measured < limit
    gap = "" if met else f"{measured / limit:.1f}x the limit"
    return Goal(name, round(measured, 2), f"{sign} {limit:g}{unit}", met, gap, unit)


def check_goals(load: Sequence[LoadResult], processing: Sequence[ProcessResult]) -> list[Goal]:
    by_name = {r.scenario: r for r in load}
    goals: list[Goal] = []
    if (serve := by_name.get("serve-sqlite")) is not None:
        ratio = serve.ratio_vs_bare
        goals.append(
            _at_least(
                "serve, SQLite: acknowledged req/s, % of bare",
                None if ratio is None else 100 * ratio,
                100 * GOAL_SERVE_VS_BARE,
                "%",
            )
        )
        goals.append(
            _below(
                f"serve, SQLite: p99 ack at {serve.connections} connections",
                serve.stats.p99_ms,
                GOAL_SERVE_P99_MS,
                " ms",
                equal=False,
            )
        )
        if serve.processing is not None:
            drain = serve.processing.drain_s
            goals.append(
                _below(
                    "serve, SQLite: backlog drained after the load",
                    drain,
                    GOAL_DRAIN_S,
                    " s",
                    equal=True,
                )
            )
    for scenario, target in [
        ("serve-sqlite", GOAL_SUSTAINED),
        ("serve-postgresql", GOAL_SUSTAINED),
        ("serve-2w-postgresql", GOAL_SUSTAINED_2W),
    ]:
        r = by_name.get(scenario)
        if r is not None and r.processing is not None:
            sustained = r.processing.per_s(r.stats.duration_s)["sustained"]
            goals.append(_at_least(f"{scenario}: sustained end-to-end events/s", sustained, target))
    for p in processing:
        wanted = GOAL_DELIVERIES.get(p.backend)
        if p.delivered is not None and not p.diagnosis and wanted is not None:
            goals.append(
                _at_least(
                    f"{p.scenario}: deliveries/s by one worker", p.delivered.per_worker_s, wanted
                )
            )
        if p.provider in REAL_PROVIDERS and p.scenario.startswith("processing-"):
            goals.append(
                _at_least(
                    f"{p.scenario}: events/s by one worker",
                    p.events_per_s,
                    GOAL_PROCESSING[p.backend],
                )
            )
    for backend in ("sqlite", "postgresql"):
        serve, alone = by_name.get(f"serve-{backend}"), by_name.get(f"serve-noworker-{backend}")
        if serve is None or alone is None:
            continue
        mine, theirs = serve.stats.p99_ms, alone.stats.p99_ms
        goals.append(
            _below(
                f"serve-{backend}: p99 ack, times serve --no-worker's",
                None if mine is None or not theirs else mine / theirs,
                GOAL_P99_VS_NOWORKER,
                "x",
                equal=True,
            )
        )
    return goals


def print_goals(goals: Sequence[Goal]) -> None:
    print("Goals (issues 11 and 16):")
    for g in goals:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[g.met]
        gap = f" ({g.gap})" if g.gap else ""
        measured = "-" if g.measured is None else f"{g.measured:,.2f}{g.unit}"
        print(f"  {g.name}: {measured} (goal {g.target}) {verdict}{gap}")


def _load_json(r: LoadResult) -> dict[str, Any]:
    data = asdict(r)
    data["cpu"]["others"] = r.cpu.others
    if r.processing is not None:
        data["processing"]["per_s"] = r.processing.per_s(r.stats.duration_s)
        if r.processing.deliveries is not None:
            per_s = r.processing.deliveries.per_s(r.stats.duration_s)
            data["processing"]["deliveries"]["per_s"] = per_s
    return data


def _process_json(p: ProcessResult) -> dict[str, Any]:
    data = asdict(p)
    if p.delivered is not None:
        data["delivered"]["ratio_vs_bare"] = p.delivered.ratio_vs_bare
    return data


def write_json(
    path: Path,
    *,
    argv: Sequence[str],
    machine: dict[str, Any],
    config: dict[str, Any],
    load: Sequence[LoadResult],
    rounds: dict[str, list[LoadResult]],
    processing: Sequence[ProcessResult],
    processing_rounds: dict[str, list[ProcessResult]],
    goals: Sequence[Goal],
    failures: Sequence[str],
) -> None:
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": list(argv),
        "machine": machine,
        "config": config,
        "load": [_load_json(r) for r in load],
        "load_rounds": {name: [_load_json(r) for r in runs] for name, runs in rounds.items()},
        "processing": [_process_json(p) for p in processing],
        "processing_rounds": {
            name: [_process_json(p) for p in runs] for name, runs in processing_rounds.items()
        },
        "goals": [asdict(g) for g in goals],
        "failures": list(failures),
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
