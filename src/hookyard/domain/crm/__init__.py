"""HubSpot CRM: customers, field-level sync state and conflicts for a person to resolve.

Importing it registers how a sent notification marks its rows (`notify/marks.py`)."""

from hookyard.domain.common import stamp_sent
from hookyard.domain.crm.tables import customers
from hookyard.notify.kinds import EntityType
from hookyard.notify.marks import on_sent

on_sent(EntityType.CRM_CUSTOMER, stamp_sent(customers))
