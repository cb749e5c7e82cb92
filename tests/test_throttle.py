"""Throttled credentials (issue 12, docs/security.md "Logins and tokens"): wrong passwords (API
and dashboard), API keys and admin tokens are counted per client address and per account;
past the limit the answer is 429 with Retry-After, the attempt is not even checked, and the
refusal is counted in /metrics. A success frees nobody. At most `login_concurrency` password
checks run at once; a login that cannot get a turn in time gets 503 with Retry-After. And
against a real `hookyard serve` of several processes: 40 wrong logins in a row get 429."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from hookyard.accounts import identity
from hookyard.api.throttle import FailureCounter, LoginBusy, PasswordGate
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime
from hookyard.testing.fakes.server import serving
from tests.conftest import SECRETS, process_env
from tests.people import PASSWORD, People, gateway
from tests.support import start_server
from tests.web_support import HTML

LOGIN = "/api/v1/auth/login"
WRONG = {"email": "member@acme.example.com", "password": "not the password"}
RIGHT = {"email": "member@acme.example.com", "password": PASSWORD}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def from_address(address: str) -> dict[str, str]:
    """A request relayed by the trusted proxy for `address` (trust_proxy_headers on)."""
    return {"X-Forwarded-For": f"198.51.100.250, {address}"}


# -- the counters ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_blocked_from_its_limitth_failure_until_the_oldest_leaves_the_window() -> None:
    clock = Clock()
    counter = FailureCounter(3, 60.0, clock=clock)
    for _ in range(3):
        assert counter.wait("203.0.113.1") == 0
        counter.add("203.0.113.1")
        clock.now += 10
    assert counter.wait("203.0.113.1") == 30  # the first failure leaves at 1060
    assert counter.wait("203.0.113.2") == 0  # another key is not concerned
    clock.now += 30
    assert counter.wait("203.0.113.1") == 0


def test_an_attempt_taken_back_no_longer_counts_and_keys_are_bounded() -> None:
    clock = Clock()
    counter = FailureCounter(2, 60.0, max_keys=3, clock=clock)
    counter.add("a")
    at = counter.add("a")
    assert counter.wait("a") > 0
    counter.take_back("a", at)
    assert counter.wait("a") == 0
    counter.add("a")
    for key in ("b", "c", "d"):  # the least recently used key is forgotten
        counter.add(key)
    assert counter.wait("a") == 0 and len(counter._times) == 3


def test_the_gate_lets_slots_in_and_refuses_after_the_wait() -> None:
    gate = PasswordGate(2, 0.2)
    inside = 0
    most = 0
    refused = 0

    async def login() -> None:
        nonlocal inside, most, refused
        try:
            async with gate.turn():
                inside += 1
                most = max(most, inside)
                await anyio.sleep(0.15)
                inside -= 1
        except LoginBusy:
            refused += 1

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(login)

    started = time.monotonic()
    anyio.run(main)
    assert most == 2  # two at once, never more
    assert refused >= 4  # 0.2 s of waiting lets at most two more pairs in
    assert time.monotonic() - started < 2


# -- password logins ------------------------------------------------------------------------


def test_40_wrong_logins_in_a_row_get_429_after_the_limit(api: TestClient, people: People) -> None:
    throttled = sample("hookyard_auth_throttled_total", kind="password")
    failed = sample("hookyard_auth_failures_total", kind="password")
    answers = [api.post(LOGIN, json=WRONG) for _ in range(40)]
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 30
    for answer in answers[10:]:
        assert 0 < int(answer.headers["retry-after"]) <= 300
        assert answer.json()["detail"].startswith("too many failed attempts")
    assert sample("hookyard_auth_throttled_total", kind="password") == throttled + 30
    assert sample("hookyard_auth_failures_total", kind="password") == failed + 10
    # While blocked, even the right password is not checked: a hit would show.
    assert api.post(LOGIN, json=RIGHT).status_code == 429


def test_an_account_is_counted_over_every_address(settings: Settings) -> None:
    with gateway(settings, trust_proxy_headers=True) as (client, _):
        for n in range(10):
            answer = client.post(LOGIN, json=WRONG, headers=from_address(f"203.0.113.{n}"))
            assert answer.status_code == 401
        fresh = from_address("203.0.113.99")
        assert client.post(LOGIN, json=RIGHT, headers=fresh).status_code == 429
        # Another account from that address is not concerned.
        other = {"email": "admin@acme.example.com", "password": PASSWORD}
        assert client.post(LOGIN, json=other, headers=fresh).status_code == 200


def test_a_success_frees_no_counter(settings: Settings) -> None:
    with gateway(settings, trust_proxy_headers=True) as (client, _):
        attacker, person = from_address("203.0.113.1"), from_address("203.0.113.2")
        guess = {"email": "viewer@acme.example.com", "password": "guess"}
        for _ in range(8):
            assert client.post(LOGIN, json=guess, headers=attacker).status_code == 401
        # Someone else logging in, and the attacker logging in to an account of its own,
        # leave the attacker's failures where they were.
        assert client.post(LOGIN, json=RIGHT, headers=person).status_code == 200
        own = {"email": "admin@globex.example.com", "password": PASSWORD}
        assert client.post(LOGIN, json=own, headers=attacker).status_code == 200
        assert client.post(LOGIN, json=guess, headers=attacker).status_code == 401
        assert client.post(LOGIN, json=guess, headers=attacker).status_code == 401
        assert client.post(LOGIN, json=guess, headers=attacker).status_code == 429


def test_the_window_frees_a_client_again(settings: Settings) -> None:
    with gateway(settings, auth_failure_window_seconds=1.0, auth_failures_per_client=2) as (
        client,
        _,
    ):
        assert [client.post(LOGIN, json=WRONG).status_code for _ in range(3)] == [401, 401, 429]
        time.sleep(1.1)
        assert client.post(LOGIN, json=RIGHT).status_code == 200


def test_the_dashboard_login_is_throttled_with_a_page(api: TestClient, people: People) -> None:
    form = {"email": "member@acme.example.com", "password": "wrong", "next": "/ui/events"}
    answers = [api.post("/ui/login", data=form, headers=HTML) for _ in range(12)]
    assert [a.status_code for a in answers] == [401] * 10 + [429] * 2
    last = answers[-1]
    assert last.headers["content-type"].startswith("text/html")
    assert int(last.headers["retry-after"]) > 0
    assert "too many failed attempts" in last.text and 'action="/ui/login"' in last.text
    # The API's login and the dashboard's count together: the same guesses.
    assert api.post(LOGIN, json=RIGHT).status_code == 429


def test_wrong_admin_tokens_on_the_login_form_count_per_client(api: TestClient) -> None:
    for _ in range(10):
        answer = api.post("/ui/login", data={"token": "guess"}, headers=HTML)
        assert answer.status_code == 401
    answer = api.post("/ui/login", data={"token": SECRETS["admin"]}, headers=HTML)
    assert answer.status_code == 429


# -- bearer tokens --------------------------------------------------------------------------


def test_wrong_api_keys_and_admin_tokens_get_429_after_the_limit(
    settings: Settings,
) -> None:
    with gateway(settings, trust_proxy_headers=True) as (client, people):
        before = sample("hookyard_auth_throttled_total", kind="api_key")
        attacker = from_address("203.0.113.1")
        for n in range(5):
            wrong_key = {"Authorization": f"Bearer hk_00000000_{n}", **attacker}
            assert client.get("/api/v1/me", headers=wrong_key).status_code == 401
        for n in range(5):
            wrong_token = {"Authorization": f"Bearer guess-{n}", **attacker}
            assert client.get("/api/v1/me", headers=wrong_token).status_code == 401
        answer = client.get("/api/v1/me", headers=people.headers("acme", "viewer") | attacker)
        assert answer.status_code == 429 and int(answer.headers["retry-after"]) > 0
        assert sample("hookyard_auth_throttled_total", kind="api_key") == before + 1
        admin = {"Authorization": f"Bearer {SECRETS['admin']}", **attacker}
        assert client.get("/api/v1/me", headers=admin).status_code == 429
        # Another client is not concerned, and the admin token is not locked for it.
        elsewhere = from_address("203.0.113.2")
        assert client.get("/api/v1/me", headers=admin | elsewhere).status_code == 200
        key = people.headers("acme", "viewer") | elsewhere
        assert client.get("/api/v1/me", headers=key).status_code == 200


def test_guesses_at_one_api_key_lock_that_key_only(settings: Settings) -> None:
    with gateway(settings, trust_proxy_headers=True) as (client, people):
        key = people.keys[("acme", "viewer")]
        prefix = key.split("_")[1]
        for n in range(10):  # ten addresses, each failing once: under the client limit
            wrong = {"Authorization": f"Bearer hk_{prefix}_wrong{n}"}
            answer = client.get("/api/v1/me", headers=wrong | from_address(f"203.0.113.{n}"))
            assert answer.status_code == 401
        fresh = from_address("203.0.113.99")
        mine = {"Authorization": f"Bearer {key}"} | fresh
        assert client.get("/api/v1/me", headers=mine).status_code == 429
        other = people.headers("acme", "member") | fresh
        assert client.get("/api/v1/me", headers=other).status_code == 200


def test_sessions_are_not_throttled(api: TestClient, people: People) -> None:
    session = api.post(LOGIN, json=RIGHT).json()["access_token"]
    for n in range(10):
        api.get("/api/v1/me", headers={"Authorization": f"Bearer guess-{n}"})
    assert api.get("/api/v1/me", headers={"Authorization": "Bearer guess"}).status_code == 429
    # A session cannot be guessed, and one that expired is no attack: never counted.
    answer = api.get("/api/v1/me", headers={"Authorization": f"Bearer {session}"})
    assert answer.status_code == 200


# -- password checks at once ----------------------------------------------------------------


class SlowHasher:
    """Stands in for argon2: each check takes `seconds` and fails; counts checks at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()

    def verify(self, _hash: str, _password: str) -> bool:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(self.seconds)
        with self.lock:
            self.inside -= 1
        from argon2.exceptions import VerifyMismatchError

        raise VerifyMismatchError


