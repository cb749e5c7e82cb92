"""The states a 10DLC row can be in. Values are stored as these strings."""

from __future__ import annotations

from enum import StrEnum


class BrandStatus(StrEnum):
    PENDING = "PENDING"  # submitted; TCR verifies asynchronously
    REGISTERED = "REGISTERED"
    VERIFIED = "VERIFIED"
    VETTED_VERIFIED = "VETTED_VERIFIED"
    UNVERIFIED = "UNVERIFIED"
    FAILED = "FAILED"
    DELETED = "DELETED"


class IdentityStatus(StrEnum):
    """TCR's `brandIdentityStatus`; another value is stored as sent, the status unchanged."""

    UNVERIFIED = "UNVERIFIED"
    VERIFIED = "VERIFIED"
    VETTED_VERIFIED = "VETTED_VERIFIED"
    SELF_DECLARED = "SELF_DECLARED"


# What a brand's identity status says about the brand.
BRAND_STATUS_OF_IDENTITY = {
    IdentityStatus.UNVERIFIED: BrandStatus.UNVERIFIED,
    IdentityStatus.VERIFIED: BrandStatus.VERIFIED,
    IdentityStatus.VETTED_VERIFIED: BrandStatus.VETTED_VERIFIED,
    IdentityStatus.SELF_DECLARED: BrandStatus.REGISTERED,
}


class CampaignStatus(StrEnum):
    PENDING = "PENDING"  # in the registry, no carrier has reviewed it yet
    ACTIVE = "ACTIVE"  # at least one carrier approved it
    REVIEW = "REVIEW"
    REJECTED = "REJECTED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"


class ShareStatus(StrEnum):
    """The campaign's nomination to a connectivity partner (CNP)."""

    NOMINATED = "NOMINATED"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    REJECTED = "REJECTED"


class CarrierStatus(StrEnum):
    """One MNO's decision on a campaign; a word TCR adds later is stored as sent."""

    PENDING = "PENDING"
    REVIEW = "REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    SUSPENDED = "SUSPENDED"


class VettingKind(StrEnum):
    EVP = "EVP"  # an external vetting provider's report
    AUTHPLUS = "AUTHPLUS"  # Authentication+ verification of the brand
    AUTHPLUS_DOMAIN = "AUTHPLUS_DOMAIN"
    AUTHPLUS_2FA = "AUTHPLUS_2FA"
    EMAIL_2FA = "EMAIL_2FA"
    OTP = "OTP"  # sole-proprietor brand OTP


class VettingStatus(StrEnum):
    PENDING = "PENDING"
    SENT = "SENT"
    OPENED = "OPENED"
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    IMPORTED = "IMPORTED"
    SCORED = "SCORED"
    UNSCORED = "UNSCORED"
