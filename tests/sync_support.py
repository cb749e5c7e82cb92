"""The fake provider platforms around a real hookyard server, for the reconciliation and
outbound sync tests (tests/test_sync.py, tests/test_api_customers.py): `World`, made by
conftest.py's `world` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from hookyard.accounts import identity
from hookyard.app import create_app
from hookyard.config import Settings
from hookyard.runtime import Runtime
from hookyard.sync.tcr import subscribe_all
from hookyard.testing.fakes.hubspot import HubSpotState
from hookyard.testing.fakes.hubspot import create_app as hubspot_app
from hookyard.testing.fakes.meta import MetaState
from hookyard.testing.fakes.meta import create_app as meta_app
from hookyard.testing.fakes.server import ThreadedServer, serving
from hookyard.testing.fakes.tcr import TCRState
from hookyard.testing.fakes.tcr import create_app as tcr_app
from tests.support import SECRETS

ADMIN = {"authorization": f"Bearer {SECRETS['admin']}"}


@dataclass
class World:
    rt: Runtime
    url: str  # hookyard
    tcr: TCRState
    hubspot: HubSpotState
    meta: MetaState

    def drain(self) -> int:
        return self.rt.make_worker().drain()

    def reconcile(self, provider: str, scope: str = "all", dry_run: bool = False) -> list[Any]:
        return [
            self.rt.sync.reconcile(r, dry_run=dry_run)
            for r in self.rt.sync.reconcilers(provider, scope)
        ]

    def api(
        self, method: str, path: str, *, tenant: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A call with the admin token (a superadmin), acting for `tenant` when given."""
        headers = ADMIN | ({"X-Customer-ID": tenant} if tenant else {})
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def outbox_pass(self) -> int:
        sender = self.rt.sync.outbox()
        assert sender is not None
        return sender.run_once()


@contextmanager
def running_world(settings: Settings) -> Iterator[World]:
    """hookyard as a real HTTP server (API and ingress, workers drained by the test) beside the
    fake TCR, HubSpot and Meta, each subscribed to deliver its webhooks to it. The `world`
    fixture of conftest.py."""
    tcr = TCRState("tcr-key", "tcr-secret", verify_delay=0.05)
    hubspot = HubSpotState("hubspot-token", SECRETS["hubspot"])
    meta = MetaState("meta-token", SECRETS["meta_app"])
    servers = [ThreadedServer(tcr_app(tcr)), ThreadedServer(hubspot_app(hubspot)),
               ThreadedServer(meta_app(meta))]  # fmt: skip
    tcr_url, hubspot_url, meta_url = (s.start() for s in servers)
    configured = settings.model_copy(
        update={
            "tcr_api_url": tcr_url,
            "tcr_api_key": "tcr-key",
            "tcr_api_secret": "tcr-secret",
            "hubspot_api_url": hubspot_url,
            "hubspot_access_token": "hubspot-token",
            "meta_api_url": meta_url + "/v21.0",
            "meta_access_token": "meta-token",
            "provider_backoff_seconds": 0.01,
            "sync_backoff_seconds": 0.0,
        }
    )
    rt = Runtime.build(configured)
    identity.create_tenant(rt.engine, "acme", "Acme")  # customers and brands are a tenant's
    app = create_app(rt, run_workers=False)
    with serving(app) as url:
        # The subscriptions a real install makes: TCR by its API, the others in their consoles.
        subscribe_all(rt.sync.tcr, url, rt.sources.sources)  # type: ignore[arg-type]
        hubspot.configure_webhooks(url + "/webhooks/hubspot/company")
        assert meta.subscribe(url + "/api/v1/whatsapp/webhook", SECRETS["meta_verify"])
        yield World(rt, url, tcr, hubspot, meta)
    rt.close()
    for server in servers:
        server.stop()


def create_customer(world: World, **fields: Any) -> httpx.Response:
    body = {"company_name": "Ringer Network Solutions", "credit_limit": "1500",
            "services": ["voice"]} | fields  # fmt: skip
    return world.api("POST", "/api/v1/customers", tenant="acme", json=body)
