"""Masking personal data for callers who may not see it (viewers: see
`Principal.sees_personal_data`): people's names, e-mail addresses, phone numbers and document
numbers.

A mask keeps a hint to tell records apart (`m***@example.com`, `***4321`, `***09`), never
enough to contact or identify the person. Structured data of unknown shape (what an
enrichment service answered) is masked by field name *and* by the look of each value, so a
phone number under a field called `contact` is masked too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hookyard.contacts import mask_email, mask_phone

__all__ = [
    "MAX_DEPTH",
    "clip_depth",
    "mask_document",
    "mask_email",
    "mask_error",
    "mask_name",
    "mask_personal",
    "mask_phone",
    "mask_text",
]

# How deep JSON shown by the API may nest. A payload is whatever a sender posted, and JSON
# parsers take a thousand levels; code walking it by recursion (the masks, pydantic's
# serialiser, which stops at 255) must not fail on it. Real webhook bodies nest a few
# levels; a value below this depth is replaced, masked for viewers.
MAX_DEPTH = 64
TOO_DEEP = "(nested too deep to show)"

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


def _name(value: str) -> str:
    return mask_name(value) or ""


def mask_name(name: str | None) -> str | None:
    """`J*** S***`: each word's first letter, to tell people apart without naming them."""
    if not name:
        return name
    return " ".join(word[:1] + "***" for word in name.split()) or "***"


# A value an error message quotes ('x', "x"): exceptions echo what they failed on.
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def mask_error(text: str | None) -> str | None:
    """An error text of an event (a handler's message can quote the payload): quoted values,
    e-mail addresses and long numbers masked, the rest (the exception's kind, the words
    around) kept."""
    if not text:
        return text
    return mask_text(_QUOTED.sub("'***'", text))


def clip_depth(
    value: Any,
    replacement: Any = TOO_DEEP,
    max_depth: int = MAX_DEPTH,
    *,
    hide: Callable[[str], bool] | None = None,
) -> Any:
    """A JSON-like value with whatever nests deeper than `max_depth` containers replaced
    (see MAX_DEPTH), and with `hide`, the value of every key it names (at any depth) replaced
    too (null stays null); built without recursion, so any depth is safe."""
    root: list[Any] = [None]
    # (value to copy, the container that receives the copy, its key or index, its depth)
    pending: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while pending:
        item, parent, slot, depth = pending.pop()
        if isinstance(item, dict | list | tuple) and depth >= max_depth:
            parent[slot] = replacement
        elif isinstance(item, dict):
            copy: dict[Any, Any] = dict.fromkeys(item)
            parent[slot] = copy
            for key, inner in item.items():
                if hide is not None and hide(str(key)):
                    copy[key] = None if inner is None else replacement
                else:
                    pending.append((inner, copy, key, depth + 1))
        elif isinstance(item, list | tuple):
            listed: list[Any] = [None] * len(item)
            parent[slot] = listed
            pending.extend((v, listed, i, depth + 1) for i, v in enumerate(item))
        else:
            parent[slot] = item
    return root[0]


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
_NAMES = ("name", "nome", "fullname", "nomecompleto", "firstname", "lastname", "surname",
          "givenname", "familyname", "mothername", "fathername", "nomemae", "nomepai")  # fmt: skip
_EQUALS: dict[str, Mask] = {
    **dict.fromkeys(_NAMES, _name),
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


def mask_personal(value: Any, mask: Mask | None = None, depth: int = 0) -> Any:
    """JSON-like data with its personal values masked: values under a personal field name
    (`name`, `email`, `phone`, `cpf`, `document_number`, …, at any depth) by that field's kind, and
    e-mail addresses and long numbers anywhere else. Other values are kept; whatever nests
    deeper than MAX_DEPTH is masked whole."""
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return "***"
    if isinstance(value, dict):
        return {
            key: mask_personal(
                item, (_mask_of(key) if isinstance(key, str) else None) or mask, depth + 1
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_personal(item, mask, depth + 1) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if mask is not None or len(str(abs(value))) >= 8:
            return (mask or _document)(str(value))
        return value
    if isinstance(value, str):
        return mask(value) if mask is not None else mask_text(value)
    return value
