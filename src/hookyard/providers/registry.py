"""Provider name → adapter class."""

from __future__ import annotations

from hookyard.providers.base import Adapter
from hookyard.providers.c2s import C2SAdapter
from hookyard.providers.generic import GenericAdapter
from hookyard.providers.hubspot import HubSpotAdapter
from hookyard.providers.meta import MetaAdapter
from hookyard.providers.tcr import TCRAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    cls.provider: cls
    for cls in (GenericAdapter, HubSpotAdapter, MetaAdapter, C2SAdapter, TCRAdapter)
}
