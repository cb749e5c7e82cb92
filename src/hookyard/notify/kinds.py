"""The kinds of notification, the entities they are about, and their one-line wording (the
subject of an immediate e-mail and the line of a digest)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    BRAND_VERIFIED = "brand_verified"
    CAMPAIGN_APPROVED = "campaign_approved"  # by one carrier
    CAMPAIGN_REJECTED = "campaign_rejected"  # by one carrier
    VETTING_COMPLETE = "vetting_complete"
    TEMPLATE_DISABLED = "template_disabled"
    TEMPLATE_PAUSED = "template_paused"
    TEMPLATE_RED_QUALITY = "template_red_quality"
    LEAD_CLOSED = "lead_closed"
    SYNC_FAILED = "sync_failed"
    # The campaign as a whole (its status, not one carrier's) became REJECTED.
    CAMPAIGN_STATUS_REJECTED = "campaign_status_rejected"
    ALERT_OPENED = "alert_opened"  # an alert rule (hookyard.alerts) opened a tenant's alert


class EntityType(StrEnum):
    """The row a notification is about; its `last_notification_sent_at` is set once sent."""

    TENDLC_BRAND = "tendlc_brand"
    TENDLC_CAMPAIGN = "tendlc_campaign"
    TENDLC_VETTING = "tendlc_vetting"
    WHATSAPP_TEMPLATE = "whatsapp_template"
    LEAD = "lead"
    CRM_CUSTOMER = "crm_customer"
    ALERT = "alert"


class Mode(StrEnum):
    IMMEDIATE = "immediate"  # one e-mail per notification, as soon as it is committed
    DIGEST = "digest"  # listed in one e-mail per person per day


# `{name}` fields come from the notification's data (see record.py's callers).
HEADLINES: Mapping[Kind, str] = {
    Kind.BRAND_VERIFIED: "Brand {brand_name} is {status}",
    Kind.CAMPAIGN_APPROVED: "Campaign {campaign_id} approved by {carrier}",
    Kind.CAMPAIGN_REJECTED: "Campaign {campaign_id} rejected by {carrier}",
    Kind.VETTING_COMPLETE: "{vetting_kind} vetting of brand {brand_name}: {status}",
    Kind.TEMPLATE_DISABLED: "WhatsApp template {template_name} was disabled",
    Kind.TEMPLATE_PAUSED: "WhatsApp template {template_name} was paused",
    Kind.TEMPLATE_RED_QUALITY: "WhatsApp template {template_name} has RED quality",
    Kind.LEAD_CLOSED: "Lead {lead_name} was closed",
    Kind.SYNC_FAILED: "HubSpot sync of {company_name} failed",
    Kind.CAMPAIGN_STATUS_REJECTED: "Campaign {campaign_id} was rejected",
    Kind.ALERT_OPENED: "Alert: {title}",
}


# What each kind tells, for the people choosing (the preferences API and page).
ABOUT: Mapping[Kind, str] = {
    Kind.BRAND_VERIFIED: "a 10DLC brand becomes verified",
    Kind.CAMPAIGN_APPROVED: "a carrier approves a 10DLC campaign",
    Kind.CAMPAIGN_REJECTED: "a carrier rejects a 10DLC campaign",
    Kind.VETTING_COMPLETE: "a brand's vetting or Authentication+ verification finishes",
    Kind.TEMPLATE_DISABLED: "Meta disables a WhatsApp template",
    Kind.TEMPLATE_PAUSED: "Meta pauses a WhatsApp template",
    Kind.TEMPLATE_RED_QUALITY: "a WhatsApp template's quality becomes RED",
    Kind.LEAD_CLOSED: "a lead closes in Contact2Sale",
    Kind.SYNC_FAILED: "a customer's HubSpot sync fails for good",
    Kind.CAMPAIGN_STATUS_REJECTED: "a 10DLC campaign as a whole is rejected",
    Kind.ALERT_OPENED: "an alert opens (failure rate, dead events, RED quality, drift, e-mail)",
}
assert set(ABOUT) == set(Kind), "every kind needs its description"


def headline(kind: Kind, data: Mapping[str, Any]) -> str:
    """The kind's one line for this notification, on one line whatever the data holds (it
    becomes a Subject header, where a line break would be a header injection)."""
    values = {k: ("-" if v is None else v) for k, v in data.items()}
    try:
        text = HEADLINES[kind].format_map(values)
    except (KeyError, IndexError, ValueError):
        text = kind.value.replace("_", " ")
    return " ".join(text.split())[:200]
