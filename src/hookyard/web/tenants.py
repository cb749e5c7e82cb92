"""The superadmin's tenant picker: a searchable list of customers (name and BAN) and the
tenants they are, as an htmx fragment of the header's picker; picking one posts to
`/ui/tenant` (web/app.py). Superadmins only, as the API's `GET /api/v1/tenants/search`
it calls: anyone else gets 403, and sees no other tenant's name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from hookyard.api import accounts as api
from hookyard.web.render import page
from hookyard.web.session import UiScope, call

router = APIRouter()

CHOICES = 20


@router.get("/tenants")
def tenant_choices(
    request: Request, scope: UiScope, q: Annotated[str, Query(max_length=100)] = ""
) -> Response:
    found = call(api.search_tenants, request, scope, q=q, limit=CHOICES)
    return page(request, scope, "fragments/tenant_choices.html", choices=found, q=q)
