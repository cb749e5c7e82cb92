"""The local bus between the processes of a SQLite database: wake-ups and live changes reach
every other listening process, never the sender, and only through a private directory."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from hookyard.bus import LocalBus, bus_directory
from hookyard.live.change import Change, ChangeKind
from hookyard.live.feed import LIVE_CHANNEL, send_changes
from tests.support import wait_for


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "bus"


def collector(bus: LocalBus, channel: str) -> list[bytes]:
    got: list[bytes] = []
    lock = threading.Lock()

    def take(payload: bytes) -> None:
        with lock:
            got.append(payload)

    bus.listen(channel, take)
    return got


def test_a_message_reaches_every_other_listener_of_its_channel(directory: Path) -> None:
    a, b, c = LocalBus(directory), LocalBus(directory), LocalBus(directory)
    try:
        on_a, on_b = collector(a, "events"), collector(b, "events")
        live_on_b = collector(b, "live")
        c.send("events", b"x")
        c.send("live", b"change")
        wait_for(lambda: on_a == [b"x"] and on_b == [b"x"] and live_on_b == [b"change"], 5)
        a.send("events")  # not to itself
        wait_for(lambda: on_b == [b"x", b""], 5)
        assert on_a == [b"x"]
    finally:
        for bus in (a, b, c):
            bus.close()


def test_a_dead_listener_is_forgotten(directory: Path) -> None:
    sender = LocalBus(directory)
    # What a killed process leaves behind: its socket file, with nobody reading it.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "999999-dead.sock"))
    dead.close()
    try:
        sender.send("events")
        assert not (directory / "999999-dead.sock").exists()
    finally:
        sender.close()


def test_the_directory_must_be_private(directory: Path, tmp_path: Path) -> None:
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o777)  # noqa: S103 - the mistake under test
    with pytest.raises(PermissionError, match="open to other users"):
        LocalBus(directory)
    link = tmp_path / "link"
    link.symlink_to(directory)
    os.chmod(directory, 0o700)
    with pytest.raises(PermissionError, match="not a directory"):
        LocalBus(link)


def test_each_sqlite_database_has_its_own_short_directory(tmp_path: Path) -> None:
    first = bus_directory(str(tmp_path / "a.sqlite"))
    assert first == bus_directory(str(tmp_path / "." / "a.sqlite"))
    assert first != bus_directory(str(tmp_path / "b.sqlite"))
    assert len(str(first / "4194304-0123abcd.sock")) < 108  # AF_UNIX's limit
    assert LocalBus.for_sqlite_url("postgresql+psycopg://x@h/db") is None
    assert LocalBus.for_sqlite_url("sqlite:///:memory:") is None


def test_live_changes_are_made_only_while_a_process_wants_them(directory: Path) -> None:
    sender, receiver = LocalBus(directory), LocalBus(directory)
    try:
        got = collector(receiver, LIVE_CHANNEL)
        change = Change(ChangeKind.LEAD, 1, "acme", "open")
        send_changes(sender, [change])  # nobody has a socket to tell: nothing is encoded
        assert not sender.wanted(LIVE_CHANNEL)
        receiver.want(LIVE_CHANNEL, True)
        sender._listed_at = 0.0  # the next send lists again (normally within half a second)
        send_changes(sender, [change])
        wait_for(lambda: got == [change.encode().encode()], 5)
        receiver.want(LIVE_CHANNEL, False)
        sender._listed_at = 0.0
        assert not sender.wanted(LIVE_CHANNEL)
    finally:
        sender.close()
        receiver.close()
    # A process that was killed leaves its marker; the next listing forgets it.
    (directory / "424242-dead.live").touch()
    assert not LocalBus(directory).wanted(LIVE_CHANNEL)
    assert not (directory / "424242-dead.live").exists()


def test_live_changes_cross_in_datagrams_of_bounded_size(directory: Path) -> None:
    sender, receiver = LocalBus(directory), LocalBus(directory)
    try:
        got = collector(receiver, LIVE_CHANNEL)
        receiver.want(LIVE_CHANNEL, True)
        changes = [
            Change(ChangeKind.LEAD, i, "acme", "open", {"note": "x" * 250}) for i in range(600)
        ]
        send_changes(sender, changes)
        wait_for(lambda: sum(len(p.splitlines()) for p in got) == 600, 10)
        assert len(got) > 1  # split: one datagram would exceed the bound
        received = [Change.decode(line) for p in got for line in p.splitlines()]
        assert [c.id for c in received] == list(range(600))
    finally:
        sender.close()
        receiver.close()


def test_closing_a_listening_bus_takes_no_receive_timeout(directory: Path) -> None:
    # Every Runtime on SQLite closes its bus (each test's, and serve's processes at shutdown):
    # it must not wait for the receiver's 0.5 s timeout to notice.
    bus = LocalBus(directory)
    collector(bus, "wake")
    started = time.monotonic()
    bus.close()
    assert time.monotonic() - started < 0.3
    assert not any(directory.glob("*.sock"))  # its socket is gone with it
