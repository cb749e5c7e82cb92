"""10DLC (The Campaign Registry): brands, campaigns, per-carrier campaign status, vetting.

`tables` owns the schema, `catalogue` the event types TCR sends, `carriers` the MNO ids,
and `service.apply` the state transitions, run inside the worker's transaction (`payload`
reads an event, `rows` reads and plans a batch's rows, `transitions` changes them).
Importing it registers how a sent notification marks its rows (`notify/marks.py`).
"""

from hookyard.domain.common import stamp_sent
from hookyard.domain.tendlc.tables import brands, campaigns, vettings
from hookyard.notify.kinds import EntityType
from hookyard.notify.marks import on_sent

on_sent(EntityType.TENDLC_BRAND, stamp_sent(brands))
on_sent(EntityType.TENDLC_CAMPAIGN, stamp_sent(campaigns))
on_sent(EntityType.TENDLC_VETTING, stamp_sent(vettings))
