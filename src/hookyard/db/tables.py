"""Every table of hookyard, in one list: importing this module puts them all on
`metadata`, which the migrations' environment (`db/migrations/env.py`) and the migration
test compare with the database. A package that adds a table module adds it here.

Each package owns its tables (docs/architecture.md, "Who owns which tables"); this module
only gathers them, so it is the one module of `db/` that imports the packages above it
(tests/test_layers.py places it with the entry points). Nothing at run time imports it.
"""

from __future__ import annotations

from types import ModuleType

from hookyard.accounts import tables as accounts
from hookyard.alerts import tables as alerts
from hookyard.db import schema as inbox
from hookyard.db.schema import metadata
from hookyard.destinations import tables as destinations
from hookyard.domain.crm import tables as crm
from hookyard.domain.leads import tables as leads
from hookyard.domain.tendlc import tables as tendlc
from hookyard.domain.whatsapp import tables as whatsapp
from hookyard.notify import tables as notify
from hookyard.queue import tables as queue
from hookyard.sync import tables as sync

MODULES: tuple[ModuleType, ...] = (
    inbox,
    accounts,
    tendlc,
    whatsapp,
    crm,
    leads,
    sync,
    notify,
    alerts,
    queue,
    destinations,
)

__all__ = ["MODULES", "metadata"]
