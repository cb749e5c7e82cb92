"""Shared fixtures: a database per test (a copy of a migrated SQLite file, or a PostgreSQL
database per session, emptied between tests, when HOOKYARD_TEST_DATABASE=postgresql), test
sources, an in-process gateway, the fixtures several modules share, and the environment of
real `hookyard` processes.

Helpers that are not fixtures live in plain modules (tests/support.py, tests/*_support.py,
tests/strategies.py); no test module imports another (tests/test_suite_hygiene.py)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, text

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.db.engine import make_engine
from hookyard.db.migrate import upgrade
from hookyard.runtime import Runtime
from hookyard.sources import SourceSet, load_sources_file
from tests.customers_support import Books, books_of
from tests.handlers import test_metadata
from tests.people import People, make_people
from tests.smtp_support import SmtpServer
from tests.support import ROOT, SECRETS, SOURCES_TOML
from tests.sync_support import World, running_world

# Hypothesis: no per-example deadline (this is a shared 2-core machine, timings are noise),
# and in CI a derandomised run, so a build's result depends on the code, not on the draw.
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

PG_ADMIN_URL = os.environ.get("HOOKYARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKEND = os.environ.get("HOOKYARD_TEST_DATABASE", "sqlite")


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    if BACKEND != "postgresql":
        yield None
        return
    name = f"hookyard_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg.connect(
        PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(name)
    engine = make_engine(url)
    upgrade(engine)
    test_metadata.create_all(engine)
    engine.dispose()
    yield url
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """A migrated SQLite database, built once per session (per pytest process): every test
    gets its own copy of the file instead of running all the migrations again."""
    if BACKEND == "postgresql":
        return None
    path = tmp_path_factory.mktemp("template") / "hookyard.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    test_metadata.create_all(engine)
    engine.dispose()
    # Everything into the main file: a checkpoint, then the last connection closing removes
    # the -wal and -shm files, so a copy of the one file is the whole database (still in WAL
    # mode, as a database hookyard created is).
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert not leftovers, f"the template database left {leftovers} beside it"
    return path


@pytest.fixture
def db_url(pg_database: str | None, sqlite_template: Path | None, tmp_path: Path) -> str:
    if pg_database is None:
        assert sqlite_template is not None
        path = tmp_path / "hookyard.sqlite"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    engine = make_engine(pg_database)
    with engine.begin() as conn:
        # Only what the last test touched (rows, or an id sequence that moved): a TRUNCATE of
        # every table costs ~90 ms, of the few used ones a fraction of that.
        tables = list(
            conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    " AND tablename <> 'alembic_version'"
                )
            ).scalars()
        )
        used = set(
            conn.execute(
                text(
                    " UNION ALL ".join(
                        f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM {t})" for t in tables
                    )
                )
            ).scalars()
        )
        for (sequence,) in conn.execute(
            text(
                "SELECT sequencename FROM pg_sequences"
                " WHERE schemaname = 'public' AND last_value IS NOT NULL"
            )
        ):
            if sequence.endswith("_id_seq") and sequence[: -len("_id_seq")] in tables:
                used.add(sequence[: -len("_id_seq")])
        if used:
            conn.execute(text(f"TRUNCATE {', '.join(sorted(used))} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_database


@pytest.fixture
def empty_engine(tmp_path: Path, pg_database: str | None) -> Iterator[Engine]:
    """An engine on a new, empty database (SQLite file, or a PostgreSQL database of its own):
    for a test that migrates an older schema holding rows."""
    if pg_database is None:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
        yield engine
        engine.dispose()
        return
    name = f"hookyard_empty_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"),
                            autocommit=True)  # fmt: skip
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(_pg_url(name))
    try:
        yield engine
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(SOURCES_TOML)
    return path


@pytest.fixture
def settings(db_url: str, sources_file: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        sources=sources_file,
        admin_token=SECRETS["admin"],
        session_secret=SECRETS["session"],
        demo_secrets_file=tmp_path / "demo-secrets.env",
        max_attempts=3,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        lease_seconds=30,
    )


@pytest.fixture
def sources(sources_file: Path) -> SourceSet:
    return load_sources_file(sources_file)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.build(settings)
    yield rt
    rt.close()


@pytest.fixture
def engine(runtime: Runtime) -> Engine:
    return runtime.engine


# -- fixtures several modules share ----------------------------------------------------------


@pytest.fixture
def people(runtime: Runtime) -> People:
    """A superadmin, and an admin, member and viewer in each of acme and globex (people.py)."""
    return make_people(runtime)


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    """The management API and dashboard in process (no worker threads)."""
    with TestClient(create_app(runtime, run_workers=False)) as client:
        yield client


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    """hookyard as a real HTTP server beside the fake TCR, HubSpot and Meta (sync_support.py)."""
    with running_world(settings) as made:
        yield made


@pytest.fixture
def acme(api: TestClient, runtime: Runtime, people: People) -> Books:
    """acme's customer, linked to HubSpot, with an open conflict and a failed outbox row."""
    return books_of(api, runtime, people, "acme", "Acme Telecom", "business")


@pytest.fixture
def globex(api: TestClient, runtime: Runtime, people: People) -> Books:
    """globex's customer, like `acme`'s."""
    return books_of(api, runtime, people, "globex", "Globex Networks", "wholesale")


def process_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """Environment for a real `hookyard` process configured like `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HOOKYARD_DATABASE_URL=settings.database_url,
        HOOKYARD_SOURCES=str(settings.sources),
        HOOKYARD_ADMIN_TOKEN=SECRETS["admin"],
        HOOKYARD_DEMO_SECRETS_FILE=str(settings.demo_secrets_file),
        HOOKYARD_MAX_ATTEMPTS=str(settings.max_attempts),
        HOOKYARD_RETRY_BASE_SECONDS=str(settings.retry_base_seconds),
        HOOKYARD_RETRY_MAX_SECONDS=str(settings.retry_max_seconds),
        HOOKYARD_LEASE_SECONDS=str(settings.lease_seconds),
        HOOKYARD_LOG_LEVEL="warning",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, one per test module (tests/browser_support.py)."""
    from tests.browser_support import launch_chromium

    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def gateway(runtime: Runtime, people: Any) -> Iterator[str]:
    """The gateway with its workers on a free port (people exist before it starts): the
    browser tests' server (a module may define its own)."""
    from hookyard.app import create_app
    from hookyard.testing.fakes.server import serving

    with serving(create_app(runtime)) as base:
        yield base


@pytest.fixture
def page(chromium: Any, gateway: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Chromium tab; fails the test on any console error; a screenshot is kept in
    test-artifacts/dashboard/. Depends on the gateway so as to close before it (a page left
    open on a stopped server logs connection errors)."""
    from tests.browser_support import ARTIFACTS, TIMEOUT_MS

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{BACKEND}.png"), full_page=True)
    context.close()
    assert not problems, problems


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free local port; `tests.smtp_support.with_smtp`
    points the settings at it."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
