"""Domain modules: each owns its tables (on `hookyard.db.schema.metadata`) and its state
transitions. Importing this package registers every domain table, which the migrations'
environment and the migration test rely on."""

from hookyard.alerts import tables as alert_tables  # noqa: F401
from hookyard.api import tables as account_tables  # noqa: F401
from hookyard.domain.crm import tables as crm_tables  # noqa: F401
from hookyard.domain.leads import tables as leads_tables  # noqa: F401
from hookyard.domain.tendlc import tables as tendlc_tables  # noqa: F401
from hookyard.domain.whatsapp import tables as whatsapp_tables  # noqa: F401
from hookyard.notify import tables as notify_tables  # noqa: F401
from hookyard.queue import tables as queue_tables  # noqa: F401
from hookyard.sync import tables as sync_tables  # noqa: F401
