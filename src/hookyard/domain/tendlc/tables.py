"""10DLC tables. The tenant lives on the brand (its owner); campaigns and vetting results
reach it through their brand. TCR's own ids are the natural keys. A registration a person
asked for is its own row (`brand_registrations`): it exists before TCR gives the brand an id.

Every row carries `last_synced_at` and `sync_source` (webhook, polling or manual), and the
provider time of the last event applied to it (`last_event_at`): an event older than that
is superseded instead of overwriting newer state.
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

TCR_ID_LENGTH = 50  # TCR ids are 7 characters; anything longer than this is not one


def _sync_columns() -> list[Column[object]]:
    return [
        Column("last_event_type", String(200), nullable=True),
        Column("last_event_at", UTCDateTime(), nullable=True),
        Column("last_synced_at", UTCDateTime(), nullable=False),
        Column("sync_source", String(20), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
    ]


brands = Table(
    "tendlc_brands",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("brand_id", String(TCR_ID_LENGTH), nullable=False),
    Column("tenant", String(100), nullable=True),
    Column("display_name", String(255), nullable=True),
    Column("company_name", String(255), nullable=True),
    Column("entity_type", String(50), nullable=True),
    Column("vertical", String(50), nullable=True),
    Column("status", String(20), nullable=True),  # BrandStatus; None: not known yet
    Column("identity_status", String(30), nullable=True),
    Column("trust_score", Integer, nullable=True),
    Column("feedback", Text, nullable=True),
    *_sync_columns(),
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("brand_id"),
    Index(None, "tenant"),
)

campaigns = Table(
    "tendlc_campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", String(TCR_ID_LENGTH), nullable=False),
    # None when TCR named only the campaign (share events carry no brand id).
    Column("brand_id", String(TCR_ID_LENGTH), ForeignKey(brands.c.brand_id), nullable=True),
    Column("use_case", String(50), nullable=True),
    Column("status", String(20), nullable=True),  # CampaignStatus
    Column("share_status", String(20), nullable=True),  # ShareStatus
    Column("rejection_reason", Text, nullable=True),
    *_sync_columns(),
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("campaign_id"),
    Index(None, "brand_id"),
)

campaign_carriers = Table(
    "tendlc_campaign_carriers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "campaign_id",
        String(TCR_ID_LENGTH),
        ForeignKey(campaigns.c.campaign_id),
        nullable=False,
    ),
    Column("mno_id", String(20), nullable=False),
    Column("status", String(30), nullable=False),  # CarrierStatus, or TCR's word as sent
    *_sync_columns(),
    UniqueConstraint("campaign_id", "mno_id"),
)

vettings = Table(
    "tendlc_vettings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("brand_id", String(TCR_ID_LENGTH), ForeignKey(brands.c.brand_id), nullable=False),
    Column("kind", String(30), nullable=False),  # VettingKind
    # The vetting report's id for external vetting; "" for the brand's own verifications.
    Column("vetting_key", String(TCR_ID_LENGTH), nullable=False),
    Column("evp_id", String(TCR_ID_LENGTH), nullable=True),
    Column("vetting_class", String(50), nullable=True),
    Column("status", String(30), nullable=True),  # VettingStatus, or TCR's word as sent
    Column("score", Integer, nullable=True),
    *_sync_columns(),
    # When an e-mail notification about this row was last sent (hookyard.notify).
    Column("last_notification_sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("brand_id", "kind", "vetting_key"),
)

# A brand registration as a person asked for it, kept before TCR is called: PENDING (due),
# SENDING (leased to the API's first attempt or a worker), REGISTERED (the brand row exists)
# or FAILED (TCR's own error list, or ours once the attempts are used up). The queue's
# columns are the leased queue's (`sync/tcr_registration.py`, docs/queues.md).
brand_registrations = Table(
    "tendlc_brand_registrations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant", String(100), nullable=False),
    Column("request", JSON, nullable=False),  # TCR's fields (camelCase), as sent
    Column("status", String(20), nullable=False),  # RegistrationStatus
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),  # the last failed attempt, as we saw it
    Column("errors", JSON, nullable=True),  # TCR's [{code, field, description}] of a refusal
    Column("answer", JSON, nullable=True),  # TCR's answer to the registration, as given
    Column("brand_id", String(TCR_ID_LENGTH), ForeignKey(brands.c.brand_id), nullable=True),
    Column("requested_by", String(100), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("registered_at", UTCDateTime(), nullable=True),
    Index(None, "tenant", "id"),
    Index(None, "status", "next_attempt_at"),
)
