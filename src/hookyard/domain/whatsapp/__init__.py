"""WhatsApp business accounts, message templates (status, quality, history), the campaigns
that use them, and alerts.

Importing it registers how a sent notification marks its rows (`notify/marks.py`)."""

from hookyard.domain.common import stamp_sent
from hookyard.domain.whatsapp.tables import templates
from hookyard.notify.kinds import EntityType
from hookyard.notify.marks import on_sent

on_sent(EntityType.WHATSAPP_TEMPLATE, stamp_sent(templates))
