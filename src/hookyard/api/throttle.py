"""Throttling of guessed credentials (docs/security.md, "Logins and tokens").

Three kinds of credential can be guessed: a password (`POST /api/v1/auth/login`, the
dashboard's login form), an API key and the admin token (a bearer token). Each failure is
counted under the client's address and, where the credential names an account, under that
account too: the e-mail of a password login, the prefix of an API key. Once a key holds
`limit` failures inside the window, every attempt under it gets 429 with `Retry-After` (the
time until its oldest failure leaves the window) and is not evaluated at all, so a correct
guess made while blocked teaches nothing. A 429 is not a failure itself: a client that keeps
knocking does not extend its own block.

Rules that follow from "one client's behaviour never frees or locks another's beyond the
account it attacks":
- a success removes no failure from any counter (a password guesser that also holds one
  valid account cannot reset its budget by logging in with it);
- the admin token is counted per client only: any stranger's stray `Bearer x` is an
  attempt at it, so a per-account counter would let anyone lock the operator out;
- session tokens (signed JWTs) are not counted: they cannot be guessed, and a browser with
  an expired one is no attacker.

A password check is argon2id: 64 MiB and tens of milliseconds of CPU. At most
`login_concurrency` run at once per process (`PasswordGate`); a login that cannot get a turn
within `login_wait_seconds` gets 503 with `Retry-After` (the server is busy, the client did
nothing wrong), and its attempt is not counted. Every attempt is counted *before* its
check starts, and taken back if it succeeds, so forty parallel guesses from one client are
forty attempts, not forty checks that all passed the throttle before the first failed.

The counters live in each process (`hookyard serve` runs several ingest processes that each
count on their own, so a client may fail up to `limit` times per process). Memory is bounded:
each counter keeps at most `limit` times per key and at most `MAX_KEYS` keys, forgetting the
least recently used.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
from prometheus_client import Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from hookyard.accounts.identity import AuthError, Principal
from hookyard.config import Settings
from hookyard.logs import log
from hookyard.proxy import client_address

MAX_KEYS = 20_000  # per counter: ~12 MB at most (limit 10), however many addresses or e-mails

FAILURES = Counter("hookyard_auth_failures_total", "Credentials refused (401), by kind", ["kind"])
THROTTLED = Counter(
    "hookyard_auth_throttled_total",
    "Attempts refused with 429 after too many failures, by kind",
    ["kind"],
)
BUSY = Counter(
    "hookyard_logins_busy_total",
    "Password logins refused with 503: every password check slot stayed taken",
)


class Credential(StrEnum):
    PASSWORD = "password"  # noqa: S105 - a kind of credential, not one
    API_KEY = "api_key"
    ADMIN_TOKEN = "admin_token"  # noqa: S105


class Throttled(Exception):
    """Too many failures under one of the request's keys: 429, retry after `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many failed attempts; retry in {seconds} s")
        self.seconds = seconds


class LoginBusy(Exception):
    """No password check slot within the wait: 503."""


Clock = Callable[[], float]


class FailureCounter:
    """Failures per key within a sliding window, in this process; thread-safe."""

    def __init__(
        self, limit: int, window: float, *, max_keys: int = MAX_KEYS, clock: Clock = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        # Per key, its newest `limit` times, oldest first (a list: a third of a deque's size).
        self._times: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds before `key` may try again (0: now)."""
        with self._lock:
            return self._wait(key, self.clock())

    def _wait(self, key: str, now: float) -> float:
        times = self._times.get(key)
        if times is None or len(times) < self.limit:
            return 0.0
        # Only the newest `limit` are kept: the oldest of them leaving the window frees one.
        return max(0.0, times[0] + self.window - now)

    def add(self, key: str) -> float:
        """Count a failure (or an attempt not yet decided) now; returns its time."""
        with self._lock:
            now = self.clock()
            times = self._times.get(key)
            if times is None:
                times = self._times[key] = []
                while len(self._times) > self.max_keys:
                    self._times.popitem(last=False)
            else:
                self._times.move_to_end(key)
            times.append(now)
            if len(times) > self.limit:
                del times[0]
            return now

    def take_back(self, key: str, at: float) -> None:
        """Forget the attempt counted at `at` (it succeeded, or was never checked)."""
        with self._lock:
            times = self._times.get(key)
            if times is not None and at in times:
                times.remove(at)


@dataclass(slots=True)
class Attempt:
    """A password attempt counted before its check: taken back unless it failed."""

    counted: list[tuple[FailureCounter, str, float]] = field(default_factory=list)

    def take_back(self) -> None:
        for counter, key, at in self.counted:
            counter.take_back(key, at)
        self.counted.clear()


class PasswordGate:
    """At most `slots` password checks at once. Waiting costs no thread: a waiter polls
    (a few ms, growing) rather than blocking a worker thread of the pool every route shares."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._busy = 0
        self._lock = threading.Lock()

    def _take(self) -> bool:
        with self._lock:
            if self._busy >= self.slots:
                return False
            self._busy += 1
            return True

    def _give(self) -> None:
        with self._lock:
            self._busy -= 1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.002
        while not self._take():
            if time.monotonic() >= deadline:
                raise LoginBusy
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.05)
        try:
            yield
        finally:
            self._give()


