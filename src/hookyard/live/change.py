"""The one format of a live change: what changed (kind and id), whose it is (tenant), its
status after the change, a few fields, and when.

A change crosses processes as a PostgreSQL NOTIFY payload, which must stay under 8000 bytes:
`encode` keeps it well under by dropping `data` when the fields would not fit (the client
still learns that the entity changed and can read it from the REST API).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_TEXT_LIMIT = 300  # a string field of `data` is cut to this many characters


class ChangeKind(StrEnum):
    EVENT = "event"  # an inbox event's status (done, failed, dead, superseded, ignored…)
    # An event ingest stored (its source, type and time): sent only to clients naming it
    # in their `subscribe` (OPT_IN), because it is every accepted webhook.
    EVENT_ACCEPTED = "event_accepted"
    TENDLC_BRAND = "tendlc_brand"  # status, identity status
    TENDLC_CAMPAIGN = "tendlc_campaign"  # status, and the carriers' statuses it changed
    TENDLC_VETTING = "tendlc_vetting"
    TENDLC_REGISTRATION = "tendlc_registration"  # a brand registration's state (its row id)
    WHATSAPP_TEMPLATE = "whatsapp_template"  # status, quality
    WHATSAPP_CAMPAIGN = "whatsapp_campaign"  # paused on its template, resumed by a person
    LEAD = "lead"  # open/closed, and its enrichment status
    CRM_CUSTOMER = "crm_customer"  # a field applied from HubSpot, a conflict, a deletion
    DELIVERY = "delivery"  # a destination delivery's status (an attempt, a replay)
    DESTINATION = "destination"  # its state and circuit (opened, closed, probe, paused…)


# Kinds a client receives only when it names them: "every kind" leaves them out.
OPT_IN = frozenset({ChangeKind.EVENT_ACCEPTED})


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    id: int | str  # the entity's id as the REST API names it (event id, TCR id, row id…)
    tenant: str | None  # the owner, as the REST API scopes the entity; None: no tenant's
    status: str | None
    data: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=_now)

    def message(self) -> dict[str, Any]:
        """What a WebSocket client receives."""
        return {
            "type": "change",
            "kind": self.kind.value,
            "id": self.id,
            "tenant": self.tenant,
            "status": None if self.status is None else str(self.status),
            "data": {str(k): _plain(v) for k, v in self.data.items()},
            "at": self.at.isoformat(),
        }

    def encode(self) -> str:
        """Compact JSON, always under MAX_PAYLOAD_BYTES (see the module's docstring)."""
        message = self.message()
        text = _compact(message)
        if len(text) > MAX_PAYLOAD_BYTES:  # ASCII: characters are bytes
            message["data"] = {"truncated": True}
            text = _compact(message)
        return text

    @classmethod
    def decode(cls, text: str | bytes) -> Change:
        """A change from `encode`'s text; ValueError when it is not one."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.get("type") != "change":
                raise ValueError("not a change")
            item = raw["id"]
            tenant, status, data = raw["tenant"], raw["status"], raw["data"]
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ValueError("bad id")
            if not (tenant is None or isinstance(tenant, str)):
                raise ValueError("bad tenant")
            if not (status is None or isinstance(status, str)) or not isinstance(data, dict):
                raise ValueError("bad status or data")
            at = datetime.fromisoformat(raw["at"])
            return cls(ChangeKind(raw["kind"]), item, tenant, status, data, at)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a change: {type(exc).__name__}") from None


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO text, decimals as text, long strings cut."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str) and len(value) > _TEXT_LIMIT:
        return value[:_TEXT_LIMIT]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


# ASCII: a lone surrogate from a provider's text is escaped, never an encoding error. Built
# once: json.dumps with any option builds a new encoder per call (a change per event).
_compact = json.JSONEncoder(separators=(",", ":"), default=str).encode
