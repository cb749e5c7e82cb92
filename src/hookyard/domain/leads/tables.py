"""C2S leads and the closures recorded for notification.

Migrations 0006, 0008 (the enrichment pipeline's lease, retry and timing columns), 0011
(`last_notification_sent_at`) and 0019 (`enrichment_status` 32 wide, the index on
`enrichment_finished_at`) create exactly these tables (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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

leads = Table(
    "leads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=True),
    Column("c2s_lead_id", String(300), nullable=False),
    Column("name", String(300), nullable=True),
    Column("email", String(320), nullable=True),  # normalised; None when missing or invalid
    Column("phone", String(20), nullable=True),  # E.164; None when missing or invalid
    # {"email": "fake: a run of 6 identical digits", "phone": "invalid: …"}: the fields whose
    # last value did not validate.
    Column("validation_errors", JSON(none_as_null=True), nullable=True),
    Column("status", String(20), nullable=False),  # open, closed
    # sha256 of the normalised e-mail and phone: enrichment runs again only when it changes.
    Column("contact_hash", String(64), nullable=False),
    # not_needed, pending, running, done, enriched_single_source, unmatched, not_same_person,
    # failed (EnrichmentStatus); 32 wide since 0019 (enriched_single_source is 22).
    Column("enrichment_status", String(32), nullable=False),
    Column("document", String(32), nullable=True),  # the document number enrichment found
    Column("enrichment_data", JSON(none_as_null=True), nullable=True),
    Column("enrichment_error", Text, nullable=True),
    Column("enrichment_attempts", Integer, nullable=False),
    Column("enrichment_requested_at", UTCDateTime(), nullable=True),
    Column("enrichment_started_at", UTCDateTime(), nullable=True),
    Column("enrichment_finished_at", UTCDateTime(), nullable=True),
    # Why a finished run matched nobody (unmatched, not_same_person), matched by one contact
    # only (enriched_single_source), or found no person data.
    Column("enrichment_reason", String(300), nullable=True),
    # A pending lead is due from this time on (None: at once); set by a retry's backoff.
    Column("enrichment_next_attempt_at", UTCDateTime(), nullable=True),
    # A running lead's lease: whose run it is, and until when; expired, it is taken back.
    Column("enrichment_lease_owner", String(100), nullable=True),
    Column("enrichment_lease_until", UTCDateTime(), nullable=True),
    # The last run's steps: [{"step": "identity", "ms": 12.3, "ok": true}, ...].
    Column("enrichment_steps", JSON(none_as_null=True), nullable=True),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("c2s_updated_at", UTCDateTime(), nullable=True),  # C2S's updated_at: the ordering
    Column("last_event_id", Id, nullable=True),
    Column("last_synced_at", UTCDateTime(), nullable=True),
    Column("sync_source", String(20), nullable=True),  # webhook, polling, manual
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("c2s_lead_id"),
    Index(None, "tenant", "status"),
    Index(None, "enrichment_status"),
    Index(None, "enrichment_finished_at"),  # the per-day outcome counts (queries.py)
)

# One row per close of a lead: the e-mail notifier (hookyard.notify) marks `notified_at`. The
# unique event id makes a redelivered or replayed close a no-op.
lead_closures = Table(
    "lead_closures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id", name="fk_lead_closures_lead_id"), nullable=False),
    Column("event_id", Id, nullable=False),
    Column("closed_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("notified_at", UTCDateTime(), nullable=True),
    UniqueConstraint("event_id"),
    Index(None, "lead_id"),
    Index(None, "notified_at"),
)
