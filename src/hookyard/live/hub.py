"""The fan-out of one process: committed changes in, one bounded queue per connected socket.

Changes arrive from other threads (the LISTEN thread, or a worker's commit on SQLite) and
are moved onto the event loop; from there each subscription takes those it may see (its
tenant's, and the kinds it asked for: `event_accepted` only when named, change.OPT_IN).
While no socket asks for accepted events, the feed does not even receive them (`on_accepting`).
A queue never blocks the fan-out: a client too slow
to keep up loses its oldest messages and is told how many with a `lagged` note, so it can
re-read what it shows from the REST API. Other clients are not slowed by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Collection, Sequence

from hookyard.live.change import OPT_IN, Change, ChangeKind
from hookyard.logs import log

DEFAULT_QUEUE_SIZE = 500
READY_SECONDS = 5.0  # a subscribe naming accepted events waits this long for the feed, at most


class Subscription:
    """One socket's view: its tenant (None: every tenant's changes), the kinds it wants
    (None: all but the opt-in ones), and the messages waiting to be sent."""

    def __init__(self, tenant: str | None, capacity: int) -> None:
        self.tenant = tenant
        self.kinds: frozenset[ChangeKind] | None = None
        self._queue: deque[str] = deque()
        self._capacity = capacity
        self._dropped = 0  # dropped from this queue since the last `lagged` note
        self._gap = False  # changes lost upstream since the last `lagged` note
        self._ready = asyncio.Event()
        self._ended = False

    def wants(self, change: Change) -> bool:
        # Tenant isolation: a scoped client sees only its tenant's changes, never a change
        # of no tenant (the REST API shows those only across all tenants, too).
        if self.tenant is not None and change.tenant != self.tenant:
            return False
        if self.kinds is None:
            return change.kind not in OPT_IN
        return change.kind in self.kinds

    @property
    def accepting(self) -> bool:
        """Whether it asked for accepted events."""
        return self.kinds is not None and ChangeKind.EVENT_ACCEPTED in self.kinds

    def filter(self, kinds: Collection[ChangeKind] | None) -> None:
        self.kinds = frozenset(kinds) if kinds else None

    def offer(self, text: str) -> None:
        if self._ended:
            return
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(text)
        self._ready.set()

    def missed(self) -> None:
        """Changes may have been lost before they reached this queue (the LISTEN connection
        was lost for a while)."""
        self._gap = True
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    @property
    def ended(self) -> bool:
        return self._ended

    async def next(self, timeout: float) -> list[str] | None:
        """The waiting messages (a `lagged` note first when some were dropped); [] when none
        came within `timeout`; None once the subscription ended."""
        if not self._queue and not self._dropped and not self._gap and not self._ended:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        self._ready.clear()
        if self._ended:
            return None
        messages = list(self._queue)
        self._queue.clear()
        if self._dropped or self._gap:
            note = {"type": "lagged", "dropped": self._dropped, "upstream": self._gap}
            messages.insert(0, json.dumps(note))
            self._dropped, self._gap = 0, False
        return messages


class Hub:
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Called with True when the first socket subscribes, False when the last one leaves.
        self.on_listening: Callable[[bool], None] | None = None
        # Called with True when the first socket asks for accepted events, False when the
        # last one no longer does; may return an event set once they arrive (LISTEN is on).
        self.on_accepting: Callable[[bool], threading.Event | None] | None = None
        self._accepting: set[Subscription] = set()
        self._accepting_ready: threading.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- any thread ---------------------------------------------------------------------

    def deliver(self, changes: Sequence[Change]) -> None:
        """Hand committed changes over to the event loop (thread-safe, never blocks)."""
        self._call(self._fan_out, tuple(changes))

    def gap(self, reason: str) -> None:
        """Changes may have been missed (the LISTEN connection was lost): tell every client."""
        log.warning("live_gap", reason=reason)
        self._call(self._lagged)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # RuntimeError: the loop closed meanwhile, the process is stopping.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    # -- the event loop -----------------------------------------------------------------

    def subscribe(self, tenant: str | None) -> Subscription:
        subscription = Subscription(tenant, self.queue_size)
        self._subscriptions.add(subscription)
        if len(self._subscriptions) == 1 and self.on_listening is not None:
            self.on_listening(True)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._count_accepting(subscription, False)
            if not self._subscriptions and self.on_listening is not None:
                self.on_listening(False)
        subscription.end()

    async def filter(self, subscription: Subscription, kinds: Collection[ChangeKind]) -> bool:
        """Only these kinds for `subscription` from now on (empty: all but the opt-in ones).
        Naming accepted events waits until they arrive here; False if that took too long."""
        subscription.filter(kinds)
        self._count_accepting(subscription, subscription.accepting)
        ready = self._accepting_ready
        if subscription.accepting and ready is not None and not ready.is_set():
            return await asyncio.to_thread(ready.wait, READY_SECONDS)
        return True

    def _count_accepting(self, subscription: Subscription, accepting: bool) -> None:
        before = bool(self._accepting)
        if accepting and subscription in self._subscriptions:
            self._accepting.add(subscription)
        else:
            self._accepting.discard(subscription)
        now = bool(self._accepting)
        if now != before and self.on_accepting is not None:
            self._accepting_ready = self.on_accepting(now)

    @property
    def accepting(self) -> bool:
        """Whether some socket here asked for accepted events (any thread may ask)."""
        return bool(self._accepting)

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)

    def _fan_out(self, changes: tuple[Change, ...]) -> None:
        for change in changes:
            text: str | None = None  # encoded once, for every socket that wants it
            for subscription in self._subscriptions:
                if subscription.wants(change):
                    if text is None:
                        text = json.dumps(change.message(), separators=(",", ":"))
                    subscription.offer(text)

    def _lagged(self) -> None:
        for subscription in self._subscriptions:
            subscription.missed()
