"""Helpers for the dashboard's browser tests (Debian's Chromium driven by Playwright): where
Chromium is, how it starts, logging in. The `chromium` fixture is conftest.py's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.people import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
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
# Assertions wait as long as actions: a page that updates live on a loaded machine (the two
# backends' suites side by side on two cores) may take seconds to hear of a change.
expect.set_options(timeout=TIMEOUT_MS)


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium")
        pytest.skip("no Chromium: `apt-get install chromium` (scripts/test does it as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
