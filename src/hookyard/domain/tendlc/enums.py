"""TCR's published enumerations for brands and campaigns, as data: campaign use cases, brand
entity types and verticals (TCR's `GET /v2/enum/usecase`, `/entityType`, `/vertical`), and
the labels people read for them and for the states in `states.py`.

The tables store these fields as TCR sent them, so a value TCR adds later is kept (and shown)
before it is added here; these lists are what the API offers for choosing and filtering.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class UseCase(StrEnum):
    # Standard use cases: any brand may register them.
    TWO_FA = "2FA"
    ACCOUNT_NOTIFICATION = "ACCOUNT_NOTIFICATION"
    CUSTOMER_CARE = "CUSTOMER_CARE"
    DELIVERY_NOTIFICATION = "DELIVERY_NOTIFICATION"
    FRAUD_ALERT = "FRAUD_ALERT"
    HIGHER_EDUCATION = "HIGHER_EDUCATION"
    LOW_VOLUME = "LOW_VOLUME"
    MARKETING = "MARKETING"
    MIXED = "MIXED"
    POLLING_VOTING = "POLLING_VOTING"
    PUBLIC_SERVICE_ANNOUNCEMENT = "PUBLIC_SERVICE_ANNOUNCEMENT"
    SECURITY_ALERT = "SECURITY_ALERT"
    # Special use cases: vetting, carrier pre-approval or a particular entity type needed.
    AGENTS_FRANCHISES = "AGENTS_FRANCHISES"
    CARRIER_EXEMPT = "CARRIER_EXEMPT"
    CHARITY = "CHARITY"
    EMERGENCY = "EMERGENCY"
    K12_EDUCATION = "K12_EDUCATION"
    M2M = "M2M"
    POLITICAL = "POLITICAL"
    PROXY = "PROXY"
    SOCIAL = "SOCIAL"
    SOLE_PROPRIETOR = "SOLE_PROPRIETOR"
    SWEEPSTAKE = "SWEEPSTAKE"
    TRIAL = "TRIAL"
    UCAAS_HIGH = "UCAAS_HIGH"
    UCAAS_LOW = "UCAAS_LOW"


STANDARD_USE_CASES = frozenset(
    {
        UseCase.TWO_FA,
        UseCase.ACCOUNT_NOTIFICATION,
        UseCase.CUSTOMER_CARE,
        UseCase.DELIVERY_NOTIFICATION,
        UseCase.FRAUD_ALERT,
        UseCase.HIGHER_EDUCATION,
        UseCase.LOW_VOLUME,
        UseCase.MARKETING,
        UseCase.MIXED,
        UseCase.POLLING_VOTING,
        UseCase.PUBLIC_SERVICE_ANNOUNCEMENT,
        UseCase.SECURITY_ALERT,
    }
)


class EntityType(StrEnum):
    PRIVATE_PROFIT = "PRIVATE_PROFIT"
    PUBLIC_PROFIT = "PUBLIC_PROFIT"
    NON_PROFIT = "NON_PROFIT"
    GOVERNMENT = "GOVERNMENT"
    SOLE_PROPRIETOR = "SOLE_PROPRIETOR"


class Vertical(StrEnum):
    AGRICULTURE = "AGRICULTURE"
    COMMUNICATION = "COMMUNICATION"
    CONSTRUCTION = "CONSTRUCTION"
    EDUCATION = "EDUCATION"
    ENERGY = "ENERGY"
    ENTERTAINMENT = "ENTERTAINMENT"
    FINANCIAL = "FINANCIAL"
    GAMBLING = "GAMBLING"
    GOVERNMENT = "GOVERNMENT"
    HEALTHCARE = "HEALTHCARE"
    HOSPITALITY = "HOSPITALITY"
    HUMAN_RESOURCES = "HUMAN_RESOURCES"
    INSURANCE = "INSURANCE"
    LEGAL = "LEGAL"
    MANUFACTURING = "MANUFACTURING"
    NGO = "NGO"
    POLITICAL = "POLITICAL"
    POSTAL = "POSTAL"
    PROFESSIONAL = "PROFESSIONAL"
    REAL_ESTATE = "REAL_ESTATE"
    RETAIL = "RETAIL"
    TECHNOLOGY = "TECHNOLOGY"
    TRANSPORTATION = "TRANSPORTATION"


# Labels where the value read as words is not the name people use.
_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "2FA": "Two-factor authentication",
        "M2M": "Machine to machine",
        "K12_EDUCATION": "K-12 education",
        "UCAAS_HIGH": "UCaaS, high volume",
        "UCAAS_LOW": "UCaaS, low volume",
        "NGO": "Non-governmental organisation",
        "AGENTS_FRANCHISES": "Agents and franchises",
        "POLLING_VOTING": "Polling and voting",
        "PRIVATE_PROFIT": "Private company",
        "PUBLIC_PROFIT": "Publicly traded company",
        "NON_PROFIT": "Non-profit organisation",
        "VETTED_VERIFIED": "Vetted and verified",
        "EVP": "External vetting (EVP)",
        "AUTHPLUS": "Authentication+",
        "AUTHPLUS_DOMAIN": "Authentication+ domain",
        "AUTHPLUS_2FA": "Authentication+ 2FA",
        "EMAIL_2FA": "2FA e-mail",
        "OTP": "OTP (sole proprietor)",
    }
)


def label(value: str) -> str:
    """The value as people read it: `CUSTOMER_CARE` -> `Customer care`."""
    return _LABELS.get(value) or value.replace("_", " ").capitalize()
