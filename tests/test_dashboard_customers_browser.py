"""The customer pages in Chromium, against the fake HubSpot: a member finds a company in
HubSpot, links a new customer to it, edits the customer, and watches its sync state change
live as the gateway's own workers send the change (the first send refused by HubSpot, the
retry a moment later)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hookyard.config import Settings
from hookyard.domain.crm.tables import customers
from hookyard.runtime import Runtime
from hookyard.testing.fakes.hubspot import HubSpotState
from hookyard.testing.fakes.hubspot import create_app as hubspot_app
from hookyard.testing.fakes.server import ThreadedServer
from tests.browser_support import log_in
from tests.conftest import SECRETS


@pytest.fixture
def hubspot() -> Iterator[tuple[HubSpotState, str]]:
    state = HubSpotState("hubspot-token", SECRETS["hubspot"])
    server = ThreadedServer(hubspot_app(state))
    url = server.start()
    yield state, url
    server.stop()


@pytest.fixture
def settings(settings: Settings, hubspot: tuple[HubSpotState, str]) -> Settings:
    """The test settings with the fake HubSpot's API; a refused send is retried in a
    second, and the client does not retry on its own (the page sees each state)."""
    return settings.model_copy(
        update={
            "hubspot_api_url": hubspot[1],
            "hubspot_access_token": "hubspot-token",
            "provider_max_attempts": 1,
            "sync_backoff_seconds": 1.0,
        }
    )


def test_a_member_links_a_found_company_edits_it_and_sees_the_sync_state_live(
    page: Page,
    gateway: str,
    runtime: Runtime,
    hubspot: tuple[HubSpotState, str],
) -> None:
    state, _ = hubspot
    umbrella = state.create_company(
        {"name": "Umbrella Networks", "domain": "umbrella.example", "hookyard_credit_limit": "7000"}
    )
    state.configure_webhooks(gateway + "/webhooks/hubspot/company")
    log_in(page, gateway, "member@acme.example.com", start="/ui/customers")

    page.click("#new-customer")
    page.fill("#company-query", "umbrella")  # the form searches HubSpot as one types
    found = page.locator(f"#found-companies tr[data-company-id='{umbrella['id']}']")
    expect(found).to_contain_text("umbrella.example")
    found.locator("a.pick").click()
    expect(page.locator("#linking")).to_contain_text(umbrella["id"])
    expect(page.locator("input[name=company_name]")).to_have_value("Umbrella Networks")
    page.check("input[name=services][value=voice]")
    page.fill("input[name=current_balance]", "lots")  # refused, beside its field
    page.click("button:text('Create')")
    expect(page.locator("p.error[data-field=current_balance]")).to_be_visible()
    page.fill("input[name=current_balance]", "12.50")
    page.click("button:text('Create')")

    expect(page.locator(".notice")).to_contain_text("Customer created")
    expect(page.locator("#sync-state")).to_contain_text(umbrella["id"])
    expect(page.locator("#sync-badge")).to_have_text("synced")
    credit = page.locator("#fields tr[data-field=credit_limit] td.ours")
    expect(credit).to_have_text("7000.00")  # HubSpot's limit, taken on linking
    with runtime.engine.connect() as conn:
        ban = conn.execute(select(customers.c.ban)).scalar_one()
    props = state.company(umbrella["id"])["properties"]  # type: ignore[index]
    assert props["hookyard_ban"] == ban and props["hookyard_services"] == "voice"

    page.click("#edit-customer")
    page.fill("input[name=status]", "suspended")
    state.fail_next(1, 503)  # HubSpot refuses the first send: retried a second later
    page.click("button:text('Save')")
    expect(page.locator(".notice")).to_contain_text("Saved")
    page.evaluate("window.stayed = true")  # gone if the page reloads
    badge = page.locator("#sync-badge")
    expect(badge).to_have_text("pending")
    expect(badge).to_have_text("synced", timeout=20_000)  # the retry went out: live
    pushed = page.locator("#fields tr[data-field=status]")
    expect(pushed).to_contain_text("suspended")
    expect(page.locator("#customer-sync-log")).to_contain_text("retry")
    assert page.evaluate("window.stayed") is True
    assert state.company(umbrella["id"])["properties"]["hookyard_status"] == "suspended"  # type: ignore[index]
