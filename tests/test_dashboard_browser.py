"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright): the
gateway served on a local port with its workers, webhooks delivered over HTTP, and a person
clicking through it. Each test keeps a screenshot in `test-artifacts/dashboard/`, and fails
on any error the page logged (a script error, a refused Content-Security-Policy).

`scripts/test` installs Chromium where it is missing; in CI a missing browser is a failure,
elsewhere a skip that says how to install it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hookyard.db.schema import events
from hookyard.runtime import Runtime
from hookyard.testing.simulate import Delivery, build_delivery, tcr_delivery, tcr_payload
from tests.browser_support import live, log_in
from tests.conftest import SECRETS
from tests.customers_support import Books, books_of
from tests.people import People
from tests.support import wait_for


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
    page.fill("form.tenant input[name=q]", "GX0000")  # globex, by part of its BAN
    choice = page.locator("#tenant-choices button", has_text="GX000000002")
    expect(choice).to_contain_text("Globex")
    expect(page.locator("#tenant-choices button", has_text="Acme")).to_have_count(0)
    choice.click()

    expect(page.locator(".notice")).to_contain_text("Now acting for")
    expect(page.locator("#tenant-picked")).to_have_text("globex")
    live(page)  # the socket reconnected for globex
    page.fill("form.tenant input[name=q]", "acme")
    page.locator("#tenant-choices button", has_text="All tenants").click()
    expect(page.locator("#tenant-picked")).to_have_text("all tenants")


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
