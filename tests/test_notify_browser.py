"""The notification preferences page in a real headless Chromium: a person opens it from the
user menu and changes a choice; an admin changes a person's and sets the tenant's chat
webhook (its URL never shown whole). A screenshot of each is kept in
test-artifacts/dashboard/."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from hookyard.accounts.tables import users
from hookyard.notify.tables import chat_webhooks
from hookyard.runtime import Runtime
from tests.browser_support import log_in
from tests.people import People
from tests.support import row


def user_id(runtime: Runtime, address: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(users.c.id).where(users.c.email == address)).scalar_one())


def choice_of(page: Page, kind: str) -> str:
    return str(page.locator(f'tr[data-kind="{kind}"] .badge').inner_text())


def test_a_viewer_chooses_from_the_user_menu(page: Page, gateway: str, people: People) -> None:
    log_in(page, gateway, "viewer@acme.example.com")
    page.click("#notification-preferences")
    expect(page).to_have_url(gateway + "/ui/notifications")
    expect(page.locator('tr[data-kind="brand_verified"] .badge')).to_have_text("off")
    page.select_option('select[name="kind.brand_verified"]', "daily_digest")
    page.click("#preferences button[type=submit]")
    expect(page.locator(".notice")).to_have_text("Notification preferences saved.")
    expect(page.locator('tr[data-kind="brand_verified"] .badge')).to_have_text("daily_digest")
    assert choice_of(page, "lead_closed") == "off"
    expect(page.locator("#chat-webhook")).to_have_count(0)  # an admin's


def test_an_admin_sets_a_persons_choice_and_the_chat_webhook(
    page: Page, gateway: str, runtime: Runtime, people: People
) -> None:
    member = user_id(runtime, "member@acme.example.com")
    log_in(page, gateway, "admin@acme.example.com", start="/ui/notifications")
    page.select_option('select[name="user"]', str(member))
    page.click("form.filters button[type=submit]")
    expect(page.locator("main > p").first).to_contain_text("member@acme.example.com (member)")
    page.select_option('select[name="kind.sync_failed"]', "off")
    page.click("#preferences button[type=submit]")
    expect(page).to_have_url(f"{gateway}/ui/notifications?user={member}&notice=preferences_saved")
    expect(page.locator('tr[data-kind="sync_failed"] .badge')).to_have_text("off")

    page.fill(
        '#chat-webhook input[name="url"]',
        "https://hooks.chat.example.com/services/T1/B2/s3cr3tpath",
    )
    page.click("#chat-webhook button:text('Set')")
    expect(page.locator(".notice")).to_have_text("Chat webhook saved.")
    expect(page.locator("#chat-host")).to_have_text("https://hooks.chat.example.com/…")
    expect(page.locator("#chat-secret")).to_contain_text("whsec_")
    assert "s3cr3tpath" not in page.content()
    stored = row(runtime.engine, chat_webhooks, chat_webhooks.c.tenant == "acme")
    assert stored["url"].endswith("/s3cr3tpath") and stored["enabled"] is True
