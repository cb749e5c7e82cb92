"""The HubSpot company properties the field rules need, and `hookyard hubspot properties
[--create]`: which of them HubSpot lacks, and creating them (the CRM properties API).

`company_name` maps to HubSpot's standard `name`, which every portal has; the other fields
are custom properties (`hookyard_<field>` unless configured), made in the standard
`companyinformation` group."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hookyard.config import ConfigError, Settings
from hookyard.domain.crm.rules import SERVICES, FieldRule, FieldRules, Kind
from hookyard.http import ApiError
from hookyard.sync.hubspot_api import HubSpotClient

GROUP = "companyinformation"
LABELS = {
    "ban": "BAN (hookyard)",
    "company_name": "Company name (hookyard)",
    "status": "Customer status (hookyard)",
    "customer_type": "Customer type (hookyard)",
    "credit_limit": "Credit limit (hookyard)",
    "current_balance": "Current balance (hookyard)",
    "services": "Services (hookyard)",
}
# HubSpot's (type, fieldType) for each kind of value.
TYPES = {Kind.TEXT: ("string", "text"), Kind.MONEY: ("number", "number"),
         Kind.SERVICES: ("enumeration", "checkbox")}  # fmt: skip


def definition(rule: FieldRule) -> dict[str, Any]:
    """The property HubSpot needs for `rule`, as the properties API takes it."""
    kind, field_type = TYPES[rule.kind]
    body: dict[str, Any] = {
        "name": rule.hubspot_property,
        "label": LABELS.get(rule.field, rule.field),
        "type": kind,
        "fieldType": field_type,
        "groupName": GROUP,
        "description": f"hookyard customer field `{rule.field}` ({rule.on_their_change.value})",
    }
    if rule.kind is Kind.SERVICES:
        body["options"] = [
            {"label": s.replace("_", " ").capitalize(), "value": s, "displayOrder": i}
            for i, s in enumerate(SERVICES)
        ]
    return body


@dataclass(frozen=True, slots=True)
class PropertyCheck:
    field: str
    property: str
    state: str  # present, missing, created, wrong_type, failed
    detail: str = ""


def check(client: HubSpotClient, rules: FieldRules, *, create: bool = False) -> list[PropertyCheck]:
    """Each field's property in HubSpot: present (of the right type), missing (or, with
    `create`, created), or of another type (a person decides: never changed here)."""
    have: Mapping[str, Mapping[str, Any]] = {str(p.get("name")): p for p in client.properties()}
    found: list[PropertyCheck] = []
    for rule in rules.rules:
        name = rule.hubspot_property
        wanted = definition(rule)
        existing = have.get(name)
        if existing is not None:
            if existing.get("type") != wanted["type"]:
                detail = f"HubSpot's type is {existing.get('type')!r}, the rule needs "
                found.append(
                    PropertyCheck(rule.field, name, "wrong_type", detail + repr(wanted["type"]))
                )
            else:
                found.append(PropertyCheck(rule.field, name, "present"))
            continue
        if not create:
            found.append(PropertyCheck(rule.field, name, "missing"))
            continue
        try:
            client.create_property(wanted)
        except ApiError as exc:
            found.append(PropertyCheck(rule.field, name, "failed", str(exc)[:300]))
        else:
            found.append(PropertyCheck(rule.field, name, "created"))
    return found


def cmd_properties(args: argparse.Namespace) -> int:
    """0: every property is there (or was just made); 1: some are missing, of another type,
    or could not be made."""
    settings = Settings()
    if not settings.hubspot_access_token:
        raise ConfigError("the HubSpot API is not configured: set HOOKYARD_HUBSPOT_ACCESS_TOKEN")
    rules = FieldRules.named(settings.hubspot_property_names)
    client = HubSpotClient(
        settings.hubspot_api_url,
        settings.hubspot_access_token,
        timeout=settings.provider_timeout_seconds,
        max_attempts=settings.provider_max_attempts,
    )
    try:
        found = check(client, rules, create=args.create)
    except ApiError as exc:
        print(f"hookyard: {exc}")
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps([asdict(c) for c in found], indent=2))
    else:
        for c in found:
            print(f"{c.field:<16} {c.property:<32} {c.state}{'  ' + c.detail if c.detail else ''}")
        if not args.create and any(c.state == "missing" for c in found):
            print("create the missing ones: hookyard hubspot properties --create")
    return 0 if all(c.state in ("present", "created") for c in found) else 1


def add_parser(sub: Any) -> None:
    """`hookyard hubspot properties [--create] [--json]`."""
    hubspot = sub.add_parser("hubspot", help="HubSpot: the company properties the rules need")
    actions = hubspot.add_subparsers(dest="action", required=True)
    props = actions.add_parser(
        "properties", help="list the properties HubSpot lacks; --create makes them"
    )
    props.add_argument("--create", action="store_true", help="create the missing properties")
    props.add_argument("--json", action="store_true")
    props.set_defaults(func=cmd_properties)


__all__: Sequence[str] = ["add_parser", "check", "definition"]
