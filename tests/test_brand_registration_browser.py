"""Registering a 10DLC brand from the dashboard in a real headless Chromium, against the fake
TCR over HTTP, with the gateway's workers running: the form, TCR's answer as given, its
verification arriving live, and a refusal's error list. A screenshot of each test is kept in
`test-artifacts/dashboard/` (see tests/test_dashboard_browser.py for the browser set-up)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime
from hookyard.sync.tcr import subscribe_all
from hookyard.testing.fakes.server import ThreadedServer, serving
from hookyard.testing.fakes.tcr import TCRState
from hookyard.testing.fakes.tcr import create_app as tcr_app
from tests.browser_support import log_in
from tests.people import make_people


@pytest.fixture
def tcr() -> Iterator[TCRState]:
    state = TCRState("tcr-key", "tcr-secret", verify_delay=1.0)
    yield state
    state.close()


@pytest.fixture
def gateway(settings: Settings, tcr: TCRState) -> Iterator[str]:
    """The gateway with its workers, TCR's API configured and its webhooks subscribed."""
    server = ThreadedServer(tcr_app(tcr))
    url = server.start()
    configured = settings.model_copy(
        update={"tcr_api_url": url, "tcr_api_key": "tcr-key", "tcr_api_secret": "tcr-secret"}
    )
    rt = Runtime.build(configured)
    make_people(rt)
    try:
        with serving(create_app(rt)) as base:
            assert rt.sync.tcr is not None
            subscribe_all(rt.sync.tcr, base, rt.sources.sources)
            yield base
    finally:
        rt.close()
        server.stop()


def fill_in(page: Page, display_name: str, **fields: str) -> None:
    form = page.locator("#register-brand")
    form.locator("select[name=entity_type]").select_option("PRIVATE_PROFIT")
    form.locator("input[name=display_name]").fill(display_name)
    form.locator("select[name=vertical]").select_option("TECHNOLOGY")
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("button:text('Register')").click()


def test_registering_a_brand_from_the_form(page: Page, gateway: str, tcr: TCRState) -> None:
    log_in(page, gateway, "member@acme.example.com", start="/ui/messaging")
    expect(page.locator("#registrations td.empty")).to_have_text("No brand registrations yet.")
    fill_in(page, "Acme Mobile")

    expect(page).to_have_url(f"{gateway}/ui/messaging/registrations/1")
    expect(page.locator("#registration-status .badge")).to_have_text("REGISTERED")
    [at_tcr] = tcr.snapshot()["brands"]
    answer = page.locator("#tcr-answer")
    expect(answer).to_contain_text(at_tcr["brandId"])
    expect(answer.locator(".badge")).to_have_text("UNVERIFIED")  # as TCR answered it
    # TCR verifies it a moment later, by webhook: the brand's state changes in place.
    page.evaluate("window.stayed = true")
    expect(page.locator("#brand-now .badge").first).to_have_text("VERIFIED")
    expect(page.locator("#brand-now")).to_contain_text("75")
    assert page.evaluate("window.stayed") is True

    page.goto(gateway + "/ui/messaging")
    row = page.locator("tr[data-registration-id='1']")
    expect(row).to_contain_text("Acme Mobile")
    expect(row.locator(".badge")).to_have_text("REGISTERED")


def test_a_refused_registration_shows_tcrs_errors(page: Page, gateway: str, tcr: TCRState) -> None:
    errors = [{"code": 516, "field": "ein", "description": "EIN does not match the company"}]
    tcr.fail_registrations(1, 400, body=errors)
    log_in(page, gateway, "admin@acme.example.com", start="/ui/messaging")
    fill_in(page, "Acme Mobile", ein="12-3456789")

    expect(page.locator("#registration-status .badge")).to_have_text("FAILED")
    cells = page.locator("#tcr-errors tbody td")
    expect(cells).to_have_text(["516", "ein", "EIN does not match the company"])

    # The admin retries it; a worker sends it again, and the page follows live.
    page.locator("button:text('Retry')").click()
    expect(page.locator("#notices")).to_contain_text("Registration queued again")
    expect(page.locator("#registration-status .badge")).to_have_text("REGISTERED")
