"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright): the
gateway served on a local port with its workers, webhooks delivered over HTTP, and a person
clicking through it. Each test keeps a screenshot in `test-artifacts/dashboard/`, and fails
on any error the page logged (a script error, a refused Content-Security-Policy).

`scripts/test` installs Chromium where it is missing; in CI a missing browser is a failure,
elsewhere a skip that says how to install it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from hookyard.app import create_app
from hookyard.db.schema import events
from hookyard.runtime import Runtime
from hookyard.testing.fakes.server import serving
from hookyard.testing.simulate import Delivery, build_delivery, tcr_delivery, tcr_payload
from tests.conftest import BACKEND, ROOT, SECRETS
from tests.people import PASSWORD, People
from tests.support import wait_for
from tests.test_api_customers import Books, books_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
# As the machine's own probe starts it: no sandbox (root), no GPU, and none of the
# background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium")
        pytest.skip("no Chromium: `apt-get install chromium` (scripts/test does it as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def gateway(runtime: Runtime, people: People) -> Iterator[str]:
    """The gateway with its workers on a free port (people exist before it starts)."""
    with serving(create_app(runtime)) as base:
        yield base


@pytest.fixture
def page(chromium: Browser, gateway: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    # Depends on the gateway so as to close before it: a page left open on a stopped
    # server logs connection errors.
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


def log_in(page: Page, base: str, email: str, start: str = "/ui/events") -> None:
    """Open a page, get sent to the login form, log in, land back on that page, live."""
    page.goto(base + start)
    expect(page).to_have_url(f"{base}/ui/login?next={start.replace('/', '%2F')}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:text('Log in')")
    expect(page).to_have_url(base + start)
    live(page)


def live(page: Page) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def deliver(base: str, d: Delivery) -> None:
    path = d.url.split("testserver", 1)[-1]
    response = httpx.post(base + path, content=d.body, headers=d.headers)
    assert response.status_code == 200, response.text


def send(runtime: Runtime, base: str, source_name: str, seq: int, **event: Any) -> None:
    source = next(s for s in runtime.sources.sources if s.name == source_name)
    deliver(base, build_delivery(source, event.get("event"), "http://testserver", seq))


def status_of(runtime: Runtime, event_id: int) -> str:
    with runtime.engine.connect() as conn:
        return str(conn.execute(select(events.c.status).where(events.c.id == event_id)).scalar())


# -- the tests ------------------------------------------------------------------------------


def test_logging_in_and_seeing_an_event_arrive_live(
    page: Page, gateway: str, runtime: Runtime
) -> None:
    log_in(page, gateway, "root@example.com")
    expect(page.locator("td.empty")).to_have_text("No events match.")
    page.evaluate("window.stayed = true")  # gone if the page reloads

    send(runtime, gateway, "demo", 1)

    row = page.locator("tr[data-event-id]")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("done")
    expect(row).to_contain_text("invoice.paid")
    assert page.evaluate("window.stayed") is True  # swapped in place, not reloaded


def test_replaying_a_dead_event(page: Page, gateway: str, runtime: Runtime) -> None:
    send(runtime, gateway, "poison", 1)
    dead = wait_for(lambda: _dead_event(runtime), timeout=20)
    log_in(page, gateway, "root@example.com")

    page.click("nav >> text=Dead letters")
    page.click(f"tr[data-event-id='{dead}'] >> text='{dead}'")
    expect(page.locator("#event-summary")).to_contain_text("poison event")
    page.click("button:text('Replay')")

    expect(page.locator(".notice")).to_contain_text("Replayed")
    # It runs again (and, being poison, dies again): replayed once, attempts counted anew.
    expect(page.locator("#event-summary")).to_contain_text("replayed 1 time")
    wait_for(lambda: status_of(runtime, dead) == "dead", timeout=20)


def _dead_event(runtime: Runtime) -> int | None:
    with runtime.engine.connect() as conn:
        found = conn.execute(select(events.c.id).where(events.c.status == "dead")).scalar()
    return None if found is None else int(found)


@pytest.fixture
def acme_books(api: TestClient, runtime: Runtime, people: People) -> Books:
    """acme's customer with an open conflict (made before the gateway's workers start)."""
    return books_of(api, runtime, people, "acme", "Acme Telecom", "business")


def test_resolving_a_conflict(
    acme_books: Books, page: Page, gateway: str, api: TestClient, people: People
) -> None:
    log_in(page, gateway, "admin@acme.example.com", start="/ui/conflicts")
    row = page.locator(f"tr[data-conflict-id='{acme_books.conflict}']")
    expect(row).to_contain_text("Acme Telecom Inc")

    row.locator("button:text('Keep ours')").click()

    expect(page.locator(".notice")).to_contain_text("Conflict resolved")
    expect(page.locator(f"tr[data-conflict-id='{acme_books.conflict}']")).to_have_count(0)
    shown = api.get(
        f"/api/v1/sync-conflicts/{acme_books.conflict}", headers=people.headers("acme", "admin")
    ).json()
    assert shown["resolution"] == "keep_ours"
    assert shown["resolved_by"].startswith("user:")


def test_a_carrier_badge_changes_live(page: Page, gateway: str, runtime: Runtime) -> None:
    url = "http://testserver/webhooks/tcr/campaigns"
    at = datetime.now(UTC) - timedelta(minutes=5)

    def campaign_event(event: str, minutes: int, **fields: Any) -> None:
        stamp = (at + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        payload = tcr_payload(event, brand_id="BWEB001", campaign_id="CWEB001",
                              timestamp=stamp, **fields)  # fmt: skip
        deliver(gateway, tcr_delivery(url, payload))

    campaign_event("MNO_CAMPAIGN_OPERATION_REVIEW", 0, mnoStatuses={"10017": "REVIEW"})
    wait_for(lambda: _processed(runtime) == 1)
    log_in(page, gateway, "root@example.com", start="/ui/messaging/campaigns/CWEB001")
    badge = page.locator("[data-carrier='10017']")
    expect(badge).to_have_text("REVIEW")
    page.evaluate("window.stayed = true")

    campaign_event("MNO_CAMPAIGN_OPERATION_APPROVED", 1, mnoId="10017")

    expect(badge).to_have_text("APPROVED")
    expect(badge).to_have_class("badge good")
    assert page.evaluate("window.stayed") is True


def _processed(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        done = conn.execute(select(events.c.id).where(events.c.status == "done")).all()
    return len(done)


def test_a_superadmin_picks_a_tenant(page: Page, gateway: str, runtime: Runtime) -> None:
    log_in(page, gateway, "root@example.com")
    page.fill("form.tenant input[name=tenant]", "GX000000002")  # globex, by its BAN
    page.click("form.tenant button")

    expect(page.locator(".notice")).to_contain_text("Now acting for")
    expect(page.locator("form.tenant input[name=tenant]")).to_have_value("globex")
    live(page)  # the socket reconnected for globex


def test_every_page_renders_for_a_viewer(page: Page, gateway: str, runtime: Runtime) -> None:
    """A viewer walks every page of the menu: no error, no script or CSP complaint, no
    action button a viewer may not use."""
    send(runtime, gateway, "demo", 7)
    log_in(page, gateway, "viewer@acme.example.com")
    for link in page.locator("header nav a").all():
        href = link.get_attribute("href")
        assert href is not None
        page.goto(gateway + href)
        live(page)
        expect(page.locator("main p.error")).to_have_count(0)
        assert page.locator("main h1").inner_text()
        for action in ("Replay", "Keep ours", "Take theirs", "Acknowledge", "Resume"):
            expect(page.locator(f"main button:text-is('{action}')")).to_have_count(0)
    assert SECRETS["admin"] not in page.content()
