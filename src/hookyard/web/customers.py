"""Dashboard pages of customers: the list (search, status, paging), one customer with each
field on both sides, its sync state, sync log and outbox rows; the create form (linking a
company found in HubSpot, or making a new one), the edit form, closing (admins); the
outbox queue (retry, admins) and the sync log. Each reads and changes through the API's
route functions (`api/customers.py`, `api/sync.py`), so a person sees and does exactly what
the API lets them; a form the API refuses comes back with the reason beside each field
(answered 200, as the page it is: the browser shows it like any other)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from hookyard.api import customers as api
from hookyard.api import sync as sync_api
from hookyard.api.auth import Scope
from hookyard.api.params import RowId
from hookyard.domain.crm.rules import SERVICES
from hookyard.web.forms import PAGE, Word
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()

Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Field = Annotated[str, Form(max_length=300)]
Picked = Annotated[list[str], Form()]
OUTBOX_STATES = ("pending", "sending", "done", "failed")
EDITABLE = ("company_name", "status", "customer_type", "credit_limit", "current_balance")


@router.get("/customers")
def list_customers(
    request: Request, scope: UiScope, q: Word = "", status: Word = "", offset: Offset = 0
) -> Response:
    found = call(
        api.list_customers,
        request,
        scope,
        status=status[:30] or None,
        customer_type=None,
        q=q[:255] or None,
        limit=PAGE,
        offset=offset,
    )
    return page(
        request,
        scope,
        "customers.html",
        customers=found.items,
        total=found.total,
        offset=offset,
        limit=PAGE,
        filters={"q": q, "status": status},
    )


@router.get("/customers/new")
def new_customer(
    request: Request, scope: UiScope, hubspot_company_id: Word = "", company_name: Word = ""
) -> Response:
    """The form; a company picked from the search comes back in the query."""
    _may_change(scope)
    values = {"hubspot_company_id": hubspot_company_id, "company_name": company_name,
              "status": "active", "customer_type": "business", "credit_limit": "",
              "current_balance": "0", "services": []}  # fmt: skip
    return _form(request, scope, values, {})


@router.get("/customers/companies")
def companies(request: Request, scope: UiScope, q: Word = "", after: Word = "") -> Response:
    """The create form's company search, as a fragment (htmx) or a page of its own."""
    found = None
    if q.strip():
        found = call(
            api.search_companies,
            request,
            scope,
            q=q.strip()[:100],
            after=after or None,
            limit=10,
        )
    return page(request, scope, "fragments/companies.html", found=found, q=q)


@router.post("/customers/new", dependencies=[Csrf])
def create_customer(
    request: Request,
    scope: UiScope,
    company_name: Field = "",
    hubspot_company_id: Field = "",
    status: Field = "active",
    customer_type: Field = "business",
    credit_limit: Field = "",
    current_balance: Field = "0",
    services: Picked = [],  # noqa: B006 (FastAPI copies defaults)
) -> Response:
    values: dict[str, Any] = {
        "company_name": company_name, "hubspot_company_id": hubspot_company_id,
        "status": status, "customer_type": customer_type, "credit_limit": credit_limit,
        "current_balance": current_balance, "services": services,
    }  # fmt: skip
    given = {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()}
    body = {k: v for k, v in given.items() if v != ""}
    if not body.get("hubspot_company_id"):
        body["company_name"] = given["company_name"]  # required: its error beside it
    try:
        new = api.NewCustomer.model_validate(body)
    except ValidationError as exc:
        return _form(request, scope, values, _field_errors(exc))
    try:
        created = call(api.create_customer, request, scope, body=new)
    except HTTPException as exc:
        if exc.status_code in (400, 404, 409, 503):
            where = "hubspot_company_id" if new.hubspot_company_id else "form"
            return _form(request, scope, values, {where: str(exc.detail)})
        raise
    if isinstance(created, JSONResponse):  # HubSpot refused it: its reason per field
        refusal = api.CustomerRefusal.model_validate_json(bytes(created.body))
        errors = dict(refusal.fields) or {"form": refusal.detail}
        return _form(request, scope, values, errors)
    return back(request, f"/ui/customers/{created.id}", "customer_created")


@router.get("/customers/outbox")
def outbox(request: Request, scope: UiScope, status: Word = "") -> Response:
    picked = status if status in OUTBOX_STATES else None
    rows = call(
        sync_api.list_outbox, request, scope, status=picked, customer_id=None, limit=PAGE * 2
    )
    return page(
        request, scope, "customer_outbox.html", rows=rows, picked=picked or "",
        states=OUTBOX_STATES,
    )  # fmt: skip


