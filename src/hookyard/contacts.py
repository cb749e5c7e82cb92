"""Contact validation: e-mail with email-validator, phone with phonenumbers (a lead's
contact, a lead manager's address), and masking for logs (everything that logs people).

Each validator answers `(normalised, None)` or `(None, error)`; the error is a short code,
optionally followed by the library's reason (which never repeats the whole value):

- ``missing``: absent, not text, or blank.
- ``invalid: <reason>``: the library rejects it.
- ``fake: <reason>`` (e-mail only): the local part is a placeholder (`FakeEmails`), e.g.
  ``fake: a run of 6 identical digits``; the check can be switched off.

Nothing here logs; use `mask_email` / `mask_phone` wherever a value would reach a log line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError
from email_validator import validate_email as _email_validator

from hookyard.config import ConfigError

MISSING = "missing"
INVALID = "invalid"
FAKE = "fake"

# Placeholder e-mails (the seed data's, and people typing a phone number or a keyboard run
# where an e-mail is asked for). Each pattern is searched (`re.search`) in the local part with
# the separators . _ - + dropped; the first that matches gives the reason. So
# `1199999999333@x.com` (a run of nines), `maria999999@x.com`, `111.111.111@x.com`,
# `123456789@x.com` and `11987654321@x.com` (a phone number) are fake; `99999@x.com` (five
# nines), `12345678@x.com` and `maria.silva@x.com` are not.
DEFAULT_FAKE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"(\d)\1{5,}", "a run of 6 identical digits"),
    (r"123456789", "the digits one to nine in order"),
    (r"^\d{10,13}$", "all digits, of phone length"),
)
PATTERNS_SETTING = "HOOKYARD_LEADS_FAKE_EMAIL_PATTERNS"
_SEPARATORS = re.compile(r"[._+\-]")


@dataclass(frozen=True, slots=True, eq=False)
class FakeEmails:
    """The placeholder patterns in use (compiled once) and whether the check runs at all.
    Compared by identity: it is a key of the validators' cache."""

    patterns: tuple[tuple[re.Pattern[str], str], ...]
    enabled: bool = True

    @classmethod
    def named(cls, patterns: Sequence[str] | None = None, enabled: bool = True) -> FakeEmails:
        """The defaults, or `patterns` (regular expressions on the local part) instead of
        them; ConfigError naming the setting for one that does not compile."""
        if patterns is None:
            chosen = DEFAULT_FAKE_PATTERNS
        else:
            chosen = tuple(
                (p, f"matches pattern {i} of {PATTERNS_SETTING}") for i, p in enumerate(patterns, 1)
            )
        compiled: list[tuple[re.Pattern[str], str]] = []
        for i, (pattern, reason) in enumerate(chosen, 1):
            if not isinstance(pattern, str):
                raise ConfigError(f"{PATTERNS_SETTING}: pattern {i} is not a string")
            try:
                compiled.append((re.compile(pattern), reason))
            except re.error as exc:
                raise ConfigError(
                    f"{PATTERNS_SETTING}: pattern {i} {pattern!r} is not a regular"
                    f" expression: {exc}"
                ) from None
        return cls(tuple(compiled), enabled)

    def reason(self, local_part: str) -> str | None:
        """Why `local_part` is a placeholder, or None (always None when switched off)."""
        if not self.enabled:
            return None
        bare = _SEPARATORS.sub("", local_part)
        for pattern, reason in self.patterns:
            if pattern.search(bare):
                return reason
        return None


DEFAULT_FAKE_EMAILS = FakeEmails.named()
_fake_emails = DEFAULT_FAKE_EMAILS


def fake_emails() -> FakeEmails:
    """The placeholder check this process uses (from the settings, `use_fake_emails`)."""
    return _fake_emails


def use_fake_emails(rules: FakeEmails) -> None:
    """Set the process's placeholder check, once at start (Runtime.build, from the settings)."""
    global _fake_emails
    _fake_emails = rules


def is_fake_local(local_part: str) -> bool:
    return _fake_emails.reason(local_part) is not None


# A lead's updates repeat its contact: the validators' answers (pure functions of the value)
# are kept for the most recent values, so only a new contact pays for the libraries' parsing.
_CACHED = 8192


def validate_email(value: object) -> tuple[str | None, str | None]:
    """The normalised address (email-validator's form, lower-cased: mainstream providers treat
    local parts case-insensitively, and the contact hash must not change with the case), or
    the error. No DNS lookup: deliverability is not checked."""
    if not isinstance(value, str) or not value.strip():
        return None, MISSING
    return _validate_email(value, _fake_emails)


@functools.lru_cache(maxsize=_CACHED)
def _validate_email(value: str, fake: FakeEmails) -> tuple[str | None, str | None]:
    try:
        result = _email_validator(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"{INVALID}: {exc}"
    reason = fake.reason(result.local_part)
    if reason is not None:
        return None, f"{FAKE}: {reason}"
    return result.normalized.lower(), None


def validate_phone(value: object, default_region: str = "BR") -> tuple[str | None, str | None]:
    """The number in E.164 (`+5511987654321`), or the error. A number without a country code
    is read as one of `default_region`; it must be a valid number there (`is_valid_number`),
    not merely well-formed."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None, MISSING
    return _validate_phone(value, default_region)


@functools.lru_cache(maxsize=_CACHED)
def _validate_phone(value: str, default_region: str) -> tuple[str | None, str | None]:
    try:
        number = phonenumbers.parse(value.strip(), default_region)
    except phonenumbers.NumberParseException as exc:
        return None, f"{INVALID}: {exc}"
    if not phonenumbers.is_valid_number(number):
        return None, f"{INVALID}: not a valid number"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def mask_email(value: str | None) -> str | None:
    """`m***@example.com`: the first character of the local part and the domain."""
    if not value:
        return value
    local, at, domain = value.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str | None) -> str | None:
    """`***4321`: the last four digits only."""
    if not value:
        return value
    digits = re.sub(r"\D", "", value)
    return "***" + digits[-4:] if len(digits) > 4 else "***"
