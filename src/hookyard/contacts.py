"""Contact validation: e-mail with email-validator, phone with phonenumbers (a lead's
contact, a lead manager's address), and masking for logs (everything that logs people).

Each validator answers `(normalised, None)` or `(None, error)`; the error is a short code,
optionally followed by the library's reason (which never repeats the whole value):

- ``missing``: absent, not text, or blank.
- ``invalid: <reason>``: the library rejects it.
- ``fake`` (e-mail only): the local part is a placeholder of the seed data, see `is_fake_local`.

Nothing here logs; use `mask_email` / `mask_phone` wherever a value would reach a log line.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from email_validator import EmailNotValidError
from email_validator import validate_email as _email_validator

MISSING = "missing"
INVALID = "invalid"
FAKE = "fake"

# The seed's placeholder e-mails: a local part made only of the sequences 999999, 111111,
# 000000 (six or more of the same digit) and 123456789, repeated or mixed, once the
# separators . _ - + are dropped. So `999999@x.com`, `111.111.111@x.com`,
# `123456789123456789@x.com` and `0000000@x.com` are fake; `maria999999@x.com`, `99999@x.com`
# (five nines) and `12345678@x.com` are not (a real address may contain such digits).
FAKE_LOCAL = re.compile(r"(?:9{6,}|1{6,}|0{6,}|123456789)+")
_SEPARATORS = re.compile(r"[._+\-]")


def is_fake_local(local_part: str) -> bool:
    return FAKE_LOCAL.fullmatch(_SEPARATORS.sub("", local_part)) is not None


# A lead's updates repeat its contact: the validators' answers (pure functions of the value)
# are kept for the most recent values, so only a new contact pays for the libraries' parsing.
_CACHED = 8192


def validate_email(value: object) -> tuple[str | None, str | None]:
    """The normalised address (email-validator's form, lower-cased: mainstream providers treat
    local parts case-insensitively, and the contact hash must not change with the case), or
    the error. No DNS lookup: deliverability is not checked."""
    if not isinstance(value, str) or not value.strip():
        return None, MISSING
    return _validate_email(value)


@functools.lru_cache(maxsize=_CACHED)
def _validate_email(value: str) -> tuple[str | None, str | None]:
    try:
        result = _email_validator(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"{INVALID}: {exc}"
    if is_fake_local(result.local_part):
        return None, FAKE
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
