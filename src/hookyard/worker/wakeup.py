"""Waking idle workers: an in-process signal, plus LISTEN/NOTIFY on PostgreSQL (through the
process's one listener, hookyard.db.listen) and the local bus (hookyard.bus) between the
processes of a SQLite database."""

from __future__ import annotations

import threading

from hookyard.bus import LocalBus
from hookyard.db.listen import Listener, Subscription
from hookyard.inbox.store import NOTIFY_CHANNEL

WAKE_CHANNEL = "events"  # the local bus's channel: new or replayed events are due


class Wakeup:
    """`signal` wakes this process's idle workers and, on SQLite, every other process's
    (through `bus`); PostgreSQL's commits notify the other processes themselves."""

    def __init__(self, bus: LocalBus | None = None) -> None:
        self._event = threading.Event()
        self._bus = bus
        self._all = [self._event]  # shared with the forks: a signal sets every one

    def fork(self) -> Wakeup:
        """A wake-up for another loop of this process, woken by the same signals and cleared
        by its own waits only (one shared flag: a loop's wait would swallow the other's)."""
        forked = Wakeup(self._bus)
        forked._all = self._all
        self._all.append(forked._event)
        return forked

    def signal(self) -> None:
        self._set_all()
        if self._bus is not None:
            self._bus.send(WAKE_CHANNEL)

    def signal_local(self, _payload: bytes = b"") -> None:
        """Wake this process's workers only (what another process's signal arrives as)."""
        self._set_all()

    def _set_all(self) -> None:
        for event in self._all:
            event.set()

    def listen(self) -> None:
        """Be woken by the other processes of this database (worker processes)."""
        if self._bus is not None:
            self._bus.listen(WAKE_CHANNEL, self.signal_local)

    def listen_postgres(self, listener: Listener) -> Subscription:
        """Be woken by any process's commits on PostgreSQL (their NOTIFY), and once more when
        the LISTEN connection is back after a loss: what was committed meanwhile is found."""
        return listener.subscribe(
            NOTIFY_CHANNEL, lambda _payloads: self.signal_local(), missed=self.signal_local
        )

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken
