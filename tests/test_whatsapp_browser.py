"""WhatsApp campaigns in a real headless Chromium (tests/browser_support.py; the fixtures are
conftest.py's): a member creates a campaign from the WhatsApp page, Meta's signed DISABLED
webhook for its template arrives over HTTP, and the campaign's badge turns paused live,
without a reload."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hookyard.domain.whatsapp.tables import templates
from hookyard.runtime import Runtime
from tests.browser_support import live, log_in
from tests.support import wait_for
from tests.whatsapp_support import TENANT_SOURCES, template_status

T0 = 1_763_800_000
TEMPLATE = "9001"


@pytest.fixture
def sources_file(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(TENANT_SOURCES)  # Meta's source is acme's
    return path


def send(gateway: str, event: str, minute: int) -> None:
    delivery = template_status(gateway, TEMPLATE, "spring_promo", event, T0 + 60 * minute)
    answer = httpx.post(delivery.url, content=delivery.body, headers=delivery.headers)
    assert answer.status_code == 200, answer.text


def template_row(runtime: Runtime) -> tuple[int, str | None] | None:
    with runtime.engine.connect() as conn:
        found = conn.execute(
            select(templates.c.id, templates.c.status).where(
                templates.c.meta_template_id == TEMPLATE
            )
        ).first()
    return None if found is None else (int(found.id), found.status)


def test_a_campaign_made_on_the_page_turns_paused_live_when_meta_disables_its_template(
    page: Page, gateway: str, runtime: Runtime
) -> None:
    send(gateway, "APPROVED", 0)
    template_id, _ = wait_for(lambda: template_row(runtime), timeout=20)
    log_in(page, gateway, "member@acme.example.com", start="/ui/whatsapp")

    page.fill("#new-campaign input[name=name]", "Black Friday")
    page.select_option("#new-campaign select[name=template_id]", str(template_id))
    page.click("#new-campaign button:text('Create campaign')")

    expect(page.locator(".notice")).to_contain_text("Campaign created.")
    row = page.locator("#campaigns tr[data-campaign-id]", has_text="Black Friday")
    expect(row.locator(".badge")).to_have_text("active")
    expect(page.locator("#critical td.empty")).to_have_text("No template needs attention.")
    live(page)  # the page the form led back to listens before Meta's webhook is sent
    page.evaluate("window.stayed = true")  # gone if the page reloads

    send(gateway, "DISABLED", 1)

    expect(row.locator(".badge")).to_have_text("paused")
    expect(row).to_contain_text("TEMPLATE_DISABLED")
    critical = page.locator(f"#critical tr[data-template-id='{template_id}']")
    expect(critical).to_contain_text("Template disabled by Meta: edit and resubmit it")
    expect(page.locator("#summary [data-paused='TEMPLATE_DISABLED'] .n")).to_have_text("1")
    assert page.evaluate("window.stayed") is True  # swapped in place, not reloaded
    assert wait_for(lambda: template_row(runtime)) == (template_id, "DISABLED")