def parallel_logins(base: str, bodies: list[dict[str, str]], headers: list[dict[str, str]]) -> Any:
    def one(i: int) -> httpx.Response:
        return httpx.post(base + LOGIN, json=bodies[i], headers=headers[i], timeout=30)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, range(len(bodies))))


def test_40_parallel_wrong_logins_run_4_password_checks_at_once(
    runtime: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = SlowHasher(0.2)
    monkeypatch.setattr(identity, "_hasher", hasher)
    app = create_app(runtime, run_workers=False)
    with serving(app) as base:
        # Forty addresses (uvicorn takes X-Forwarded-For from 127.0.0.1), forty e-mails:
        # no throttle applies, only the gate. 4 slots of 0.2 s in a 5 s wait: room for ~100.
        bodies = [{"email": f"user{n}@example.com", "password": "x"} for n in range(40)]
        headers = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(40)]
        answers = parallel_logins(base, bodies, headers)
    assert [a.status_code for a in answers] == [401] * 40
    assert hasher.most == 4


def test_a_login_that_gets_no_turn_in_time_is_503_and_not_counted(
    runtime: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = SlowHasher(2.0)  # far longer than the wait: whoever arrives late still waits
    monkeypatch.setattr(identity, "_hasher", hasher)
    runtime.settings.login_wait_seconds = 0.3
    busy = sample("hookyard_logins_busy_total")
    app = create_app(runtime, run_workers=False)
    with serving(app) as base:
        bodies = [{"email": f"user{n}@example.com", "password": "x"} for n in range(12)]
        headers = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(12)]
        answers = parallel_logins(base, bodies, headers)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [401] * 4 + [503] * 8 and hasher.most == 4
        for answer in answers:
            if answer.status_code == 503:
                assert answer.headers["retry-after"] == "2"
                assert "too many logins" in answer.json()["detail"]
        assert sample("hookyard_logins_busy_total") == busy + 8
        # A refusal for want of a turn is not a failure of that client: it may try again
        # as often as the limit says (9 more wrong here, then 429).
        refused = next(i for i, a in enumerate(answers) if a.status_code == 503)
        hasher.seconds = 0.01
        again = [
            httpx.post(base + LOGIN, json=bodies[refused], headers=headers[refused]).status_code
            for _ in range(11)
        ]
    assert again == [401] * 10 + [429]


