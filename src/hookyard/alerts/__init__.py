"""Alerts: rules evaluated on a schedule (`rules.py`), the alerts they open, update and
resolve (`evaluate.py`), what people read and acknowledge (`queries.py`), and the values the
rules measured, which `/metrics` shows (docs/alerts.md).

Importing it registers how a sent `alert_opened` notification marks its alert: not at all,
the alert keeps no sent time (the notification's deliveries have theirs).
"""

from hookyard.notify.kinds import EntityType
from hookyard.notify.marks import on_sent

on_sent(EntityType.ALERT, lambda tx, sent, now: None)
