"""WhatsApp templates: business accounts, templates, their history and campaigns.

Migration 0005 creates exactly these tables, 0011 the templates' `last_notification_sent_at`
(`tests/test_migrations.py` compares them). A template's alerts are the alert rules' (the
`alerts` table, hookyard.alerts): 0015 moved the domain's own `whatsapp_alerts` there.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from hookyard.db.schema import Id, UTCDateTime, metadata

# A WhatsApp Business Account (WABA) belongs to one tenant: its events are that tenant's.
accounts = Table(
    "whatsapp_accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("waba_id", String(64), nullable=False),
    Column("tenant", String(100), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("waba_id"),
)

templates = Table(
    "whatsapp_templates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        Id,
        ForeignKey("whatsapp_accounts.id", name="fk_whatsapp_templates_account_id"),
        nullable=False,
    ),
    Column("tenant", String(100), nullable=True),  # the account's, copied for tenant filters
    Column("meta_template_id", String(64), nullable=False),
    Column("name", String(512), nullable=False),
    Column("language", String(20), nullable=True),
    Column("category", String(50), nullable=True),
    Column("status", String(30), nullable=True),  # None until the first status is known
    Column("quality", String(20), nullable=True),
    Column("reason", Text, nullable=True),  # Meta's `reason` of the last status change
    Column("disable_info", JSON(none_as_null=True), nullable=True),
    Column("other_info", JSON(none_as_null=True), nullable=True),
    # Provider time of the last applied status / quality event. Status and quality order
    # separately: a late status change is news even after a newer quality change.
    Column("status_event_at", UTCDateTime(), nullable=True),
    Column("quality_event_at", UTCDateTime(), nullable=True),
    Column("last_synced_at", UTCDateTime(), nullable=True),
    Column("sync_source", String(20), nullable=True),  # webhook, polling, manual
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("meta_template_id"),
    Index(None, "account_id"),
    Index(None, "tenant", "status"),
)

# One row per status or quality event handled for a template, applied or superseded; the
# unique event id is what makes a redelivered or replayed event a no-op.
template_history = Table(
    "whatsapp_template_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "template_id",
        Id,
        ForeignKey("whatsapp_templates.id", name="fk_whatsapp_template_history_template_id"),
        nullable=False,
    ),
    Column("event_id", Id, nullable=True),  # None for a change made by a person
    Column("kind", String(20), nullable=False),  # status, quality
    Column("event", String(50), nullable=False),  # Meta's value: REINSTATED, RED…
    Column("from_value", String(30), nullable=True),
    Column("to_value", String(30), nullable=True),
    Column("reason", Text, nullable=True),
    Column("outcome", String(20), nullable=False),  # applied, superseded
    Column("provider_ts", UTCDateTime(), nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id"),
    Index(None, "template_id", "id"),
)

campaigns = Table(
    "whatsapp_campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),
    Column("name", String(200), nullable=False),
    Column(
        "template_id",
        Id,
        ForeignKey("whatsapp_templates.id", name="fk_whatsapp_campaigns_template_id"),
        nullable=False,
    ),
    Column("status", String(20), nullable=False),  # active, paused
    Column("paused_reason", String(50), nullable=True),
    Column("paused_at", UTCDateTime(), nullable=True),
    Column("paused_by_event", Id, nullable=True),
    Column("paused_by", String(200), nullable=True),  # a person, when not an event
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "template_id", "status"),
)

# What happened to a campaign and why: paused by an event, told of a reinstated template,
# resumed by a person.
campaign_log = Table(
    "whatsapp_campaign_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "campaign_id",
        Id,
        ForeignKey("whatsapp_campaigns.id", name="fk_whatsapp_campaign_log_campaign_id"),
        nullable=False,
    ),
    Column("action", String(30), nullable=False),
    Column("event_id", Id, nullable=True),
    Column("actor", String(200), nullable=True),
    Column("detail", Text, nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "campaign_id", "id"),
)