@router.post("/customers/outbox/{row_id:int}/retry", dependencies=[Csrf])
def retry(request: Request, scope: UiScope, row_id: RowId) -> Response:
    call(sync_api.retry_outbox, request, scope, row_id=row_id)
    return back(request, "/ui/customers/outbox", "retried")


@router.get("/customers/sync-log")
def sync_log(request: Request, scope: UiScope, result: Word = "", offset: Offset = 0) -> Response:
    found = call(
        api.sync_log, request, scope, result=result[:20] or None, limit=PAGE, offset=offset
    )
    return page(
        request, scope, "customer_sync_log.html", rows=found.items, total=found.total,
        offset=offset, limit=PAGE, result=result,
    )  # fmt: skip


@router.get("/customers/{customer_id:int}")
def show_customer(request: Request, scope: UiScope, customer_id: RowId) -> Response:
    customer = call(api.show_customer, request, scope, customer_id=customer_id)
    log = call(api.customer_sync_log, request, scope, customer_id=customer_id, limit=50)
    rows = call(
        sync_api.list_outbox, request, scope, status=None, customer_id=customer_id, limit=20
    )
    return page(request, scope, "customer.html", customer=customer, log=log, outbox=rows)


@router.get("/customers/{customer_id:int}/edit")
def edit_form(request: Request, scope: UiScope, customer_id: RowId) -> Response:
    _may_change(scope)
    customer = call(api.show_customer, request, scope, customer_id=customer_id)
    return _form(request, scope, _current(customer), {}, customer)


@router.post("/customers/{customer_id:int}/edit", dependencies=[Csrf])
def edit(
    request: Request,
    scope: UiScope,
    customer_id: RowId,
    company_name: Field = "",
    status: Field = "",
    customer_type: Field = "",
    credit_limit: Field = "",
    current_balance: Field = "",
    services: Picked = [],  # noqa: B006
) -> Response:
    """Send only what changed (the API queues those fields for HubSpot)."""
    customer = call(api.show_customer, request, scope, customer_id=customer_id)
    values: dict[str, Any] = {
        "company_name": company_name, "status": status, "customer_type": customer_type,
        "credit_limit": credit_limit, "current_balance": current_balance, "services": services,
    }  # fmt: skip
    current = _current(customer)
    changes: dict[str, Any] = {
        k: v.strip() for k, v in values.items()
        if k in EDITABLE and v.strip() != current[k] and not _same_money(k, v, current[k])
    }  # fmt: skip
    if sorted(services) != sorted(current["services"]):
        changes["services"] = services
    if not changes:
        return _form(request, scope, values, {"form": "nothing changed"}, customer)
    try:
        body = api.CustomerChange.model_validate(changes)
    except ValidationError as exc:
        return _form(request, scope, values, _field_errors(exc), customer)
    try:
        call(api.change_customer, request, scope, customer_id=customer_id, body=body)
    except HTTPException as exc:
        if exc.status_code == 400:
            return _form(request, scope, values, {"form": str(exc.detail)}, customer)
        raise
    return back(request, f"/ui/customers/{customer_id}", "customer_changed")


@router.post("/customers/{customer_id:int}/close", dependencies=[Csrf])
def close(request: Request, scope: UiScope, customer_id: RowId) -> Response:
    call(api.close_customer, request, scope, customer_id=customer_id, response=Response())
    return back(request, f"/ui/customers/{customer_id}", "customer_closed")


# -- forms ----------------------------------------------------------------------------------


def _may_change(scope: Scope) -> None:
    if not scope.principal.at_least("member"):
        raise HTTPException(403, "this needs the member role")


def _current(customer: Any) -> dict[str, Any]:
    return {
        "company_name": customer.company_name, "status": customer.status,
        "customer_type": customer.customer_type, "credit_limit": customer.credit_limit or "",
        "current_balance": customer.current_balance, "services": list(customer.services),
    }  # fmt: skip


def _same_money(field: str, given: str, current: str) -> bool:
    """`1500` and `1500.00` are the same credit limit (an empty limit is left as it is)."""
    if field not in ("credit_limit", "current_balance"):
        return False
    if not given.strip():
        return field == "credit_limit"
    try:
        return Decimal(given.strip()) == Decimal(current or "NaN")
    except ArithmeticError:
        return False


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors as one message per form field (`form` for the whole form)."""
    found: dict[str, str] = {}
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.setdefault(where, message)
    return found


def _form(
    request: Request,
    scope: Scope,
    values: dict[str, Any],
    errors: dict[str, str],
    customer: Any = None,
) -> Response:
    """The create form (no `customer`) or a customer's edit form, with field errors inline."""
    return page(
        request, scope, "customer_form.html", customer=customer, values=values, errors=errors,
        services=SERVICES,
    )  # fmt: skip
