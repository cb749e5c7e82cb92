"""Helpers for tests: signed deliveries, and real `hookyard` processes on free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event

from hookyard.providers.base import Source
from hookyard.testing.simulate import Delivery, build_delivery

ROOT = Path(__file__).resolve().parent.parent

# What DESIGN.md promises every event shows (API and `hookyard events list --json`).
EVENT_FIELDS = frozenset(
    {
        "id",
        "source",
        "provider",
        "event_type",
        "dedup_key",
        "status",
        "attempts",
        "origin",
        "received_at",
        "processed_at",
        "last_error",
    }
)

# Every header a verifier reads: fuzzers fill them with junk.
CREDENTIAL_HEADERS = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature",
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-hubspot-signature",
    "x-hubspot-signature-version",
    "x-hub-signature-256",
    "x-webhook-token",
    "authorization",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def delivery(source: Source, seq: int = 0, event: str | None = None, **data: Any) -> Delivery:
    """A correctly signed delivery; for generic sources, `data` lands in the payload's data."""
    d = build_delivery(source, event, "http://testserver", seq)
    if data and source.config.provider == "generic":
        import json

        from hookyard.providers import signing

        payload = json.loads(d.body)
        payload["data"].update(data)
        body = json.dumps(payload).encode()
        headers = dict(d.headers)
        headers["webhook-signature"] = signing.standard_webhooks_signature(
            source.config.secret,  # type: ignore[attr-defined]
            headers["webhook-id"],
            headers["webhook-timestamp"],
            body,
        )
        return Delivery(d.method, d.url, headers, body)
    return d


def descendants(pid: int) -> list[int]:
    """The processes under `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


class Proc:
    """A `hookyard` subprocess; output goes to a log file kept beside the test's tmp dir."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "hookyard.cli", *args],
            env=env,
            cwd=str(log.parent),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        """SIGKILL the process and every process under it at once (`serve`'s children too):
        the whole gateway crashing, as when its machine or container dies."""
        if self.popen.poll() is None:
            for pid in [*descendants(self.popen.pid), self.popen.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    env: dict[str, str], log: Path, *extra: str, port: int | None = None
) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc(["serve", "--port", str(port), *extra], env, log)
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, proc)
    return proc, base


def wait_until_healthy(base: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"server exited early:\n{proc.output()[-3000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy in {timeout}s:\n{proc.output()[-3000:]}")


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value {value!r})")
        time.sleep(interval)


@contextlib.contextmanager
def counted(engine: Engine) -> Iterator[list[str]]:
    """The statements sent through `engine` meanwhile (an executemany is one)."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


class MovableClock:
    """A clock the test moves (the queues' `clock`): leases expire and retries fall due
    without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
