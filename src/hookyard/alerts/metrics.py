"""The alert gauges on `/metrics` (hookyard.metrics.AlertCollector over `queries.snapshot`)."""

from __future__ import annotations

from functools import partial

from prometheus_client import REGISTRY
from sqlalchemy import Engine

from hookyard.alerts.queries import snapshot
from hookyard.metrics import AlertCollector

_collector: AlertCollector | None = None


def register(engine: Engine) -> None:
    """One collector per process; a later app (tests build several) takes it over."""
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
    _collector = AlertCollector(partial(snapshot, engine))
    REGISTRY.register(_collector)
