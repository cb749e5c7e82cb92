"""Notifications, their deliveries (the e-mail outbox) and people's preferences.

Migration 0011 creates these tables; 0020 adds the deliveries' `channel` and the tenants'
chat webhooks (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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

from hookyard.accounts import tables as account_tables  # noqa: F401  (users, for the foreign key)
from hookyard.db.schema import Id, UTCDateTime, metadata

# One row per change worth telling, written in the transaction that made the change (so it
# exists iff the change committed). `dedup_key` names the change (kind, entity, the event or
# transition): a replayed or redelivered event finds its row and records nothing more.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),  # the entity's owner: only its people
    Column("kind", String(40), nullable=False),  # Kind
    Column("dedup_key", String(300), nullable=False),
    Column("entity_type", String(40), nullable=False),  # EntityType
    Column("entity_id", Id, nullable=False),  # our row's id
    Column("event_id", Id, nullable=True),  # the event that made the change, if any
    Column("data", JSON, nullable=False),  # what the templates show
    # pending: recipients not chosen yet; queued: deliveries made (possibly none);
    # expired: older than HOOKYARD_NOTIFY_MAX_AGE_HOURS when the sender first saw it.
    Column("status", String(20), nullable=False),
    Column("recipients", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("fanned_out_at", UTCDateTime(), nullable=True),
    UniqueConstraint("dedup_key"),
    Index(None, "status", "id"),
    Index(None, "tenant", "created_at"),
)

# One e-mail (or one line of a digest) for one person, or one chat message for the tenant's
# chat webhook (`channel` chat: no person, `email` empty). Sent with a lease and retries,
# like the other outboxes: pending -> sending -> sent | failed | skipped.
deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "notification_id",
        Id,
        ForeignKey("notifications.id", name="fk_notification_deliveries_notification_id"),
        nullable=False,
    ),
    Column("tenant", String(100), nullable=False),  # the notification's, checked at sending
    Column("user_id", Id, nullable=True),  # None: a lead's manager who is not a user, or chat
    Column("email", String(320), nullable=False),  # "" for chat (one chat row a notification)
    Column("mode", String(10), nullable=False),  # immediate, digest
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    # immediate: due at once, then at each retry; digest: the person's next digest time.
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("channel", String(10), nullable=False, server_default="email"),  # email, chat
    UniqueConstraint("notification_id", "email"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "user_id", "status"),
)

# A person's choice for one kind. Without a row the role's default applies (preferences.py).
preferences = Table(
    "notification_preferences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "user_id",
        Id,
        ForeignKey("users.id", name="fk_notification_preferences_user_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(40), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("mode", String(10), nullable=False),  # immediate, digest
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("user_id", "kind"),
)

# A tenant's chat webhook (Slack-compatible: a JSON POST of `{"text", "blocks"}`), set by its
# admins (api/notifications.py). The URL is a credential (whoever has it can post): never
# logged nor shown whole. `secret` (`whsec_…`) signs each POST (Standard Webhooks headers).
chat_webhooks = Table(
    "notification_chat_webhooks",
    metadata,
    Column(
        "tenant",
        String(100),
        ForeignKey("tenants.id", name="fk_notification_chat_webhooks_tenant", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("url", Text, nullable=False),
    Column("secret", String(100), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
