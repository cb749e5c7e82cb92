"""Every TCR event type hookyard knows, as data: its category and what it does to the state.

Sources: the types the replaced system handled (docs/providers/tcr.md lists them) and a
published snapshot of TCR's `GET /v2/webhook/eventType`. Together they name all 16 CAMPAIGN
types, 8 of the 14 BRAND types and 18 of the 19 VETTING types; the rest were not published
where we could read them. A type missing here is stored and marked ignored, never an error:
add a row when `GET /v2/webhook/eventType` shows one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from hookyard.domain.tendlc.states import (
    BrandStatus,
    CampaignStatus,
    CarrierStatus,
    ShareStatus,
    VettingKind,
    VettingStatus,
)


class Category(StrEnum):
    BRAND = "BRAND"
    CAMPAIGN = "CAMPAIGN"
    VETTING = "VETTING"
    CSP = "CSP"
    INCIDENCE = "INCIDENCE"


class Action(StrEnum):
    BRAND = "brand"  # the brand's fields the payload carries, and `status`
    CAMPAIGN = "campaign"  # the campaign's fields, `status` and `share`
    CARRIER = "carrier"  # one MNO's status of a campaign (`status`, or mnoStatuses)
    VETTING = "vetting"  # a verification or vetting result of the brand
    RECORD = "record"  # known, changes nothing: the entity is noted as synced
    IGNORE = "ignore"  # not 10DLC state (the CSP's own account, complaints)


@dataclass(frozen=True, slots=True)
class EventKind:
    event_type: str
    category: Category
    action: Action
    description: str
    status: str | None = None  # the status the event sets on its row
    initial: bool = False  # set `status` only while the row has none (an ADD after updates)
    share: ShareStatus | None = None
    vetting: VettingKind | None = None


B, C, V = Category.BRAND, Category.CAMPAIGN, Category.VETTING
A = Action

_KINDS = [
    # BRAND
    EventKind("BRAND_ADD", B, A.BRAND, "Brand added", BrandStatus.REGISTERED, initial=True),
    EventKind("BRAND_UPDATE", B, A.BRAND, "Brand updated"),
    EventKind("BRAND_DELETE", B, A.BRAND, "Brand deleted", BrandStatus.DELETED),
    EventKind("BRAND_IDENTITY_STATUS_UPDATE", B, A.BRAND, "Brand identity status changed"),
    EventKind("BRAND_SCORE_UPDATE", B, A.BRAND, "Brand entity score updated"),
    EventKind("BRAND_FEEDBACK", B, A.BRAND, "Feedback (rejection reason) on the brand"),
    EventKind(
        "BRAND_MOCK_OTP",
        B,
        A.VETTING,
        "Mock brand OTP sent",
        VettingStatus.SENT,
        vetting=VettingKind.OTP,
    ),
    EventKind(
        "BRAND_OTP_VERIFIED",
        B,
        A.VETTING,
        "Brand OTP verification completed",
        VettingStatus.VERIFIED,
        vetting=VettingKind.OTP,
    ),
    # CAMPAIGN
    EventKind("CAMPAIGN_ADD", C, A.CAMPAIGN, "Campaign added", CampaignStatus.PENDING, True),
    EventKind("CAMPAIGN_UPDATE", C, A.CAMPAIGN, "Campaign updated"),
    EventKind("CAMPAIGN_EXPIRED", C, A.CAMPAIGN, "Campaign deactivated", CampaignStatus.EXPIRED),
    EventKind(
        "CAMPAIGN_RESUBMISSION", C, A.CAMPAIGN, "Campaign re-submitted", CampaignStatus.REVIEW
    ),
    EventKind("CAMPAIGN_BILLED", C, A.RECORD, "Campaign billed"),
    EventKind("CAMPAIGN_DCA_COMPLETE", C, A.RECORD, "Campaign DCA elections completed"),
    EventKind("CAMPAIGN_NUDGE", C, A.RECORD, "Nudge to a party in the connectivity chain"),
    EventKind(
        "CAMPAIGN_SHARE_ADD",
        C,
        A.CAMPAIGN,
        "Campaign nominated to a CNP",
        share=ShareStatus.NOMINATED,
    ),
    EventKind(
        "CAMPAIGN_SHARE_ACCEPT",
        C,
        A.CAMPAIGN,
        "CNP accepted the nomination",
        share=ShareStatus.ACCEPTED,
    ),
    EventKind(
        "CAMPAIGN_SHARE_DELETE",
        C,
        A.CAMPAIGN,
        "CNP declined the nomination",
        share=ShareStatus.DECLINED,
    ),
    EventKind(
        "CAMPAIGN_SHARE_REJECT",
        C,
        A.CAMPAIGN,
        "CNP rejected the nomination",
        share=ShareStatus.REJECTED,
    ),
    EventKind(
        "MNO_CAMPAIGN_OPERATION_APPROVED",
        C,
        A.CARRIER,
        "Carrier approved the campaign",
        CarrierStatus.APPROVED,
    ),
    EventKind(
        "MNO_CAMPAIGN_OPERATION_REJECTED",
        C,
        A.CARRIER,
        "Carrier rejected the campaign",
        CarrierStatus.REJECTED,
    ),
    EventKind(
        "MNO_CAMPAIGN_OPERATION_REVIEW",
        C,
        A.CARRIER,
        "Campaign submitted for carrier review",
        CarrierStatus.REVIEW,
    ),
    EventKind(
        "MNO_CAMPAIGN_OPERATION_SUSPENDED",
        C,
        A.CARRIER,
        "Carrier suspended the campaign",
        CarrierStatus.SUSPENDED,
    ),
    EventKind(
        "MNO_CAMPAIGN_OPERATION_UNSUSPENDED",
        C,
        A.CARRIER,
        "Carrier lifted its suspension",
        CarrierStatus.APPROVED,
    ),
    # VETTING
    *(
        EventKind(name, V, A.VETTING, text, status, vetting=VettingKind.EVP)
        for name, text, status in [
            ("EVP_REPORT_SCORE", "Vetting provider reported a score", VettingStatus.SCORED),
            ("EVP_REPORT_UNSCORE", "Vetting provider reported no score", VettingStatus.UNSCORED),
            ("EVP_REPORT_FAIL", "Vetting provider reported a failure", VettingStatus.FAILED),
            ("EVP_REPORT_EXPIRE", "Vetting report expired", VettingStatus.EXPIRED),
            ("EVP_REPORT_IMPORT", "Vetting report imported", VettingStatus.IMPORTED),
            ("EVP_REPORT_UPDATE", "Vetting report updated", None),
        ]
    ),
    EventKind("EVP_REPORT_EXPRESS_MAIL", V, A.RECORD, "Pass-through express delivery service"),
    *(
        EventKind(f"BRAND_{suffix}", V, A.VETTING, text, status, vetting=kind)
        for suffix, kind, status, text in [
            (
                "AUTHPLUS_VERIFICATION_ADD",
                VettingKind.AUTHPLUS,
                VettingStatus.PENDING,
                "Authentication+ verification started",
            ),
            (
                "AUTHPLUS_VERIFICATION_COMPLETE",
                VettingKind.AUTHPLUS,
                VettingStatus.VERIFIED,
                "Authentication+ verification complete",
            ),
            (
                "AUTHPLUS_VERIFICATION_FAILED",
                VettingKind.AUTHPLUS,
                VettingStatus.FAILED,
                "Authentication+ verification failed",
            ),
            (
                "AUTHPLUS_VERIFICATION_EXPIRED",
                VettingKind.AUTHPLUS,
                VettingStatus.EXPIRED,
                "Authentication+ verification expired",
            ),
            (
                "AUTHPLUS_DOMAIN_VERIFIED",
                VettingKind.AUTHPLUS_DOMAIN,
                VettingStatus.VERIFIED,
                "Authentication+ domain verified",
            ),
            (
                "AUTHPLUS_DOMAIN_FAILED",
                VettingKind.AUTHPLUS_DOMAIN,
                VettingStatus.FAILED,
                "Authentication+ domain verification failed",
            ),
            (
                "AUTHPLUS_2FA_VERIFIED",
                VettingKind.AUTHPLUS_2FA,
                VettingStatus.VERIFIED,
                "Authentication+ 2FA verified",
            ),
            (
                "AUTHPLUS_2FA_FAILED",
                VettingKind.AUTHPLUS_2FA,
                VettingStatus.FAILED,
                "Authentication+ 2FA failed",
            ),
            (
                "EMAIL_2FA_SEND",
                VettingKind.EMAIL_2FA,
                VettingStatus.SENT,
                "2FA e-mail sent to the brand contact",
            ),
            (
                "EMAIL_2FA_OPEN",
                VettingKind.EMAIL_2FA,
                VettingStatus.OPENED,
                "2FA e-mail opened",
            ),
            (
                "EMAIL_2FA_EXPIRED",
                VettingKind.EMAIL_2FA,
                VettingStatus.EXPIRED,
                "2FA e-mail expired unanswered",
            ),
        ]
    ),
    # Other categories: delivered if subscribed, but not 10DLC state.
    EventKind("CSP_ACTIVE", Category.CSP, A.IGNORE, "CSP activated"),
    EventKind("CSP_APPROVE", Category.CSP, A.IGNORE, "CSP application approved"),
    EventKind("CSP_SUSPEND", Category.CSP, A.IGNORE, "CSP suspended"),
    EventKind("MNO_COMPLAINT", Category.INCIDENCE, A.IGNORE, "Complaint reported by an MNO"),
]

CATALOGUE: Mapping[str, EventKind] = MappingProxyType({k.event_type: k for k in _KINDS})
