"""10DLC brand registrations as a person asked for them: the request completed with its
defaults, the row kept before TCR is called, and what TCR's answer makes of it (the brand
row, or the registry's own errors). Calling TCR and retrying is `sync/tcr_registration.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from hookyard.db.rows import insert_missing
from hookyard.domain.common import SyncSource
from hookyard.domain.crm.tables import customers
from hookyard.domain.tendlc.enums import Vertical
from hookyard.domain.tendlc.states import BrandStatus
from hookyard.domain.tendlc.tables import brand_registrations, brands

DEFAULT_RELATIONSHIP = "BASIC_ACCOUNT"
# The fields checked against TCR's enumerations before a call: TCR's field -> its enum name.
ENUM_FIELDS = {
    "entityType": "entityType",
    "vertical": "vertical",
    "brandRelationship": "brandRelationship",
}


class RegistrationStatus(StrEnum):
    PENDING = "PENDING"  # waiting for its (next) attempt
    SENDING = "SENDING"  # an attempt holds it (the API's first, or a worker's)
    REGISTERED = "REGISTERED"  # TCR took it: `brand_id` names the brand row
    FAILED = "FAILED"  # TCR refused it (its errors), or it never answered


class MissingField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def with_defaults(conn: Connection, tenant: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request as sent to TCR: `brandRelationship` BASIC_ACCOUNT, `companyName` the
    display name (else the tenant's customer's company), `vertical` the tenant's customer's
    (its customer type, when that names a TCR vertical). MissingField when one is still
    missing."""
    request = {k: v for k, v in fields.items() if v is not None and v != ""}
    request.setdefault("brandRelationship", DEFAULT_RELATIONSHIP)
    customer = _customer_of(conn, tenant)
    if "companyName" not in request:
        name = request.get("displayName") or (customer and customer["company_name"])
        if not name:
            raise MissingField("companyName", "companyName (or displayName) is required")
        request["companyName"] = name
    if "vertical" not in request:
        vertical = _vertical_of(customer)
        if vertical is None:
            raise MissingField(
                "vertical",
                "vertical is required: the tenant has no customer whose type is a TCR vertical",
            )
        request["vertical"] = vertical
    return request


def _customer_of(conn: Connection, tenant: str) -> Mapping[Any, Any] | None:
    """The tenant's customer (its first, when it has several)."""
    query = (
        select(customers.c.company_name, customers.c.customer_type)
        .where(customers.c.tenant == tenant)
        .order_by(customers.c.id)
        .limit(1)
    )
    return conn.execute(query).mappings().first()


def _vertical_of(customer: Mapping[Any, Any] | None) -> str | None:
    if customer is None:
        return None
    word = str(customer["customer_type"] or "").strip().upper().replace(" ", "_")
    return word if word in Vertical.__members__ else None


def add(
    tx: Connection, tenant: str, request: Mapping[str, Any], requested_by: str, now: datetime
) -> int:
    """The registration, kept PENDING and due now, before anyone calls TCR."""
    row_id: int = tx.execute(
        insert(brand_registrations)
        .values(
            tenant=tenant,
            request=dict(request),
            status=RegistrationStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            requested_by=requested_by[:100],
            created_at=now,
            updated_at=now,
        )
        .returning(brand_registrations.c.id)
    ).scalar_one()
    return row_id


def get(conn: Connection, row_id: int, tenant: str | None = None) -> dict[str, Any] | None:
    where = brand_registrations.c.id == row_id
    if tenant is not None:
        where = where & (brand_registrations.c.tenant == tenant)
    row = conn.execute(select(brand_registrations).where(where)).mappings().first()
    return None if row is None else dict(row)


def listed(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first."""
    query = select(brand_registrations).order_by(brand_registrations.c.id.desc()).limit(limit)
    if tenant is not None:
        query = query.where(brand_registrations.c.tenant == tenant)
    if status is not None:
        query = query.where(brand_registrations.c.status == status)
    if before_id is not None:
        query = query.where(brand_registrations.c.id < before_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def keep_brand(
    tx: Connection,
    tenant: str,
    request: Mapping[str, Any],
    answer: Mapping[str, Any],
    now: datetime,
) -> str:
    """The brand TCR registered, as a brand row of `tenant` (REGISTERED: TCR verifies it
    next, and says so by webhook). TCR's BRAND_ADD may have created the row already: then
    it is adopted if nobody owns it, and its newer state is left as it is."""
    brand_id = str(answer["brandId"])

    def given(key: str) -> Any:
        value = answer.get(key) or request.get(key)
        return str(value)[:255] if value else None

    insert_missing(
        tx,
        brands,
        {
            "brand_id": brand_id,
            "tenant": tenant,
            "display_name": given("displayName"),
            "company_name": given("companyName"),
            "entity_type": (given("entityType") or "")[:50] or None,
            "vertical": (given("vertical") or "")[:50] or None,
            "status": BrandStatus.REGISTERED.value,
            "identity_status": (str(answer.get("identityStatus") or "")[:30]) or None,
            "trust_score": answer.get("trustScore")
            if isinstance(answer.get("trustScore"), int)
            else None,
            "last_synced_at": now,
            "sync_source": SyncSource.MANUAL.value,
            "created_at": now,
        },
        ["brand_id"],
    )
    tx.execute(
        update(brands)
        .where(brands.c.brand_id == brand_id, brands.c.tenant.is_(None))
        .values(tenant=tenant)
    )
    return brand_id


def brand_updated(tx: Connection, brand_id: str, answer: Mapping[str, Any], now: datetime) -> None:
    """TCR's answer to an update of the brand, on its row."""
    values: dict[str, Any] = {"last_synced_at": now, "sync_source": SyncSource.MANUAL.value}
    for column, key, limit in (
        ("display_name", "displayName", 255),
        ("company_name", "companyName", 255),
        ("entity_type", "entityType", 50),
        ("vertical", "vertical", 50),
    ):
        if isinstance(answer.get(key), str) and answer[key]:
            values[column] = answer[key][:limit]
    tx.execute(update(brands).where(brands.c.brand_id == brand_id).values(values))
