"""Parameter types every route family shares: ids a BIGINT column can hold (a larger one
must never reach the database), page sizes and cursors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="`next_cursor` of the previous page")
]


def next_cursor(items: list[Any], limit: int) -> int | None:
    """The `before_id` of the next page: the last id, when the page came back full."""
    return int(items[-1].id) if len(items) == limit else None
