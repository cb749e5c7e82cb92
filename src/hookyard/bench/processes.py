"""Processes the bench starts and watches: a server under test (one process, or a supervisor
and its children), free ports, and what `/proc` tells about a process tree (Linux)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hookyard.bench.wrk import BenchError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    parent: int
    started: int  # clock ticks after boot: with the pid, it names one process (pids are reused)
    cpu_seconds: float  # user + system, all threads


def read_process(pid: int, thread: int | None = None) -> ProcessInfo | None:
    """One process (or one of its threads) from /proc; None when it is gone or not Linux."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        stat = Path(path).read_text()
    except OSError:
        return None
    # The command name (in parentheses) may hold spaces: the fields follow its last ")".
    fields = stat.rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return ProcessInfo(
        pid, int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / ticks
    )


def process_tree(root: int) -> dict[int, ProcessInfo]:
    """`root` and every process descended from it, by pid."""
    known: dict[int, ProcessInfo] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and (info := read_process(int(entry.name))) is not None:
            known[info.pid] = info
    if root not in known:
        return {}
    children: dict[int, list[int]] = {}
    for info in known.values():
        children.setdefault(info.parent, []).append(info.pid)
    tree: dict[int, ProcessInfo] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        tree[pid] = known[pid]
        pending.extend(children.get(pid, ()))
    return tree


def command_line(pid: int, limit: int = 70) -> str:
    """A short label: the command line without the interpreter's path."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if words and Path(words[0]).name.startswith("python"):
        words = words[1:]
    if words[:2] == ["-m", "hookyard.cli"]:
        words = ["hookyard", *words[2:]]
    return " ".join(words)[:limit]


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies, so no server outlives it (Linux)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def spawn(
    argv: Sequence[str], env: dict[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """A child of the bench, its output in `log_path`, dying with the bench."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )


class Server:
    """A server under test, as a subprocess; ready once it answers `GET /health` on its port.

    It may be a supervisor with children (`hookyard serve`): its process tree is recorded,
    and whatever is left of it once the supervisor is gone is ended, by pid and start time."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, int] = {}  # pid -> start time, of every process of the tree

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        self.proc = spawn(self.argv, self.env, self.cwd, self.log_path)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.tree()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def tree(self) -> dict[int, ProcessInfo]:
        """The server's processes now (and remembered, to end any left behind)."""
        found = process_tree(self.pid)
        self._seen.update({pid: info.started for pid, info in found.items()})
        return found

    def _wait_ready(self, timeout: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
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
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.tree()
            self.proc.send_signal(signal.SIGINT)  # uvicorn's (and the supervisor's) shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """Children a supervisor left behind would keep the port and the database busy."""
        for pid, started in self._seen.items():
            info = read_process(pid)
            if info is not None and info.started == started and pid != self.pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


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


def hookyard_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookyard.cli", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any HOOKYARD_ or BENCH_ setting, plus `extra`: a server
    under test runs with its defaults, whatever the shell running the bench has set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKYARD_", "BENCH_"))}
    env.update(extra)
    return env


def serve_options() -> str:
    """`hookyard serve --help`, to learn which options this version has."""
    done = subprocess.run(
        hookyard_argv("serve", "--help"), capture_output=True, text=True, timeout=60
    )
    return done.stdout
