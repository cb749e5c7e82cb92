"""HubSpot CRM: customers, the last value and time of each field on each side, and the
conflicts a person resolves.

Migration 0007 creates exactly these tables, 0011 the customers' `last_notification_sent_at`
(`tests/test_migrations.py` compares them).
Money is kept in integer cents (exact on every engine; SQLite has no decimal type).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hookyard.db.schema import Id, UTCDateTime, metadata

customers = Table(
    "crm_customers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),
    Column("ban", String(11), nullable=False),  # two letters + nine digits, generated
    Column("company_name", String(255), nullable=False),
    Column("status", String(30), nullable=False),
    Column("customer_type", String(30), nullable=False),
    Column("credit_limit_cents", BigInteger, nullable=True),
    Column("current_balance_cents", BigInteger, nullable=False),
    Column("service_voice", Boolean, nullable=False),
    Column("service_messaging", Boolean, nullable=False),
    Column("service_telecom_data", Boolean, nullable=False),
    Column("hubspot_company_id", String(64), nullable=True),
    # Provider time of a company.deletion: the customer stays, unlinked in effect.
    Column("hubspot_deleted_at", UTCDateTime(), nullable=True),
    Column("last_synced_at", UTCDateTime(), nullable=True),
    Column("sync_source", String(20), nullable=True),  # webhook, polling, manual
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("ban"),
    UniqueConstraint("hubspot_company_id"),
    Index(None, "tenant", "status"),
)

# One row per customer and field: our last value and when it changed, their (HubSpot's)
# last value and its provider time. Values are the canonical text of rules.py.
field_state = Table(
    "crm_field_state",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "customer_id",
        Id,
        ForeignKey("crm_customers.id", name="fk_crm_field_state_customer_id"),
        nullable=False,
    ),
    Column("field", String(40), nullable=False),
    Column("our_value", Text, nullable=True),
    Column("our_changed_at", UTCDateTime(), nullable=True),
    Column("their_value", Text, nullable=True),
    Column("their_changed_at", UTCDateTime(), nullable=True),
    Column("their_event_id", Id, nullable=True),
    # What we last sent HubSpot for the field, and when: the webhook HubSpot sends back for
    # our own change (the echo) carries this value and is recognised by it.
    Column("pushed_value", Text, nullable=True),
    Column("pushed_at", UTCDateTime(), nullable=True),
    UniqueConstraint("customer_id", "field"),
)

sync_conflicts = Table(
    "crm_sync_conflicts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),  # the customer's, for tenant filters
    Column(
        "customer_id",
        Id,
        ForeignKey("crm_customers.id", name="fk_crm_sync_conflicts_customer_id"),
        nullable=False,
    ),
    Column("field", String(40), nullable=False),
    Column("our_value", Text, nullable=True),
    Column("their_value", Text, nullable=True),
    Column("event_id", Id, nullable=False),
    Column("provider_ts", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Column("resolution", String(20), nullable=True),  # keep_ours, take_theirs, superseded
    # The event is the unit: one conflict per event and field, however often it is handled.
    UniqueConstraint("event_id", "field"),
    Index(None, "tenant", "resolved_at"),
    Index(None, "customer_id", "field"),
)

# Our changes on their way to HubSpot. One open row per customer (`pending`, `sending`):
# later changes join it, and what is sent is the customer's values at sending time. `failed`
# rows stay for a person to see (and retry); `done` rows are the record of what went out.
outbox = Table(
    "crm_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),
    Column(
        "customer_id",
        Id,
        ForeignKey("crm_customers.id", name="fk_crm_outbox_customer_id"),
        nullable=False,
    ),
    Column("operation", String(10), nullable=False),  # create, update
    Column("fields", JSON, nullable=False),  # the rule fields to send
    Column("status", String(20), nullable=False),  # pending, sending, done, failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Index(None, "status", "next_attempt_at"),
    Index(None, "customer_id", "status"),
)

# Every exchange with HubSpot about a customer, both ways: what was sent or received, and
# how it ended. Kept when a refused creation removes the customer (no foreign key).
sync_log = Table(
    "crm_sync_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),
    Column("customer_id", Id, nullable=True),
    Column("ban", String(11), nullable=True),
    Column("direction", String(3), nullable=False),  # out, in
    Column("operation", String(20), nullable=False),  # create, update, reconcile, echo
    Column("properties", JSON(none_as_null=True), nullable=True),
    Column("result", String(20), nullable=False),  # ok, refused, retry, failed, ignored
    Column("detail", Text, nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "customer_id", "at"),
    Index(None, "at"),
)
