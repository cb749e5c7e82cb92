"""One PostgreSQL LISTEN connection per process (hookyard.db.listen): each channel's NOTIFYs
reach that channel's subscribers; the workers' wake-ups and the live feed share the one
connection; a connection the server kills is opened again, subscribers are told they may
have missed something, and deliveries go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.engine import libpq_dsn
from hookyard.db.listen import APPLICATION_NAME, Listener
from hookyard.inbox.store import NOTIFY_CHANNEL
from hookyard.live.publish import CHANNEL as LIVE_CHANNEL
from hookyard.runtime import Runtime
from hookyard.testing.fakes.server import serving
from tests.conftest import BACKEND, process_env
from tests.support import reported, start_server, wait_for

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="LISTEN/NOTIFY: PostgreSQL")


class Inbox:
    """What a subscriber received: payloads in order, and how often it was told it missed."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.missed = 0
        self._lock = threading.Lock()

    def notified(self, payloads: Sequence[str]) -> None:
        with self._lock:
            self.payloads.extend(payloads)

    def told_missed(self) -> None:
        self.missed += 1


@pytest.fixture
def admin(engine: Engine) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_dsn(engine), autocommit=True) as conn:
        yield conn


@pytest.fixture
def listener(engine: Engine) -> Iterator[Listener]:
    found = Listener.for_engine(engine)
    assert found is not None
    yield found
    found.stop()


def notify(admin: psycopg.Connection, channel: str, payload: str) -> None:
    admin.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def listening_connections(admin: psycopg.Connection) -> list[int]:
    """The backends of this database's hookyard listeners."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s ORDER BY pid",
        (APPLICATION_NAME,),
    ).fetchall()
    return [pid for (pid,) in rows]


def test_each_channel_reaches_its_own_subscribers(
    listener: Listener, admin: psycopg.Connection
) -> None:
    events, live, also_live = Inbox(), Inbox(), Inbox()
    subscriptions = [
        listener.subscribe(NOTIFY_CHANNEL, events.notified),
        listener.subscribe(LIVE_CHANNEL, live.notified),
        listener.subscribe(LIVE_CHANNEL, also_live.notified),
    ]
    assert all(s.listening.wait(10) for s in subscriptions)
    notify(admin, NOTIFY_CHANNEL, "")
    for i in range(3):
        notify(admin, LIVE_CHANNEL, f"change {i}")
    notify(admin, "somebody_else", "not ours")
    wait_for(lambda: len(live.payloads) == 3 and len(also_live.payloads) == 3 and events.payloads)
    assert events.payloads == [""]
    assert live.payloads == also_live.payloads == ["change 0", "change 1", "change 2"]

    listener.unsubscribe(subscriptions[2])
    notify(admin, LIVE_CHANNEL, "change 3")
    wait_for(lambda: len(live.payloads) == 4)
    assert also_live.payloads == ["change 0", "change 1", "change 2"]
    assert len(listening_connections(admin)) == 1


def test_a_killed_connection_is_opened_again_and_subscribers_look_again(
    listener: Listener, admin: psycopg.Connection
) -> None:
    live, events = Inbox(), Inbox()
    first = listener.subscribe(LIVE_CHANNEL, live.notified, missed=live.told_missed)
    listener.subscribe(NOTIFY_CHANNEL, events.notified, missed=events.told_missed)
    assert first.listening.wait(10)
    notify(admin, LIVE_CHANNEL, "before")
    wait_for(lambda: live.payloads == ["before"])
    killed = listener.backend_pid
    assert killed is not None and (live.missed, events.missed) == (0, 0)

    (terminated,) = admin.execute("SELECT pg_terminate_backend(%s)", (killed,)).fetchone()
    assert terminated
    # Back on another backend; each subscriber told once that it may have missed NOTIFYs.
    wait_for(lambda: listener.backend_pid not in (None, killed), timeout=15)
    wait_for(lambda: (live.missed, events.missed) == (1, 1))
    notify(admin, LIVE_CHANNEL, "after")
    notify(admin, NOTIFY_CHANNEL, "wake")
    wait_for(lambda: live.payloads == ["before", "after"] and events.payloads == ["wake"])
    assert listening_connections(admin) == [listener.backend_pid]


def test_stop_ends_the_thread_and_the_connection(
    listener: Listener, admin: psycopg.Connection
) -> None:
    assert listener.subscribe(LIVE_CHANNEL, Inbox().notified).listening.wait(10)
    assert listener.running and len(listening_connections(admin)) == 1
    listener.stop()
    assert not listener.running
    wait_for(lambda: listening_connections(admin) == [])
    assert not [t for t in threading.enumerate() if t.name == "hookyard-listen"]
    with pytest.raises(RuntimeError):
        listener.subscribe(LIVE_CHANNEL, Inbox().notified)


def test_a_process_with_workers_and_live_sockets_listens_on_one_connection(
    settings: Settings, admin: psycopg.Connection
) -> None:
    before = listening_connections(admin)
    runtime = Runtime.build(settings)
    try:
        with serving(create_app(runtime)):  # workers and the live feed, as tests run them
            assert runtime.workers and runtime.listener is not None
            wait_for(lambda: runtime.listener is not None and runtime.listener.backend_pid)
            now = listening_connections(admin)
            assert [pid for pid in now if pid not in before] == [runtime.listener.backend_pid]
    finally:
        runtime.close()
    wait_for(lambda: listening_connections(admin) == before)


@pytest.mark.slow
def test_each_serve_child_listens_on_one_connection(
    settings: Settings, admin: psycopg.Connection, tmp_path: Path
) -> None:
    before = listening_connections(admin)
    server, _ = start_server(
        process_env(settings), tmp_path / "serve.log", "--processes", "1", "--workers", "1"
    )
    with reported(server):
        # The ingest process (live sockets) and the worker process (wake-ups): one each.
        wait_for(lambda: len(listening_connections(admin)) == len(before) + 2, timeout=30)
        time.sleep(1.0)  # and no more once they are up
        assert len(listening_connections(admin)) == len(before) + 2
