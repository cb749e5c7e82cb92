"""The alert gauges on `/metrics` (hookyard.metrics.AlertCollector over `queries.snapshot`)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from hookyard.alerts.queries import snapshot
from hookyard.metrics import AlertCollector


def collector(engine: Engine) -> AlertCollector:
    """The alert rules' values and the unresolved alerts of `engine`'s database, read at
    each scrape (hookyard.metrics.scrape_registry shows it once per scrape)."""
    return AlertCollector(partial(snapshot, engine))
