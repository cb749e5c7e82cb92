"""Masking personal data for callers who may not see it (viewers: see
`Principal.sees_personal_data`): e-mail addresses, phone numbers and document numbers.

A mask keeps a hint to tell records apart (`m***@example.com`, `***4321`, `***09`), never
enough to contact or identify the person. Structured data of unknown shape (what an
enrichment service answered) is masked by field name *and* by the look of each value, so a
phone number under a field called `contact` is masked too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hookyard.domain.leads.validation import mask_email, mask_phone

__all__ = ["mask_document", "mask_email", "mask_personal", "mask_phone", "mask_text"]

# An address inside free text; and a run of 8 or more digits (a phone or document number,
# written with or without separators). A date written with digits is such a run too: masked,
# which is right for a birth date and harmless elsewhere.
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"\+?\d(?:[ ./()-]*\d){7,}")
_NOT_DIGIT = re.compile(r"\D")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")

Mask = Callable[[str], str]


def mask_document(value: str | None) -> str | None:
    """`***09`: the last two characters only (a document number identifies the person)."""
    if not value:
        return value
    return "***" + value[-2:] if len(value) > 4 else "***"


def _document(value: str) -> str:
    return mask_document(value) or ""


def _email(value: str) -> str:
    return mask_email(value) or ""


def _phone(value: str) -> str:
    return mask_phone(value) or ""


def mask_text(text: str | None) -> str | None:
    """Free text (an error, a reason) with every e-mail address and long number masked."""
    if not text:
        return text
    text = _EMAIL.sub(lambda m: _email(m.group()), text)
    return _NUMBER.sub(lambda m: _document(_NOT_DIGIT.sub("", m.group())), text)


# Field names, lower case without separators: a name containing one of `_CONTAINS`, or equal
# to one of `_EQUALS` (short words, which would match inside unrelated names).
_CONTAINS: list[tuple[str, Mask]] = [
    ("email", _email),
    ("phone", _phone),
    ("mobile", _phone),
    ("celular", _phone),
    ("telefone", _phone),
    ("whatsapp", _phone),
    ("document", _document),
    ("passport", _document),
    ("taxid", _document),
    ("nationalid", _document),
]
_EQUALS: dict[str, Mask] = {
    "mail": _email,
    "cell": _phone,
    "fax": _phone,
    **dict.fromkeys(("cpf", "cnpj", "rg", "ssn", "sin", "nif", "dni", "tin", "ein"), _document),
}


def _mask_of(key: str) -> Mask | None:
    name = _NOT_ALNUM.sub("", key.lower())
    if name in _EQUALS:
        return _EQUALS[name]
    return next((mask for part, mask in _CONTAINS if part in name), None)


def mask_personal(value: Any, mask: Mask | None = None) -> Any:
    """JSON-like data with its personal values masked: values under a personal field name
    (`email`, `phone`, `cpf`, `document_number`, …, at any depth) by that field's kind, and
    e-mail addresses and long numbers anywhere else. Other values are kept."""
    if isinstance(value, dict):
        return {
            key: mask_personal(item, (_mask_of(key) if isinstance(key, str) else None) or mask)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_personal(item, mask) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if mask is not None or len(str(abs(value))) >= 8:
            return (mask or _document)(str(value))
        return value
    if isinstance(value, str):
        return mask(value) if mask is not None else mask_text(value)
    return value
