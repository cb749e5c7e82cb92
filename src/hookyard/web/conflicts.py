"""Dashboard page of CRM sync conflicts: HubSpot holding another value of a field we own,
by state (open by default), and an admin deciding one (keep ours or take theirs). Each
reads and changes through the API's route functions (`api/sync.py`, `api/customers.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import Response

from hookyard.api import customers as customers_api
from hookyard.api import sync as api
from hookyard.api.auth import Scope
from hookyard.api.params import RowId
from hookyard.domain.crm.queries import ConflictState
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()

# The API pages conflicts by offset; the same bounds as its `offset` parameter.
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
# The two decisions a person makes (`superseded` is hookyard's own); anything else is a 400.
Decided = Annotated[Literal["keep_ours", "take_theirs"], Form()]


@router.get("/conflicts")
def list_conflicts(
    request: Request, scope: UiScope, state: Word = "", offset: Offset = 0
) -> Response:
    picked = choice(ConflictState, state) or ConflictState.OPEN
    found = call(
        api.list_conflicts,
        request,
        scope,
        state=picked,
        customer_id=None,
        field=None,
        limit=PAGE,
        offset=offset,
    )
    return page(
        request,
        scope,
        "conflicts.html",
        conflicts=found.items,
        total=found.total,
        offset=offset,
        limit=PAGE,
        state=picked.value,
        states=[s.value for s in ConflictState],
        names=_company_names(request, scope, {c.customer_id for c in found.items}),
    )


def _company_names(request: Request, scope: Scope, ids: set[int]) -> dict[int, str]:
    """The company name of each customer on the page (a conflict names its customer by id
    only), through the API's own customer route."""
    names = {}
    for customer_id in sorted(ids):
        try:
            found = call(customers_api.show_customer, request, scope, customer_id=customer_id)
        except HTTPException:  # no longer found: the id alone, as the conflict has it
            continue
        names[customer_id] = found.company_name
    return names


@router.post("/conflicts/{conflict_id:int}/resolve", dependencies=[Csrf])
def resolve(request: Request, scope: UiScope, conflict_id: RowId, resolution: Decided) -> Response:
    """Decide a conflict (admins); deciding one already decided is the API's 409."""
    call(
        api.resolve,
        request,
        scope,
        conflict_id=conflict_id,
        body=api.Decision(resolution=resolution),
    )
    return back(request, "/ui/conflicts", "resolved")
