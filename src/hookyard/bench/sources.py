"""The sources the bench's servers load: the demo sources of the four providers (their demo
paths, generated secrets) for the realistic workload, and one generic token source for the
naive baseline and the ingest diagnosis; and the destination the deliveries scenarios send to
(the bare endpoint, `[[destination]]`)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hookyard.destinations.config import Destinations, build_destinations
from hookyard.providers.base import Source
from hookyard.sources import build_source, demo_source_entries

GENERIC_NAME = "bench"
DESTINATION_NAME = "bench-bare"
GENERIC_PATH = "/webhooks/in/bench"
TOKEN_HEADER = "X-Webhook-Token"  # noqa: S105 - a header name
ID_HEADER = "X-Delivery-Id"


@dataclass(frozen=True)
class BenchSecrets:
    hubspot_client_secret: str
    meta_app_secret: str
    meta_verify_token: str
    c2s_token: str
    tcr_token: str
    generic_token: str
    destination_secret: str  # whsec_<base64>: the deliveries' Standard Webhooks key

    @classmethod
    def generate(cls) -> BenchSecrets:
        def new() -> str:
            return "bench-" + secrets.token_urlsafe(18)

        whsec = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        return cls(new(), new(), new(), new(), new(), new(), whsec)


def provider_entries(
    keys: BenchSecrets, *, hubspot_max_age: int = 300, tenant: str | None = None
) -> list[dict[str, Any]]:
    """The demo sources of the four providers (hookyard.sources), with these secrets; the TCR
    sources require the token. `hubspot_max_age` widens HubSpot's 5-minute timestamp window
    for runs longer than it (the requests are signed before the run starts)."""
    by_var = {
        "HOOKYARD_HUBSPOT_CLIENT_SECRET": keys.hubspot_client_secret,
        "HOOKYARD_META_APP_SECRET": keys.meta_app_secret,
        "HOOKYARD_META_VERIFY_TOKEN": keys.meta_verify_token,
        "HOOKYARD_C2S_WEBHOOK_TOKEN": keys.c2s_token,
    }
    entries = [e for e in demo_source_entries(by_var, keys.tcr_token) if e["provider"] != "generic"]
    for entry in entries:
        if tenant is not None:
            entry["tenant"] = tenant
        if entry["provider"] == "hubspot" and hubspot_max_age != 300:
            entry["max_age_seconds"] = hubspot_max_age
    return entries


def generic_entries(keys: BenchSecrets) -> list[dict[str, Any]]:
    """One generic source: the shared token in `X-Webhook-Token`, the delivery id in
    `X-Delivery-Id`, the default (no-op) handler."""
    return [
        {
            "name": GENERIC_NAME,
            "provider": "generic",
            "path": GENERIC_PATH,
            "scheme": "token",
            "header": TOKEN_HEADER,
            "id_header": ID_HEADER,
            "secret": keys.generic_token,
        }
    ]


def destination_entry(
    keys: BenchSecrets, url: str, sources: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """One destination taking every event of `sources` (their entries) to `url`: signed with
    the generated key, not ordered, no rate limit, the other settings at their defaults."""
    return {
        "name": DESTINATION_NAME,
        "url": url,
        "secret": keys.destination_secret,
        "sources": [str(entry["name"]) for entry in sources],
    }


def sources_toml(
    entries: Sequence[Mapping[str, Any]], destinations: Sequence[Mapping[str, Any]] = ()
) -> str:
    lines: list[str] = []
    for kind, tables in (("source", entries), ("destination", destinations)):
        for table in tables:
            lines.append(f"[[{kind}]]")
            for key, value in table.items():
                if isinstance(value, list | tuple):
                    rendered = "[" + ", ".join(json.dumps(v) for v in value) + "]"
                else:
                    # TOML's basic strings, integers and booleans read as JSON writes them.
                    rendered = json.dumps(value)
                lines.append(f"{key} = {rendered}")
            lines.append("")
    return "\n".join(lines)


def write_sources(
    path: Path,
    entries: Sequence[Mapping[str, Any]],
    destinations: Sequence[Mapping[str, Any]] = (),
) -> Path:
    path.write_text(sources_toml(entries, destinations))
    return path


def build_sources(entries: Sequence[Mapping[str, Any]]) -> dict[str, Source]:
    """The sources as the server builds them, by name."""
    built = (build_source(entry) for entry in entries)
    return {source.name: source for source in built}


def build_bench_destinations(
    entries: Sequence[Mapping[str, Any]], destinations: Sequence[Mapping[str, Any]]
) -> Destinations:
    """The destinations as the server builds them from the same file."""
    return build_destinations(destinations, (str(entry["name"]) for entry in entries))
