"""Running wrk and reading its report.

Two kinds of load: `webhooks.lua` builds generic token-authenticated deliveries itself (the
naive baseline and the ingest diagnosis), and `replay.lua` sends requests made beforehand in
Python (signed provider deliveries, which wrk's Lua cannot sign). Both end their report with
one machine-readable line, `HOOKYARD_BENCH {...}`, with exact counts and latencies.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu; run "
    "`apt-get update` first) or `brew install wrk` (macOS), or run `bench/run`, which does it."
)


class BenchError(RuntimeError):
    """A scenario could not run (server did not start, wrk failed, ...)."""


@dataclass
class WrkStats:
    requests: int = 0
    duration_s: float = 0.0
    requests_per_s: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    # replay.lua only: requests handed to wrk's connections, requests in the file, and
    # whether a thread ran out of them (the run then stopped early: its figures are wrong).
    taken: int | None = None
    available: int | None = None
    exhausted: bool = False
    wraps: int = 0  # times a thread started its slice again ("cycle" mode, bare only)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_SUMMARY_LINE = re.compile(r"^HOOKYARD_BENCH (\{.*\})\s*$", re.M)


def parse_wrk(output: str) -> WrkStats:
    """Read wrk's `--latency` report; exact figures from our scripts' summary line if present.

    wrk counts a 4xx/5xx answer as a completed request (and reports it as "Non-2xx");
    socket errors (connect, read, write, timeout) are separate.
    """
    stats = WrkStats()
    if m := _RPS.search(output):
        stats.requests_per_s = float(m.group(1))
    if m := _TOTAL.search(output):
        stats.requests = int(m.group(1))
        stats.duration_s = float(m.group(2)) * _UNIT_MS[m.group(3)] / 1000
    percentiles = {int(p): float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(output)}
    stats.p50_ms = percentiles.get(50)
    stats.p90_ms = percentiles.get(90)
    stats.p99_ms = percentiles.get(99)
    if m := _NON_2XX.search(output):
        stats.non_2xx = int(m.group(1))
    if m := _SOCKET_ERRORS.search(output):
        stats.socket_errors = sum(int(g) for g in m.groups())
    if m := _SUMMARY_LINE.search(output):
        summary = json.loads(m.group(1))
        latency, errors = summary["latency_us"], summary["errors"]
        stats.requests = int(summary["requests"])
        stats.duration_s = summary["duration_us"] / 1e6
        if stats.duration_s > 0:
            stats.requests_per_s = stats.requests / stats.duration_s
        stats.p50_ms = latency["p50"] / 1000
        stats.p90_ms = latency["p90"] / 1000
        stats.p99_ms = latency["p99"] / 1000
        stats.p999_ms = latency["p999"] / 1000
        stats.max_ms = latency["max"] / 1000
        stats.non_2xx = int(errors["status"])
        stats.socket_errors = sum(int(errors[k]) for k in ("connect", "read", "write", "timeout"))
        if (replay := summary.get("replay")) is not None:
            stats.taken = int(replay["taken"])
            stats.available = int(replay["available"])
            stats.exhausted = int(replay["exhausted_threads"]) > 0
            stats.wraps = int(replay["wraps"])
    if not stats.requests_per_s and not stats.requests:
        raise BenchError(f"could not read wrk's report:\n{output[-2000:]}")
    return stats


@dataclass(frozen=True)
class WrkLoad:
    """What every wrk run of a bench shares: the binary, connections, threads."""

    wrk: str
    connections: int
    threads: int


def run_wrk(
    load: WrkLoad, script: Path, url: str, duration: int, script_args: Sequence[str]
) -> WrkStats:
    argv = [
        load.wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *script_args,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 60}s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}")
    return parse_wrk(done.stdout)
