"""`--profile DIR`: py-spy on every process of a server (a supervisor and its children) or of
a worker, and a summary of where the time went."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep  # .../hookyard/


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(pid: int, duration: int | None, out: Path | None) -> Iterator[None]:
    """`py-spy record --subprocesses` on `pid` and its children while the block runs (for
    `duration` seconds, or until the process exits), when `out` is given."""
    if out is None:
        yield
        return
    tool = py_spy()
    if tool is None:
        print("  (py-spy not found: `pip install py-spy` to profile)", flush=True)
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [tool, "record", "--pid", str(pid), "--subprocesses", "--rate", "200"]
    if duration is not None:
        argv += ["--duration", str(duration)]
    argv += ["--format", "raw", "--output", str(out), "--nonblocking", "--gil"]
    argv += ["--full-filenames"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            _, err = proc.communicate(timeout=(duration or 0) + 30)
        except subprocess.TimeoutExpired:
            proc.terminate()  # py-spy writes what it has on SIGTERM/SIGINT
            try:
                _, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
        if not out.exists():
            print(f"  (py-spy failed: {err.decode(errors='replace')[-300:]})", flush=True)


ProcessSummary = dict[str, list[tuple[str, float]]]


def summarise_profile(path: Path, top: int = 10) -> dict[str, ProcessSummary]:
    """From py-spy's collapsed stacks (GIL holders only), per process: its share of all
    samples (`share`), the busiest frames (`self`), and the hookyard functions with the most
    time in and under them (`hookyard`), each in % of that process's samples."""
    own: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        # With --subprocesses each stack starts with its processes: "process PID:"argv"".
        process = "main"
        while frames and frames[0].startswith("process "):
            process = _short_process(frames.pop(0))
        if not frames:
            continue
        totals[process] += count
        own.setdefault(process, Counter())[_short_frame(frames[-1])] += count
        mine = {_short_frame(f, line=False) for f in frames if f" ({_PACKAGE_DIR}" in f}
        for frame in mine - {"main (cli/__init__.py)", "<module> (cli/__main__.py)"}:
            inclusive.setdefault(process, Counter())[frame] += count
    everything = sum(totals.values())
    summary: dict[str, ProcessSummary] = {}
    for process, total in totals.most_common():
        summary[process] = {
            "share": [("of all samples", 100 * total / everything)],
            "self": [(f, 100 * n / total) for f, n in own[process].most_common(top)],
            "hookyard": [
                (f, 100 * n / total) for f, n in inclusive.get(process, Counter()).most_common(top)
            ],
        }
    return summary


def print_profile(path: Path, summary: dict[str, ProcessSummary]) -> None:
    for process, parts in summary.items():
        share = parts["share"][0][1]
        print(f"  profile {path.name}: {process} ({share:.0f}% of the samples)")
        for kind in ("self", "hookyard"):
            frames = parts[kind]
            if not frames:
                continue
            print(f"    {kind} time, % of this process's GIL samples:")
            for frame, pct in frames:
                print(f"      {pct:5.1f}%  {frame}")


def _short_process(frame: str) -> str:
    # 'process 123:"/path/python -m hookyard.cli serve --port 1"' -> '123 hookyard.cli serve …'
    head, _, argv = frame[len("process ") :].partition(":")
    words = argv.strip('"').split()
    if words and Path(words[0]).name.startswith("python"):
        words = words[1:]
    return f"{head} {' '.join(words)}"[:80]


def _short_frame(frame: str, *, line: bool = True) -> str:
    # "function (/path/to/package/module.py:123)" -> "function (package/module.py:123)"
    name, _, where = frame.partition(" (")
    if not where:
        return name
    where = "/".join(where.rstrip(")").rsplit("/", 2)[-2:])
    if not line:
        where = where.rpartition(":")[0] or where
    return f"{name} ({where})"
