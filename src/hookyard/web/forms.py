"""What every dashboard page takes from a query or a form: words (bounded, no NUL, as the
API takes them), optional enum filters, and the page size."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import Form, HTTPException, Query

from hookyard.api.schemas import NO_NUL

E = TypeVar("E", bound=StrEnum)
Word = Annotated[str, Query(max_length=200, pattern=NO_NUL)]
FormWord = Annotated[str, Form(max_length=200, pattern=NO_NUL)]
PAGE = 50  # rows of a list page


def choice(kind: type[E], value: str) -> E | None:
    """A filter's value from a form: empty is 'any', anything else must be one of `kind`."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(v.value for v in kind)
        raise HTTPException(400, f"{value!r} is not one of {known}") from None
