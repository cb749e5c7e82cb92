"""What feeds a process's hub with committed changes.

- PostgreSQL: `LISTEN hookyard_live` on the process's one LISTEN connection
  (hookyard.db.listen, shared with the workers' wake-ups), so a change committed by any
  process — another API process, a `hookyard worker` — reaches the sockets of this one. If
  the connection is lost, clients are told they may have missed changes (`lagged`) once it
  is back.
- SQLite: the commit hooks of `publish.attach_local` hand this process's own commits to the
  hub, and send them over the local bus (hookyard.bus) to the other processes of the
  database; what the bus brings from them (a worker process's commits) goes to the hub too.

Accepted events (ingest's `event_accepted` changes) come only while some socket of this
process asks for them (`Hub.on_accepting`): PostgreSQL LISTENs to `hookyard_accepted` just
then, and on SQLite the inbox builds them only then (or while another process's socket asks:
the bus channel `accepted`, marked wanted by that process).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from hookyard.bus import LISTING_SECONDS, MAX_DATAGRAM, LocalBus
from hookyard.db.engine import libpq_dsn
from hookyard.db.listen import READY_SECONDS, Listener, Subscription
from hookyard.live.change import Change
from hookyard.live.hub import Hub
from hookyard.live.publish import ACCEPTED_CHANNEL, CHANNEL, attach_accepted, attach_local
from hookyard.logs import log

LIVE_CHANNEL = "live"  # the local bus's channel: encoded changes, one per line
ACCEPTED_BUS_CHANNEL = "accepted"  # the same, of accepted events (wanted apart)


class LiveFeed:
    """`listener`: the process's LISTEN connection (PostgreSQL); without one, the feed opens
    its own and closes it when it stops."""

    def __init__(
        self,
        engine: Engine,
        hub: Hub | None = None,
        bus: LocalBus | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.engine = engine
        self.hub = hub or Hub()
        self.bus = bus
        self.listener = listener
        self._own_listener = False
        self._subscription: Subscription | None = None
        self._accepted: Subscription | None = None
        self._detach: Callable[[], None] | None = None
        self._detach_accepted: Callable[[], None] | None = None

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        if self.engine.dialect.name == "postgresql":
            if self.listener is None:
                self.listener = Listener(libpq_dsn(self.engine))
                self._own_listener = True
            self._subscription = self.listener.subscribe(
                CHANNEL,
                self._notified,
                # NOTIFYs sent while nobody here listened are gone for good.
                missed=lambda: self.hub.gap("live listener reconnected"),
            )
            # Changes committed once start-up is over reach the clients: LISTEN first.
            listening = self._subscription.listening
            ready = await asyncio.to_thread(listening.wait, READY_SECONDS)
            if not ready:
                log.warning("live_listen_not_ready", seconds=READY_SECONDS)
            self.hub.on_accepting = self._listen_accepted
        else:
            self._detach = attach_local(self.engine, self._committed_here)
            self._detach_accepted = attach_accepted(
                self.engine, self._accepted_here, self._accepted_wanted
            )
            self.hub.on_accepting = self._want_accepted
            if self.bus is not None:
                bus = self.bus
                bus.listen(LIVE_CHANNEL, self._from_bus)
                bus.listen(ACCEPTED_BUS_CHANNEL, self._from_bus)
                # Worker processes encode and send their changes only while some process
                # has a socket to tell (most of the time, under load, none has).
                self.hub.on_listening = lambda listening: bus.want(LIVE_CHANNEL, listening)

    # -- accepted events ----------------------------------------------------------------

    def _listen_accepted(self, wanted: bool) -> threading.Event | None:
        """PostgreSQL: LISTEN to accepted events while a socket here wants them."""
        if self.listener is None:
            return None
        if wanted and self._accepted is None:
            self._accepted = self.listener.subscribe(
                ACCEPTED_CHANNEL,
                self._notified,
                missed=lambda: self.hub.gap("accepted listener reconnected"),
            )
        elif not wanted and self._accepted is not None:
            self.listener.unsubscribe(self._accepted)
            self._accepted = None
        return None if self._accepted is None else self._accepted.listening

    def _want_accepted(self, wanted: bool) -> threading.Event | None:
        """SQLite: tell the other processes of the database (their ingest sends them). They
        see it when they next list the bus (within LISTING_SECONDS): ready after that."""
        if self.bus is None:
            return None
        self.bus.want(ACCEPTED_BUS_CHANNEL, wanted)
        if not wanted:
            return None
        ready = threading.Event()
        timer = threading.Timer(LISTING_SECONDS + 0.1, ready.set)
        timer.daemon = True
        timer.start()
        return ready

    def _accepted_wanted(self) -> bool:
        return self.hub.accepting or (
            self.bus is not None and self.bus.wanted(ACCEPTED_BUS_CHANNEL)
        )

    def _accepted_here(self, changes: Sequence[Change]) -> None:
        if self.hub.accepting:
            self.hub.deliver(changes)
        if self.bus is not None:
            send_changes(self.bus, changes, ACCEPTED_BUS_CHANNEL)

    def _committed_here(self, changes: Sequence[Change]) -> None:
        self.hub.deliver(changes)
        if self.bus is not None:
            send_changes(self.bus, changes)

    def _notified(self, payloads: Sequence[str]) -> None:
        if not self.hub.clients:
            return  # nobody to tell: not worth decoding
        changes = []
        for payload in payloads:
            try:
                changes.append(Change.decode(payload))
            except ValueError as exc:
                log.warning("live_change_unreadable", error=str(exc)[:200])
        if changes:
            self.hub.deliver(changes)

    def _from_bus(self, payload: bytes) -> None:
        if not self.hub.clients:
            return  # nobody to tell: not worth decoding (ingest processes under load)
        changes = []
        for line in payload.splitlines():
            try:
                changes.append(Change.decode(line))
            except ValueError as exc:
                log.warning("live_change_unreadable", error=str(exc)[:200])
        if changes:
            self.hub.deliver(changes)

    async def stop(self) -> None:
        for detach in (self._detach, self._detach_accepted):
            if detach is not None:
                detach()
        self._detach = self._detach_accepted = None
        self.hub.on_accepting = None
        if self.listener is not None and self._accepted is not None:
            self.listener.unsubscribe(self._accepted)
            self._accepted = None
        if self.listener is not None and self._subscription is not None:
            self.listener.unsubscribe(self._subscription)
            self._subscription = None
            if self._own_listener:
                await asyncio.to_thread(self.listener.stop)
                self.listener, self._own_listener = None, False
        self.hub.close()


def send_changes(bus: LocalBus, changes: Sequence[Change], channel: str = LIVE_CHANNEL) -> None:
    """Committed changes to the other processes of a SQLite database whose hubs have sockets
    to tell (none: nothing is encoded)."""
    if not bus.wanted(channel):
        return
    chunk: list[bytes] = []
    size = 0
    for change in changes:
        line = change.encode().encode()
        if chunk and size + len(line) + 1 > MAX_DATAGRAM:
            bus.send(channel, b"\n".join(chunk), wait=True)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        bus.send(channel, b"\n".join(chunk), wait=True)
