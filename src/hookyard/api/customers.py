"""`/api/v1/customers`: a tenant's customers, their field-level sync state and HubSpot log;
`/api/v1/hubspot/companies/search`: HubSpot's companies, to link a new customer to one.

Viewers read; members create and change customers (and search HubSpot); admins close them.
Every query is limited to the caller's tenant (`scope.tenant`), and another tenant's
customer answers 404, as a missing one does, whether asked by id or by BAN.

Personal data: a customer is a company. Its fields (BAN, company name, status, type, money,
services) and its sync log (the same fields as HubSpot properties) hold none of the kinds
masked for viewers (e-mail, phone, document numbers), so viewers see customers unmasked.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from sqlalchemy import Engine, RowMapping, select

from hookyard.accounts.identity import Role
from hookyard.api.auth import AdminScope, ErrorBody, MemberScope, Scope, ViewerScope
from hookyard.api.params import RowId
from hookyard.api.schemas import optional_not_null
from hookyard.api.sync import (
    CustomerField,
    Reader,
    Services,
    errors,
    writer,
)
from hookyard.domain.crm import queries
from hookyard.domain.crm.rules import (
    MAX_CENTS,
    RULES,
    SERVICES,
    Authority,
    Direction,
    OnTheirChange,
    UnusableValue,
    active,
)
from hookyard.domain.crm.service import BAN_PATTERN
from hookyard.domain.crm.tables import customers
from hookyard.domain.crm.tenancy import TENANT_ID, BanOfAnotherTenant
from hookyard.http import ApiError
from hookyard.sync import hubspot as crm_sync

router = APIRouter(prefix="/api/v1")

Service = Literal["voice", "messaging", "telecom_data"]
assert set(SERVICES) == {"voice", "messaging", "telecom_data"}

# Text the field rules accept: not blank once trimmed (Python's idea of blank, which also
# counts the ASCII separators \x1c-\x1f and \x85), no NUL. Said in the schema, so a request
# the schema allows is one the rules take.
_TEXT = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=_TEXT)]
Word = Annotated[str, Field(min_length=1, max_length=30, pattern=_TEXT)]
# Money: a number, or a decimal as text, whose cents (rounded) fit the rules' range.
_MONEY_MAX = MAX_CENTS // 100 - 1
Money = Annotated[
    Decimal,
    Field(ge=-_MONEY_MAX, le=_MONEY_MAX, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": -_MONEY_MAX, "maximum": _MONEY_MAX},
                {"type": "string", "pattern": r"^-?[0-9]{1,12}(\.[0-9]{1,6})?$"},
            ]
        }
    ),
]
CLOSED: Final = "closed"


# A HubSpot company id (HubSpot's object ids are numbers, sent as text).
CompanyId = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]


class NewCustomer(BaseModel):
    """A new customer, which is a tenant (docs/sync.md): the caller's tenant, or for a
    superadmin the one picked with X-Customer-ID or named in `tenant`, or else a new one.
    With `hubspot_company_id` it is linked to that existing HubSpot company instead of a
    new one being made: `company_name` then defaults to the company's name, and HubSpot's
    credit limit, when the company has one, wins over the one given (HubSpot's authority)."""

    model_config = ConfigDict(extra="forbid")

    company_name: Name | None = None
    hubspot_company_id: CompanyId | None = None
    tenant: str | None = Field(
        default=None,
        pattern=f"^{TENANT_ID.pattern}$",
        description="superadmins: the id of the tenant this customer is, created when it does"
        " not exist (default: a new tenant, its id the company name as a slug)",
    )
    status: Word = "active"
    customer_type: Word = "business"
    credit_limit: Money | None = None
    current_balance: Money = Decimal(0)
    services: list[Service] = Field(default=[], max_length=10)

    @model_validator(mode="after")
    def _named(self) -> NewCustomer:
        if self.company_name is None and self.hubspot_company_id is None:
            raise ValueError("company_name is required (unless hubspot_company_id is given)")
        return self


class CustomerChange(BaseModel):
    """The fields to change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=optional_not_null)

    company_name: Name | None = None
    status: Word | None = None
    customer_type: Word | None = None
    credit_limit: Money | None = None
    current_balance: Money | None = None
    services: list[Service] | None = Field(default=None, max_length=10)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"leave out the fields not to change, not null: {nulls}")
        return data


class CustomerCreated(BaseModel):
    id: int
    ban: str
    tenant: str = Field(description="the tenant the customer is: X-Customer-ID takes it or the BAN")
    hubspot_company_id: str | None
    sync: Literal["synced", "queued"]
    error: str | None = None


class CustomerLinkRefused(ErrorBody):
    pass


class CustomerRefusal(ErrorBody):
    fields: dict[str, str] = Field(default={}, description="HubSpot's error per field")


class CustomerQueued(BaseModel):
    queued: bool = Field(description="HubSpot is configured: the change is on its way")
    fields: list[str]


class CustomerClosed(BaseModel):
    id: int
    status: Literal["closed"]
    changed: bool = Field(description="false: it was closed already, nothing was sent")
    queued: bool = Field(description="HubSpot is configured: the change is on its way")


_MONEY_TEXT = "a decimal with two places, as text (`1500.00`)"


class CustomerOut(BaseModel):
    id: int
    tenant: str | None
    ban: str
    company_name: str
    status: str
    customer_type: str
    credit_limit: str | None = Field(description=_MONEY_TEXT)
    current_balance: str = Field(description=_MONEY_TEXT)
    services: list[Service]
    hubspot_company_id: str | None
    hubspot_deleted_at: datetime | None
    last_synced_at: datetime | None
    sync_source: str | None
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    total: int
    limit: int
    offset: int


class FieldState(BaseModel):
    """One field on both sides: ours and when it changed, HubSpot's and its time, and what
    we last sent (HubSpot's webhook carrying that value back is our echo)."""

    field: CustomerField
    hubspot_property: str
    direction: Direction
    authority: Authority
    on_their_change: OnTheirChange
    our_value: str | None
    our_changed_at: datetime | None
    their_value: str | None
    their_changed_at: datetime | None
    pushed_value: str | None
    pushed_at: datetime | None


class CustomerDetail(CustomerOut):
    fields: list[FieldState]
    open_conflicts: int
    sync_pending: bool = Field(description="a change is waiting in the outbox")


class SyncLogRow(BaseModel):
    id: int
    customer_id: int | None
    ban: str | None
    direction: str
    operation: str
    properties: dict[str, Any] | None
    result: str
    detail: str | None
    at: datetime


def _out(row: RowMapping) -> dict[str, Any]:
    values = {rule.field: rule.current(row) for rule in RULES}
    return dict(row) | {
        "credit_limit": values["credit_limit"],
        "current_balance": values["current_balance"],
        "services": [s for s in (values["services"] or "").split(";") if s],
    }


_SIDES = ("our_value", "our_changed_at", "their_value", "their_changed_at", "pushed_value",
          "pushed_at")  # fmt: skip


def _detail(engine: Engine, customer: RowMapping) -> CustomerDetail:
    with engine.connect() as conn:
        states = queries.field_states(conn, customer["id"])
        conflicts = queries.open_conflicts(conn, customer["id"])
        pending = queries.sync_pending(conn, customer["id"])
    fields = []
    for rule in active().rules:
        state = states.get(rule.field)  # none for a field added after the customer
        fields.append(
            {"field": rule.field, "hubspot_property": rule.hubspot_property,
             "direction": rule.direction, "authority": rule.authority,
             "on_their_change": rule.on_their_change}
            | {side: None if state is None else state[side] for side in _SIDES}
        )  # fmt: skip
    return CustomerDetail.model_validate(
        _out(customer) | {"fields": fields, "open_conflicts": conflicts, "sync_pending": pending}
    )


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerCreated,
    responses=errors(409, 503)
    | {400: {"model": CustomerRefusal, "description": "a value HubSpot or the rules refuse"}},
)
def create_customer(services: Services, scope: MemberScope, body: NewCustomer) -> Any:
    """Create a customer (a generated BAN) and push it to HubSpot at once: `synced`, or
    `queued` when HubSpot is not configured or unreachable. HubSpot refusing it removes it
    again: 400 with HubSpot's error per field. With `hubspot_company_id`, the customer is
    linked to that company and ours are pushed to it: 409 when another customer is linked
    to it, 404 when HubSpot has no such company, 400 when HubSpot is not configured.

    The customer is a tenant: a member creates it in their own tenant; a superadmin in the
    tenant picked with X-Customer-ID, or named in `tenant` (created if missing), or else
    in a new tenant named after the company."""
    tenant = _tenant_to_create_in(scope, body.tenant)
    try:
        created = crm_sync.create_customer(
            writer(services),
            services.hubspot,
            tenant,
            body.company_name,
            services.policy,
            hubspot_company_id=body.hubspot_company_id,
            status=body.status,
            customer_type=body.customer_type,
            credit_limit=body.credit_limit,
            current_balance=body.current_balance,
            services=body.services,
        )
    except UnusableValue as exc:
        raise HTTPException(400, str(exc)) from None
    except BanOfAnotherTenant as exc:
        raise HTTPException(409, str(exc)) from None
    except crm_sync.LinkRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ApiError as exc:  # HubSpot did not answer when asked for the company
        raise HTTPException(503, f"HubSpot did not answer: {exc}") from None
    except crm_sync.CustomerRefused as exc:
        return JSONResponse(
            {"detail": f"HubSpot refused the customer: {exc}", "fields": exc.fields},
            status_code=400,
        )
    with writer(services).connect() as conn:
        made = queries.get_customer(conn, created.customer_id, tenant=None)
    if made is None:  # pragma: no cover - nothing but a refused creation removes one
        raise HTTPException(404, f"no customer {created.customer_id}")
    return CustomerCreated(
        id=created.customer_id,
        ban=created.ban,
        tenant=made["tenant"],
        hubspot_company_id=created.hubspot_company_id,
        sync="synced" if created.synced else "queued",
        error=created.error,
    )


def _tenant_to_create_in(scope: Scope, named: str | None) -> str | None:
    """None: a new tenant (a superadmin who picked none and named none)."""
    if named is None or named == scope.tenant:
        return scope.tenant
    if scope.principal.role is not Role.SUPERADMIN:
        raise HTTPException(403, "`tenant` names another tenant: superadmins only")
    if scope.tenant is not None:
        raise HTTPException(400, f"tenant {named!r} is not the X-Customer-ID picked")
    return named


class FoundCompany(BaseModel):
    """A HubSpot company, and whether a customer is linked to it already: `customer_id` is
    given when that customer is the caller's tenant's (another tenant's stays unnamed)."""

    id: str
    name: str | None
    domain: str | None
    ban: str | None = Field(description="the BAN property, when the company carries one")
    linked: bool
    customer_id: int | None


class CompanySearch(BaseModel):
    results: list[FoundCompany]
    total: int = Field(description="companies matching, as HubSpot counts them")
    after: str | None = Field(description="HubSpot's cursor of the next page (`after=`)")


@router.get(
    "/hubspot/companies/search",
    response_model=CompanySearch,
    responses=errors(400, 503),
)
def search_companies(
    services: Services,
    engine: Reader,
    scope: MemberScope,
    q: Annotated[
        str, Query(min_length=1, max_length=100, pattern=_TEXT, description="name, domain or BAN")
    ],
    after: Annotated[
        str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_=-]+$", description="cursor")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> CompanySearch:
    """HubSpot's companies matching `q` (HubSpot's search API): a BAN (two letters, nine
    digits) is looked up in the BAN property, anything else in the company name, domain,
    website and phone. Paged with HubSpot's own cursor; searches are spaced to stay within
    HubSpot's rate (a 429 from HubSpot after the client's retries is a 503)."""
    if services.hubspot is None:
        raise HTTPException(400, "HubSpot is not configured (HOOKYARD_HUBSPOT_ACCESS_TOKEN)")
    rules = active()
    props = [rules.prop("company_name"), "domain", rules.prop("ban")]
    text = q.strip()
    filters = []
    if BAN_PATTERN.fullmatch(text):
        filters = [{"propertyName": rules.prop("ban"), "operator": "EQ", "value": text}]
    try:
        found = services.hubspot.search(
            props, query=None if filters else text, filters=filters, after=after, limit=limit
        )
    except ApiError as exc:
        if exc.status == 400:
            raise HTTPException(400, f"HubSpot refused the search: {exc}") from None
        raise HTTPException(503, f"HubSpot did not answer: {exc}") from None
    ids = [str(c["id"]) for c in found.results]
    with engine.connect() as conn:
        linked = {
            row.hubspot_company_id: row
            for row in conn.execute(
                select(customers.c.id, customers.c.tenant, customers.c.hubspot_company_id).where(
                    customers.c.hubspot_company_id.in_(ids)
                )
            )
        }
    results = []
    for company in found.results:
        cid = str(company["id"])
        props_of = company["properties"]
        row = linked.get(cid)
        mine = row is not None and (scope.tenant is None or row.tenant == scope.tenant)
        results.append(
            FoundCompany(
                id=cid,
                name=props_of.get(rules.prop("company_name")),
                domain=props_of.get("domain"),
                ban=props_of.get(rules.prop("ban")),
                linked=row is not None,
                customer_id=row.id if mine and row is not None else None,
            )
        )
    return CompanySearch(results=results, total=found.total, after=found.after)


@router.get("/customers", response_model=CustomerPage, responses=errors())
def list_customers(
    engine: Reader,
    scope: ViewerScope,
    status: Annotated[str | None, Query(min_length=1, max_length=30)] = None,
    customer_type: Annotated[str | None, Query(min_length=1, max_length=30)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=255, description="company name contains")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CustomerPage:
    with engine.connect() as conn:
        page = queries.list_customers(
            conn, tenant=scope.tenant, status=status, customer_type=customer_type,
            name_contains=q, limit=limit, offset=offset,
        )  # fmt: skip
    items = [CustomerOut.model_validate(_out(r)) for r in page.rows]
    return CustomerPage(items=items, total=page.total, limit=limit, offset=offset)


# Declared before /customers/{customer_id}/…: `/customers/by-ban/sync-log` is a BAN lookup.
@router.get("/customers/by-ban/{ban}", response_model=CustomerDetail, responses=errors(400))
def customer_by_ban(
    engine: Reader,
    scope: ViewerScope,
    ban: Annotated[
        str,
        Path(
            description="two capital letters and nine digits",
            # In the schema for clients; checked here, so a wrong one gets a reason (400).
            json_schema_extra={"pattern": f"^{BAN_PATTERN.pattern}$"},
        ),
    ],
) -> CustomerDetail:
    if not BAN_PATTERN.fullmatch(ban):
        raise HTTPException(
            400, f"not a BAN: {ban[:40]!r} (two capital letters and nine digits: AB123456789)"
        )
    with engine.connect() as conn:
        found = queries.customer_by_ban(conn, ban, tenant=scope.tenant)
    if found is None:
        raise HTTPException(404, f"no customer with BAN {ban}")
    return _detail(engine, found)


@router.get("/customers/{customer_id}", response_model=CustomerDetail, responses=errors())
def show_customer(engine: Reader, scope: ViewerScope, customer_id: RowId) -> CustomerDetail:
    with engine.connect() as conn:
        found = queries.get_customer(conn, customer_id, tenant=scope.tenant)
    if found is None:
        raise HTTPException(404, f"no customer {customer_id}")
    return _detail(engine, found)


@router.patch(
    "/customers/{customer_id}",
    status_code=202,
    response_model=CustomerQueued,
    responses=errors(400),
)
def change_customer(
    services: Services, scope: MemberScope, customer_id: RowId, body: CustomerChange
) -> CustomerQueued:
    """Change our side of fields now; the outbound ones join the customer's outbox row,
    sent with the customer's values at sending time."""
    # As JSON: decimals as text and services as names, what the field rules parse.
    changes = body.model_dump(mode="json", exclude_none=True)
    if not changes:
        raise HTTPException(400, "nothing to change")
    try:
        found = crm_sync.update_customer(
            writer(services), customer_id, changes, tenant=scope.tenant
        )
    except UnusableValue as exc:
        raise HTTPException(400, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no customer {customer_id}")
    if services.on_fed is not None:
        services.on_fed()  # wake a worker: the outbox row is due now
    return CustomerQueued(queued=services.hubspot is not None, fields=sorted(changes))


@router.delete(
    "/customers/{customer_id}",
    status_code=202,
    response_model=CustomerClosed,
    responses=errors() | {200: {"model": CustomerClosed, "description": "closed already"}},
)
def close_customer(
    services: Services, engine: Reader, scope: AdminScope, customer_id: RowId, response: Response
) -> CustomerClosed:
    """Delete = close: the customer's status becomes `closed`, as our change, and goes to
    HubSpot through the outbox like any other (202). Nothing is removed: the field state,
    conflicts, outbox rows and sync log stay as the record of what happened (and the
    foreign keys to the customer stay whole), the HubSpot company stays linked, and the
    BAN stays taken. Open conflicts stay for an admin to decide. Closing a closed customer
    changes nothing (200). `PATCH {"status": …}` reopens one."""
    with engine.connect() as conn:
        found = queries.get_customer(conn, customer_id, tenant=scope.tenant)
    if found is None:
        raise HTTPException(404, f"no customer {customer_id}")
    queued = services.hubspot is not None
    if found["status"] == CLOSED:
        response.status_code = 200
        return CustomerClosed(id=customer_id, status=CLOSED, changed=False, queued=False)
    if not crm_sync.update_customer(
        writer(services), customer_id, {"status": CLOSED}, tenant=scope.tenant
    ):
        raise HTTPException(404, f"no customer {customer_id}")  # gone meanwhile
    if services.on_fed is not None:
        services.on_fed()
    return CustomerClosed(id=customer_id, status=CLOSED, changed=True, queued=queued)


@router.get(
    "/customers/{customer_id}/sync-log", response_model=list[SyncLogRow], responses=errors()
)
def customer_sync_log(
    engine: Reader,
    scope: ViewerScope,
    customer_id: RowId,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> Any:
    with engine.connect() as conn:
        found = queries.get_customer(conn, customer_id, tenant=scope.tenant)
        if found is None:
            raise HTTPException(404, f"no customer {customer_id}")
        return queries.sync_log_of(conn, found, limit)


class SyncLogPage(BaseModel):
    items: list[SyncLogRow]
    total: int
    limit: int
    offset: int


@router.get("/sync-log", response_model=SyncLogPage, responses=errors())
def sync_log(
    engine: Reader,
    scope: ViewerScope,
    result: Annotated[str | None, Query(min_length=1, max_length=20, pattern=_TEXT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> SyncLogPage:
    """The tenant's exchanges with HubSpot, both ways, newest first: what was sent or
    received and how it ended (`ok`, `not_applied` for a HubSpot change of a field we own,
    `retry`, `failed`, `refused`…)."""
    with engine.connect() as conn:
        page = queries.list_sync_log(
            conn, tenant=scope.tenant, result=result, limit=limit, offset=offset
        )
    items = [SyncLogRow.model_validate(dict(r)) for r in page.rows]
    return SyncLogPage(items=items, total=page.total, limit=limit, offset=offset)