class AuthGuard:
    """This process's failure counters and password gate (on `app.state.auth_guard`)."""

    def __init__(
        self,
        *,
        per_client: int,
        per_account: int,
        window: float,
        login_slots: int,
        login_wait: float,
        trust_proxy_headers: bool,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clients = FailureCounter(per_client, window, clock=clock)
        self.accounts = FailureCounter(per_account, window, clock=clock)
        self.gate = PasswordGate(login_slots, login_wait)
        self.trust_proxy_headers = trust_proxy_headers
        self._lock = threading.Lock()  # an attempt's check and count are one step

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthGuard:
        return cls(
            per_client=settings.auth_failures_per_client,
            per_account=settings.auth_failures_per_account,
            window=settings.auth_failure_window_seconds,
            login_slots=settings.login_concurrency,
            login_wait=settings.login_wait_seconds,
            trust_proxy_headers=settings.trust_proxy_headers,
        )

    def client_of(self, connection: HTTPConnection) -> str:
        client = connection.client
        peer = (client.host, client.port) if client is not None else None
        return client_address(peer, connection.headers, self.trust_proxy_headers)

    def _keys(self, client: str, account: str | None) -> list[tuple[FailureCounter, str]]:
        keys = [(self.clients, client)]
        if account is not None:
            keys.append((self.accounts, account))
        return keys

    def check(self, kind: Credential, client: str, account: str | None = None) -> None:
        """Raise Throttled when the client or the account may not try now."""
        wait = max(counter.wait(key) for counter, key in self._keys(client, account))
        if wait > 0:
            THROTTLED.labels(kind.value).inc()
            seconds = max(1, math.ceil(wait))
            log.info("auth_throttled", kind=kind.value, client=client, retry_after=seconds)
            raise Throttled(seconds)

    def failed(self, kind: Credential, client: str, account: str | None = None) -> None:
        FAILURES.labels(kind.value).inc()
        for counter, key in self._keys(client, account):
            counter.add(key)

    def attempt(self, kind: Credential, client: str, account: str | None) -> Attempt:
        """Check, then count an attempt before it is decided (see the module docstring)."""
        with self._lock:
            self.check(kind, client, account)
            attempt = Attempt()
            for counter, key in self._keys(client, account):
                attempt.counted.append((counter, key, counter.add(key)))
            return attempt

    async def check_password(
        self, connection: HTTPConnection, email: str, verify: Callable[[], Principal]
    ) -> Principal:
        """Run `verify` (a password check: `identity.login`) as a counted attempt of this
        client and e-mail, in its turn at the gate. Raises Throttled (429), LoginBusy (503)
        or AuthError (401)."""
        attempt = self.attempt(
            Credential.PASSWORD, self.client_of(connection), email_account(email)
        )
        try:
            async with self.gate.turn():
                principal = await run_in_threadpool(verify)
        except AuthError:
            FAILURES.labels(Credential.PASSWORD.value).inc()
            raise  # stays counted
        except LoginBusy:
            BUSY.inc()
            attempt.take_back()
            raise
        except BaseException:
            attempt.take_back()  # storage down, cancelled: nothing was guessed
            raise
        attempt.take_back()
        return principal


def email_account(email: str) -> str:
    # As `identity.login` finds the user: trimmed, lower case; cut, as it is the caller's.
    return "email:" + email.strip().lower()[:320]


def api_key_account(key: str) -> str:
    # `hk_<prefix>_<secret>`: the prefix names the key's row (accounts/identity.py).
    return "api_key:" + key[3:].split("_", 1)[0][:16]
