"""CPU used during a measured run: the server's processes, PostgreSQL, wrk, the machine."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hookyard.bench.processes import ProcessInfo, command_line, process_tree, read_process


@dataclass
class ProcessCpu:
    pid: int
    command: str
    percent: float


@dataclass
class CpuUse:
    """CPU used during the measured run, in % of one core."""

    server: float | None = None  # every process of the server (a supervisor and its children)
    loop: float | None = None  # a one-process server's main thread: the event loop
    database: float | None = None  # the PostgreSQL backends serving the scenario's database
    wrk: float | None = None  # the load generator
    machine: float | None = None  # every CPU of the machine (at most 100% x CPUs)
    processes: list[ProcessCpu] = field(default_factory=list)  # the server's, one by one

    @property
    def others(self) -> float | None:
        """What the rest of the machine used meanwhile (other people's work: noise)."""
        if self.machine is None or self.server is None or self.wrk is None:
            return None
        return max(0.0, self.machine - self.server - self.wrk - (self.database or 0.0))


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
    """CPU use over a window: a server's process tree (and the main thread of its root),
    PostgreSQL backends, wrk (a child that finishes inside the window), and the machine."""

    def __init__(self, server_pid: int, db_pids: Sequence[int] = ()) -> None:
        self.server_pid = server_pid
        self.db_pids = list(db_pids)
        self._tree = process_tree(server_pid)
        self._loop = read_process(server_pid, server_pid)
        self._db = {pid: info for pid in self.db_pids if (info := read_process(pid)) is not None}
        self._children = children_cpu_seconds()
        self._machine = machine_busy_seconds()
        self._started = time.monotonic()

    def stop(self) -> CpuUse:
        tree = process_tree(self.server_pid)
        loop = read_process(self.server_pid, self.server_pid)
        children = children_cpu_seconds()
        machine = machine_busy_seconds()
        elapsed = time.monotonic() - self._started
        if elapsed <= 0:
            return CpuUse()

        def pct(seconds: float) -> float:
            return 100 * seconds / elapsed

        processes = [
            ProcessCpu(pid, command_line(pid), pct(_used(self._tree.get(pid), info)))
            for pid, info in sorted(tree.items())
        ]
        use = CpuUse(processes=processes, wrk=pct(children - self._children))
        if tree:
            use.server = sum(p.percent for p in processes)
        if len(tree) == 1 and loop is not None and self._loop is not None:
            use.loop = pct(loop.cpu_seconds - self._loop.cpu_seconds)
        if self._db:
            # Backends present at both ends (a pool may close a connection meanwhile).
            ends = {pid: read_process(pid) for pid in self._db}
            use.database = pct(sum(_used(self._db[pid], end) for pid, end in ends.items() if end))
        if machine is not None and self._machine is not None:
            use.machine = pct(machine - self._machine)
        return use


def _used(start: ProcessInfo | None, end: ProcessInfo) -> float:
    """CPU seconds a process used in the window; all of it when it started inside it."""
    if start is None or start.started != end.started:
        return end.cpu_seconds
    return end.cpu_seconds - start.cpu_seconds
