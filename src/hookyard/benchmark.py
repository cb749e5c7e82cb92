"""`hookyard bench`: ingest and processing throughput, against a bare endpoint and a naive one.

In one run, on the same server stack (uvicorn + uvloop + httptools, one process, no access
log), wrk sends the same stream of unique ~1 KB webhook deliveries, at a fixed number of
connections, to:

- `bare`: a raw ASGI app that reads the body and answers 200 (`bench/bare_app.py`);
- `naive-BACKEND`: the usual FastAPI + SQLAlchemy ORM handler, one commit per request
  (`bench/naive_app.py`);
- `hookyard-BACKEND`: the real `hookyard serve --no-worker` on a fresh database.

It prints requests/s, p50/p99 acknowledgement latency and the ratio to `bare`. Then it
preloads events into a fresh inbox and times `Worker.drain()` (claim → handler → done) for
the processing throughput, in events/s.

PostgreSQL runs create their own databases (`hookyard_bench_<pid>_<what>`) on the server
named by `--pg-url` and drop them afterwards; no other database is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
SCENARIOS = ("bare", "naive", "hookyard", "processing")
WEBHOOK_PATH = "/webhooks/in/bench"
SOURCE_NAME = "bench"
TOKEN_HEADER = "X-Webhook-Token"  # noqa: S105 - a header name
ID_HEADER = "X-Delivery-Id"
WRK_INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu; run "
    "`apt-get update` first) or `brew install wrk` (macOS), or run `bench/run`, which does it."
)

DESCRIPTION = (
    "Measure webhook ingest (requests/s, p50/p99 ack latency) of a bare ASGI endpoint, a naive "
    "FastAPI + ORM handler and hookyard, on SQLite and PostgreSQL, with wrk; then processing "
    "throughput (events/s through claim -> handler -> done). Needs wrk and the bench/ directory."
)

# Goals of the benchmark issue, checked at the end of a run.
GOAL_INGEST_RATIO = 0.5
GOAL_P99_MS = 25.0
GOAL_PG_EVENTS_PER_S = 3000.0


class BenchError(RuntimeError):
    """A scenario could not run (server did not start, wrk failed, ...)."""


# -- results -------------------------------------------------------------------------------


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


@dataclass
class CpuUse:
    """CPU used during the measured run, in % of one core."""

    server: float | None = None  # the server process, all threads
    loop: float | None = None  # its main thread: the event loop
    database: float | None = None  # the PostgreSQL backends serving the scenario's database
    wrk: float | None = None  # the load generator
    machine: float | None = None  # every CPU of the machine (at most 100% x CPUs)

    @property
    def others(self) -> float | None:
        """What the rest of the machine used meanwhile (other people's work: noise)."""
        if self.machine is None or self.server is None or self.wrk is None:
            return None
        return max(0.0, self.machine - self.server - self.wrk - (self.database or 0.0))


@dataclass
class LoadResult:
    scenario: str  # bare, naive-sqlite, hookyard-postgresql, ...
    backend: str  # "-" for bare
    connections: int
    stats: WrkStats
    cpu: CpuUse = field(default_factory=CpuUse)
    stored_rows: int | None = None  # rows in the database after the run (warm-up included)
    acknowledged: int | None = None  # 2xx answers, warm-up included
    load_before: float | None = None  # 1-minute load average before the run
    ratio_vs_bare: float | None = None
    runs: list[float] = field(default_factory=list)  # req/s of every round; this is the median


@dataclass
class ProcessResult:
    backend: str
    events: int
    workers: int
    preload_s: float
    drain_s: float
    events_per_s: float
    statuses: dict[str, int] = field(default_factory=dict)
    load_before: float | None = None
    runs: list[float] = field(default_factory=list)  # events/s of every round


@dataclass
class Goal:
    name: str
    measured: float | None
    target: str
    met: bool | None


# -- wrk -----------------------------------------------------------------------------------

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_SUMMARY_LINE = re.compile(r"^HOOKYARD_BENCH (\{.*\})\s*$", re.M)


def parse_wrk(output: str) -> WrkStats:
    """Read wrk's `--latency` report; exact figures from our script's summary line if present.

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
    if not stats.requests_per_s and not stats.requests:
        raise BenchError(f"could not read wrk's report:\n{output[-2000:]}")
    return stats


@dataclass
class LoadSpec:
    wrk: str
    script: Path
    duration: int
    warmup: int
    connections: int
    threads: int
    body_bytes: int
    token: str


def run_wrk(spec: LoadSpec, url: str, run_id: str, duration: int) -> WrkStats:
    argv = [
        spec.wrk,
        f"-t{spec.threads}",
        f"-c{spec.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(spec.script),
        url,
        "--",
        spec.token,
        run_id,
        str(spec.body_bytes),
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {duration + 60}s") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr[-1000:]}")
    return parse_wrk(done.stdout)


# -- servers under test --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU time of a process (all its threads), or of one of its threads
    (Linux); None where /proc does not tell."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    try:
        stat = Path(path).read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU time all CPUs spent busy since boot (Linux /proc/stat), else None."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's finished, waited-for children (here: wrk)."""
    import resource  # Unix only

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU use over a window: the server (and its loop thread), PostgreSQL backends, wrk
    (a child that finishes inside the window), and the whole machine."""

    def __init__(self, server_pid: int, db_pids: Sequence[int]) -> None:
        self.server_pid = server_pid
        self.db_pids = list(db_pids)
        self._start = self._read()
        self._db_start = self._read_db()
        self._started = time.monotonic()

    def _read(self) -> tuple[float | None, ...]:
        pid = self.server_pid
        return (
            cpu_seconds(pid),
            cpu_seconds(pid, pid),
            children_cpu_seconds(),
            machine_busy_seconds(),
        )

    def _read_db(self) -> dict[int, float]:
        found = {pid: cpu_seconds(pid) for pid in self.db_pids}
        return {pid: v for pid, v in found.items() if v is not None}

    def stop(self) -> CpuUse:
        end, db_end = self._read(), self._read_db()
        elapsed = time.monotonic() - self._started

        def pct(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None or elapsed <= 0 else 100 * (b - a) / elapsed

        server, loop, wrk, machine = (pct(a, b) for a, b in zip(self._start, end, strict=True))
        database = None
        if self.db_pids:
            # Backends present at both ends (a pool may close a connection meanwhile).
            used = sum(db_end[pid] - v for pid, v in self._db_start.items() if pid in db_end)
            database = pct(0.0, used)
        return CpuUse(server, loop, database, wrk, machine)


class Server:
    """A server under test, as a subprocess; ready once it answers HTTP on its port."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(port=int(self.argv[self.argv.index("--port") + 1]))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _wait_ready(self, port: int, timeout: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/health")
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
            finally:
                conn.close()
        raise BenchError(f"{self.name} did not answer within {timeout:.0f}s:\n" + self.log_tail())

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies, so no server outlives it (Linux)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def uvicorn_argv(app: str, port: int, app_dir: Path) -> list[str]:
    """The server stack every baseline runs on; `hookyard serve` uses the same settings."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
    ]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "BENCH_"))}
    env.update(extra)
    return env


# -- databases -----------------------------------------------------------------------------


def _pg_url(admin_url: str, database: str, driver: str = "postgresql+psycopg") -> str:
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(drivername=driver, database=database)
    return url.render_as_string(hide_password=False)


class Databases:
    """Fresh databases for each scenario: SQLite files in the work directory, or PostgreSQL
    databases named `hookyard_bench_<pid>_<tag>`, created here and dropped at the end."""

    def __init__(self, workdir: Path, pg_admin_url: str) -> None:
        self.workdir = workdir
        self.pg_admin_url = pg_admin_url
        self.prefix = f"hookyard_bench_{os.getpid()}_"
        self._created: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(
            _pg_url(self.pg_admin_url, _admin_database(self.pg_admin_url), "postgresql"),
            autocommit=True,
            connect_timeout=5,
        )

    def check_postgres(self) -> str | None:
        """None when the server is reachable, else why not."""
        try:
            with self._admin() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        return None

    @contextlib.contextmanager
    def fresh(self, backend: str, tag: str) -> Iterator[str]:
        """A SQLAlchemy URL of a new, empty database, removed on exit."""
        if backend == "sqlite":
            path = self.workdir / f"{tag}.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            yield f"sqlite:///{path}"
            return
        from psycopg import sql

        name = self.prefix + tag
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        try:
            yield _pg_url(self.pg_admin_url, name)
        finally:
            self.drop(name)

    def backend_pids(self, url: str) -> list[int]:
        """PostgreSQL server processes connected to the database of `url` (none for SQLite)."""
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        if not url.startswith("postgresql") or not name:
            return []
        try:
            with self._admin() as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
                ).fetchall()
        except Exception:
            return []
        return [int(r[0]) for r in rows]

    def drop(self, name: str) -> None:
        from psycopg import sql

        # Only ever a database this run created.
        if name not in self._created or not name.startswith(self.prefix):
            return
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._created.remove(name)

    def drop_all(self) -> None:
        for name in list(self._created):
            with contextlib.suppress(Exception):
                self.drop(name)


def _admin_database(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or "postgres"


def count_rows(url: str, table: str) -> int | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


# -- profiling (optional) ------------------------------------------------------------------


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(pid: int, duration: int, out: Path | None) -> Iterator[None]:
    """`py-spy record` on the server during the measured run, when `--profile` is given."""
    if out is None:
        yield
        return
    tool = _py_spy()
    if tool is None:
        print("  (py-spy not found: `pip install py-spy` to profile)", flush=True)
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            *(tool, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200"),
            *(
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                "--gil",
                "--full-filenames",
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        try:
            _, err = proc.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if proc.returncode != 0 or not out.exists():
            print(f"  (py-spy failed: {err.decode(errors='replace')[-300:]})", flush=True)


def summarise_profile(path: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks (GIL holder only): the busiest frames, as % of samples.

    `self`: where the interpreter was; `hookyard`: time spent in and under each function of
    hookyard (whichever line).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[_short_frame(frames[-1])] += count
        mine = {_short_frame(f, line=False) for f in frames if f" ({_PACKAGE_DIR}" in f}
        for frame in mine - {"main (hookyard/cli.py)", "<module> (hookyard/cli.py)"}:
            inclusive[frame] += count
    if not total:
        return {}
    return {
        "self": [(f, 100 * n / total) for f, n in own.most_common(top)],
        "hookyard": [(f, 100 * n / total) for f, n in inclusive.most_common(top)],
    }


_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep


def _short_frame(frame: str, *, line: bool = True) -> str:
    # "function (/path/to/package/module.py:123)" -> "function (package/module.py:123)"
    name, _, where = frame.partition(" (")
    if not where:
        return name
    where = "/".join(where.rstrip(")").rsplit("/", 2)[-2:])
    if not line:
        where = where.rpartition(":")[0] or where
    return f"{name} ({where})"


# -- scenarios -----------------------------------------------------------------------------


@dataclass
class Context:
    spec: LoadSpec
    bench_dir: Path
    workdir: Path
    databases: Databases
    profile_dir: Path | None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    round: int = 0

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


@dataclass
class Measured:
    stats: WrkStats
    acknowledged: int  # 2xx answers, warm-up included
    cpu: CpuUse


def measure(
    ctx: Context, server: Server, scenario: str, port: int, db_url: str | None = None
) -> Measured:
    """Warm up, then one measured wrk run; CPU use of the server (and PostgreSQL backends)."""
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    spec = ctx.spec
    acknowledged = 0
    if spec.warmup > 0:
        warm = run_wrk(spec, url, f"{ctx.run_id}-{scenario}-{ctx.round}w", spec.warmup)
        if warm.socket_errors or warm.non_2xx:
            print(
                f"  warm-up: {warm.non_2xx} non-2xx, {warm.socket_errors} socket errors "
                f"(see {server.log_path})",
                flush=True,
            )
        acknowledged += warm.requests - warm.non_2xx
    # Connections opened during the warm-up stay in the pools for the measured run.
    db_pids = ctx.databases.backend_pids(db_url) if db_url else []
    # The first round only: py-spy takes some of the server's time.
    profile = ctx.profile_dir / f"{scenario}.txt" if ctx.profile_dir and ctx.round == 0 else None
    meter = CpuMeter(server.pid, db_pids)
    with profiled(server.pid, spec.duration, profile):
        stats = run_wrk(spec, url, f"{ctx.run_id}-{scenario}-{ctx.round}", spec.duration)
        cpu = meter.stop()  # before py-spy is waited for: its CPU is not wrk's
    if profile is not None and profile.exists():
        for kind, frames in summarise_profile(profile).items():
            print(f"  server profile ({profile.name}), {kind} time, % of GIL samples:")
            for frame, pct in frames:
                print(f"    {pct:5.1f}%  {frame}")
    return Measured(stats, acknowledged + stats.requests - stats.non_2xx, cpu)


def bench_bare(ctx: Context) -> LoadResult:
    port = free_port()
    argv = uvicorn_argv("bare_app:app", port, ctx.bench_dir)
    load = os.getloadavg()[0]
    with Server("bare", argv, clean_env(), ctx.bench_dir, ctx.log("bare")) as server:
        m = measure(ctx, server, "bare", port)
    return LoadResult("bare", "-", ctx.spec.connections, m.stats, m.cpu, None, m.acknowledged, load)


def bench_naive(ctx: Context, backend: str) -> LoadResult:
    scenario = f"naive-{backend}"
    port = free_port()
    argv = uvicorn_argv("naive_app:app", port, ctx.bench_dir)
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, "naive") as url:
        env = clean_env(
            BENCH_DATABASE_URL=url,
            BENCH_TOKEN=ctx.spec.token,
            BENCH_PATH=WEBHOOK_PATH,
            BENCH_POOL_SIZE=str(ctx.spec.connections),
        )
        with Server(scenario, argv, env, ctx.bench_dir, ctx.log(scenario)) as server:
            m = measure(ctx, server, scenario, port, url)
        stored = count_rows(url, "webhook_events")
    return LoadResult(
        scenario, backend, ctx.spec.connections, m.stats, m.cpu, stored, m.acknowledged, load
    )


def sources_toml(token: str) -> str:
    return (
        "[[source]]\n"
        f'name = "{SOURCE_NAME}"\n'
        'provider = "generic"\n'
        f'path = "{WEBHOOK_PATH}"\n'
        'scheme = "token"\n'
        f'header = "{TOKEN_HEADER}"\n'
        f'id_header = "{ID_HEADER}"\n'
        f'secret = "{token}"\n'
    )


def write_sources(ctx: Context) -> Path:
    path = ctx.workdir / "sources.toml"
    path.write_text(sources_toml(ctx.spec.token))
    return path


def bench_hookyard(ctx: Context, backend: str) -> LoadResult:
    scenario = f"hookyard-{backend}"
    port = free_port()
    argv = [sys.executable, "-m", "hookyard.cli", "serve", "--no-worker"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, "ingest") as url:
        env = clean_env(
            HOOKYARD_DATABASE_URL=url,
            HOOKYARD_SOURCES=str(write_sources(ctx)),
            HOOKYARD_DEMO_SECRETS_FILE=str(ctx.workdir / "demo-secrets.env"),
            HOOKYARD_LOG_LEVEL="warning",
        )
        with Server(scenario, argv, env, ctx.workdir, ctx.log(scenario)) as server:
            m = measure(ctx, server, scenario, port, url)
        stored = count_rows(url, "events")
    return LoadResult(
        scenario, backend, ctx.spec.connections, m.stats, m.cpu, stored, m.acknowledged, load
    )


def bench_processing(ctx: Context, backend: str, events: int, workers: int) -> ProcessResult:
    """Preload `events` into a fresh inbox, then time `Worker.drain()` until none is due."""
    from hookyard.config import Settings
    from hookyard.db.migrate import upgrade
    from hookyard.inbox.model import NewEvent
    from hookyard.logs import configure
    from hookyard.runtime import Runtime

    configure("warning")
    load = os.getloadavg()[0]
    with ctx.databases.fresh(backend, "processing") as url:
        settings = Settings(
            database_url=url,
            sources=write_sources(ctx),
            demo_secrets_file=ctx.workdir / "demo-secrets.env",
            worker_threads=workers,
            log_level="warning",
        )
        runtime = Runtime.build(settings)
        try:
            upgrade(runtime.engine)
            source = runtime.sources.by_name()[SOURCE_NAME]
            pad = "x" * max(0, ctx.spec.body_bytes - 90)
            started = time.perf_counter()
            batch: list[NewEvent] = []
            for seq in range(events):
                delivery = f"{ctx.run_id}-p-{seq}"
                body = json.dumps(
                    {"type": "invoice.paid", "id": delivery, "data": {"seq": seq, "note": pad}},
                    separators=(",", ":"),
                ).encode()
                batch.append(
                    NewEvent(
                        source=source.name,
                        provider=source.config.provider,
                        tenant=source.config.tenant,
                        event_type="invoice.paid",
                        dedup_key=f"id:{delivery}",
                        entity_key=None,
                        provider_ts=None,
                        headers={
                            "host": "127.0.0.1",
                            "user-agent": "wrk",
                            "content-type": "application/json",
                            "content-length": str(len(body)),
                            ID_HEADER.lower(): delivery,
                        },
                        body=body,
                        payload=None,
                        received_at=datetime.now(UTC),
                    )
                )
                if len(batch) == 500:
                    runtime.store.insert_batch(batch)
                    batch = []
            if batch:
                runtime.store.insert_batch(batch)
            preload_s = time.perf_counter() - started

            drained: list[int] = []
            errors: list[BaseException] = []

            def drain() -> None:
                try:
                    drained.append(runtime.make_worker().drain())
                except BaseException as exc:  # reported below
                    errors.append(exc)

            started = time.perf_counter()
            threads = [threading.Thread(target=drain) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            drain_s = time.perf_counter() - started
            if errors:
                raise BenchError(f"worker failed: {errors[0]!r}")
            statuses = runtime.store.count_by_status()
        finally:
            runtime.close()
    done = statuses.get("done", 0)
    if done != events:
        raise BenchError(f"expected {events} events done after drain, found {statuses}")
    return ProcessResult(
        backend, events, workers, preload_s, drain_s, done / drain_s, statuses, load
    )


# -- the run -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def print_load_table(results: Sequence[LoadResult]) -> None:
    header = (
        f"{'scenario':20} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'vs bare':>7} "
        f"{'non-2xx':>7} {'errors':>6} {'CPU srv':>7} {'loop':>5} {'db':>5} {'wrk':>5} "
        f"{'others':>6} {'stored':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        s = r.stats
        ratio = "-" if r.ratio_vs_bare is None else f"{100 * r.ratio_vs_bare:.0f}%"
        print(
            f"{r.scenario:20} {s.requests_per_s:>8,.0f} {_fmt(s.p50_ms):>7} "
            f"{_fmt(s.p99_ms):>7} {ratio:>7} {s.non_2xx:>7} {s.socket_errors:>6} "
            f"{_pct(r.cpu.server):>7} {_pct(r.cpu.loop):>5} {_pct(r.cpu.database):>5} "
            f"{_pct(r.cpu.wrk):>5} {_pct(r.cpu.others):>6} "
            f"{'-' if r.stored_rows is None else r.stored_rows:>7}"
        )
        if len(r.runs) > 1:
            print(f"{'':20} rounds: {', '.join(f'{v:,.0f}' for v in r.runs)} req/s")


def print_process_table(results: Sequence[ProcessResult]) -> None:
    header = f"{'backend':10} {'events':>8} {'workers':>7} {'drain s':>8} {'events/s':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.backend:10} {r.events:>8} {r.workers:>7} {r.drain_s:>8.2f} {r.events_per_s:>9,.0f}"
        )


def check_goals(load: Sequence[LoadResult], processing: Sequence[ProcessResult]) -> list[Goal]:
    goals: list[Goal] = []
    for r in load:
        if not r.scenario.startswith("hookyard-"):
            continue
        ratio = r.ratio_vs_bare
        goals.append(
            Goal(
                f"{r.scenario} req/s vs bare",
                None if ratio is None else round(100 * ratio, 1),
                f">= {100 * GOAL_INGEST_RATIO:.0f}%",
                None if ratio is None else ratio >= GOAL_INGEST_RATIO,
            )
        )
        p99 = r.stats.p99_ms
        goals.append(
            Goal(
                f"{r.scenario} p99 ack at {r.connections} connections",
                p99,
                f"< {GOAL_P99_MS:.0f} ms",
                None if p99 is None else p99 < GOAL_P99_MS,
            )
        )
    for p in processing:
        if p.backend == "postgresql":
            goals.append(
                Goal(
                    "processing on postgresql, events/s",
                    round(p.events_per_s),
                    f">= {GOAL_PG_EVENTS_PER_S:,.0f}",
                    p.events_per_s >= GOAL_PG_EVENTS_PER_S,
                )
            )
    return goals


def _version(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else None


def machine_info(wrk: str) -> dict[str, Any]:
    import uvicorn

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "wrk": _version([wrk, "--version"]),
        "load_average": os.getloadavg(),
    }


def find_bench_dir(given: Path | None) -> Path:
    candidates = [given] if given else []
    candidates += [Path(__file__).resolve().parents[2] / "bench", Path.cwd() / "bench"]
    for candidate in candidates:
        if candidate is not None and (candidate / "bare_app.py").exists():
            return candidate.resolve()
    raise BenchError(
        "cannot find the bench/ directory (bare_app.py, naive_app.py, webhooks.lua); "
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


def _median_by(results: list[Any], key: Callable[[Any], float]) -> Any:
    ordered = sorted(results, key=key)
    return ordered[(len(ordered) - 1) // 2]


def _run_load(
    ctx: Context, name: str, step: Callable[[], LoadResult], failures: list[str]
) -> LoadResult | None:
    print(f"- {name} (round {ctx.round + 1}) ...", flush=True)
    try:
        result = step()
    except BenchError as exc:
        print(f"  {name} failed: {exc}", file=sys.stderr, flush=True)
        failures.append(name)
        return None
    s = result.stats
    print(
        f"  {s.requests_per_s:,.0f} req/s, p50 {_fmt(s.p50_ms)} ms, p99 {_fmt(s.p99_ms)} ms, "
        f"{s.non_2xx} non-2xx, {s.socket_errors} errors; CPU server {_pct(result.cpu.server)} "
        f"(loop {_pct(result.cpu.loop)}), db {_pct(result.cpu.database)}, "
        f"wrk {_pct(result.cpu.wrk)}, others {_pct(result.cpu.others)}",
        flush=True,
    )
    # Errors (wrk's time-outs) of a baseline are part of what is measured; of hookyard, a fault.
    if (s.non_2xx or s.socket_errors) and name.startswith("hookyard"):
        failures.append(f"{name}: {s.non_2xx} non-2xx, {s.socket_errors} errors")
    stored, acked = result.stored_rows, result.acknowledged
    if stored is not None and acked is not None and stored < acked:
        failures.append(f"{name}: {acked} acknowledged but only {stored} rows stored")
    return result


def _run_processing(
    ctx: Context, backend: str, events: int, workers: int, failures: list[str]
) -> ProcessResult | None:
    print(f"- processing-{backend}, {events:,} events (round {ctx.round + 1}) ...", flush=True)
    try:
        p = bench_processing(ctx, backend, events, workers)
    except BenchError as exc:
        print(f"  processing-{backend} failed: {exc}", file=sys.stderr, flush=True)
        failures.append(f"processing-{backend}")
        return None
    print(
        f"  {p.events_per_s:,.0f} events/s (drain {p.drain_s:.2f}s; preload {p.preload_s:.2f}s)",
        flush=True,
    )
    return p


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


def _run_in(args: argparse.Namespace, wrk: str, bench_dir: Path, workdir: Path) -> int:
    databases = Databases(workdir, args.pg_url)
    backends: list[str] = list(args.backends)
    failures: list[str] = []
    if "postgresql" in backends and (problem := databases.check_postgres()):
        print(f"skipping postgresql: cannot reach {args.pg_url}: {problem}", file=sys.stderr)
        backends.remove("postgresql")
        failures.append("postgresql unreachable")

    spec = LoadSpec(
        wrk=wrk,
        script=bench_dir / "webhooks.lua",
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        body_bytes=args.body_bytes,
        token="bench-" + secrets.token_urlsafe(16),
    )
    ctx = Context(spec, bench_dir, workdir, databases, args.profile)
    info = machine_info(wrk)
    print(
        f"hookyard bench: {info['cpus']} CPUs, load {info['load_average'][0]:.2f}; "
        f"wrk {spec.threads} thread(s), {spec.connections} connections, "
        f"{spec.duration}s per scenario (+{spec.warmup}s warm-up), ~{spec.body_bytes} B bodies, "
        f"{args.repeat} round(s); logs in {workdir}",
        flush=True,
    )

    plan: list[tuple[str, Callable[[], LoadResult]]] = []
    if "bare" in args.scenarios:
        plan.append(("bare", partial(bench_bare, ctx)))
    for kind, fn in (("naive", bench_naive), ("hookyard", bench_hookyard)):
        if kind in args.scenarios:
            plan.extend((f"{kind}-{backend}", partial(fn, ctx, backend)) for backend in backends)

    # Rounds run every scenario in turn, so that a burst of load from elsewhere on the
    # machine hits one round of each rather than all runs of one scenario.
    load_runs: dict[str, list[LoadResult]] = {name: [] for name, _ in plan}
    process_runs: dict[str, list[ProcessResult]] = {b: [] for b in backends}
    try:
        for ctx.round in range(args.repeat):
            for name, step in plan:
                if (result := _run_load(ctx, name, step, failures)) is not None:
                    load_runs[name].append(result)
            if "processing" in args.scenarios:
                for backend in backends:
                    p = _run_processing(ctx, backend, args.events, args.workers, failures)
                    if p is not None:
                        process_runs[backend].append(p)
    finally:
        databases.drop_all()

    load: list[LoadResult] = []
    for runs in load_runs.values():
        if runs:
            median: LoadResult = _median_by(runs, lambda r: r.stats.requests_per_s)
            median.runs = [r.stats.requests_per_s for r in runs]
            load.append(median)
    processing: list[ProcessResult] = []
    for process in process_runs.values():
        if process:
            chosen: ProcessResult = _median_by(process, lambda p: p.events_per_s)
            chosen.runs = [p.events_per_s for p in process]
            processing.append(chosen)
    bare = next((r for r in load if r.scenario == "bare"), None)
    for r in load:
        if bare is not None and bare.stats.requests_per_s:
            r.ratio_vs_bare = r.stats.requests_per_s / bare.stats.requests_per_s
    goals = check_goals(load, processing)

    if load:
        print()
        print(
            f"Ingest: {spec.connections} connections, ~{spec.body_bytes} B unique deliveries, "
            f"{spec.duration}s per run"
            + (f", median of {args.repeat} rounds" if args.repeat > 1 else "")
            + "; CPU in % of one core"
        )
        print_load_table(load)
    if processing:
        print()
        print("Processing: claim -> handler -> done (generic source, default handler)")
        print_process_table(processing)
    if goals:
        print()
        print("Goals:")
        for g in goals:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[g.met]
            print(f"  {g.name}: {_fmt(g.measured, 'g')} (goal {g.target}) {verdict}")

    if args.output is not None:
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
            "machine": info,
            "config": {
                "duration_s": spec.duration,
                "warmup_s": spec.warmup,
                "connections": spec.connections,
                "wrk_threads": spec.threads,
                "body_bytes": spec.body_bytes,
                "repeat": args.repeat,
                "events": args.events,
                "workers": args.workers,
                "backends": backends,
            },
            "load": [asdict(r) | {"cpu": asdict(r.cpu) | {"others": r.cpu.others}} for r in load],
            "processing": [asdict(p) for p in processing],
            "goals": [asdict(g) for g in goals],
            "failures": failures,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults written to {args.output}")
    if failures:
        print(f"\nproblems: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--duration", type=_positive, default=10, help="seconds per measured run (10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each run (2)")
    p.add_argument("--connections", type=_positive, default=32, help="concurrent connections (32)")
    p.add_argument("--threads", type=_positive, default=1, help="wrk threads (1)")
    p.add_argument("--body-bytes", type=_positive, default=1024, help="request body size (1024)")
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
        help="comma-separated: bare,naive,hookyard,processing (all)",
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
        "--events", type=_positive, default=20_000, help="events preloaded for processing"
    )
    p.add_argument("--workers", type=_positive, default=1, help="worker threads draining (1)")
    p.add_argument("--output", type=Path, help="write the results as JSON to this file")
    p.add_argument("--profile", type=Path, help="py-spy each server into this directory")
    p.add_argument("--bench-dir", type=Path, help="the bench/ directory (found by default)")
    p.add_argument("--workdir", type=Path, help="where temporary files go (system temp)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, dbs)")
    p.set_defaults(func=run)
    return p


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `hookyard bench` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark ingest and processing against a bare and a naive endpoint",
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