def test_40_parallel_wrong_logins_from_one_client_check_10_passwords(
    runtime: Runtime, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = SlowHasher(0.05)
    monkeypatch.setattr(identity, "_hasher", hasher)
    app = create_app(runtime, run_workers=False)
    with serving(app) as base:
        bodies = [{"email": f"user{n}@example.com", "password": "x"} for n in range(40)]
        answers = parallel_logins(base, bodies, [{}] * 40)
    statuses = [a.status_code for a in answers]
    # Each attempt is counted before its check: the other thirty never reach argon2.
    assert statuses.count(401) == 10 and statuses.count(429) == 30


# -- a real `hookyard serve` ----------------------------------------------------------------


def test_a_running_serve_answers_40_wrong_logins_in_a_row_with_429(
    settings: Settings, tmp_path: Path
) -> None:
    """Two ingest processes, each counting on its own (docs/security.md): at most twice the
    limit of wrong logins are checked, whichever process each connection reaches."""
    env = process_env(settings, HOOKYARD_SESSION_SECRET=SECRETS["session"])
    server, base = start_server(env, tmp_path / "serve.log", "--processes", "2", "--workers", "0")
    try:
        for path, send in (
            (LOGIN, lambda: httpx.post(base + LOGIN, json=WRONG, timeout=30)),
            (
                "/ui/login",
                lambda: httpx.post(
                    base + "/ui/login",
                    data={"email": "someone@example.com", "password": "wrong"},
                    headers=HTML,
                    timeout=30,
                ),
            ),
        ):
            answers = [send() for _ in range(40)]  # a new connection each
            statuses = [a.status_code for a in answers]
            assert set(statuses) <= {401, 429}, (path, statuses)
            assert statuses.count(401) <= 20 and statuses.count(429) >= 20, (path, statuses)
            for answer in answers:
                if answer.status_code == 429:
                    assert int(answer.headers["retry-after"]) > 0
    except BaseException:
        print(server.output()[-3000:])
        raise
    finally:
        server.stop()
