"""C2S placeholder e-mails (issue 15, item 2): which local parts are fake and why, the
configured patterns and the switch that turns the check off, and what a lead's API answer and
page show of it. The leads are made by the C2S handler, as webhooks would make them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from hookyard import contacts
from hookyard.config import ConfigError, Settings
from hookyard.contacts import FakeEmails, validate_email
from hookyard.domain.leads.tables import leads
from hookyard.runtime import Runtime
from tests.domain_support import lead
from tests.people import People
from tests.web_support import login, page_of

RUN = "fake: a run of 6 identical digits"


@pytest.fixture(autouse=True)
def _default_check() -> Iterator[None]:
    """Runtime.build sets the process's check from the settings: the defaults again after."""
    yield
    contacts.use_fake_emails(contacts.DEFAULT_FAKE_EMAILS)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("1199999999333@gmail.com", RUN),
        ("123456789@x.com", "fake: the digits one to nine in order"),
        ("11987654321@gmail.com", "fake: all digits, of phone length"),
        ("maria.silva@example.com", None),
    ],
)
def test_the_issues_addresses(value: str, error: str | None) -> None:
    assert validate_email(value) == ((None, error) if error else (value, None))


# No digit: no default pattern can match. Any text: an answer, never an exception.
_NO_DIGITS = st.text(
    st.characters(blacklist_categories=("Nd",), blacklist_characters="0123456789"), max_size=40
)


@given(st.text(max_size=80))
def test_the_check_never_raises(value: str) -> None:
    local = value.rpartition("@")[0] or value
    reasons = {reason for _, reason in contacts.DEFAULT_FAKE_PATTERNS}
    assert contacts.DEFAULT_FAKE_EMAILS.reason(local) in reasons | {None}
    normalised, error = validate_email(value)
    assert (normalised is None) != (error is None)


@given(_NO_DIGITS, st.sampled_from(["example.com", "gmail.com"]))
def test_an_address_without_digits_is_never_fake(local: str, domain: str) -> None:
    assert contacts.DEFAULT_FAKE_EMAILS.reason(local) is None
    _normalised, error = validate_email(f"{local}@{domain}")
    assert error is None or not error.startswith("fake")


def test_configured_patterns_replace_the_defaults() -> None:
    mine = FakeEmails.named([r"^test", r"(\d)\1{3,}"])
    assert mine.reason("test.maria") == ("matches pattern 1 of HOOKYARD_LEADS_FAKE_EMAIL_PATTERNS")
    assert mine.reason("ana7777") == "matches pattern 2 of HOOKYARD_LEADS_FAKE_EMAIL_PATTERNS"
    assert mine.reason("123456789") is None  # a default no longer in the list
    assert FakeEmails.named([]).reason("999999") is None
    assert FakeEmails.named(enabled=False).reason("999999") is None


@pytest.mark.parametrize("bad", [["(unclosed"], ["ok", "a{2,1}"], ["*"]])
def test_a_pattern_that_does_not_compile_is_a_config_error(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="HOOKYARD_LEADS_FAKE_EMAIL_PATTERNS: pattern"):
        FakeEmails.named(bad)


def test_settings_read_the_switch_and_the_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKYARD_LEADS_FAKE_EMAIL_CHECK", "false")
    monkeypatch.setenv("HOOKYARD_LEADS_FAKE_EMAIL_PATTERNS", r'["^x\\d+$"]')
    s = Settings()
    assert s.leads_fake_email_check is False
    assert s.leads_fake_email_patterns == (r"^x\d+$",)


def test_a_bad_pattern_stops_the_start(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"pattern 1 '\(9' is not a regular expression"):
        Runtime.build(replace_settings(settings, leads_fake_email_patterns=("(9",)))


def replace_settings(settings: Settings, **values: Any) -> Settings:
    return settings.model_copy(update=values)


# -- leads, their API answer and page (both backends) ---------------------------------------


def test_a_fake_email_is_refused_with_its_reason_and_shown(
    runtime: Runtime, api: TestClient, people: People
) -> None:
    fake = lead(runtime.engine, "acme", "c2s-fake-1", email="1199999999333@gmail.com",
                phone="11987654321")  # fmt: skip
    real = lead(runtime.engine, "acme", "c2s-real-1", email="maria.silva@example.com")
    headers = people.headers("acme", "member")
    answer = api.get(f"/api/v1/leads/{fake}", headers=headers).json()
    assert (answer["email"], answer["email_valid"], answer["phone_valid"]) == (
        None, False, True
    )  # fmt: skip
    assert answer["validation_errors"] == {"email": RUN}
    answer = api.get(f"/api/v1/leads/{real}", headers=headers).json()
    assert answer["email"] == "maria.silva@example.com"
    assert (answer["email_valid"], answer["phone_valid"]) == (True, None)  # no phone sent
    assert answer["validation_errors"] is None
    html = page_of(login(api, "member@acme.example.com"), f"/ui/leads/{fake}")
    assert re.search(r'id="email-valid">not valid</span>\s*' + re.escape(RUN), html)
    assert 'id="phone-valid">valid</span>' in html


def test_the_switch_off_keeps_a_placeholder_email(settings: Settings) -> None:
    rt = Runtime.build(replace_settings(settings, leads_fake_email_check=False))
    try:
        made = lead(rt.engine, "acme", "c2s-fake-2", email="1199999999333@gmail.com")
        with rt.engine.connect() as conn:
            row = conn.execute(select(leads).where(leads.c.id == made)).mappings().one()
        assert row["email"] == "1199999999333@gmail.com"
        assert row["validation_errors"] is None
        assert row["enrichment_status"] == "pending"
    finally:
        rt.close()
    assert validate_email("1199999999333@gmail.com") == ("1199999999333@gmail.com", None)
    contacts.use_fake_emails(contacts.DEFAULT_FAKE_EMAILS)  # the answer is not cached across
    assert validate_email("1199999999333@gmail.com") == (None, RUN)
