"""The fake platforms wired to a running hookyard, for the demo (`hookyard serve
--demo-platforms`, which `scripts/serve` uses).

All five fakes are served on one port, each under its own prefix (`/tcr`, `/hubspot`,
`/meta`, `/c2s`, `/enrichment`). hookyard's API clients are pointed at them, and once hookyard
answers, the fakes are subscribed to it exactly as a real install subscribes the providers:
TCR's categories, HubSpot's target URL, Meta's verified callback, C2S's hooks. A little
state is seeded so there is something to reconcile. The credentials are the fakes' own,
obviously not real ones.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from hookyard.providers.base import Source
from hookyard.sync.tcr import category_of
from hookyard.testing.fakes import c2s, enrichment, hubspot, meta, tcr
from hookyard.testing.fakes.server import ThreadedServer

# The fakes' own credentials (not secrets: nothing real accepts them).
CREDENTIALS = {
    "tcr_api_key": "demo-tcr-key",
    "tcr_api_secret": "demo-tcr-secret",
    "hubspot_access_token": "demo-hubspot-token",
    "meta_access_token": "demo-meta-token",
    "c2s_api_token": "demo-c2s-token",
    "enrichment_token": "demo-enrichment-token",
}


def _secret(sources: Sequence[Source], provider: str, attribute: str) -> str:
    for source in sources:
        if source.config.provider == provider:
            return str(getattr(source.config, attribute, "") or "")
    return ""


@dataclass
class DemoPlatforms:
    sources: Sequence[Source]
    port: int
    tcr: tcr.TCRState = field(init=False)
    hubspot: hubspot.HubSpotState = field(init=False)
    meta: meta.MetaState = field(init=False)
    c2s: c2s.C2SState = field(init=False)
    enrichment: enrichment.EnrichmentState = field(init=False)
    server: ThreadedServer = field(init=False)

    def __post_init__(self) -> None:
        c = CREDENTIALS
        self.tcr = tcr.TCRState(c["tcr_api_key"], c["tcr_api_secret"], verify_delay=2.0)
        self.hubspot = hubspot.HubSpotState(
            c["hubspot_access_token"], _secret(self.sources, "hubspot", "client_secret")
        )
        self.meta = meta.MetaState(
            c["meta_access_token"], _secret(self.sources, "meta", "app_secret")
        )
        self.c2s = c2s.C2SState(c["c2s_api_token"])
        self.enrichment = enrichment.EnrichmentState(c["enrichment_token"])
        app = Starlette(
            routes=[
                Mount("/tcr", tcr.create_app(self.tcr)),
                Mount("/hubspot", hubspot.create_app(self.hubspot)),
                Mount("/meta", meta.create_app(self.meta)),
                Mount("/c2s", c2s.create_app(self.c2s)),
                Mount("/enrichment", enrichment.create_app(self.enrichment)),
            ]
        )
        self.server = ThreadedServer(app, port=self.port)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def start(self) -> str:
        return self.server.start()

    def settings(self) -> dict[str, Any]:
        """What points hookyard's clients at the fakes."""
        url, c = self.base_url, CREDENTIALS
        return {
            "tcr_api_url": url + "/tcr",
            "tcr_api_key": c["tcr_api_key"],
            "tcr_api_secret": c["tcr_api_secret"],
            "hubspot_api_url": url + "/hubspot",
            "hubspot_access_token": c["hubspot_access_token"],
            "meta_api_url": url + "/meta/v21.0",
            "meta_access_token": c["meta_access_token"],
            "c2s_api_url": url + "/c2s",
            "c2s_api_token": c["c2s_api_token"],
            "enrichment_identity_url": url + "/enrichment",
            "enrichment_identity_token": c["enrichment_token"],
            "enrichment_person_url": url + "/enrichment",
            "enrichment_person_token": c["enrichment_token"],
        }

    def connect(self, hookyard_url: str, timeout: float = 30.0) -> list[str]:
        """Once hookyard answers: subscribe every fake to it, then seed some state. Returns
        what was done, one line each."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(hookyard_url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return [f"hookyard did not answer at {hookyard_url}; fakes not subscribed"]
            time.sleep(0.2)
        done = []
        for source in self.sources:
            path, config = hookyard_url + source.path, source.config
            if config.provider == "tcr":
                token = getattr(config, "token", None)
                endpoint = path + (f"?token={token}" if token else "")
                category = category_of(source.path)
                if category is not None:
                    self.tcr.subscribe(category, endpoint)
                    done.append(f"TCR {category} webhooks -> {source.path}")
            elif config.provider == "hubspot":
                self.hubspot.configure_webhooks(path)
                done.append(f"HubSpot company webhooks -> {source.path}")
            elif config.provider == "meta":
                verified = self.meta.subscribe(path, str(getattr(config, "verify_token", "")))
                done.append(
                    f"Meta callback {source.path} (handshake {'ok' if verified else 'FAILED'})"
                )
            elif config.provider == "c2s":
                self.c2s.subscribe_all(path, {"X-Webhook-Token": str(getattr(config, "token", ""))})
                done.append(f"C2S lead hooks -> {source.path}")
        done += self.seed()
        return done

    def seed(self) -> list[str]:
        self.tcr.add_brand("BDEMO01", identity_status="UNVERIFIED", trust_score=40)
        self.tcr.add_campaign(
            "CDEMO01", brand_id="BDEMO01", status="ACTIVE",
            mno_statuses={"10017": "REVIEW", "10035": "REVIEW"},
        )  # fmt: skip
        template = self.meta.add_template("order_update", status="PENDING")
        self.enrichment.add_person(
            "12345678909", email="maria.silva@example.com", phone="+5511987654321",
            data={"name": "Maria Silva", "city": "São Paulo"},
        )  # fmt: skip
        return [
            "seeded TCR brand BDEMO01 (UNVERIFIED) with campaign CDEMO01 in REVIEW",
            f"seeded Meta template order_update ({template['id']}, PENDING)",
            "seeded one person the enrichment service knows (maria.silva@example.com)",
        ]

    def stop(self) -> None:
        self.tcr.close()
        self.server.stop()
