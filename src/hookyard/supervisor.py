"""`hookyard serve`'s processes: ingest and workers apart, so processing never slows an ack.

One Python process runs Python on one core at a time: with ingest and handlers in one process
they share the GIL (and, on SQLite, the write lock from inside one process), and acks wait
behind handler batches. So `serve` is a small supervisor:

- It binds the port itself, then starts N ingest processes (`hookyard _ingest`: the webhook
  hot path, the management API, the dashboard and the live sockets) that accept on it, and
  M worker processes (`hookyard worker`: claim → handle → done, background jobs, the
  scheduler).
- A child that exits is started again (at once, then with a growing pause while it keeps
  failing fast). The port stays bound meanwhile, so connections wait in its queue rather than
  being refused, and an acknowledged event is already committed: nothing is lost.
- SIGTERM or SIGINT (Ctrl-C) is passed on as one SIGTERM to every child (uvicorn's graceful
  shutdown; workers finish the batch in hand), then the supervisor waits for them.

Children live in their own session, so a terminal's Ctrl-C reaches only the supervisor (which
signals each child once); each asks the kernel for SIGTERM should the supervisor die.

Metrics: every child gets PROMETHEUS_MULTIPROC_DIR, one private directory of the run (new
and empty at start, removed at the end; or the operator's, if `serve` was started with it),
where prometheus_client keeps each process's counters; `/metrics` in any ingest process
shows them summed over all of the run's processes, workers and children that exited
included (hookyard.metrics).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.multiprocess import mark_process_dead

from hookyard.config import MULTIPROCESS_DIR, ConfigError
from hookyard.logs import log

SUPERVISOR_PID = "HOOKYARD_SUPERVISOR_PID"  # set in every child's environment
GRACE_SECONDS = 20.0  # how long children get to stop before they are killed
_FAST_FAILURE_SECONDS = 5.0  # a child that dies sooner than this is failing, not crashing once
_MAX_PAUSE_SECONDS = 30.0


def default_sizes(cpus: int | None = None) -> tuple[int, int]:
    """(ingest processes, worker processes) that fit a machine of `cpus` cores: half each,
    at least one of both (2 cores: one ingest process beside one worker process)."""
    cpus = cpus or os.cpu_count() or 1
    half = max(1, cpus // 2)
    return half, half


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on one port. Linux: one per ingest process with SO_REUSEPORT,
    so the kernel spreads new connections evenly over the processes (a single shared socket
    hands most of them to whichever process is awake); elsewhere, one shared socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = count > 1 and hasattr(socket, "SO_REUSEPORT") and sys.platform == "linux"
    sockets: list[socket.socket] = []
    for _ in range(count if reuse_port else 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]  # port 0: the others join the port the first one got
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def operators_metrics_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR as `serve` was started with it, if at all: a directory the
    operator manages, shared with `hookyard worker` processes run beside `serve` on this
    machine (docs/operations.md#limits)."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if given and not os.path.isdir(given):
        raise ConfigError(f"{MULTIPROCESS_DIR}={given} is not a directory")
    return given or None


@contextlib.contextmanager
def metrics_directory(given: str | None = None) -> Iterator[str]:
    """The run's directory for its processes' metric files: made new (so empty) and private
    (0700) in the system's temporary directory, removed with what is in it at the end. (A
    supervisor killed by SIGKILL cannot remove its `hookyard-metrics-*` directory of sparse
    files; it is safe to delete once that run is gone.)

    `given` (operators_metrics_dir): that directory as it is, neither emptied (processes
    `serve` did not start may be counting there) nor removed; the operator empties it before
    any of the processes sharing it starts."""
    if given is not None:
        yield given
        return
    path = tempfile.mkdtemp(prefix="hookyard-metrics-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Child:
    """One supervised process: what it runs, and its current incarnation."""

    name: str  # ingest-0, worker-1, …
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause: float = 0.0  # before the next start, after failing fast
    due_at: float = 0.0  # when it may be started again


@dataclass
class Supervisor:
    children: list[Child]
    env: Mapping[str, str]
    # PROMETHEUS_MULTIPROC_DIR of every child (metrics_directory); None: each its own counters.
    metrics_dir: str | None = None
    grace: float = GRACE_SECONDS
    _stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> int:
        """Start every child, keep them running until a signal, then stop them."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for child in self.children:
                self._start(child)
            while not self._stopping.is_set():
                self._reap()
                self._stopping.wait(0.1)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def stop(self) -> None:
        self._stopping.set()

    def _on_signal(self, signum: int, _frame: object) -> None:
        log.info("supervisor_stopping", signal=signal.Signals(signum).name)
        self._stopping.set()

    def _start(self, child: Child) -> None:
        env = dict(self.env)
        env[SUPERVISOR_PID] = str(os.getpid())
        env["HOOKYARD_PROCESS_NAME"] = child.name
        if self.metrics_dir is not None:
            # In the environment from the start: prometheus_client, imported later, reads it
            # once.
            env[MULTIPROCESS_DIR] = self.metrics_dir
        child.process = subprocess.Popen(
            child.argv, env=env, pass_fds=child.pass_fds, start_new_session=True
        )
        child.started_at = time.monotonic()
        log.info("child_started", child=child.name, pid=child.process.pid, restarts=child.restarts)

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is None:
                if now >= child.due_at:
                    self._start(child)
                continue
            code = process.poll()
            if code is None:
                continue
            lived = now - child.started_at
            child.process = None
            if self.metrics_dir is not None:
                # Its counters stay (and keep counting in the totals); its "live" gauges go.
                mark_process_dead(process.pid, self.metrics_dir)
            child.restarts += 1
            # A child that keeps dying at once (a broken configuration, the database gone)
            # is started again less and less often, up to every _MAX_PAUSE_SECONDS.
            if lived < _FAST_FAILURE_SECONDS:
                child.pause = min(_MAX_PAUSE_SECONDS, max(0.5, child.pause * 2))
            else:
                child.pause = 0.0
            child.due_at = now + child.pause
            log.warning(
                "child_exited",
                child=child.name,
                code=code,
                lived_seconds=round(lived, 1),
                restart_in_seconds=child.pause,
            )

    def _stop_all(self) -> None:
        running = [c.process for c in self.children if c.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("child_killed", pid=process.pid, grace_seconds=self.grace)
                process.kill()
                process.wait()


def child_of_supervisor() -> None:
    """In a child: exit when the supervisor does, even if it was killed (Linux asks the kernel
    for a SIGTERM; the check covers a supervisor that died before that request)."""
    expected = os.environ.get(SUPERVISOR_PID)
    if not expected:
        return
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if str(os.getppid()) != expected:
        sys.exit(0)


def build_children(
    sockets: Sequence[socket.socket], processes: int, workers: int, ingest_argv: Sequence[str]
) -> list[Child]:
    """`processes` ingest children (each its own socket, or all sharing the one) and
    `workers` worker children."""
    python = [sys.executable, "-m", "hookyard.cli"]
    children: list[Child] = []
    for index in range(processes):
        fd = sockets[index % len(sockets)].fileno()
        argv = [*python, "_ingest", "--fd", str(fd), *ingest_argv]
        children.append(Child(f"ingest-{index}", argv, (fd,)))
    children.extend(Child(f"worker-{i}", [*python, "worker"]) for i in range(workers))
    return children
